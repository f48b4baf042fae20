"""CTC decoding: greedy (best path) and prefix beam search with an optional word-level n-gram LM.

Why a small LM of our own: the well-kept library path, torchaudio's ``ctc_decoder`` (flashlight-text
with KenLM), is not usable here: ``from torchaudio.models.decoder import ctc_decoder`` fails because
flashlight-text is not installed (it is not among this project's dependencies, and the machines that
run the toolkit have no access to fetch it), and the ``kenlm`` module is not installed either. So this
module has the standard CTC prefix beam search (Hannun et al. 2014, "First-Pass Large Vocabulary
Continuous Speech Recognition using Bi-Directional Recurrent DNNs", in log space) and
:class:`WordNgramLM`, an add-k smoothed word n-gram model, enough for the mini corpus and for tests.
Switch to flashlight-text's decoder where it is installed and a KenLM model is at hand.

>>> hyps = ctc_greedy(log_probs, lengths)                                   # doctest: +SKIP
>>> lm = WordNgramLM.from_texts(train_texts, order=2).token_scorer(vocab.decode)  # doctest: +SKIP
>>> best, score = ctc_prefix_beam_search(log_probs[0], beam=16, lm=lm, lm_weight=0.5,
...                                      separator_id=vocab.separator_id, prune_top_k=8)[0]  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

NEG_INF = -math.inf

# lm(history, word) -> log-prob; history: the words before ``word``, each a tuple of token ids
TokenLM = Callable[[tuple[tuple[int, ...], ...], tuple[int, ...]], float]


def _as_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# greedy


def ctc_greedy(log_probs: Any, lengths: Any = None, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: the argmax token per frame, repeats collapsed, blanks dropped.

    ``log_probs``: ``(T, V)`` or ``(B, T, V)`` scores (log-probabilities or logits: only the argmax
    matters), a torch tensor or an array. ``lengths``: ``(B,)`` valid frames per item (default: all
    ``T``). Returns one id list per item (a list of one for a ``(T, V)`` input).
    """
    if hasattr(log_probs, "detach"):  # argmax on the tensor's device; only (B, T) ids come back
        best = log_probs.detach().argmax(-1).cpu().numpy()
    else:
        best = np.asarray(log_probs).argmax(-1)
    if best.ndim == 1:
        best = best[None]  # (T,) -> (1, T)
    if best.ndim != 2:
        raise ValueError(f"log_probs must be (T, V) or (B, T, V), found {best.ndim + 1} dimensions")
    B, T = best.shape
    if lengths is None:
        lens = np.full(B, T, dtype=np.int64)
    else:
        lens = _as_numpy(lengths, np.int64).reshape(-1)
        if lens.shape != (B,) or (lens < 0).any() or (lens > T).any():
            raise ValueError(f"lengths must be {B} values in 0..{T}, found {lens.tolist()}")
    valid = np.arange(T)[None, :] < lens[:, None]  # (B, T)
    changed = np.ones_like(valid)
    changed[:, 1:] = best[:, 1:] != best[:, :-1]  # (B, T) first frame of each run
    keep = changed & (best != blank) & valid
    return [best[b][keep[b]].tolist() for b in range(B)]


# ---------------------------------------------------------------------------------------------
# word n-gram LM


