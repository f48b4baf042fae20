"""Word and character error rates (corpus level) from a Levenshtein alignment.

``WER = (S + D + I) / N`` summed over the corpus (total edits over total reference words, not a mean
of per-utterance rates); CER likewise over characters. Words are whitespace-separated; characters are
those of the text with whitespace runs collapsed to one space and stripped at the ends (spaces count
as characters, as in jiwer's ``cer``).

Empty references: an utterance with an empty reference is allowed and adds its hypothesis's tokens
as insertions; a corpus whose references are all empty has no defined rate and is a ``ValueError``
(jiwer refuses empty references outright).

>>> wer(["the cat sat"], ["the cat sat down"])
0.3333333333333333
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EditCounts:
    """Edit operations of an optimal alignment, summed over utterances."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0  # N: reference tokens

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def hits(self) -> int:
        return self.reference_length - self.substitutions - self.deletions

    @property
    def rate(self) -> float:
        if self.reference_length == 0:
            raise ValueError("the error rate is undefined: the references have no tokens")
        return self.errors / self.reference_length

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_length + other.reference_length,
        )


@dataclass(frozen=True)
class ErrorRates:
    """Word and character edit counts of a corpus; ``wer`` and ``cer`` are their rates."""

    words: EditCounts
    chars: EditCounts

    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def cer(self) -> float:
        return self.chars.rate


def _distance_matrix(ref: np.ndarray, hyp: np.ndarray) -> np.ndarray:
    """The ``(n + 1, m + 1)`` Levenshtein DP table, one row at a time, vectorised along the hypothesis.

    Row ``i``: ``d[i, j] = min(d[i-1, j] + 1, d[i-1, j-1] + (ref[i-1] != hyp[j-1]), d[i, j-1] + 1)``.
    The last term chains along the row; with ``a[j]`` the first two terms,
    ``d[i, j] = min_{k <= j} a[k] + (j - k) = j + cummin(a[k] - k)``.
    """
    n, m = ref.size, hyp.size
    d = np.empty((n + 1, m + 1), dtype=np.int64)
    cols = np.arange(m + 1)
    d[0] = cols
    for i in range(1, n + 1):
        a = np.empty(m + 1, dtype=np.int64)
        a[0] = i
        a[1:] = np.minimum(d[i - 1, 1:] + 1, d[i - 1, :-1] + (hyp != ref[i - 1]))
        d[i] = cols + np.minimum.accumulate(a - cols)
    return d


def edit_ops(ref_tokens: Sequence[Hashable], hyp_tokens: Sequence[Hashable]) -> tuple[int, int, int]:
    """``(substitutions, deletions, insertions)`` of a minimum-edit alignment of two token sequences.

    Their sum is the Levenshtein distance. Among equally short alignments, the backtrace prefers a
    match or substitution, then a deletion, then an insertion (so the split between S and D + I may
    differ from another tool's, never the sum).
    """
    ids: dict[Hashable, int] = {}
    ref = np.array([ids.setdefault(t, len(ids)) for t in ref_tokens], dtype=np.int64)
    hyp = np.array([ids.setdefault(t, len(ids)) for t in hyp_tokens], dtype=np.int64)
    if ref.size == 0 or hyp.size == 0:
        return 0, int(ref.size), int(hyp.size)
    d = _distance_matrix(ref, hyp)
    i, j = ref.size, hyp.size
    s = dl = ins = 0
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            s += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            dl += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return s, dl, ins


def _as_list(texts: str | Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{what} must be strings")
    return texts


def _pairs(refs: str | Sequence[str], hyps: str | Sequence[str]) -> list[tuple[str, str]]:
    r, h = _as_list(refs, "references"), _as_list(hyps, "hypotheses")
    if len(r) != len(h):
        raise ValueError(f"{len(r)} references but {len(h)} hypotheses")
    return list(zip(r, h))


def _counts(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> EditCounts:
    s, d, i = edit_ops(ref, hyp)
    return EditCounts(s, d, i, len(ref))


def error_rates(refs: str | Sequence[str], hyps: str | Sequence[str]) -> ErrorRates:
    """Word and character edit counts of ``hyps`` against ``refs`` (one string or equal-length lists)."""
    words, chars = EditCounts(), EditCounts()
    for ref, hyp in _pairs(refs, hyps):
        words += _counts(ref.split(), hyp.split())
        chars += _counts(" ".join(ref.split()), " ".join(hyp.split()))
    return ErrorRates(words=words, chars=chars)


def wer(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus word error rate: total word edits / total reference words."""
    total = EditCounts()
    for ref, hyp in _pairs(refs, hyps):
        total += _counts(ref.split(), hyp.split())
    return total.rate


def cer(refs: str | Sequence[str], hyps: str | Sequence[str]) -> float:
    """Corpus character error rate: total character edits / total reference characters."""
    total = EditCounts()
    for ref, hyp in _pairs(refs, hyps):
        total += _counts(" ".join(ref.split()), " ".join(hyp.split()))
    return total.rate
