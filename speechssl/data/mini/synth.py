"""Speakers, prosody styles and the synthesis of one utterance (audio + alignments + lhotse cut).

A speaker is an espeak-ng variant (``"f3"``, ``"m7"``, ``"Annie"``, ...) speaking its native
language's voice (``"de+f3"``) with its own pitch, pitch-range and rate offsets. A style stands in
for an emotion class: a pitch shift, a pitch range, a rate factor and a loudness, applied on top of
the speaker's offsets through ``espeak_SetParameter``.

:func:`synthesize_block` is what a worker process runs: it renders a fixed list of utterances in
order and writes their FLAC files. espeak-ng carries state from one utterance to the next, so the
corpus builder runs every block in a fresh process; the audio of an utterance then depends only on
its block, never on the number of workers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speechssl.data.audio import SAMPLE_RATE, resample
from speechssl.data.mini.alignment import alignments_from_events
from speechssl.data.mini.espeak import RATE_MAX, RATE_MIN, Espeak, get_espeak
from speechssl.data.mini.vocab import get_language
from speechssl.io import atomic_path

NORMAL_RATE = 175  # espeak-ng's default words per minute
NORMAL_PITCH = 50  # espeakPITCH: 0-100 scales the variant's base pitch from 0.5x to 2x
NORMAL_RANGE = 50  # espeakRANGE: 0 (monotone) - 100

# espeak-ng variants used as speakers, by gender (file names under espeak-ng-data/voices/!v).
# Left out: whispering, robotic, echoing or child-like variants, and those without a clear gender.
FEMALE_VARIANTS: tuple[str, ...] = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "aunty", "belinda", "linda", "steph",
    "steph2", "steph3", "anika", "grandma",
)  # fmt: skip
MALE_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy", "Denis", "Diogo", "Gene",
    "Henrique", "Hugo", "Jacky", "Lee", "Mario", "Michael", "Mike", "antonio", "ed", "gustave",
    "john", "kaukovalta", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro", "quincy",
    "rob", "robert", "sandro", "travis", "victor", "iven3",
)  # fmt: skip
VARIANTS: dict[str, tuple[str, ...]] = {"f": FEMALE_VARIANTS, "m": MALE_VARIANTS}


@dataclass(frozen=True)
class Style:
    """A prosody style: ``pitch_shift`` (espeakPITCH units, added to the speaker's), ``pitch_range``
    (espeakRANGE, the speaker's offset is added), ``rate_scale`` (times the speaker's rate) and
    ``volume`` (espeakVOLUME, 100 = normal)."""

    pitch_shift: int
    pitch_range: int
    rate_scale: float
    volume: int
    description: str


# name -> style; the classes a speech-emotion head learns on the mini corpus
STYLES: dict[str, Style] = {
    "neutral": Style(0, 50, 1.00, 100, "the speaker's own pitch, range, rate and loudness"),
    "happy": Style(16, 88, 1.12, 125, "higher pitch, wide pitch range, a little faster, louder"),
    "sad": Style(-16, 10, 0.74, 55, "lower pitch, nearly monotone, slow, quiet"),
    "angry": Style(4, 65, 1.28, 180, "slightly raised pitch, fast, very loud (compressed)"),
    "fearful": Style(26, 28, 1.30, 75, "high pitch, narrow range, fast, soft"),
}
DEFAULT_STYLES: tuple[str, ...] = ("neutral", "happy", "sad", "angry")


def get_style(name: str) -> Style:
    try:
        return STYLES[name]
    except KeyError:
        raise ValueError(f"unknown style '{name}'; valid styles: {', '.join(STYLES)}") from None


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: an espeak-ng variant speaking its native language with fixed offsets."""

    id: str
    gender: str  # "m" or "f"
    language: str  # ISO 639-1 code of the native (and only) language
    variant: str
    pitch_offset: int  # espeakPITCH units added to 50
    range_offset: int  # espeakRANGE units added to the style's range
    rate_scale: float  # times espeak's normal rate

    @property
    def voice(self) -> str:
        """The espeak-ng voice name, e.g. ``"de+f3"``."""
        return f"{get_language(self.language).espeak_voice}+{self.variant}"


@dataclass(frozen=True)
class Prosody:
    """Absolute espeak-ng parameters for one utterance."""

    pitch: int
    pitch_range: int
    rate: int
    volume: int


def prosody_for(speaker: Speaker, style: Style) -> Prosody:
    """The speaker's offsets with the style on top, clipped to espeak-ng's ranges."""
    return Prosody(
        pitch=min(max(NORMAL_PITCH + speaker.pitch_offset + style.pitch_shift, 0), 100),
        pitch_range=min(max(style.pitch_range + speaker.range_offset, 0), 100),
        rate=min(max(int(round(NORMAL_RATE * speaker.rate_scale * style.rate_scale)), RATE_MIN), RATE_MAX),
        volume=min(max(style.volume, 0), 200),
    )


@dataclass
class Rendered:
    """One synthesised utterance at :data:`~speechssl.data.audio.SAMPLE_RATE`: float32 samples
    (already on the int16 grid of the FLAC file) and its phone and word tiers."""

    samples: np.ndarray
    phones: list
    words: list

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / SAMPLE_RATE


_LIBC = None


def _seed_c_rand(seed: int) -> None:
    # espeak-ng's breath noise (variants with "breath") draws from the C library's rand()
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
    _LIBC.srand(ctypes.c_uint(seed & 0xFFFFFFFF))


def render(
    words: list[str] | tuple[str, ...],
    *,
    voice: str,
    prosody: Prosody,
    language: str,
    engine: Espeak | None = None,
    noise_seed: int = 0,
) -> Rendered:
    """Speak ``" ".join(words)`` with espeak-ng ``voice`` and ``prosody``; resample to 16 kHz and
    align phones and words."""
    engine = engine or get_espeak()
    engine.set_voice(voice)
    engine.set_prosody(rate=prosody.rate, volume=prosody.volume, pitch=prosody.pitch, pitch_range=prosody.pitch_range)
    _seed_c_rand(noise_seed)
    synth = engine.synthesize(" ".join(words) + ".")
    if synth.samples.size == 0:
        raise RuntimeError(f"espeak-ng produced no audio for {' '.join(words)!r} ({voice})")
    wav = resample(synth.samples.astype(np.float32) / 32768.0, synth.sample_rate, SAMPLE_RATE)
    pcm = np.clip(np.round(wav * 32768.0), -32768, 32767).astype(np.int16)  # the FLAC file's samples
    phones, word_items = alignments_from_events(
        synth.events,
        native_samples=synth.samples.shape[0],
        native_rate=synth.sample_rate,
        num_samples=pcm.shape[0],
        sample_rate=SAMPLE_RATE,
        words=list(words),
        language=language,
    )
    return Rendered(samples=pcm.astype(np.float32) / 32768.0, phones=phones, words=word_items)


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything that decides one utterance; made by the corpus plan, consumed by a worker."""

    index: int
    cut_id: str
    speaker: Speaker
    style: str
    words: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)


def wav_path(out_dir: str | Path, spec: UtteranceSpec) -> Path:
    """``<out_dir>/wavs/<speaker>/<cut_id>.flac``."""
    return Path(out_dir) / "wavs" / spec.speaker.id / f"{spec.cut_id}.flac"


def _make_cut(spec: UtteranceSpec, path: Path, rendered: Rendered):
    from lhotse import MonoCut, Recording, SupervisionSegment

    rec = Recording.from_file(path, recording_id=spec.cut_id)
    sup = SupervisionSegment(
        id=spec.cut_id,
        recording_id=spec.cut_id,
        start=0.0,
        duration=rec.duration,
        channel=0,
        text=spec.text,
        language=spec.speaker.language,
        speaker=spec.speaker.id,
        gender=spec.speaker.gender,
        custom={"style": spec.style, "voice": spec.speaker.voice},
        alignment={"phone": rendered.phones, "word": rendered.words},
    )
    return MonoCut(id=spec.cut_id, start=0.0, duration=rec.duration, channel=0, recording=rec, supervisions=[sup])


def synthesize_block(specs: list[UtteranceSpec], out_dir: str) -> list[dict]:
    """Render ``specs`` in order, write each as a 16 kHz FLAC file (atomically) and return the cuts
    as dicts (``MonoCut.to_dict()``), in the same order. Runs in a worker process."""
    import torch

    torch.set_num_threads(1)  # one process per core; also keeps resampling bit-exact
    engine = get_espeak()
    cuts = []
    for spec in specs:
        rendered = render(
            spec.words,
            voice=spec.speaker.voice,
            prosody=prosody_for(spec.speaker, get_style(spec.style)),
            language=spec.speaker.language,
            engine=engine,
            noise_seed=spec.index,
        )
        path = wav_path(out_dir, spec)
        pcm = np.round(rendered.samples * 32768.0).astype(np.int16)
        with atomic_path(path) as tmp:
            sf.write(str(tmp), pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        cuts.append(_make_cut(spec, path, rendered).to_dict())
    return cuts