@dataclass
class WordNgramLM:
    """Word n-gram LM with add-k (``alpha``) smoothing over the training words plus ``<unk>``.

    ``P(w | h) = (count(h, w) + alpha) / (count(h) + alpha * |V|)`` with ``h`` the ``order - 1``
    previous words (``<s>``-padded at the sentence start) and ``|V|`` the distinct training words + 1
    (``<unk>``, which every unseen word is). No back-off and no sentence-end token: it scores words
    only, which is what the beam search asks of it.
    """

    order: int
    alpha: float
    vocab: frozenset[str]
    counts: dict[tuple[str, ...], Counter] = field(repr=False)
    _totals: dict[tuple[str, ...], int] = field(init=False, repr=False)

    BOS = "<s>"

    def __post_init__(self) -> None:
        self._totals = {h: sum(c.values()) for h, c in self.counts.items()}

    @classmethod
    def from_texts(cls, texts: Iterable[str], order: int = 2, alpha: float = 1.0) -> WordNgramLM:
        """Count the n-grams of ``texts`` (normalised transcripts, words split on whitespace)."""
        if order < 1:
            raise ValueError(f"order must be at least 1, found {order}")
        if not alpha > 0:
            raise ValueError(f"alpha (add-k smoothing) must be positive, found {alpha}")
        counts: dict[tuple[str, ...], Counter] = {}
        vocab: set[str] = set()
        for text in texts:
            words = text.split()
            vocab.update(words)
            padded = [cls.BOS] * (order - 1) + words
            for i in range(order - 1, len(padded)):
                counts.setdefault(tuple(padded[i - order + 1 : i]), Counter())[padded[i]] += 1
        if not vocab:
            raise ValueError("no words in the texts: cannot build an LM")
        return cls(order=order, alpha=float(alpha), vocab=frozenset(vocab), counts=counts)

    def score(self, history_words: Sequence[str], word: str) -> float:
        """``log P(word | history_words)`` (natural log)."""
        n = self.order - 1
        history = ([self.BOS] * n + list(history_words))[len(history_words) :] if n else []
        h = tuple(history)
        c = self.counts.get(h)
        num = c[word] if c is not None and word in self.vocab else 0
        den = self._totals.get(h, 0) + self.alpha * (len(self.vocab) + 1)
        return math.log((num + self.alpha) / den)

    def token_scorer(self, decode: Callable[[list[int]], str]) -> TokenLM:
        """This LM as the beam search's ``lm``: words arrive as token-id tuples and are turned into
        strings with ``decode`` (e.g. ``CharVocab.decode``)."""
        cache: dict[tuple[int, ...], str] = {}

        def as_word(ids: tuple[int, ...]) -> str:
            if ids not in cache:
                cache[ids] = decode(list(ids))
            return cache[ids]

        def lm(history: tuple[tuple[int, ...], ...], word: tuple[int, ...]) -> float:
            return self.score([as_word(w) for w in history], as_word(word))

        return lm


# ---------------------------------------------------------------------------------------------
# prefix beam search


def _split_words(prefix: tuple[int, ...], separator_id: int) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """(completed words, the word being spelled) of a prefix; empty words (separator runs) dropped."""
    words: list[tuple[int, ...]] = []
    current: list[int] = []
    for tok in prefix:
        if tok == separator_id:
            if current:
                words.append(tuple(current))
            current = []
        else:
            current.append(tok)
    return tuple(words), tuple(current)


