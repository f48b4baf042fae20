"""Interfaces from all hidden states of an encoder to a downstream head.

An interface takes ``hidden_states`` (``L`` tensors ``(B, T, C)``, as
``SSLEncoder.extract_features`` returns them, or one stacked tensor ``(L, B, T, C)``) and returns
``(B, T, interface.output_size)``. ``INTERFACES`` is a plain dict next to :func:`build_interface`.

Example::

    out = encoder.extract_features(wavs, lens)
    iface = build_interface("weighted_sum", encoder.num_layers + 1, encoder.hidden_size)
    feats = iface(out.hidden_states)  # (B, T, C); frame lengths are still out.lengths
"""

from __future__ import annotations

from torch import nn

from speechssl.interfaces.conv import ConvInterface
from speechssl.interfaces.plot import plot_layer_weights
from speechssl.interfaces.weighted_sum import LastLayer, WeightedSum, stack_layers

INTERFACES: dict[str, type[nn.Module]] = {
    "weighted_sum": WeightedSum,
    "conv": ConvInterface,
    "last": LastLayer,
}


def build_interface(kind: str, num_layers: int, dim: int, **kw) -> nn.Module:
    """Build the interface ``kind`` (one of ``INTERFACES``) for ``num_layers`` hidden states of
    width ``dim``; ``kw`` goes to its class (``layer_norm``, ``out_dim``, ...)."""
    if kind not in INTERFACES:
        raise ValueError(f"unknown interface {kind!r}; expected one of {sorted(INTERFACES)}")
    return INTERFACES[kind](num_layers, dim, **kw)


__all__ = [
    "INTERFACES",
    "ConvInterface",
    "LastLayer",
    "WeightedSum",
    "build_interface",
    "plot_layer_weights",
    "stack_layers",
]
