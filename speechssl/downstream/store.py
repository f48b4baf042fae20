"""A trained downstream model on disk, in its experiment folder (every task the same way).

* ``model.safetensors``: the interface and head weights (``interface.*``, ``head.*``; ``norm.*``, the
  hidden-state statistics, with ``encoder.normalize``); its metadata
  holds the format (one per task), the resolved training config, the mode, the fingerprint of the
  upstream the model was trained on, and what the task adds (the ASR vocabulary's file name, the
  class names). Written last: its presence marks a finished run.
* ``adapter.safetensors`` (adapters mode): the adapter only (:func:`speechssl.adapters.save_adapter`).
* ``encoder.safetensors`` (finetune mode): the fine-tuned encoder.
* ``summary.json``: what the run did (steps, time, trainable parameters, learned layer weights, last
  validation).

Frozen and adapters models load their upstream from the config (a randomly initialised encoder is
drawn again from the run's seed) and refuse one whose weights differ from the training run's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from speechssl.io import atomic_path, atomic_write_text

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"


def save_downstream_model(
    model: nn.Module, cfg, base_fingerprint: str, exp: str | os.PathLike, summary: dict, fmt: str, metadata: Optional[dict[str, str]] = None
) -> Path:
    """Write a trained :class:`~speechssl.downstream.upstream.DownstreamModel` into ``exp`` (see the module doc)."""
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
    if model.norm is not None:
        state.update({f"norm.{k}": v for k, v in model.norm.state_dict().items()})
    meta = {
        "format": fmt,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(to_dict(cfg)),
        "mode": mode,
        "base_fingerprint": base_fingerprint,
        **(metadata or {}),
    }
    path = exp / MODEL_FILE
    from speechssl.nonfinite import check_finite

    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    check_finite(state, f"{path}: downstream model")
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def read_model_metadata(exp: str | os.PathLike, fmt: str, what: str) -> dict[str, str]:
    """The metadata of ``exp``'s model, checked to be of format ``fmt`` (``what`` names it in errors)."""
    from speechssl.checkpoint import read_metadata

    path = Path(exp) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model (the training run did not finish, or {exp} is not a {what} experiment)")
    meta = read_metadata(path)
    if meta.get("format") != fmt:
        raise ValueError(f"{path}: not a speechssl {what} model (metadata format={meta.get('format')!r}, expected {fmt!r})")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {meta['format_version']} is newer than this speechssl reads ({FORMAT_VERSION})")
    return meta


def load_downstream_model(
    exp: str | os.PathLike, fmt: str, what: str, config_cls, build: Callable[[nn.Module, object, dict], nn.Module], device: str | torch.device = "cpu"
):
    """``(model, cfg, metadata)`` of the run in ``exp``, the model in eval mode on ``device``.

    ``build(upstream, cfg, metadata)`` makes the untrained model (as the trainer did); its interface
    and head then get the saved weights."""
    from safetensors.torch import load_file

    from speechssl import load_encoder
    from speechssl.adapters.store import load_adapter
    from speechssl.config import from_dict
    from speechssl.downstream.upstream import load_upstream, upstream_fingerprint

    exp = Path(exp)
    meta = read_model_metadata(exp, fmt, what)
    cfg = from_dict(config_cls, json.loads(meta["config"]), source=str(exp / MODEL_FILE))
    if cfg.encoder.mode == "finetune":
        upstream = load_encoder(exp / "encoder.safetensors")
    else:
        upstream = load_upstream(cfg.encoder, seed=cfg.run.seed)
        found = upstream_fingerprint(upstream)
        if found != meta["base_fingerprint"]:
            raise ValueError(
                f"{exp}: trained on base encoder {meta['base_fingerprint'][:12]}, but {cfg.encoder.path} now holds "
                f"encoder {found[:12]} (the file was replaced?)"
            )
        if cfg.encoder.mode == "adapters":
            load_adapter(upstream, exp / "adapter.safetensors", cfg.encoder.adapter_name)
    model = build(upstream, cfg, meta)
    state = load_file(str(exp / MODEL_FILE))
    parts = [("interface.", model.interface), ("head.", model.head)] + ([("norm.", model.norm)] if model.norm is not None else [])
    for prefix, part in parts:
        part.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return model.to(device).eval(), cfg, meta


def stored_bytes(exp: Path, mode: str) -> int:
    """Bytes a user keeps for this model beyond the base encoder: the head (model.safetensors) plus
    the adapter (adapters mode) or the whole fine-tuned encoder (finetune mode)."""
    extra = {"adapters": "adapter.safetensors", "finetune": "encoder.safetensors"}.get(mode)
    files = [exp / MODEL_FILE] + ([exp / extra] if extra else [])
    return sum(f.stat().st_size for f in files if f.is_file())


def training_facts(exp: str | os.PathLike, cfg) -> dict:
    """What an evaluation's metrics.json repeats about the training run: upstream, mode, trainable
    parameters, stored bytes, training time and data, learned layer weights (from summary.json)."""
    exp = Path(exp)
    path = exp / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {
        "upstream": cfg.encoder.describe,
        "mode": cfg.encoder.mode,
        "trainable_params": summary.get("trainable_params"),
        "total_params": summary.get("total_params"),
        "stored_bytes": stored_bytes(exp, cfg.encoder.mode),
        "train_seconds": summary.get("train_seconds"),
        "train_minutes_of_audio": summary.get("train_minutes_of_audio"),
        "layer_weights": summary.get("layer_weights"),
    }
