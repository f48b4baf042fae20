"""speechssl's encoder checkpoint: one ``.safetensors`` file holding the weights, with the resolved
config and a format version in its metadata. Loading never unpickles anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

from speechssl.config import ConfigError, from_dict, to_dict
from speechssl.models.encoder import EncoderConfig, SSLEncoder, build_encoder

FORMAT = "speechssl-encoder"
FORMAT_VERSION = 1


def save_encoder(encoder: SSLEncoder, path: str | os.PathLike) -> Path:
    """Write ``encoder`` to ``path`` (``.safetensors``) atomically; refused (``ValueError``) when a
    weight holds NaN or infinite values: a diverged encoder is never written as a result."""
    from safetensors.torch import save_file

    from speechssl.io import atomic_path
    from speechssl.nonfinite import check_finite

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: speechssl checkpoints are .safetensors files")
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(to_dict(encoder.config)),
    }
    state = {k: v.detach().contiguous() for k, v in encoder.state_dict().items()}
    check_finite(state, f"{path}: encoder")
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None


def is_speechssl_checkpoint(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_file() and path.suffix == ".safetensors" and read_metadata(path).get("format") == FORMAT


def load_encoder_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> SSLEncoder:
    """Read a checkpoint written by :func:`save_encoder`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a speechssl encoder checkpoint (metadata format={meta.get('format')!r})")
    version = int(meta.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {version} is newer than this speechssl reads ({FORMAT_VERSION})")
    try:
        cfg = from_dict(EncoderConfig, json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError, ConfigError) as e:
        raise ValueError(f"{path}: bad config in the checkpoint metadata ({e})") from None
    encoder = build_encoder(cfg)
    try:
        encoder.load_state_dict(load_file(str(path), device=map_location), strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not match the stored config ({e})") from None
    return encoder.eval()
