"""Kaldi-compatible MFCC features for the first HuBERT iteration: 13 cepstra (no energy), deltas and
delta-deltas, 39 dimensions at 100 frames per second, computed by torchaudio's Kaldi compliance
functions (the same call fairseq's ``dump_mfcc_feature.py`` makes, so the labels are comparable)."""

from __future__ import annotations

import torch
from torch import Tensor

from speechssl.features.spec import FeatureSpec

SAMPLE_RATE = 16000
FRAME_SHIFT_MS = 10.0
FRAME_LENGTH_MS = 25.0
NUM_CEPS = 13
MFCC_DIM = 3 * NUM_CEPS


def mfcc_spec() -> FeatureSpec:
    return FeatureSpec(kind="mfcc", dim=MFCC_DIM, frame_rate=1000.0 / FRAME_SHIFT_MS)


def mfcc_num_frames(num_samples: int) -> int:
    """Frames of a waveform of ``num_samples`` samples (Kaldi's snip_edges: whole windows only)."""
    window = int(SAMPLE_RATE * FRAME_LENGTH_MS / 1000)
    shift = int(SAMPLE_RATE * FRAME_SHIFT_MS / 1000)
    return 0 if num_samples < window else 1 + (num_samples - window) // shift


def mfcc_39(wav: Tensor) -> Tensor:
    """One waveform ``(S,)`` at 16 kHz, float in [-1, 1] -> ``(T, 39)``: MFCC, deltas, delta-deltas."""
    from speechssl.deps import torchaudio_module

    mfcc = torchaudio_module("compliance.kaldi").mfcc
    compute_deltas = torchaudio_module("functional").compute_deltas
    if wav.dim() != 1:
        raise ValueError(f"expected one waveform of shape (samples,), found {tuple(wav.shape)}")
    feats = mfcc(wav[None].float(), sample_frequency=SAMPLE_RATE, use_energy=False, num_ceps=NUM_CEPS)  # (T, 13)
    feats = feats.T  # (13, T): compute_deltas works along the last axis
    deltas = compute_deltas(feats)
    ddeltas = compute_deltas(deltas)
    return torch.cat([feats, deltas, ddeltas], dim=0).T.contiguous()  # (T, 39)


class MfccExtractor:
    """Batched MFCC: a padded batch ``(B, S)`` with lengths -> one ``(T_i, 39)`` tensor per item.

    Each item is computed on its valid samples only, so padding never changes an item's features.
    Runs on ``device`` (CPU or GPU); the features stay there (nearest-centroid search follows)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.spec = mfcc_spec()
        self.device = torch.device(device)

    def __call__(self, wavs: Tensor, wav_lens: Tensor) -> list[Tensor]:
        wavs = wavs.to(self.device, non_blocking=True)
        if wavs.device.type != "cpu":
            return [mfcc_39(wavs[i, : int(n)]) for i, n in enumerate(wav_lens.tolist())]
        # one utterance's ops are far too small to split across threads: on CPU, several threads make
        # them 5-40x slower (thread wake-ups, worse when other processes share the cores)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return [mfcc_39(wavs[i, : int(n)]) for i, n in enumerate(wav_lens.tolist())]
        finally:
            torch.set_num_threads(threads)
