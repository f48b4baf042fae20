"""Turning sampled cuts into padded waveform batches.

A cut whose audio cannot be used is reported (logged with the file and the problem) and left out
of its batch, and the batch lists it in ``skipped``; with ``strict=True`` it raises instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from lhotse import CutSet

from speechssl.data.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, load_cut_audio

log = logging.getLogger(__name__)


@dataclass
class AudioBatch:
    """A padded batch of mono 16 kHz waveforms."""

    wavs: torch.Tensor  # (B, S) float32, zero-padded on the right
    lengths: torch.Tensor  # (B,) int64, valid samples per item
    cut_ids: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (cut id, problem)

    def __len__(self) -> int:
        return len(self.cut_ids)

    def to(self, device: torch.device | str, non_blocking: bool = True) -> "AudioBatch":
        return AudioBatch(
            self.wavs.to(device, non_blocking=non_blocking),
            self.lengths.to(device, non_blocking=non_blocking),
            self.cut_ids,
            self.skipped,
        )


def collate_audio(wavs: list[np.ndarray], cut_ids: list[str], skipped=()) -> AudioBatch:
    """Zero-pad 1-D waveforms into a ``(B, S)`` tensor with their lengths."""
    lengths = torch.tensor([w.shape[0] for w in wavs], dtype=torch.int64)
    max_len = int(lengths.max()) if len(wavs) else 0
    out = torch.zeros(len(wavs), max_len, dtype=torch.float32)  # (B, S)
    for i, w in enumerate(wavs):
        out[i, : w.shape[0]] = torch.from_numpy(w)
    return AudioBatch(out, lengths, list(cut_ids), list(skipped))


class AudioDataset(torch.utils.data.Dataset):
    """A lhotse-style map dataset: indexed by a CutSet (a sampled batch), returns an AudioBatch.

    Use with a lhotse sampler: ``DataLoader(AudioDataset(), sampler=sampler, batch_size=None)``.
    """

    def __init__(self, *, strict: bool = False, sample_rate: int = SAMPLE_RATE, min_samples: int = MIN_SAMPLES):
        self.strict = strict
        self.sample_rate = sample_rate
        self.min_samples = min_samples

    def __getitem__(self, cuts: CutSet) -> AudioBatch:
        return collate_audio(*load_cut_batch(cuts, strict=self.strict, sample_rate=self.sample_rate, min_samples=self.min_samples))


def load_cut_batch(
    cuts, *, strict: bool = False, sample_rate: int = SAMPLE_RATE, min_samples: int = MIN_SAMPLES
) -> tuple[list[np.ndarray], list[str], list[tuple[str, str]]]:
    """The audio of ``cuts``: waveforms, their cut ids, and ``(cut id, problem)`` of each cut whose
    audio could not be used (logged and left out; with ``strict`` the error is raised instead)."""
    wavs, ids, skipped = [], [], []
    for cut in cuts:
        try:
            wav = load_cut_audio(cut, sample_rate=sample_rate, min_samples=min_samples)
        except (AudioError, FileNotFoundError) as e:
            if strict:
                raise
            log.warning("skipping cut %s: %s", cut.id, e)
            skipped.append((cut.id, str(e)))
            continue
        wavs.append(wav)
        ids.append(cut.id)
    return wavs, ids, skipped
