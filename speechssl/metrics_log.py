"""The training curves of a run: one JSON line per record in ``<exp>/log.jsonl`` and the same
scalars in TensorBoard (``<exp>/tensorboard``)."""

from __future__ import annotations

import json
import os
from pathlib import Path


class MetricsLog:
    """``log.write("train", step, epoch, {"loss": ...})``; ``close()`` at the end. With
    ``enabled=False`` (a DDP rank other than 0) it writes nothing."""

    def __init__(self, exp_dir: str | os.PathLike, enabled: bool = True):
        self.exp, self.enabled = Path(exp_dir), enabled
        self._writer = None

    def write(self, split: str, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"split": split, "step": step, "epoch": epoch, **{k: round(v, 6) for k, v in metrics.items()}}
        with open(self.exp / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.exp / "tensorboard"))
        for k, v in metrics.items():
            self._writer.add_scalar(f"{split}/{k}", v, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
