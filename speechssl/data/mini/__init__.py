"""The synthetic mini corpus: speech synthesised with espeak-ng, with many speakers (both genders),
several languages, transcripts, prosody styles standing in for emotions, and phone alignments
from the synthesiser's phoneme events. Deterministic under a seed; sized from CI-tiny to hours.

>>> from speechssl.data.mini import MiniCorpusConfig, make_mini_corpus   # doctest: +SKIP
>>> stats = make_mini_corpus("data/mini_tiny", MiniCorpusConfig.tiny())  # doctest: +SKIP
"""

from speechssl.data.mini.alignment import SIL, frame_phone_labels
from speechssl.data.mini.corpus import (
    BLOCK_SIZE,
    CorpusPlan,
    MiniCorpusConfig,
    is_complete,
    load_mini_corpus_stats,
    make_mini_corpus,
    make_trials,
    plan_corpus,
)
from speechssl.data.mini.synth import DEFAULT_STYLES, STYLES, Speaker, Style, prosody_for, render
from speechssl.data.mini.vocab import LANGUAGES, load_vocab

__all__ = [
    "BLOCK_SIZE",
    "CorpusPlan",
    "DEFAULT_STYLES",
    "LANGUAGES",
    "MiniCorpusConfig",
    "SIL",
    "STYLES",
    "Speaker",
    "Style",
    "frame_phone_labels",
    "is_complete",
    "load_mini_corpus_stats",
    "load_vocab",
    "make_mini_corpus",
    "make_trials",
    "plan_corpus",
    "prosody_for",
    "render",
]
