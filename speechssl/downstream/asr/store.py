"""A trained CTC model on disk, in its experiment folder.

* ``model.safetensors``: the interface and head weights (``interface.*``, ``head.*``); its metadata
  holds the resolved training config, the vocabulary file's name, the mode, and the fingerprint of
  the base encoder the model was trained on. Written last: its presence marks a finished run.
* ``adapter.safetensors`` (adapters mode): the adapter only (:func:`speechssl.adapters.save_adapter`).
* ``encoder.safetensors`` (finetune mode): the fine-tuned encoder.
* ``summary.json``: what the run did (steps, time, trainable parameters, last validation).

Frozen and adapters models load their base encoder from the path in the config and refuse one
whose weights differ from the training run's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from speechssl.io import atomic_path, atomic_write_text

FORMAT = "speechssl-ctc"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"


def save_ctc_model(model: nn.Module, cfg, vocab_path: Path, base_fingerprint: str, exp: str | os.PathLike, summary: dict) -> Path:
    """Write a trained :class:`~speechssl.downstream.asr.model.CTCModel` into ``exp`` (see the module doc)."""
    from safetensors.torch import save_file

    from speechssl.adapters.store import save_adapter
    from speechssl.checkpoint import save_encoder
    from speechssl.config import to_dict

    exp = Path(exp)
    mode = cfg.encoder.mode
    if mode == "adapters":
        save_adapter(model.encoder, cfg.encoder.adapter_name, exp / "adapter.safetensors")
    elif mode == "finetune":
        save_encoder(model.encoder, exp / "encoder.safetensors")
    weights = getattr(model.interface, "layer_weights", None)
    if weights is not None:
        summary = {**summary, "layer_weights": [round(float(w), 6) for w in weights()]}
    atomic_write_text(exp / "summary.json", json.dumps(summary, indent=1) + "\n")
    state = {f"interface.{k}": v for k, v in model.interface.state_dict().items()}
    state.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(to_dict(cfg)),
        "vocab": Path(vocab_path).name,
        "mode": mode,
        "base_fingerprint": base_fingerprint,
    }
    path = exp / MODEL_FILE
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp), metadata=metadata)
    return path


def read_ctc_metadata(exp: str | os.PathLike) -> dict[str, str]:
    from speechssl.checkpoint import read_metadata

    path = Path(exp) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model (the training run did not finish, or {exp} is not an ASR experiment)")
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a speechssl CTC model (metadata format={meta.get('format')!r})")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {meta['format_version']} is newer than this speechssl reads ({FORMAT_VERSION})")
    return meta


def load_ctc_model(exp: str | os.PathLike, device: str | torch.device = "cpu"):
    """``(model, vocab, cfg)`` of the run in ``exp``, the model in eval mode on ``device``."""
    from safetensors.torch import load_file

    from speechssl import load_encoder
    from speechssl.adapters.store import load_adapter
    from speechssl.config import from_dict
    from speechssl.downstream.asr.model import build_ctc_model
    from speechssl.downstream.asr.text import vocab_from_file
    from speechssl.downstream.asr.train import AsrConfig
    from speechssl.features.layer import encoder_fingerprint

    exp = Path(exp)
    meta = read_ctc_metadata(exp)
    cfg = from_dict(AsrConfig, json.loads(meta["config"]), source=str(exp / MODEL_FILE))
    vocab = vocab_from_file(exp / meta["vocab"])
    if cfg.encoder.mode == "finetune":
        encoder = load_encoder(exp / "encoder.safetensors")
    else:
        encoder = load_encoder(cfg.encoder.path, allow_pickle=cfg.encoder.allow_pickle)
        found = encoder_fingerprint(encoder)
        if found != meta["base_fingerprint"]:
            raise ValueError(
                f"{exp}: trained on base encoder {meta['base_fingerprint'][:12]}, but {cfg.encoder.path} now holds "
                f"encoder {found[:12]} (the file was replaced?)"
            )
        if cfg.encoder.mode == "adapters":
            load_adapter(encoder, exp / "adapter.safetensors", cfg.encoder.adapter_name)
    model = build_ctc_model(encoder, cfg.encoder, cfg.head, vocab.vocab_size)
    state = load_file(str(exp / MODEL_FILE))
    for part in (model.interface, model.head):
        prefix = "interface." if part is model.interface else "head."
        part.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return model.to(device).eval(), vocab, cfg
