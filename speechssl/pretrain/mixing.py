"""Utterance mixing (WavLM's denoising pretraining): some utterances of a batch get a segment of
another utterance of the batch, or of noise, added at a random place and a random energy ratio.
The labels stay the primary utterance's, so the model learns to predict the main speaker's units
through the interference.

WavLM mixes 20% of the utterances (``prob=0.2``), with an overlay of up to half the primary's length
(``max_fraction=0.5``) at an energy ratio drawn uniformly in [-5, 5] dB. Noise comes from a
:class:`NoiseSource` (e.g. MUSAN prepared with ``lhotse.recipes.prepare_musan``).

Every random draw comes from an explicit CPU ``torch.Generator``; :func:`plan_mixing` makes them all
(and is what tests inspect), :func:`mix_utterances` applies a plan on the waveforms' own device.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from speechssl.data.audio import SAMPLE_RATE, load_cut_audio

#: ``MixingPlan.source`` of an item whose overlay is noise.
NOISE = -1


@dataclass
class MixingConfig:
    """Utterance mixing of the pretraining input (WavLM's utterance mixing augmentation)."""

    prob: float = 0.0  # share of utterances that get an overlay (WavLM: 0.2); 0 disables mixing
    max_fraction: float = 0.5  # the overlay covers at most this share of the primary (WavLM: half)
    snr_min: float = -5.0  # dB, energy ratio primary:overlay drawn uniformly in [snr_min, snr_max] (WavLM: -5)
    snr_max: float = 5.0  # dB (WavLM: 5)
    noise_prob: float = 0.0  # share of the overlays taken from a NoiseSource instead of another utterance

    def __post_init__(self):
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], found {self.prob}")
        if not 0.0 < self.max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in (0, 1], found {self.max_fraction}")
        if not (math.isfinite(self.snr_min) and math.isfinite(self.snr_max)):
            raise ValueError(f"snr_min and snr_max must be finite dB values, found {self.snr_min} and {self.snr_max}")
        if self.snr_min > self.snr_max:
            raise ValueError(f"snr_min must be <= snr_max, found snr_min={self.snr_min} > snr_max={self.snr_max}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ValueError(f"noise_prob must be in [0, 1], found {self.noise_prob}")


class NoiseSource:
    """Noise recordings from a lhotse CutSet (e.g. MUSAN prepared with
    ``lhotse.recipes.prepare_musan``, or any folder of noise).

    :meth:`sample` returns ``num_samples`` of a random cut from a random offset, tiled when the cut
    is shorter than asked. Only the needed part of a long recording is read.
    """

    def __init__(self, cuts, sample_rate: int = SAMPLE_RATE):
        self.cuts = list(cuts)
        if not self.cuts:
            raise ValueError("NoiseSource needs at least one noise cut, found an empty set")
        self.sample_rate = sample_rate

    @classmethod
    def from_manifest(cls, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> NoiseSource:
        """Noise from a lhotse cut manifest (``.jsonl.gz``)."""
        from speechssl.data.manifest import load_cuts

        cuts = load_cuts(path)
        if cuts.is_lazy:
            cuts = cuts.to_eager()
        return cls(cuts, sample_rate=sample_rate)

    def __len__(self) -> int:
        return len(self.cuts)

    def sample(self, num_samples: int, generator: torch.Generator) -> Tensor:
        """``(num_samples,)`` float32 noise at ``sample_rate``: a random cut from a random offset,
        tiled if the cut is shorter. Unreadable audio raises :class:`~speechssl.data.audio.AudioError`
        naming the file."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, found {num_samples}")
        cut = self.cuts[_randint(len(self.cuts), generator)]
        rate = self.sample_rate
        available = int(round(cut.duration * rate))
        if available > num_samples:
            # read only [offset, offset + num_samples) of a long recording
            offset = _randint(available - num_samples + 1, generator)
            part = cut.truncate(offset=offset / rate, duration=min(num_samples / rate, cut.duration - offset / rate))
            wav = load_cut_audio(part, sample_rate=rate, min_samples=1)
            start = 0
        else:
            wav = load_cut_audio(cut, sample_rate=rate, min_samples=1)
            start = _randint(wav.shape[0], generator)
        # cyclic read from start: tiles a short cut, and absorbs a sample of rounding on a long one
        wav = np.take(wav, (start + np.arange(num_samples)) % wav.shape[0])
        return torch.from_numpy(wav.astype(np.float32, copy=False))


@dataclass
class MixingPlan:
    """The random draws of one batch's mixing; every field is a CPU tensor of shape ``(B,)``."""

    mixed: Tensor  # bool: the item gets an overlay
    source: Tensor  # long: index of the utterance the overlay comes from, NOISE (-1) for noise
    src_start: Tensor  # long: first sample of the segment inside the source's valid part (0 for noise)
    dst_start: Tensor  # long: where the segment starts inside the primary
    length: Tensor  # long: samples of the overlay (0 when not mixed)
    snr_db: Tensor  # float64: drawn energy ratio primary:overlay in dB


def plan_mixing(
    lengths: Tensor, cfg: MixingConfig, generator: torch.Generator, *, with_noise: bool = False
) -> MixingPlan:
    """Draw which items of a batch with valid lengths ``lengths`` ``(B,)`` get which overlay.

    An item is mixed with probability ``cfg.prob``; its overlay is noise with probability
    ``cfg.noise_prob`` (only when ``with_noise``), else a segment of another, non-empty utterance of
    the batch (none to take with ``B == 1``: the item stays clean). The overlay length is uniform in
    ``[1, max_fraction * own length]``, cut to the source's length.
    """
    lengths = torch.as_tensor(lengths).cpu().long()
    if lengths.dim() != 1 or (lengths.numel() and int(lengths.min()) < 0):
        raise ValueError(f"lengths must be a 1-D tensor (B,) of counts >= 0, found {lengths.tolist()}")
    _check_generator(generator)
    batch = lengths.shape[0]
    # seven uniforms per item, in a fixed layout, so one item's draws never depend on another's
    u = torch.rand(batch, 7, generator=generator, dtype=torch.float64)  # (B, 7)
    apply, pick_noise, pick_other, pick_len, pick_src, pick_dst, pick_snr = u.unbind(dim=1)  # 7 x (B,)

    longest = torch.floor(cfg.max_fraction * lengths.double()).long()  # (B,) longest overlay allowed
    mixed = (apply < cfg.prob) & (longest >= 1)
    is_noise = mixed & (pick_noise < cfg.noise_prob) if with_noise else torch.zeros(batch, dtype=torch.bool)

    # another utterance: uniform over the other non-empty items
    source = torch.full((batch,), NOISE, dtype=torch.long)
    nonempty = (lengths > 0).nonzero().flatten().tolist()
    for i in (mixed & ~is_noise).nonzero().flatten().tolist():
        others = [j for j in nonempty if j != i]
        if not others:
            mixed[i] = False
            continue
        source[i] = others[min(int(pick_other[i] * len(others)), len(others) - 1)]

    length = torch.minimum(1 + torch.floor(pick_len * longest).long(), longest)  # (B,) uniform in [1, longest]
    src_len = torch.where(is_noise, length, lengths[source.clamp(min=0)])  # (B,) noise is as long as asked
    length = torch.where(mixed, torch.minimum(length, src_len), torch.zeros_like(length))
    src_start = torch.where(is_noise, 0, torch.floor(pick_src * (src_len - length + 1)).long())
    dst_start = torch.floor(pick_dst * (lengths - length + 1)).long()
    snr_db = cfg.snr_min + pick_snr * (cfg.snr_max - cfg.snr_min)
    return MixingPlan(
        mixed=mixed,
        source=torch.where(mixed, source, NOISE),
        src_start=torch.where(mixed, src_start, 0),
        dst_start=torch.where(mixed, dst_start, 0),
        length=length,
        snr_db=snr_db,
    )


def mix_utterances(
    wavs: Tensor,
    lengths: Tensor,
    cfg: MixingConfig,
    generator: torch.Generator,
    noise: NoiseSource | None = None,
) -> tuple[Tensor, Tensor]:
    """Utterance mixing of a batch of zero-padded waveforms ``wavs`` ``(B, S)`` with valid lengths
    ``lengths`` ``(B,)``.

    Returns the mixed waveforms ``(B, S)`` (a new tensor; the input is not modified) and ``(B,)``
    bool telling which items got an overlay. Each overlay is scaled so that
    ``10 * log10(E_primary / E_overlay)`` is the drawn SNR, with E the mean energy over the
    primary's whole valid part and over the overlay segment; a silent primary or segment leaves the
    item clean. Padding is left as it is. Random draws are made on the CPU from ``generator``; the
    arithmetic runs on ``wavs``' device and returns ``wavs``' dtype.
    """
    if wavs.dim() != 2:
        raise ValueError(f"wavs must be (B, S), found shape {tuple(wavs.shape)}")
    batch, num_samples = wavs.shape
    lengths = torch.as_tensor(lengths).cpu()
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},) to match wavs, found {tuple(lengths.shape)}")
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > num_samples):
        raise ValueError(
            f"lengths must lie in [0, {num_samples}] samples, found min {int(lengths.min())}, max {int(lengths.max())}"
        )
    if cfg.prob > 0 and cfg.noise_prob > 0 and noise is None:
        raise ValueError(f"noise_prob={cfg.noise_prob} needs a NoiseSource, found none")
    if cfg.prob == 0 or batch == 0:
        return wavs.clone(), torch.zeros(batch, dtype=torch.bool, device=wavs.device)

    plan = plan_mixing(lengths, cfg, generator, with_noise=noise is not None)
    device = wavs.device
    work = torch.promote_types(wavs.dtype, torch.float32)  # energies in at least fp32
    x = wavs.to(work)  # (B, S)

    # the overlay of every item as a (B, S) signal, zero outside [dst_start, dst_start + length)
    pos = torch.arange(num_samples)  # (S,)
    rel = pos - plan.dst_start[:, None]  # (B, S) offset inside the overlay
    inside = (rel >= 0) & (rel < plan.length[:, None])  # (B, S)
    src_pos = (rel + plan.src_start[:, None]).clamp(0, max(num_samples - 1, 0))  # (B, S)
    src_row = plan.source.clamp(min=0)[:, None].expand(batch, num_samples)  # (B, S)
    from_utt = inside & (plan.source >= 0)[:, None]  # (B, S)
    overlay = x[src_row.to(device), src_pos.to(device)] * from_utt.to(device)  # (B, S)

    noise_items = (plan.mixed & (plan.source == NOISE)).nonzero().flatten().tolist()
    if noise_items:
        noise_buf = torch.zeros(batch, num_samples, dtype=torch.float32)  # (B, S) on CPU
        for i in noise_items:
            start, n = int(plan.dst_start[i]), int(plan.length[i])
            noise_buf[i, start : start + n] = noise.sample(n, generator)
        overlay = overlay + noise_buf.to(device=device, dtype=work)

    valid = pos[None, :] < lengths[:, None]  # (B, S)
    e_primary = (x.square() * valid.to(device)).sum(dim=1) / lengths.clamp(min=1).to(device)  # (B,)
    e_overlay = overlay.square().sum(dim=1) / plan.length.clamp(min=1).to(device)  # (B,)
    gain = 10.0 ** (plan.snr_db / 10.0)  # (B,) E_primary / E_overlay after scaling
    scale = torch.sqrt(e_primary / (e_overlay * gain.to(device=device, dtype=work)))  # (B,)
    ok = plan.mixed.to(device) & (e_primary > 0) & (e_overlay > 0) & torch.isfinite(scale)  # (B,)
    scale = torch.where(ok, scale, torch.zeros_like(scale))  # 0/0 of a silent item becomes 0
    mixed = x + scale[:, None] * overlay  # (B, S)
    return mixed.to(wavs.dtype), ok


def _check_generator(generator: torch.Generator) -> None:
    if generator.device.type != "cpu":
        raise ValueError(f"mixing draws on the CPU: expected a CPU torch.Generator, found one on {generator.device}")


def _randint(high: int, generator: torch.Generator) -> int:
    """One integer uniform in ``[0, high)``."""
    return int(torch.randint(high, (1,), generator=generator))
