"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021) on the encoder's sublayers.

An adapter is ``x + up(relu(down(x)))`` with ``up`` initialised to zero, so a freshly added adapter
leaves the encoder's output exactly unchanged. It is applied to a sublayer's output, before the
layer's residual add, by a forward hook on ``layer.attention`` / ``layer.feed_forward``; the adapter
modules themselves live in ``layer.adapters`` (a :class:`LayerAdapters`, keyed by adapter name), so
``parameters()``, ``.to()`` and ``state_dict()`` see them while the base model's keys stay the same.

ReLU, not GELU: it is what the Pfeiffer/AdapterHub configurations use, it is cheaper, and with a
zero up-projection the choice does not affect the exact no-op at initialisation.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: the sublayers an adapter can follow, by attribute name on a ``TransformerLayer``
SITES = ("attention", "feed_forward")

#: bottleneck placements: which sublayers get an adapter
PLACEMENTS: dict[str, tuple[str, ...]] = {
    "houlsby": ("attention", "feed_forward"),  # after both sublayers
    "pfeiffer": ("feed_forward",),  # after the feed-forward sublayer only
}


class BottleneckAdapter(nn.Module):
    """``x + up(dropout(relu(down(x))))`` over the last dim; ``up`` starts at zero (an exact identity)."""

    def __init__(self, dim: int, bottleneck: int, dropout: float = 0.0):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """``down``: kaiming-uniform weight (torch's Linear default), zero bias; ``up``: all zero."""
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5), generator=generator)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, T, C)
        return x + self.up(self.dropout(F.relu(self.down(x))))


class SublayerAdapters(nn.Module):
    """One named adapter's bottleneck modules in one transformer layer: one per adapted sublayer."""

    def __init__(self, dim: int, bottleneck: int, placement: str, dropout: float = 0.0):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown bottleneck placement {placement!r}; valid: {', '.join(PLACEMENTS)}")
        for site in PLACEMENTS[placement]:
            self.add_module(site, BottleneckAdapter(dim, bottleneck, dropout))

    def site(self, name: str) -> BottleneckAdapter | None:
        return self._modules.get(name)  # type: ignore[return-value]


class LayerAdapters(nn.ModuleDict):
    """``layer.adapters``: the bottleneck adapters of one transformer layer, keyed by adapter name.

    ``active`` names the one the hooks apply (None: none). Its hooks on the layer's sublayers are
    installed with the first adapter (:func:`attach`) and removed with the last (:func:`detach`)."""

    def __init__(self):
        super().__init__()
        self.active: str | None = None
        self._handles: list = []

    def apply_at(self, site: str, output: Tensor) -> Tensor | None:
        if self.active is None or self.active not in self:
            return None
        adapter = self[self.active].site(site)
        return None if adapter is None else adapter(output)


def _sublayer_hook(bank: LayerAdapters, site: str, module: nn.Module, args, output: Tensor) -> Tensor | None:
    # a partial over the bank (not a closure), so that copy.deepcopy of the encoder re-targets it
    return bank.apply_at(site, output)


def attach(layer: nn.Module) -> LayerAdapters:
    """``layer.adapters``, created with its hooks on the layer's sublayers if the layer has none yet."""
    bank = layer._modules.get("adapters")
    if bank is None:
        for site in SITES:
            if not isinstance(getattr(layer, site, None), nn.Module):
                raise ValueError(f"{type(layer).__name__} has no '{site}' sublayer to attach an adapter to")
        bank = LayerAdapters()
        layer.add_module("adapters", bank)
        bank._handles = [
            getattr(layer, site).register_forward_hook(functools.partial(_sublayer_hook, bank, site)) for site in SITES
        ]
    elif not isinstance(bank, LayerAdapters):
        raise ValueError(f"{type(layer).__name__} already has a submodule 'adapters' of type {type(bank).__name__}")
    return bank


def detach(layer: nn.Module) -> None:
    """Remove ``layer.adapters`` and its hooks once it holds no adapter."""
    bank = layer._modules.get("adapters")
    if isinstance(bank, LayerAdapters) and len(bank) == 0:
        for handle in bank._handles:
            handle.remove()
        del layer._modules["adapters"]
