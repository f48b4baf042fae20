"""A trained CTC model on disk, in its experiment folder: the files every downstream task writes
(:mod:`speechssl.downstream.store`: ``model.safetensors`` last, ``adapter.safetensors`` or
``encoder.safetensors``, ``summary.json``), and the vocabulary file (``vocab.json`` or
``vocab.model``) whose name the model's metadata holds.

Frozen and adapters models load their base encoder from the path in the config and refuse one
whose weights differ from the training run's.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from speechssl.downstream.store import MODEL_FILE, load_downstream_model, read_model_metadata, save_downstream_model

FORMAT = "speechssl-ctc"
__all__ = ["FORMAT", "MODEL_FILE", "load_ctc_model", "read_ctc_metadata", "save_ctc_model"]


def save_ctc_model(model: nn.Module, cfg, vocab_path: Path, base_fingerprint: str, exp: str | os.PathLike, summary: dict) -> Path:
    """Write a trained :class:`~speechssl.downstream.asr.model.CTCModel` into ``exp`` (see the module doc)."""
    return save_downstream_model(model, cfg, base_fingerprint, exp, summary, FORMAT, {"vocab": Path(vocab_path).name})


def read_ctc_metadata(exp: str | os.PathLike) -> dict[str, str]:
    return read_model_metadata(exp, FORMAT, "ASR")


def load_ctc_model(exp: str | os.PathLike, device: str | torch.device = "cpu"):
    """``(model, vocab, cfg)`` of the run in ``exp``, the model in eval mode on ``device``."""
    from speechssl.downstream.asr.model import build_ctc_model
    from speechssl.downstream.asr.text import vocab_from_file
    from speechssl.downstream.asr.train import AsrConfig

    vocabs = {}

    def build(upstream, cfg, meta):
        vocabs["v"] = vocab_from_file(Path(exp) / meta["vocab"])
        return build_ctc_model(upstream, cfg.encoder, cfg.head, vocabs["v"].vocab_size)

    model, cfg, _ = load_downstream_model(exp, FORMAT, "ASR", AsrConfig, build, device)
    return model, vocabs["v"], cfg