def ctc_prefix_beam_search(
    log_probs: Any,
    beam: int = 8,
    blank: int = 0,
    lm: TokenLM | None = None,
    lm_weight: float = 0.0,
    word_bonus: float = 0.0,
    separator_id: int | None = None,
    prune_top_k: int | None = None,
) -> list[tuple[list[int], float]]:
    """CTC prefix beam search over one utterance; returns up to ``beam`` ``(ids, score)``, best first.

    ``log_probs``: ``(T, V)`` log-probabilities (log-softmax output), computed in float64.
    Each prefix keeps two log-probabilities, of the alignments ending in a blank and in its last label,
    so a repeated label needs a blank between its copies ("a a" vs "a"). ``score`` is the prefix's
    log-probability summed over the alignments the beam kept, plus, per completed word,
    ``lm_weight * lm(history, word) + word_bonus``.

    LM: a word ends where ``separator_id`` is emitted, and at the end of the utterance for the last
    word; ``lm(history, word)`` gets token-id tuples (see :meth:`WordNgramLM.token_scorer`).
    ``lm`` or ``word_bonus`` need ``separator_id``, so they suit a :class:`CharVocab`.

    ``prune_top_k``: per frame only the ``k`` most likely tokens (plus blank, and each prefix's own last
    label for staying on it) extend prefixes; the work per frame is then ``O(beam * k)`` in numpy plus
    ``O(beam)`` Python. Without it every token is tried (vectorised all the same).
    """
    x = _as_numpy(log_probs)
    if x.ndim != 2:
        raise ValueError(f"log_probs must be (T, V), found shape {tuple(x.shape)}")
    T, V = x.shape
    if beam < 1:
        raise ValueError(f"beam must be at least 1, found {beam}")
    if not 0 <= blank < V:
        raise ValueError(f"blank={blank} is out of range for {V} tokens")
    if separator_id is not None and (not 0 <= separator_id < V or separator_id == blank):
        raise ValueError(f"separator_id={separator_id} must be a non-blank token id in 0..{V - 1}")
    if (lm is not None or word_bonus != 0.0) and separator_id is None:
        raise ValueError("an lm or a word_bonus needs separator_id (the token that ends a word)")
    if prune_top_k is not None and prune_top_k < 1:
        raise ValueError(f"prune_top_k must be at least 1, found {prune_top_k}")
    use_words = separator_id is not None and (lm is not None or word_bonus != 0.0)

    word_cache: dict[tuple[int, ...], float] = {}

    def word_score(prefix: tuple[int, ...]) -> float:
        """LM score and bonus for ending the prefix's current word (0 if it has none)."""
        if prefix not in word_cache:
            history, word = _split_words(prefix, separator_id)  # type: ignore[arg-type]
            s = 0.0
            if word:
                s = word_bonus + (lm_weight * lm(history, word) if lm is not None else 0.0)
            word_cache[prefix] = s
        return word_cache[prefix]

    all_labels = np.array([v for v in range(V) if v != blank], dtype=np.int64)
    pos = np.full(V, -1, dtype=np.int64)  # token id -> column among this frame's candidates

    prefixes: list[tuple[int, ...]] = [()]
    p_b = np.zeros(1)  # (N,) log P(alignments of the prefix ending in blank)
    p_nb = np.full(1, NEG_INF)  # (N,) ... ending in its last label
    lm_s = np.zeros(1)  # (N,) LM score + bonuses of the prefix's completed words
    for t in range(T):
        lp = x[t]  # (V,)
        if prune_top_k is not None and prune_top_k < all_labels.size:
            top = np.argpartition(-lp[all_labels], prune_top_k - 1)[:prune_top_k]  # the k best labels
            cand = np.sort(all_labels[top])
        else:
            cand = all_labels
        pos[:] = -1
        pos[cand] = np.arange(cand.size)
        N = len(prefixes)
        last = np.array([p[-1] if p else -1 for p in prefixes], dtype=np.int64)  # (N,)
        total = np.logaddexp(p_b, p_nb)  # (N,)

        # stay on the prefix: a blank, or its last label again (collapsed)
        stay_b = total + lp[blank]
        stay_nb = np.where(last >= 0, p_nb + lp[np.maximum(last, 0)], NEG_INF)

        # extend by each candidate label c: a repeat of the last label needs the blank-ending paths
        lp_c = lp[cand][None, :]  # (1, K)
        ext = np.where(cand[None, :] == last[:, None], p_b[:, None] + lp_c, total[:, None] + lp_c)  # (N, K)
        ext_lm = np.repeat(lm_s[:, None], cand.size, axis=1)  # (N, K)
        if use_words and pos[separator_id] >= 0:
            ext_lm[:, pos[separator_id]] += [word_score(p) for p in prefixes]

        # an extension that is already in the beam merges into it (same prefix, same LM score)
        index = {p: i for i, p in enumerate(prefixes)}
        for i, p in enumerate(prefixes):
            if p:
                parent, j = index.get(p[:-1]), pos[p[-1]]
                if parent is not None and j >= 0:
                    stay_nb[i] = np.logaddexp(stay_nb[i], ext[parent, j])
                    ext[parent, j] = NEG_INF

        # rank the kept prefixes and the new extensions together; keep the best `beam`
        scores = np.concatenate([np.logaddexp(stay_b, stay_nb) + lm_s, (ext + ext_lm).reshape(-1)])  # (N + N*K,)
        finite = np.flatnonzero(scores > NEG_INF)
        if finite.size > beam:
            finite = finite[np.argpartition(-scores[finite], beam - 1)[:beam]]
        order = finite[np.lexsort((finite, -scores[finite]))]  # best first; ties by position

        new_prefixes: list[tuple[int, ...]] = []
        new_b, new_nb, new_lm = [], [], []
        for k in order.tolist():
            if k < N:
                new_prefixes.append(prefixes[k])
                new_b.append(stay_b[k])
                new_nb.append(stay_nb[k])
                new_lm.append(lm_s[k])
            else:
                i, j = divmod(k - N, cand.size)
                new_prefixes.append(prefixes[i] + (int(cand[j]),))
                new_b.append(NEG_INF)
                new_nb.append(ext[i, j])
                new_lm.append(ext_lm[i, j])
        if not new_prefixes:  # every path has probability 0 (log-probs of -inf)
            break
        prefixes, p_b, p_nb, lm_s = new_prefixes, np.array(new_b), np.array(new_nb), np.array(new_lm)

    final = np.logaddexp(p_b, p_nb) + lm_s
    if use_words:  # the last word ends with the utterance
        final = final + np.array([word_score(p) for p in prefixes])
    order = np.lexsort((np.arange(len(prefixes)), -final))
    return [(list(prefixes[i]), float(final[i])) for i in order]
