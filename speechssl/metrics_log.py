"""The training curves of a run: one JSON line per record in ``<exp>/log.jsonl`` and the same
scalars in TensorBoard (``<exp>/tensorboard``)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path


class MetricsLog:
    """``log.write("train", step, epoch, {"loss": ...})``; ``close()`` at the end. With
    ``enabled=False`` (a DDP rank other than 0) it writes nothing.

    ``start_step``: the step the run starts from (a resumed checkpoint's; 0 for a fresh run).
    Records of later steps, written by the run that was stopped after its last checkpoint, are
    cut from ``log.jsonl`` (and TensorBoard purges its events), so that the curves hold every
    step once."""

    def __init__(self, exp_dir: str | os.PathLike, enabled: bool = True, start_step: int = 0):
        self.exp, self.enabled, self.start_step = Path(exp_dir), enabled, start_step
        self._writer = None
        if enabled:
            self._cut_after(start_step)

    def _cut_after(self, step: int) -> None:
        path = self.exp / "log.jsonl"
        if not path.is_file():
            return
        from speechssl.io import atomic_path

        dropped = 0
        with open(path, encoding="utf-8") as src, atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as dst:
            for line in src:
                try:
                    later = json.loads(line)["step"] > step
                except (json.JSONDecodeError, KeyError, TypeError):  # a line cut short by the kill
                    later = True
                if later:
                    dropped += 1
                else:
                    dst.write(line)
        if dropped:
            import logging

            logging.getLogger(__name__).info("%s: %d record(s) after step %d (the run that stopped) removed", path, dropped, step)

    def write(self, split: str, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        # a NaN or infinity is written as null: log.jsonl stays strict JSON
        record = {"split": split, "step": step, "epoch": epoch, **{k: round(v, 6) if math.isfinite(v) else None for k, v in metrics.items()}}
        with open(self.exp / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: TensorBoard drops the stopped run's events from this step on
            self._writer = SummaryWriter(str(self.exp / "tensorboard"), purge_step=self.start_step + 1 if self.start_step else None)
        for k, v in metrics.items():
            self._writer.add_scalar(f"{split}/{k}", v, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class StepWindow:
    """The training steps since the last ``train`` record: sums of the applied steps' metrics, the
    steps skipped as non-finite (their numbers stay out of the averages), the audio seen and the
    wall time (``restart_clock`` leaves validation and saving out of the speed)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.steps = self.skipped = 0
        self.audio = 0.0
        self.restart_clock()

    def restart_clock(self) -> None:
        self.start = time.perf_counter()

    def add(self, metrics: dict[str, float]) -> None:
        """One step's metrics, with ``skipped`` (1.0 for a step that was not applied) and ``audio_seconds``."""
        self.audio += metrics["audio_seconds"]
        if metrics.get("skipped"):
            self.skipped += 1
            return
        for k, v in metrics.items():
            if k != "skipped":
                self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1

    def speed(self) -> float:
        """Seconds of audio per second of wall time."""
        return self.audio / max(1e-9, time.perf_counter() - self.start)

    def record(self, lr: float) -> dict[str, float]:
        """The ``train`` record: averages over the applied steps, the learning rate now, the audio
        and its speed, and ``skipped_steps`` when any."""
        out = {k: v / self.steps for k, v in self.sums.items()} if self.steps else {}
        out.update(lr=lr, audio_seconds=self.audio, audio_seconds_per_second=self.speed())
        if self.skipped:
            out["skipped_steps"] = self.skipped
        return out
