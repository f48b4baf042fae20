"""LoRA (Hu et al. 2021): a low-rank update ``(alpha / r) * B @ A`` of a frozen linear layer.

:class:`LoRALinear` is an ``nn.Linear`` that keeps the very ``weight`` / ``bias`` parameters (and
state-dict keys) of the layer it replaces and adds named LoRA pairs under ``.lora`` (one per
adapter). Only the active pair is applied. ``merge()`` folds the active pair into the weight for
inference; ``unmerge()`` takes it out again, restoring the weight as it was before ``merge()``
bit for bit (a copy is kept while merged) unless the weight was changed in between.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LoRAPair(nn.Module):
    """``A`` ``(r, in)``, kaiming-uniform as in the paper's reference code; ``B`` ``(out, r)``, zero."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, found {rank}")
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        self.A = nn.Parameter(torch.empty(rank, in_features))
        self.B = nn.Parameter(torch.empty(out_features, rank))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5), generator=generator)
        nn.init.zeros_(self.B)

    def delta(self) -> Tensor:
        """The weight update ``(alpha / r) * B @ A``, ``(out, in)``."""
        return (self.B @ self.A) * self.scaling

    def extra_repr(self) -> str:
        return f"in_features={self.A.shape[1]}, out_features={self.B.shape[0]}, rank={self.rank}, alpha={self.alpha}"

    def forward(self, x: Tensor) -> Tensor:  # x: (..., in) -> (..., out)
        return F.linear(F.linear(self.dropout(x), self.A), self.B) * self.scaling


class LoRALinear(nn.Linear):
    """An ``nn.Linear`` with named LoRA pairs; ``active_adapter`` selects the applied one (or None)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.lora = nn.ModuleDict()
        self.active_adapter: str | None = None
        self.merged_adapter: str | None = None  # the pair folded into ``weight``, if any
        self._merged_version = -1
        self.register_buffer("_pre_merge", None, persistent=False)  # the weight before merge()

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "LoRALinear":
        """A LoRALinear sharing ``linear``'s weight and bias Parameters (no copy)."""
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        new.weight = linear.weight
        new.bias = linear.bias
        new.train(linear.training)
        return new

    def to_linear(self) -> nn.Linear:
        """A plain nn.Linear sharing this layer's weight and bias (which must not be merged)."""
        if self.merged_adapter is not None:
            raise ValueError(f"LoRA adapter '{self.merged_adapter}' is merged into this layer; unmerge it first")
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        plain.weight = self.weight
        plain.bias = self.bias
        plain.train(self.training)
        return plain

    def add_pair(self, name: str, rank: int, alpha: float, dropout: float = 0.0, generator: torch.Generator | None = None) -> LoRAPair:
        if name in self.lora:
            raise ValueError(f"this layer already has a LoRA pair named '{name}'")
        pair = LoRAPair(self.in_features, self.out_features, rank, alpha, dropout)
        pair.reset_parameters(generator)
        pair.to(device=self.weight.device, dtype=self.weight.dtype)
        self.lora[name] = pair
        return pair

    def remove_pair(self, name: str) -> None:
        if self.merged_adapter == name:
            self.unmerge()
        del self.lora[name]
        if self.active_adapter == name:
            self.active_adapter = None

    def set_active(self, name: str | None) -> None:
        if name == self.active_adapter:
            return
        if self.merged_adapter is not None:
            raise ValueError(f"LoRA adapter '{self.merged_adapter}' is merged into this layer; unmerge it before switching")
        self.active_adapter = name

    def _active_pair(self) -> LoRAPair | None:
        if self.active_adapter is None:
            return None
        return self.lora[self.active_adapter] if self.active_adapter in self.lora else None

    @torch.no_grad()
    def merge(self) -> bool:
        """Fold the active pair into ``weight``; False if there is nothing to merge."""
        if self.merged_adapter is not None:
            return False
        pair = self._active_pair()
        if pair is None:
            return False
        self._pre_merge = self.weight.detach().clone()
        self.weight.add_(pair.delta().to(self.weight.dtype))
        self._merged_version = self.weight._version
        self.merged_adapter = self.active_adapter
        return True

    def _base_weight(self) -> Tensor:
        """The weight without the merged pair: the kept copy, or ``weight - delta`` if the weight
        changed while merged (training, loading): correct to float tolerance only."""
        if self.merged_adapter is None:
            return self.weight.detach()
        if self._pre_merge is not None and self.weight._version == self._merged_version:
            return self._pre_merge
        return self.weight.detach() - self.lora[self.merged_adapter].delta().detach().to(self.weight.dtype)

    @torch.no_grad()
    def unmerge(self) -> bool:
        """Take the merged pair out of ``weight`` again; False if none is merged."""
        if self.merged_adapter is None:
            return False
        self.weight.copy_(self._base_weight())
        self._pre_merge = None
        self.merged_adapter = None
        return True

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight, self.bias)
        pair = self._active_pair()
        if pair is None or self.merged_adapter is not None:
            return out
        return out + pair(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, active={self.active_adapter!r}, merged={self.merged_adapter!r}"
