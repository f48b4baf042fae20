"""Languages of the mini corpus and their built-in vocabularies (``vocab/<code>.txt``).

Each vocabulary is a few hundred common words in the language's own spelling (accents, German
noun capitals), one per line; lines starting with ``#`` are comments. Sentences are random word
sequences drawn from it: meaningless, but spelled and pronounced like the language.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class Language:
    """A corpus language: ISO 639-1 ``code``, English ``name`` and the espeak-ng voice that speaks it."""

    code: str
    name: str
    espeak_voice: str


# code -> language; the vocabulary file is vocab/<code>.txt
LANGUAGES: dict[str, Language] = {
    "en": Language("en", "English", "en-us"),
    "de": Language("de", "German", "de"),
    "es": Language("es", "Spanish", "es"),
    "fr": Language("fr", "French", "fr"),
}


def get_language(code: str) -> Language:
    """The :class:`Language` for ``code``; an unknown code lists the valid ones."""
    try:
        return LANGUAGES[code]
    except KeyError:
        raise ValueError(f"unknown language '{code}'; valid languages: {', '.join(LANGUAGES)}") from None


@functools.cache
def load_vocab(code: str) -> tuple[str, ...]:
    """The words of language ``code`` in file order, without duplicates."""
    get_language(code)
    text = resources.files("speechssl.data.mini").joinpath("vocab").joinpath(f"{code}.txt").read_text(encoding="utf-8")
    words: dict[str, None] = {}
    for line in text.splitlines():
        word = line.strip()
        if word and not word.startswith("#"):
            words[word] = None
    if not words:
        raise ValueError(f"vocabulary for '{code}' is empty")
    return tuple(words)


def random_sentence(rng: np.random.Generator, vocab: tuple[str, ...], min_words: int, max_words: int) -> list[str]:
    """``min_words`` to ``max_words`` (inclusive) words drawn uniformly from ``vocab``, with no word
    repeated back to back."""
    n = int(rng.integers(min_words, max_words + 1))
    words: list[str] = []
    while len(words) < n:
        word = vocab[int(rng.integers(len(vocab)))]
        if not words or word != words[-1]:
            words.append(word)
    return words
