"""Non-finite values never pass as results.

Training (pretraining and the downstream trainers) follows one skip policy, :class:`StepGuard`: a
step whose loss is not finite, or whose gradient norm is not finite while no fp16 grad scaler is
in charge (with one, an overflowing step is the scaler's to skip, and it lowers its scale), is not
applied: the optimizer does not step, the weights stay those of the last good step. ``patience``
such steps in a row (``optim.nonfinite_patience``, default 5; 0 stops at the first) stop the run
with :class:`TrainingDiverged`, one line saying where and what to change. The checkpoints written
before then hold finite weights (a skipped step changes nothing), so the last one is the last good
state, and no encoder is written from a run that stopped.

:func:`check_finite` is the last line: a state dict with a non-finite tensor is never written as an
encoder, adapter or downstream model (:func:`speechssl.checkpoint.save_encoder` and the others call
it), and :func:`finite_or_none` makes a metric JSON-safe (``null``, not a bare ``NaN``).
"""

from __future__ import annotations

import logging
import math
from typing import Iterable, Mapping

import torch

log = logging.getLogger(__name__)


class TrainingDiverged(ValueError):
    """Training met non-finite losses or gradients ``patience`` steps in a row."""


class StepGuard:
    """Whether to apply each optimizer step; raises :class:`TrainingDiverged` after ``patience``
    bad steps in a row. ``scaler_enabled``: an fp16 GradScaler handles overflowing gradients."""

    def __init__(self, patience: int, where: str, scaler_enabled: bool = False):
        if patience < 0:
            raise ValueError(f"nonfinite_patience must be >= 0, got {patience}")
        self.patience, self.where, self.scaler_enabled = patience, where, scaler_enabled
        self.streak = 0  # bad steps in a row, ending at the last step seen
        self.first_bad = 0
        self.skipped = 0  # in all

    def apply(self, step: int, loss: float, grad_norm: float, hint: str = "") -> bool:
        """Step ``step`` (1-based, the one being decided) had ``loss`` and ``grad_norm``: True to
        apply it, False to skip it; raises once the streak exceeds ``patience``."""
        bad = not math.isfinite(loss) or (not self.scaler_enabled and not math.isfinite(grad_norm))
        if not bad:
            self.streak = 0
            return True
        if self.streak == 0:
            self.first_bad = step
        self.streak += 1
        self.skipped += 1
        if self.streak > self.patience:
            steps = f"step {step}" if self.streak == 1 else f"steps {self.first_bad}-{step}"
            raise TrainingDiverged(
                f"{self.where}: training diverged: non-finite loss or gradient norm at {steps} "
                f"(loss {loss}, gradient norm {grad_norm}; {self.streak} in a row, optim.nonfinite_patience={self.patience}). "
                "No update of those steps was applied; the checkpoints written before them are kept and no final model was written"
                + (f". {hint}" if hint else "")
            )
        return False


def save_unless_skipping(guard: StepGuard, step: int, save) -> None:
    """``save()`` a checkpoint due at ``step``, unless the last steps were skipped: the newest
    checkpoint stays the last good state."""
    if guard.streak:
        log.warning("step %d: checkpoint not written: the last %d step(s) were skipped (non-finite)", step, guard.streak)
    else:
        save()


def nonfinite_names(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors in ``state`` that hold a NaN or an infinity."""
    floats = [(k, v) for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()]
    if not floats:
        return []
    ok = torch.stack([torch.isfinite(v).all() for _, v in floats]).tolist()  # one sync
    return [k for (k, _), good in zip(floats, ok) if not good]


def check_finite(state: Mapping[str, torch.Tensor], what: str) -> None:
    """``ValueError`` naming ``what`` and the tensors when any is not finite."""
    bad = nonfinite_names(state)
    if bad:
        shown = ", ".join(bad[:5]) + (f" ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
        raise ValueError(f"{what}: refused: {len(bad)} tensor(s) hold NaN or infinite values ({shown}); a diverged model is not written")


def finite_or_none(value: float) -> float | None:
    """``value``, or None (JSON ``null``) when it is NaN or infinite."""
    return value if math.isfinite(value) else None


def all_finite(values: Iterable[float]) -> bool:
    return all(math.isfinite(v) for v in values)
