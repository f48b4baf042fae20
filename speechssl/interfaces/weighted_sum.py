"""The SUPERB layer-wise weighted sum, the last-layer baseline, and the input check they share.

Every interface takes ``hidden_states`` as an encoder returns them (a list or tuple of ``L`` tensors
``(B, T, C)``, ``L = num_layers + 1`` for ``SSLEncoder.extract_features``) or already stacked as one
tensor ``(L, B, T, C)``, and returns ``(B, T, output_size)``. All of them work frame by frame, so
they need no lengths: padding frames never reach valid ones.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HiddenStates = Union[Sequence[Tensor], Tensor]


def stack_layers(hidden_states: HiddenStates, num_layers: int, dim: int) -> Tensor:
    """Check ``hidden_states`` against ``num_layers`` and ``dim`` and return them as ``(L, B, T, C)``.

    A tensor input is returned as it is (no copy); a list or tuple is stacked once.
    """
    if isinstance(hidden_states, Tensor):
        if hidden_states.dim() != 4:
            raise ValueError(
                f"expected hidden_states as a tensor (L, B, T, C) or a list of L tensors (B, T, C), "
                f"found a tensor of shape {tuple(hidden_states.shape)}"
            )
        stacked = hidden_states
    elif isinstance(hidden_states, (list, tuple)):
        if not hidden_states:
            raise ValueError(f"expected {num_layers} hidden states, found an empty {type(hidden_states).__name__}")
        shapes = [tuple(h.shape) for h in hidden_states]
        if len(shapes[0]) != 3 or any(s != shapes[0] for s in shapes):
            raise ValueError(f"expected hidden states of one shape (B, T, C), found shapes {shapes}")
        stacked = torch.stack(list(hidden_states), dim=0)  # L x (B, T, C) -> (L, B, T, C)
    else:
        raise ValueError(
            f"expected hidden_states as a list/tuple of tensors (B, T, C) or a tensor (L, B, T, C), "
            f"found {type(hidden_states).__name__}"
        )
    if stacked.shape[0] != num_layers:
        raise ValueError(
            f"expected {num_layers} hidden states (the interface was built for num_layers={num_layers}), "
            f"found {stacked.shape[0]}"
        )
    if stacked.shape[-1] != dim:
        raise ValueError(f"expected hidden states of width dim={dim}, found width {stacked.shape[-1]}")
    return stacked


def _check_sizes(num_layers: int, dim: int, min_layers: int = 1) -> None:
    if num_layers < min_layers:
        raise ValueError(f"expected num_layers >= {min_layers}, found {num_layers}")
    if dim < 1:
        raise ValueError(f"expected dim >= 1, found {dim}")


class WeightedSum(nn.Module):
    """SUPERB's learnable weighted sum of all hidden states (s3prl's ``Featurizer``, without hooks).

    ``out = sum_l softmax(w)_l * f(h_l)`` where ``w`` (``num_layers`` scalars) starts at zero, so
    the initial output is the plain mean of the layers, and ``f`` is the identity or, with
    ``layer_norm=True``, a layer norm over the channels without affine parameters
    (``F.layer_norm(h, (C,))``, as s3prl's ``layer_norm`` option). Parameters: ``num_layers``.

    Args:
        num_layers: number of hidden states the encoder returns (``encoder.num_layers + 1``).
        dim: their width ``C`` (``encoder.hidden_size``); the output has the same width.
        layer_norm: normalise each hidden state before weighting.
    """

    def __init__(self, num_layers: int, dim: int, layer_norm: bool = False):
        super().__init__()
        _check_sizes(num_layers, dim)
        self.num_layers = num_layers
        self.dim = dim
        self.output_size = dim
        self.layer_norm = layer_norm
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def forward(self, hidden_states: HiddenStates) -> Tensor:
        """``hidden_states``: ``L`` tensors ``(B, T, C)`` or one ``(L, B, T, C)`` -> ``(B, T, C)``."""
        stacked = stack_layers(hidden_states, self.num_layers, self.dim)  # (L, B, T, C)
        if self.layer_norm:
            stacked = F.layer_norm(stacked, (self.dim,))  # each layer, each frame, over C
        norm_weights = F.softmax(self.weights, dim=0).to(stacked.dtype)  # (L,)
        return torch.einsum("l,lbtc->btc", norm_weights, stacked)  # (B, T, C)

    def layer_weights(self) -> Tensor:
        """The softmax weights ``(num_layers,)``, detached, on the CPU; they sum to 1."""
        return F.softmax(self.weights.detach().float(), dim=0).cpu()

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, dim={self.dim}, layer_norm={self.layer_norm}"


class LastLayer(nn.Module):
    """The baseline interface: the last hidden state alone (a weighted sum with all weight on it).

    No parameters. It still checks the number of layers, so that a baseline run fails where the
    other interfaces would.
    """

    def __init__(self, num_layers: int, dim: int):
        super().__init__()
        _check_sizes(num_layers, dim)
        self.num_layers = num_layers
        self.dim = dim
        self.output_size = dim

    def forward(self, hidden_states: HiddenStates) -> Tensor:
        """``hidden_states``: ``L`` tensors ``(B, T, C)`` or one ``(L, B, T, C)`` -> ``(B, T, C)``."""
        if isinstance(hidden_states, (list, tuple)):  # check without stacking: only the last one is used
            if len(hidden_states) != self.num_layers:
                raise ValueError(
                    f"expected {self.num_layers} hidden states (the interface was built for "
                    f"num_layers={self.num_layers}), found {len(hidden_states)}"
                )
            last = hidden_states[-1]
            if last.dim() != 3 or last.shape[-1] != self.dim:
                raise ValueError(f"expected the last hidden state as (B, T, {self.dim}), found {tuple(last.shape)}")
            return last
        return stack_layers(hidden_states, self.num_layers, self.dim)[-1]  # (L, B, T, C) -> (B, T, C)

    def layer_weights(self) -> Tensor:
        """One-hot on the last layer ``(num_layers,)``, so that the baseline plots like a weighted sum."""
        weights = torch.zeros(self.num_layers)
        weights[-1] = 1.0
        return weights

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, dim={self.dim}"
