"""Hierarchical convolution over the layer axis (Shih & Harwath, "Interface Design for
Self-Supervised Speech Models", Interspeech 2024, arXiv:2406.12209).

What the paper states (abstract and its Figure 2): the hidden states of all layers are treated as a
sequence along the layer axis, a convolution is applied over that axis, and the interface's depth
grows logarithmically with the number of upstream layers. The sizes below (kernel, widths,
normalisation, activation, padding) are not given in the material we could read; they are our
choices, each with its reason in :class:`ConvInterface`'s docstring.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from speechssl.interfaces.weighted_sum import HiddenStates, _check_sizes, stack_layers


class _PairMerge(nn.Module):
    """One block: a convolution over the layer axis with kernel 2 and stride 2, i.e. one linear map
    applied to the concatenation of layers ``(2j, 2j+1)``, frame by frame, shared by every pair j.
    Optional layer norm (affine) and GELU after it."""

    def __init__(self, in_dim: int, out_dim: int, last: bool):
        super().__init__()
        self.proj = nn.Linear(2 * in_dim, out_dim)
        self.norm = None if last else nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, T, P, D) with P even -> (B, T, P / 2, out_dim)
        b, t, p, d = x.shape
        x = x.reshape(b, t, p // 2, 2 * d)  # (B, T, P, D) -> (B, T, P/2, 2D): layers 2j, 2j+1 side by side
        x = self.proj(x)  # (B, T, P/2, out_dim)
        if self.norm is not None:
            x = F.gelu(self.norm(x))
        return x


class ConvInterface(nn.Module):
    """Hierarchical convolutional interface: merges adjacent layers pairwise until one is left.

    Design (ours where the paper gives no detail):

    * The ``L = num_layers`` hidden states form a sequence along the layer axis. Each block is a
      ``Conv1d`` over that axis with kernel 2 and stride 2 and ``D_in -> D_out`` channels, written
      as one ``nn.Linear(2 * D_in, D_out)`` on the concatenation of layers ``2j`` and ``2j+1``: the
      same map for every pair (a convolution shares its kernel along the axis) and for every frame.
      Kernel = stride = 2 makes the blocks a binary tree without overlap, so
      ``num_blocks = ceil(log2(L))`` and each output frame sees every layer exactly once.
    * The layer axis is padded **with zeros** at the end, up to ``2 ** num_blocks``. A zero layer
      adds nothing through the linear map (only the bias, which every pair has anyway), so it acts
      as an absent layer; repeating the last layer instead would give it two paths into the output
      and so a built-in advantage over the others that training would have to undo.
    * ``layer_norm=True`` (default) first normalises every hidden state over its channels without
      affine parameters (``F.layer_norm(h, (C,))``, as :class:`WeightedSum`'s option). Since one
      kernel is shared by all pairs, layers of very different scale (later layers of wav2vec 2.0
      and pre-LN models grow large) would otherwise distort a shared map. Zero padding stays zero.
    * Every block but the last is followed by ``LayerNorm`` (affine) and GELU; the last block is
      linear, so the output is an unconstrained linear readout like the weighted sum's.
    * Block widths: the first block reads ``dim``, the last writes ``out_dim``, the others use
      ``hidden_dim``.

    Parameter count, with ``k = ceil(log2(num_layers))``, ``C = dim``, ``H = hidden_dim``,
    ``O = out_dim``::

        k == 1:  2*C*O + O
        k >= 2:  (2*C*H + H) + (k - 2) * (2*H*H + H) + (2*H*O + O) + (k - 1) * 2*H

    (the last term is the LayerNorms' weight and bias). HuBERT Base (``L = 13``, ``C = H = O = 768``,
    ``k = 4``): 4 * (2*768*768 + 768) + 3 * 2*768 = 4,726,272.

    Every operation acts on one frame, so there is no mixing across time: padding frames never
    affect valid frames and no lengths are needed.

    There is no ``layer_importance()``: the kernel is shared by all pairs, so no parameter belongs
    to one layer (the first block's two weight halves only tell even layers from odd ones). A
    per-layer importance would have to be measured on data (for example gradient times input),
    which is an analysis, not a property of the module.

    Args:
        num_layers: number of hidden states the encoder returns (``encoder.num_layers + 1``), >= 2.
        dim: their width ``C`` (``encoder.hidden_size``).
        out_dim: output width; defaults to ``dim``.
        hidden_dim: width of the intermediate blocks; defaults to ``out_dim``.
        layer_norm: normalise each hidden state before the first block.
    """

    def __init__(
        self,
        num_layers: int,
        dim: int,
        out_dim: int | None = None,
        hidden_dim: int | None = None,
        layer_norm: bool = True,
    ):
        super().__init__()
        _check_sizes(num_layers, dim, min_layers=2)
        out_dim = dim if out_dim is None else out_dim
        hidden_dim = out_dim if hidden_dim is None else hidden_dim
        if out_dim < 1 or hidden_dim < 1:
            raise ValueError(f"expected out_dim >= 1 and hidden_dim >= 1, found {out_dim} and {hidden_dim}")
        self.num_layers = num_layers
        self.dim = dim
        self.output_size = out_dim
        self.layer_norm = layer_norm
        num_blocks = math.ceil(math.log2(num_layers))
        self.padded_layers = 2**num_blocks
        widths = [dim] + [hidden_dim] * (num_blocks - 1) + [out_dim]
        self.blocks = nn.ModuleList(
            _PairMerge(widths[i], widths[i + 1], last=i == num_blocks - 1) for i in range(num_blocks)
        )

    def forward(self, hidden_states: HiddenStates) -> Tensor:
        """``hidden_states``: ``L`` tensors ``(B, T, C)`` or one ``(L, B, T, C)`` -> ``(B, T, out_dim)``."""
        x = stack_layers(hidden_states, self.num_layers, self.dim)  # (L, B, T, C)
        if self.layer_norm:
            x = F.layer_norm(x, (self.dim,))  # each layer, each frame, over C
        x = x.permute(1, 2, 0, 3)  # (L, B, T, C) -> (B, T, L, C): layers next to channels
        x = F.pad(x, (0, 0, 0, self.padded_layers - self.num_layers))  # (B, T, P, C), zero layers at the end
        for block in self.blocks:
            x = block(x)  # (B, T, P, D) -> (B, T, P/2, D')
        return x.squeeze(2)  # (B, T, 1, out_dim) -> (B, T, out_dim)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers} (padded to {self.padded_layers}), dim={self.dim}, layer_norm={self.layer_norm}"
