"""Phone and word alignments from espeak-ng's synthesis events, and frame-level phone labels.

An alignment tier is a list of lhotse ``AlignmentItem(symbol, start, duration)`` (seconds) that is
contiguous and covers the whole utterance: pauses and the silence before the first and after the
last phone are :data:`SIL` items. The mini corpus stores two tiers per supervision,
``supervision.alignment = {"phone": [...], "word": [...]}``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np
from lhotse.supervision import AlignmentItem

from speechssl.data.mini.espeak import SynthEvent

SIL = "sil"

# Phonemes espeak-ng 1.51 has no IPA name for (it reports "??" in IPA mode), per language.
_UNNAMED_PHONES: dict[str, dict[str, str]] = {
    "de": {"??": "ʊɐ"},  # espeak's "UR", as in durch, kurz
}


def normalise_phone(name: str, language: str | None = None) -> str:
    """A clean phone symbol from an espeak-ng IPA phoneme name: pauses (empty names) become
    :data:`SIL`, stress marks are dropped, and espeak's fallback names such as ``"a-"`` (no IPA
    defined) lose their trailing ``-``."""
    name = name.strip().replace("ˈ", "").replace("ˌ", "")
    if not name or name.startswith("_"):  # "_", "_:", "_!" are pauses in mnemonic mode
        return SIL
    if len(name) > 1 and name.endswith("-"):
        name = name[:-1]
    return _UNNAMED_PHONES.get(language or "", {}).get(name, name)


def _tier(bounds: list[tuple[int, str]], num_samples: int, rate: int) -> list[AlignmentItem]:
    """Contiguous items from ``(start_sample, symbol)`` boundaries, each running to the next start
    (the last to ``num_samples``); empty items are dropped and neighbouring silences merged."""
    segments: list[list] = []  # [symbol, start, end]
    for i, (start, symbol) in enumerate(bounds):
        end = bounds[i + 1][0] if i + 1 < len(bounds) else num_samples
        if end <= start:
            continue
        if segments and segments[-1][0] == SIL and symbol == SIL:
            segments[-1][2] = end
        else:
            segments.append([symbol, start, end])
    return [AlignmentItem(symbol=s, start=a / rate, duration=(b - a) / rate) for s, a, b in segments]


def alignments_from_events(
    events: Sequence[SynthEvent],
    *,
    native_samples: int,
    native_rate: int,
    num_samples: int,
    sample_rate: int,
    words: Sequence[str],
    language: str | None = None,
) -> tuple[list[AlignmentItem], list[AlignmentItem]]:
    """Phone and word tiers (times in seconds) for an utterance synthesised from ``" ".join(words)``.

    ``events`` come from :meth:`Espeak.synthesize` on audio of ``native_samples`` samples at
    ``native_rate``; the audio was then resampled to ``num_samples`` at ``sample_rate``, whose sample
    grid the boundaries are rounded to. A phone runs from its event to the next phone event. Word
    events are mapped to ``words`` by their character position; a word spans its phones (pauses
    excluded). espeak-ng occasionally speaks two words as one (English "that it"): they then form
    one word item whose symbol joins them with a space.
    """
    scale = sample_rate / native_rate

    def to_target(sample: int) -> int:
        return min(max(int(round(sample * scale)), 0), num_samples)

    # 1-based character position where each word starts in " ".join(words)
    word_starts = []
    pos = 1
    for w in words:
        word_starts.append(pos)
        pos += len(w) + 1

    phone_bounds: list[tuple[int, str]] = [(0, SIL)]
    phone_word: list[int] = [-1]  # index of the event word each phone belongs to (-1: none)
    current_word = -1
    last = 0
    for ev in events:
        if ev.kind == "word" and ev.text_position >= 1:
            current_word = bisect.bisect_right(word_starts, ev.text_position) - 1
        elif ev.kind == "phoneme":
            start = max(to_target(ev.sample), last)  # events are in order; guard anyway
            last = start
            symbol = normalise_phone(ev.name, language)
            phone_bounds.append((start, symbol))
            phone_word.append(current_word if symbol != SIL else -1)
    phones = _tier(phone_bounds, num_samples, sample_rate)

    # word spans over their phones: word index -> [first start, last end]
    spans: dict[int, list[int]] = {}
    for i, (start, _symbol) in enumerate(phone_bounds):
        w = phone_word[i]
        if w < 0:
            continue
        end = phone_bounds[i + 1][0] if i + 1 < len(phone_bounds) else num_samples
        if end <= start:
            continue
        span = spans.setdefault(w, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    word_bounds: list[tuple[int, str]] = [(0, SIL)]
    indices = sorted(spans)
    for j, w in enumerate(indices):
        first = 0 if j == 0 else w  # words with no event of their own join the word before them
        upto = indices[j + 1] if j + 1 < len(indices) else len(words)
        symbol = " ".join(words[first:upto])
        start, end = spans[w]
        if word_bounds[-1][0] > start:
            start = word_bounds[-1][0]
        word_bounds.append((start, symbol))
        word_bounds.append((end, SIL))
    word_tier = _tier(word_bounds, num_samples, sample_rate)
    return phones, word_tier


def _alignment_source(cut_or_supervision):
    """``(phone items, start offset, duration)`` of a cut (its first supervision with a phone tier)
    or of a supervision."""
    sups = getattr(cut_or_supervision, "supervisions", None)
    if sups is not None:  # a cut: times relative to the cut's start
        for sup in sups:
            items = (sup.alignment or {}).get("phone")
            if items:
                return items, 0.0, cut_or_supervision.duration
        raise ValueError(f"cut {cut_or_supervision.id}: no supervision with a 'phone' alignment")
    items = (cut_or_supervision.alignment or {}).get("phone")
    if not items:
        raise ValueError(f"supervision {cut_or_supervision.id}: no 'phone' alignment")
    return items, cut_or_supervision.start, cut_or_supervision.duration


def frame_phone_labels(cut_or_supervision, frame_shift: float = 0.02, num_frames: int | None = None) -> list[str]:
    """One phone symbol per frame: the phone whose item covers the frame's centre.

    Frame ``t`` has its centre at ``(t + 0.5) * frame_shift`` seconds from the start of the cut (or of
    the supervision). ``num_frames`` defaults to ``floor(duration / frame_shift)``; pass a model's
    frame count (e.g. ``encoder`` output lengths) to get exactly that many labels. Centres outside
    every item (before the first, after the last) are labelled :data:`SIL`.
    """
    if frame_shift <= 0:
        raise ValueError(f"frame_shift must be positive, got {frame_shift}")
    items, offset, duration = _alignment_source(cut_or_supervision)
    if num_frames is None:
        num_frames = int(math.floor(duration / frame_shift + 1e-6))
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    items = sorted(items, key=lambda it: it.start)
    starts = np.array([it.start - offset for it in items], dtype=np.float64)
    ends = np.array([it.start + it.duration - offset for it in items], dtype=np.float64)
    centres = (np.arange(num_frames, dtype=np.float64) + 0.5) * frame_shift
    idx = np.searchsorted(starts, centres, side="right") - 1  # last item starting at or before the centre
    labels = []
    for t, i in enumerate(idx):
        if i >= 0 and centres[t] < ends[i]:
            labels.append(items[i].symbol)
        else:
            labels.append(SIL)
    return labels
