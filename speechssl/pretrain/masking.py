"""Span masking for masked prediction (HuBERT / wav2vec 2.0 style), with the meaning of fairseq's
``compute_mask_indices`` options and all randomness drawn from an explicit ``torch.Generator``.

For an item with ``L`` valid frames, the number of spans is ``int(mask_prob * L / mask_length + u)``
with ``u ~ U[0, 1)`` (probabilistic rounding, so the expected count is exactly
``mask_prob * L / mask_length``), raised to ``min_masks``. Each span covers ``mask_length`` frames.

* Overlapping mode (fairseq's default): span starts are distinct positions drawn uniformly without
  replacement from ``[0, L - mask_length]``; spans may overlap, so fewer than
  ``mask_prob * L`` frames end up masked (:func:`expected_masked_fraction` gives the exact mean).
* ``no_overlap`` (fairseq's ``no_mask_overlap``): spans are placed one at a time, each start
  uniform over all start positions still free, keeping ``min_space`` (``mask_min_space``) unmasked
  frames between spans, until the count is reached or no free gap can take another span.

Short items never raise: a span never reaches past ``L`` (an item shorter than ``mask_length`` gets
at most one span of its own length), and padding is never masked. Unlike fairseq, items of a batch
keep their own number of masked frames (fairseq trims every item to the batch minimum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class MaskingConfig:
    """Span masking of the transformer input (fairseq ``mask_*`` options of HuBERT/wav2vec 2.0)."""

    mask_prob: float = 0.8  # mask_prob: expected share of frames that start a span, times mask_length
    mask_length: int = 10  # mask_length: frames per span
    min_masks: int = 2  # mask_min_masks (fairseq's min_masks): at least this many spans per item
    no_overlap: bool = False  # no_mask_overlap: spans never overlap, min_space frames apart
    min_space: int = 1  # mask_min_space: unmasked frames between spans (only with no_overlap)

    def __post_init__(self):
        if not 0.0 <= self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in [0, 1], found {self.mask_prob}")
        if self.mask_length < 1:
            raise ValueError(f"mask_length must be >= 1 frame, found {self.mask_length}")
        if self.min_masks < 0:
            raise ValueError(f"min_masks must be >= 0, found {self.min_masks}")
        if self.min_space < 0:
            raise ValueError(f"min_space must be >= 0 frames, found {self.min_space}")


def span_mask(lengths: Tensor, max_len: int, cfg: MaskingConfig, generator: torch.Generator) -> Tensor:
    """``(B,)`` valid frames per item -> ``(B, max_len)`` bool, True at masked frames; padding is
    never masked.

    All random draws come from ``generator`` (a CPU generator): the same generator state gives the
    same mask. The result is a CPU tensor; ``lengths`` may live on any device.
    """
    lengths = _check_lengths(lengths, max_len)
    if generator.device.type != "cpu":
        raise ValueError(f"span_mask draws on the CPU: expected a CPU torch.Generator, found one on {generator.device}")
    num_spans = _num_spans(lengths, cfg, generator)  # (B,)
    if cfg.no_overlap:
        return _mask_no_overlap(lengths, num_spans, max_len, cfg, generator)
    return _mask_overlapping(lengths, num_spans, max_len, cfg, generator)


def expected_masked_fraction(cfg: MaskingConfig, length: int) -> float:
    """The exact expected fraction of masked frames that :func:`span_mask` gives an item of
    ``length`` valid frames in overlapping mode (``cfg.no_overlap`` False).

    With ``P`` possible starts, ``n`` spans and ``w_t`` starts whose span covers frame ``t``, frame
    ``t`` stays unmasked with probability ``C(P - w_t, n) / C(P, n)``; ``n`` takes the two values of
    the probabilistic rounding with their probabilities.
    """
    if cfg.no_overlap:
        raise ValueError("expected_masked_fraction covers the overlapping mode only (no_overlap=False)")
    if length < 0:
        raise ValueError(f"length must be >= 0 frames, found {length}")
    if length == 0:
        return 0.0
    span = min(cfg.mask_length, length)
    starts = length - span + 1  # P
    expected = cfg.mask_prob * length / cfg.mask_length
    low = math.floor(expected)
    # int(expected + u) is low + 1 with probability frac(expected), else low
    outcomes = [(low, 1.0 - (expected - low)), (low + 1, expected - low)]
    t = np.arange(length)
    # starts s with s <= t < s + span, clipped to [0, P - 1]
    covering = np.minimum(t, starts - 1) - np.maximum(0, t - span + 1) + 1  # (length,)
    masked = 0.0
    for n, prob in outcomes:
        if prob == 0.0:
            continue
        n = min(max(cfg.min_masks, n), starts)
        unmasked = [math.comb(starts - int(w), n) / math.comb(starts, n) for w in covering]
        masked += prob * (length - sum(unmasked))
    return masked / length


def _check_lengths(lengths: Tensor, max_len: int) -> Tensor:
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, found {max_len}")
    lengths = torch.as_tensor(lengths).cpu()
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be a 1-D tensor (B,), found shape {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.is_complex():
        raise ValueError(f"lengths must be integers (frames), found dtype {lengths.dtype}")
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > max_len):
        raise ValueError(
            f"lengths must lie in [0, max_len={max_len}], found min {int(lengths.min())}, max {int(lengths.max())}"
        )
    return lengths.long()


def _num_spans(lengths: Tensor, cfg: MaskingConfig, generator: torch.Generator) -> Tensor:
    """Spans per item: probabilistic rounding of ``mask_prob * L / mask_length``, at least
    ``min_masks`` (the cap to what fits is left to the placement)."""
    u = torch.rand(lengths.shape[0], generator=generator, dtype=torch.float64)  # (B,)
    num = torch.floor(cfg.mask_prob * lengths.double() / cfg.mask_length + u).long()
    num = num.clamp(min=cfg.min_masks)
    return torch.where(lengths > 0, num, torch.zeros_like(num))


def _mask_overlapping(
    lengths: Tensor, num_spans: Tensor, max_len: int, cfg: MaskingConfig, generator: torch.Generator
) -> Tensor:
    """Distinct starts uniform in ``[0, L - span]`` for the whole batch at once: the ``n`` positions
    with the smallest random keys are a uniform draw without replacement."""
    batch = lengths.shape[0]
    span = lengths.clamp(max=cfg.mask_length)  # (B,) an item shorter than mask_length: one span of its length
    num_starts = lengths - span + 1  # (B,) P, 1 for short items, 1 for L = 0 (where num_spans is 0)
    num_spans = torch.minimum(num_spans, num_starts)
    keys = torch.rand(batch, max_len, generator=generator)  # (B, T)
    pos = torch.arange(max_len)  # (T,)
    keys.masked_fill_(pos >= num_starts[:, None], 2.0)  # impossible starts sort last
    order = keys.argsort(dim=1)  # (B, T) positions by increasing key
    chosen = pos < num_spans[:, None]  # (B, T) True for the first n ranks
    starts = torch.zeros(batch, max_len, dtype=torch.bool).scatter_(1, order, chosen)  # (B, T)
    # frame t is masked when a start lies in (t - span, t]: a windowed count from the cumulative sum
    count = starts.long().cumsum(dim=1)  # (B, T)
    back = pos - span[:, None]  # (B, T) index of the frame just before the window
    before = torch.where(back >= 0, count.gather(1, back.clamp(min=0)), torch.zeros_like(count))
    return (count - before) > 0


def _mask_no_overlap(
    lengths: Tensor, num_spans: Tensor, max_len: int, cfg: MaskingConfig, generator: torch.Generator
) -> Tensor:
    """Sequential placement into the free gaps; each span's start is uniform over the start
    positions still available, which is fairseq's choice of gap weighted by how many starts it
    offers followed by a uniform start inside it."""
    batch = lengths.shape[0]
    most = int(num_spans.max()) if batch else 0
    # one uniform per span, drawn up front (one generator call for the batch)
    draws = torch.rand(batch, most, generator=generator, dtype=torch.float64).tolist()  # (B, most)
    mask = np.zeros((batch, max_len), dtype=bool)
    for b, (length, n) in enumerate(zip(lengths.tolist(), num_spans.tolist())):
        span = min(cfg.mask_length, length)
        gaps = [(0, length)] if span > 0 else []  # free intervals [start, end)
        for u in draws[b][:n]:
            counts = [end - start - span + 1 for start, end in gaps]  # start positions per gap
            total = sum(counts)
            if total <= 0:
                break
            pick = min(int(u * total), total - 1)  # the pick-th free start position overall
            for g, c in enumerate(counts):
                if pick < c:
                    break
                pick -= c
            start, end = gaps.pop(g)
            at = start + pick
            mask[b, at : at + span] = True
            # keep only the pieces (min_space away from the new span) that can still take a span
            for piece in ((start, at - cfg.min_space), (at + span + cfg.min_space, end)):
                if piece[1] - piece[0] >= span:
                    gaps.append(piece)
    return torch.from_numpy(mask)
