"""Pooling frames ``(B, T, C)`` with their lengths into one vector per utterance.

* ``mean``: the mean over valid frames (``C``);
* ``stats``: mean and standard deviation over valid frames (``2C``; the x-vector's statistics pooling);
* ``attentive``: attentive statistics pooling (Okabe et al. 2018) in ECAPA-TDNN's channel- and
  context-dependent form (Desplanques et al. 2020): each frame is scored per channel by a small
  network that also sees the utterance's global mean and standard deviation, and the weighted mean
  and standard deviation follow (``2C``).

Padding frames never count: every pooling masks them, so a padded batch pools each item as it
pools the item alone.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from speechssl.models.components import length_mask

POOLINGS = ("mean", "stats", "attentive")
_EPS = 1e-5


def _weighted_stats(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of ``x`` (B, T, C) under weights ``w`` (B, T, C or 1) summing to 1 over T."""
    mean = (w * x).sum(1)  # (B, C)
    var = (w * x.square()).sum(1) - mean.square()
    return mean, var.clamp(min=_EPS).sqrt()


def _mask_weights(lengths: Tensor, T: int, dtype) -> Tensor:
    mask = length_mask(lengths, T).to(dtype)[..., None]  # (B, T, 1)
    return mask / lengths.to(dtype)[:, None, None]


class MeanPooling(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.output_size = dim

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return (_mask_weights(lengths, x.shape[1], x.dtype) * x).sum(1)  # (B, C)


class StatsPooling(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.output_size = 2 * dim

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mean, std = _weighted_stats(x, _mask_weights(lengths, x.shape[1], x.dtype))
        return torch.cat([mean, std], dim=-1)  # (B, 2C)


class AttentiveStatsPooling(nn.Module):
    """ECAPA-TDNN's attentive statistics pooling: attention logits per frame and channel from the
    frame and the utterance's global statistics, softmax over the valid frames."""

    def __init__(self, dim: int, attention_dim: int = 128):
        super().__init__()
        self.output_size = 2 * dim
        self.attention = nn.Sequential(
            nn.Linear(3 * dim, attention_dim), nn.ReLU(), nn.LayerNorm(attention_dim), nn.Tanh(), nn.Linear(attention_dim, dim)
        )

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        B, T, C = x.shape
        valid = length_mask(lengths, T)[..., None]  # (B, T, 1)
        mean, std = _weighted_stats(x, _mask_weights(lengths, T, x.dtype))
        context = torch.cat([x, mean[:, None].expand(B, T, C), std[:, None].expand(B, T, C)], dim=-1)  # (B, T, 3C)
        logits = self.attention(context).masked_fill(~valid, float("-inf"))  # (B, T, C)
        w = logits.float().softmax(dim=1).to(x.dtype)
        mean, std = _weighted_stats(x, w)
        return torch.cat([mean, std], dim=-1)  # (B, 2C)


def build_pooling(name: str, dim: int) -> nn.Module:
    if name == "mean":
        return MeanPooling(dim)
    if name == "stats":
        return StatsPooling(dim)
    if name == "attentive":
        return AttentiveStatsPooling(dim)
    raise ValueError(f"unknown pooling {name!r}; expected one of {', '.join(POOLINGS)}")
