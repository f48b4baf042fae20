"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is ``<exp>/checkpoints/step-<N>.pt``: a ``torch.save`` of plain containers and
tensors only (model, optimizer, scheduler and grad-scaler state dicts, the position in the data
stream, the RNG state and the resolved config), so it loads with ``torch.load(weights_only=True)``
and never unpickles code. It is written to a temporary file and renamed in one step: a run killed
while saving leaves the previous checkpoint as the latest complete one, and the temporary file is
never taken for a checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Optional

import torch

from speechssl.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "speechssl-pretrain-state"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_path(folder: str | os.PathLike, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``folder`` as (step, path), oldest first (partial files excluded)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(folder: str | os.PathLike) -> Optional[Path]:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def save_checkpoint(folder: str | os.PathLike, step: int, state: dict[str, Any], keep: int = 2, kind: str = FORMAT) -> Path:
    """Write ``state`` as the checkpoint of ``step`` atomically, then delete all but the newest
    ``keep`` checkpoints (``keep <= 0`` keeps all). ``kind`` names the training that wrote it
    (pretraining by default; the ASR trainer passes its own), and loading checks it."""
    path = checkpoint_path(folder, step)
    state = {"format": kind, "format_version": FORMAT_VERSION, "step": step, **state}
    with atomic_path(path, size_hint=_tensor_bytes(state)) as tmp:
        torch.save(state, tmp)
    if keep > 0:
        for _, old in list_checkpoints(folder)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def _tensor_bytes(obj) -> int:
    """The bytes of the tensors in a nested state (what a checkpoint of it needs on disk, about)."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", kind: str = FORMAT) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which
        raise ValueError(f"{path}: not a readable training checkpoint ({e})") from None
    if not isinstance(state, dict) or state.get("format") != kind:
        found = state.get("format") if isinstance(state, dict) else None
        raise ValueError(f"{path}: not a {kind} checkpoint (found format {found!r})")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {state['format_version']} is newer than this speechssl reads ({FORMAT_VERSION})")
    return state
