"""Audio loading: whatever soundfile reads, at any rate and channel count, comes out as mono float32
at 16 kHz, or fails with an :class:`AudioError` that names the file and the problem.

The format is detected from the file's contents (libsndfile), never from its extension, so a WAV
file named ``.flac`` loads, and a text file named ``.wav`` fails with a clear message.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
#: The shortest input an HuBERT/wav2vec 2.0 front end turns into one frame (25 ms at 16 kHz).
MIN_SAMPLES = 400


class AudioError(ValueError):
    """An audio file that cannot be used: unreadable, empty, too short or not finite."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def resample(wav: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a 1-D float32 signal (torchaudio's sinc interpolation)."""
    if orig_rate == new_rate:
        return wav
    import torch

    from speechssl.deps import torchaudio_module

    AF = torchaudio_module("functional")
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wav)), orig_rate, new_rate)
    return out.numpy()


def _decode(path: Path, start: int, frames: int) -> tuple[np.ndarray, int]:
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            if start:
                f.seek(start)
            data = f.read(frames=frames, dtype="float32", always_2d=True)  # (S, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        ext = path.suffix or "(no extension)"
        raise AudioError(path, f"cannot decode audio ({e}); extension {ext}, format detected from contents") from None
    return data, rate


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """``(sample_rate, num_frames, num_channels)`` from the header, without decoding the samples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(path, f"cannot read audio header ({e})") from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = SAMPLE_RATE,
    offset: float = 0.0,
    duration: float | None = None,
    min_samples: int = MIN_SAMPLES,
) -> np.ndarray:
    """Read ``path`` (optionally the segment ``[offset, offset + duration)`` seconds) as mono float32
    at ``sample_rate``.

    Channels are averaged. Raises :class:`FileNotFoundError` for a missing file and
    :class:`AudioError` for an unreadable, empty, too-short (fewer than ``min_samples`` output
    samples) or non-finite one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    if offset < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"{path}: invalid segment offset={offset} duration={duration}")
    native_rate = audio_info(path)[0] if (offset or duration is not None) else None
    start = int(round(offset * native_rate)) if native_rate else 0
    frames = int(round(duration * native_rate)) if (native_rate and duration is not None) else -1
    data, rate = _decode(path, start, frames)
    if data.shape[0] == 0:
        where = f" at offset {offset:.3f} s" if offset else ""
        raise AudioError(path, f"no audio samples{where} (empty file or segment)")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # (S, C) -> (S,)
    if not np.isfinite(wav).all():
        raise AudioError(path, "audio contains NaN or infinite samples")
    wav = resample(np.ascontiguousarray(wav, dtype=np.float32), rate, sample_rate)
    if wav.shape[0] < min_samples:
        raise AudioError(
            path,
            f"too short: {wav.shape[0]} samples ({wav.shape[0] / sample_rate:.4f} s) at {sample_rate} Hz, "
            f"need at least {min_samples}",
        )
    return wav.astype(np.float32, copy=False)


def load_cut_audio(cut, *, sample_rate: int = SAMPLE_RATE, min_samples: int = MIN_SAMPLES) -> np.ndarray:
    """Load a lhotse cut's audio as mono float32 at ``sample_rate``.

    Single-file recordings are read with :func:`load_audio` (the cut's offset and duration, any
    channel count averaged); other sources (URLs, in-memory, commands) go through lhotse and are
    averaged and resampled the same way. Errors name the file (or the recording id).
    """
    rec = cut.recording
    sources = rec.sources
    if len(sources) == 1 and sources[0].type == "file":
        return load_audio(
            sources[0].source,
            sample_rate=sample_rate,
            offset=cut.start,
            duration=cut.duration,
            min_samples=min_samples,
        )
    try:
        data = cut.load_audio()  # (C, S) at the recording's rate
    except Exception as e:  # lhotse raises several unrelated types for bad sources
        raise AudioError(f"recording {rec.id}", f"cannot load audio ({e})") from None
    wav = np.asarray(data, dtype=np.float32).mean(axis=0)  # (C, S) -> (S,)
    wav = resample(wav, cut.sampling_rate, sample_rate)
    if wav.shape[0] < min_samples:
        raise AudioError(f"recording {rec.id}", f"too short: {wav.shape[0]} samples, need at least {min_samples}")
    return wav
