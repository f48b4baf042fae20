"""HuBERTopic topic labels: a topic model over the unit sequences of utterances.

HuBERTopic (Maekaku et al., ICASSP 2024) treats each utterance's k-means unit sequence as a
*document*, fits latent Dirichlet allocation (LDA) over these documents, and gives every utterance
a topic label (the most probable topic) that an auxiliary loss then teaches the encoder to predict.
This module does that with scikit-learn's online variational Bayes LDA
(:class:`sklearn.decomposition.LatentDirichletAllocation`, Hoffman et al., 2010).

Documents (:class:`DocumentConfig`). A document is the bag of its units, by default after
de-duplication (``dedup=True``: consecutive repeats collapse, ``5 5 5 7 7 5`` -> ``5 7 5``), so
that a long vowel counts once, as in the pseudo-subword documents of the authors' earlier topic
clustering work. ``ngram=2`` adds bigrams of the (de-duplicated) sequence, ``ngram=3`` trigrams,
and so on; an n-gram (n >= 2) becomes a feature only if it occurs at least ``min_count`` times (5)
in the documents the model is fitted on. The document-term matrix is built directly from the integer
arrays (unigram ``u`` is column ``u``; the bigram ``(a, b)`` has raw id ``k + a*k + b``, the trigram
``(a, b, c)`` ``k + k^2 + (a*k + b)*k + c``; kept n-grams are columns ``k, k+1, ...`` in raw-id order).

Model (:class:`TopicConfig`) defaults and why:

- ``num_topics=100``: the topic label is an utterance-level classification target; 100 classes sit
  between a corpus's few coarse attributes (gender, language, style) and its hundreds to thousands
  of speakers, and a topic still gets 1% of the utterances on average;
- ``doc_topic_prior = topic_word_prior = None``: 1/T, scikit-learn's defaults;
- ``learning_decay=0.7``, ``learning_offset=10``: scikit-learn's defaults for the online step size
  ``(offset + t)^-decay``;
- ``max_fit_docs=40000``, ``passes=None``, ``batch_size=256``: the model is fitted on at most 40k
  documents drawn (seeded) from the fitting split, with as many passes as it takes to visit 40k
  documents (at most 10): one pass over a sample of a large corpus (fresh documents teach an
  online LDA more than repeated ones), 2 over a 20k-utterance corpus, 10 over one of 4k or fewer.
  Topics over a few hundred units settle within a few tens of thousands of documents (on 100k
  planted-topic documents, ``tools/bench/topics.py``, the fitted model labels 97% as well, in
  NMI, as the true model), so fitting costs the same for any corpus size; every document is
  labelled, not only those fitted on (``max_fit_docs=None`` fits on all);
- ``max_doc_update_iter=100``, ``mean_change_tol=1e-3``: scikit-learn's per-document E-step limits;
- ``seed=0``; ``n_jobs=None``: the CPUs available (worker processes through joblib).

Determinism: a fit is a function of the documents, the configs *and* ``n_jobs`` (scikit-learn gives
each job a copy of the random state to initialise its share of a mini-batch), so the number of jobs
is stored with the model. Labelling (``transform``) has no randomness and gives the same result for
any number of jobs.

Files. A model is one safetensors file (``components`` (T, V) float64, ``ngram_ids`` int64, and a
JSON ``speechssl`` metadata entry with the configs, ``num_units``, the format name and version, and
what the model was fitted on); nothing is pickled. Labelling a label folder writes a *topic folder*::

    <out>/<split>.topics           one line per cut: ``<cut_id> <topic>`` (a label file, labels.files)
    <out>/<split>.topic_dist.npz   ``ids`` (unicode array) and ``dist`` (N, T) float32, rows sum to 1
    <out>/topics.json              model, num_topics, document config, label folder, per-split counts

``topics.json`` is written last (and removed first when a folder is labelled again), so a folder
without it is incomplete. :func:`analyze_topic_dir` relates topic labels to the speaker, gender,
language and style of the cuts (NMI and purity), as the paper's analysis of its topic labels does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import scipy.sparse as sp
from scipy.special import psi
from sklearn.decomposition import LatentDirichletAllocation
from tqdm import tqdm

from speechssl.io import atomic_path, atomic_write_text
from speechssl.labels.files import read_labels, write_labels
from speechssl.labels.store import LabelDir, read_label_dir

logger = logging.getLogger(__name__)

MODEL_FORMAT = "speechssl-topic-model"
MODEL_FORMAT_VERSION = 1
TOPICS_META = "topics.json"
TOPICS_FORMAT = "speechssl-topics"
TOPICS_FORMAT_VERSION = 1

_MAX_RAW_ID = 2**62  # n-gram raw ids must fit in int64
AUTO_PASS_DOCS = 40000  # passes=None: enough passes to visit this many documents ...
AUTO_MAX_PASSES = 10  # ... but at most this many
_TRANSFORM_CHUNK = 4096  # documents per transform call when labelling (progress granularity)


# --------------------------------------------------------------------------------------------------
# configs


@dataclass
class DocumentConfig:
    """How a unit sequence becomes a document (a bag of features)."""

    dedup: bool = True  # collapse consecutive repeats of a unit before counting
    ngram: int = 1  # 1: unigrams; 2: unigrams + bigrams; 3: ... + trigrams (at most 4)
    min_count: int = 5  # an n-gram (n >= 2) is a feature if it occurs this often in the fitted documents

    def __post_init__(self):
        if not isinstance(self.ngram, int) or not 1 <= self.ngram <= 4:
            raise ValueError(f"ngram must be 1, 2, 3 or 4, got {self.ngram!r}")
        if not isinstance(self.min_count, int) or self.min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {self.min_count!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "DocumentConfig":
        return cls(**{k: d[k] for k in ("dedup", "ngram", "min_count") if k in d})


@dataclass
class TopicConfig:
    """The LDA and how it is fitted (the module docstring says why the defaults are what they are)."""

    num_topics: int = 100  # T; sklearn's n_components
    passes: Optional[int] = None  # passes over the fitting documents (sklearn's max_iter); None: auto
    batch_size: int = 256  # documents per online update
    learning_decay: float = 0.7  # kappa: the step size is (learning_offset + t) ** -learning_decay
    learning_offset: float = 10.0  # tau_0: down-weights the first updates
    doc_topic_prior: Optional[float] = None  # alpha; None: 1 / num_topics
    topic_word_prior: Optional[float] = None  # eta; None: 1 / num_topics
    max_doc_update_iter: int = 100  # E-step iterations per document, at most
    mean_change_tol: float = 1e-3  # E-step stops when a document's topic weights change less
    max_fit_docs: Optional[int] = 40000  # fit on a seeded sample of at most this many documents; None: all
    seed: int = 0
    n_jobs: Optional[int] = None  # worker processes; None: the CPUs available

    def __post_init__(self):
        for name in ("num_topics", "batch_size", "max_doc_update_iter"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.passes is not None and (not isinstance(self.passes, int) or self.passes < 1):
            raise ValueError(f"passes must be an integer >= 1 or None (auto), got {self.passes!r}")
        if self.num_topics < 2:
            raise ValueError(f"num_topics must be at least 2, got {self.num_topics}")
        if not 0.5 < self.learning_decay <= 1.0:
            raise ValueError(
                f"learning_decay must be in (0.5, 1.0] for online LDA to converge, got {self.learning_decay}"
            )
        if not self.learning_offset > 1.0:
            raise ValueError(f"learning_offset must be > 1, got {self.learning_offset}")
        for name in ("doc_topic_prior", "topic_word_prior"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 (or None for 1/num_topics), got {value}")
        if not self.mean_change_tol > 0:
            raise ValueError(f"mean_change_tol must be > 0, got {self.mean_change_tol}")
        if self.max_fit_docs is not None and (not isinstance(self.max_fit_docs, int) or self.max_fit_docs < 1):
            raise ValueError(f"max_fit_docs must be an integer >= 1 or None (all), got {self.max_fit_docs!r}")
        if self.n_jobs is not None and (not isinstance(self.n_jobs, int) or self.n_jobs < 1):
            raise ValueError(f"n_jobs must be an integer >= 1 or None (the CPUs available), got {self.n_jobs!r}")

    def resolved_passes(self, num_docs: int) -> int:
        """Passes over ``num_docs`` fitting documents: ``passes``, or (None) enough to visit
        :data:`AUTO_PASS_DOCS` documents, 1 to :data:`AUTO_MAX_PASSES`."""
        if self.passes is not None:
            return self.passes
        return int(min(AUTO_MAX_PASSES, max(1, math.ceil(AUTO_PASS_DOCS / max(num_docs, 1)))))

    def resolved_jobs(self) -> int:
        return self.n_jobs if self.n_jobs is not None else available_cpus()

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "TopicConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------------
# documents


def _ngram_offset(order: int, num_units: int) -> int:
    """Raw id of the first n-gram of ``order``: k + k^2 + ... + k^(order-1)."""
    return sum(num_units**j for j in range(1, order))


def _check_ngram_range(num_units: int, ngram: int) -> None:
    if _ngram_offset(ngram + 1, num_units) >= _MAX_RAW_ID:
        raise ValueError(f"{ngram}-grams of {num_units} units do not fit 64-bit feature ids; use a smaller ngram")


def _flatten(
    seqs: Sequence[np.ndarray], num_units: int, ids: Optional[Sequence[str]] = None
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``seqs`` into one int64 array, and their lengths; units are checked to be in
    ``[0, num_units)``."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = (
        np.concatenate([np.asarray(s, dtype=np.int64).reshape(-1) for s in seqs])
        if len(seqs)
        else np.zeros(0, np.int64)
    )
    if flat.size and (flat.min() < 0 or flat.max() >= num_units):
        bad = int(np.flatnonzero((flat < 0) | (flat >= num_units))[0])
        doc = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
        name = f"cut '{ids[doc]}'" if ids is not None else f"document {doc}"
        raise ValueError(f"{name} has unit {int(flat[bad])}, outside 0..{num_units - 1} (num_units={num_units})")
    return flat, lengths


def _doc_index(lengths: np.ndarray) -> np.ndarray:
    """The document of each element of the concatenation (np.repeat(arange, lengths), faster for
    many short runs: a cumulative sum of the steps at the documents' starts)."""
    nonempty = np.flatnonzero(lengths)
    steps = np.zeros(int(lengths.sum()), dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    steps[starts[nonempty]] = np.diff(nonempty, prepend=0)
    return np.cumsum(steps)


def _features(seqs: Sequence[np.ndarray], num_units: int, config: DocumentConfig, ids=None):
    """Per token: (document index, raw feature id), for unigrams and, separately, higher n-grams."""
    flat, lengths = _flatten(seqs, num_units, ids)
    if config.dedup and flat.size:
        starts = (np.cumsum(lengths) - lengths)[lengths > 0]
        keep = np.empty(flat.size, dtype=bool)
        np.not_equal(flat[1:], flat[:-1], out=keep[1:])
        keep[starts] = True  # a document's first unit is always kept
        kept = np.flatnonzero(keep)
        lengths = np.diff(np.searchsorted(kept, np.cumsum(lengths)), prepend=0)  # kept units per document
        flat = flat[kept]
    doc = _doc_index(lengths)
    ngram_docs, ngram_raw = [], []
    for order in range(2, config.ngram + 1):
        m = flat.size - order + 1
        if m <= 0:
            break
        inside = doc[:m] == doc[order - 1 :]  # documents are contiguous: same first and last document
        raw = np.zeros(m, dtype=np.int64)
        for j in range(order):
            raw = raw * num_units + flat[j : j + m]
        ngram_docs.append(doc[:m][inside])
        ngram_raw.append(raw[inside] + _ngram_offset(order, num_units))
    if ngram_raw:
        return (doc, flat), (np.concatenate(ngram_docs), np.concatenate(ngram_raw))
    return (doc, flat), (np.zeros(0, np.int64), np.zeros(0, np.int64))


def select_ngrams(seqs: Sequence[np.ndarray], num_units: int, config: DocumentConfig) -> np.ndarray:
    """Raw ids (sorted, int64) of the n-grams (n >= 2) that occur at least ``config.min_count``
    times in ``seqs``; empty for ``ngram=1``."""
    _check_ngram_range(num_units, config.ngram)
    _, (_, raw) = _features(seqs, num_units, config)
    if raw.size == 0:
        return np.zeros(0, np.int64)
    uniq, counts = np.unique(raw, return_counts=True)
    return uniq[counts >= config.min_count].astype(np.int64)


def document_matrix(
    seqs: Sequence[np.ndarray],
    num_units: int,
    config: DocumentConfig = DocumentConfig(),
    ngram_ids: Optional[np.ndarray] = None,
    ids: Optional[Sequence[str]] = None,
) -> sp.csr_matrix:
    """The document-term count matrix ``(len(seqs), num_units + len(ngram_ids))`` (CSR, float64).

    Column ``u < num_units`` counts unit ``u``; column ``num_units + i`` counts the n-gram whose raw
    id is ``ngram_ids[i]`` (see the module docstring); n-grams not in ``ngram_ids`` are dropped.
    ``ngram_ids`` is required when ``config.ngram > 1`` (:func:`select_ngrams` makes it). ``ids``
    (cut ids) only name the culprit of an error.
    """
    _check_ngram_range(num_units, config.ngram)
    if ngram_ids is None:
        if config.ngram > 1:
            raise ValueError("ngram > 1 needs the n-gram vocabulary (ngram_ids); select_ngrams() makes it")
        ngram_ids = np.zeros(0, np.int64)
    ngram_ids = np.asarray(ngram_ids, dtype=np.int64)
    (rows, cols), (ngram_rows, raw) = _features(seqs, num_units, config, ids)
    if raw.size and ngram_ids.size:
        pos = np.minimum(np.searchsorted(ngram_ids, raw), ngram_ids.size - 1)
        known = ngram_ids[pos] == raw
        rows = np.concatenate([rows, ngram_rows[known]])
        cols = np.concatenate([cols, num_units + pos[known]])
    shape = (len(seqs), num_units + ngram_ids.size)
    if ngram_ids.size == 0 and num_units <= 1 << 16:  # rows ascending, few columns
        return _count_sorted_rows(rows, cols, shape)
    # COO -> CSR sums the repeated (row, col) pairs: the counts
    matrix = sp.coo_matrix((np.ones(rows.size, dtype=np.float64), (rows, cols)), shape=shape).tocsr()
    matrix.sum_duplicates()
    return matrix


def _count_sorted_rows(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR counts of the (row, col) pairs, ``rows`` ascending: one bincount per block of rows
    (a few million counters), which is faster than sorting the pairs when there are few columns
    (for many, each row's counters cost more than sorting its pairs)."""
    n_rows, n_cols = shape
    block = max(1, (1 << 22) // max(n_cols, 1))  # rows per bincount
    edges = np.searchsorted(rows, np.arange(0, n_rows + block, block))  # token range of each block
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    indices, data = [], []
    for b, r0 in enumerate(range(0, n_rows, block)):
        r1 = min(r0 + block, n_rows)
        p0, p1 = edges[b], edges[b + 1]
        counts = np.bincount((rows[p0:p1] - r0) * n_cols + cols[p0:p1], minlength=(r1 - r0) * n_cols)
        nz = np.flatnonzero(counts)  # ascending: by row, then by column
        indices.append((nz % n_cols).astype(np.int32))
        data.append(counts[nz].astype(np.float64))
        indptr[r0 + 1 : r1 + 1] = np.bincount(nz // n_cols, minlength=r1 - r0)
    np.cumsum(indptr, out=indptr)
    if not data:  # no rows
        return sp.csr_matrix(shape, dtype=np.float64)
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=shape)


# --------------------------------------------------------------------------------------------------
# the model


def _exp_dirichlet_expectation(components: np.ndarray) -> np.ndarray:
    """exp(E[log beta]) for beta ~ Dirichlet(components) row-wise (what sklearn caches as
    ``exp_dirichlet_component_``)."""
    return np.exp(psi(components) - psi(components.sum(axis=1))[:, np.newaxis])


def _make_lda(config: TopicConfig, n_jobs: int, total_samples: int) -> LatentDirichletAllocation:
    return LatentDirichletAllocation(
        n_components=config.num_topics,
        doc_topic_prior=config.doc_topic_prior,
        topic_word_prior=config.topic_word_prior,
        learning_method="online",
        learning_decay=config.learning_decay,
        learning_offset=config.learning_offset,
        max_iter=config.passes or 1,
        batch_size=config.batch_size,
        total_samples=total_samples,
        max_doc_update_iter=config.max_doc_update_iter,
        mean_change_tol=config.mean_change_tol,
        n_jobs=n_jobs,
        random_state=config.seed,
    )


@dataclass
class TopicModel:
    """A fitted LDA over unit documents, with what it needs to turn unit sequences into topics."""

    lda: LatentDirichletAllocation
    num_units: int
    documents: DocumentConfig
    config: TopicConfig
    ngram_ids: np.ndarray  # raw ids of the n-gram features (sorted); empty for unigrams only
    info: dict = field(default_factory=dict)  # what it was fitted on (label folder, split, counts, jobs)

    @property
    def num_topics(self) -> int:
        return int(self.lda.components_.shape[0])

    @property
    def num_features(self) -> int:
        return int(self.lda.components_.shape[1])

    @property
    def model_id(self) -> str:
        """sha256 of the topic-word parameters: names the model in topic folders."""
        return hashlib.sha256(np.ascontiguousarray(self.lda.components_).tobytes()).hexdigest()

    def matrix(self, seqs: Sequence[np.ndarray], ids: Optional[Sequence[str]] = None) -> sp.csr_matrix:
        """The document-term matrix of ``seqs`` in this model's feature space."""
        return document_matrix(seqs, self.num_units, self.documents, self.ngram_ids, ids)

    def transform(
        self,
        seqs: Sequence[np.ndarray],
        *,
        ids: Optional[Sequence[str]] = None,
        n_jobs: Optional[int] = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Topic distributions ``(len(seqs), T)`` (float64, rows sum to 1). An empty document gets
        the prior's (uniform) distribution. ``n_jobs`` does not change the result."""
        return self.transform_matrix(self.matrix(seqs, ids), n_jobs=n_jobs, progress=progress)

    def transform_matrix(
        self, matrix: sp.csr_matrix, *, n_jobs: Optional[int] = None, progress: bool = False, desc: str = "topics"
    ) -> np.ndarray:
        if matrix.shape[1] != self.num_features:
            raise ValueError(f"document matrix has {matrix.shape[1]} features; the model has {self.num_features}")
        jobs = n_jobs if n_jobs is not None else self.config.resolved_jobs()
        out = np.empty((matrix.shape[0], self.num_topics), dtype=np.float64)
        fitted_jobs = self.lda.n_jobs
        try:
            with tqdm(total=matrix.shape[0], desc=desc, unit="utt", file=sys.stderr, disable=not progress) as bar:
                for start in range(0, matrix.shape[0], _TRANSFORM_CHUNK):
                    chunk = matrix[start : start + _TRANSFORM_CHUNK]
                    # processes only pay off for enough documents (the result is the same either way)
                    self.lda.n_jobs = jobs if chunk.shape[0] >= 256 * jobs else 1
                    out[start : start + chunk.shape[0]] = self.lda.transform(chunk)
                    bar.update(chunk.shape[0])
        finally:
            self.lda.n_jobs = fitted_jobs
        return out

    def label(self, seqs: Sequence[np.ndarray], **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """Hard topic labels (argmax, int64) and distributions (float32) of ``seqs``."""
        dist = self.transform(seqs, **kwargs)
        return dist.argmax(axis=1).astype(np.int64), dist.astype(np.float32)

    def top_units(self, topic: int, n: int = 10) -> list[tuple[tuple[int, ...], float]]:
        """The ``n`` most probable features of ``topic``: (unit n-gram, probability)."""
        row = self.lda.components_[topic] / self.lda.components_[topic].sum()
        order = np.argsort(-row, kind="stable")[:n]
        return [(self.feature_units(int(c)), float(row[c])) for c in order]

    def feature_units(self, column: int) -> tuple[int, ...]:
        """The unit n-gram a feature column counts."""
        k = self.num_units
        if column < k:
            return (column,)
        raw = int(self.ngram_ids[column - k])
        order = 2
        while order < self.documents.ngram and raw >= _ngram_offset(order + 1, k):
            order += 1
        raw -= _ngram_offset(order, k)
        units = []
        for _ in range(order):
            raw, u = divmod(raw, k)
            units.append(u)
        return tuple(reversed(units))

    @classmethod
    def from_components(
        cls,
        components: np.ndarray,
        num_units: int,
        documents: DocumentConfig = DocumentConfig(),
        config: TopicConfig = TopicConfig(),
        ngram_ids: Optional[np.ndarray] = None,
        *,
        doc_topic_prior: Optional[float] = None,
        topic_word_prior: Optional[float] = None,
        info: Optional[dict] = None,
    ) -> "TopicModel":
        """A model from topic-word parameters ``components`` (T, V) (sklearn's ``components_``,
        Dirichlet parameters; V = num_units + n-grams): what :meth:`load` uses, and a way to label
        with known topics. The priors default to the config's (None there: 1/T)."""
        components = np.asarray(components, dtype=np.float64)
        ngram_ids = np.zeros(0, np.int64) if ngram_ids is None else np.asarray(ngram_ids, dtype=np.int64)
        if components.ndim != 2 or components.shape[1] != num_units + ngram_ids.size or not (components > 0).all():
            raise ValueError(
                f"components must be positive with shape (topics, num_units + n-grams) = (T, {num_units + ngram_ids.size}), "
                f"got shape {components.shape}"
            )
        info = dict(info or {})
        num_topics = components.shape[0]
        if num_topics != config.num_topics:
            config = TopicConfig.from_dict({**config.as_dict(), "num_topics": num_topics})
        lda = _make_lda(config, int(info.get("n_jobs", 1)), max(1, int(info.get("docs", 1))))
        # the fitted state that transform() uses (what sklearn's _init_latent_vars and M-step set)
        lda.components_ = components
        lda.exp_dirichlet_component_ = _exp_dirichlet_expectation(components)
        default_prior = 1.0 / num_topics
        lda.doc_topic_prior_ = float(
            doc_topic_prior if doc_topic_prior is not None else config.doc_topic_prior or default_prior
        )
        lda.topic_word_prior_ = float(
            topic_word_prior if topic_word_prior is not None else config.topic_word_prior or default_prior
        )
        lda.n_features_in_ = components.shape[1]
        lda.n_batch_iter_ = int(info.get("batches", 0)) + 1
        lda.n_iter_ = int(info.get("passes", config.passes or 1))
        lda.random_state_ = np.random.RandomState(config.seed)
        return cls(lda=lda, num_units=num_units, documents=documents, config=config, ngram_ids=ngram_ids, info=info)

    # --- files

    def metadata(self) -> dict:
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "num_units": self.num_units,
            "num_topics": self.num_topics,
            "num_features": self.num_features,
            "documents": self.documents.as_dict(),
            "config": self.config.as_dict(),
            "doc_topic_prior": float(self.lda.doc_topic_prior_),
            "topic_word_prior": float(self.lda.topic_word_prior_),
            "fit": self.info,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as one safetensors file (atomically)."""
        from safetensors.numpy import save_file

        path = Path(path)
        tensors = {
            "components": np.ascontiguousarray(self.lda.components_, dtype=np.float64),
            "ngram_ids": np.ascontiguousarray(self.ngram_ids, dtype=np.int64),
        }
        meta = {
            "format": MODEL_FORMAT,
            "format_version": str(MODEL_FORMAT_VERSION),
            "speechssl": json.dumps(self.metadata()),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TopicModel":
        """Read a model written by :meth:`save`; the LDA is rebuilt so that ``transform`` works."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: topic model not found")
        try:
            with safe_open(str(path), framework="numpy") as f:
                header = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{path}: not a safetensors file ({e})") from None
        if header.get("format") != MODEL_FORMAT or "speechssl" not in header:
            raise ValueError(f"{path}: not a speechssl topic model (format {header.get('format')!r})")
        if int(header.get("format_version", 0)) > MODEL_FORMAT_VERSION:
            raise ValueError(
                f"{path}: topic model format version {header['format_version']} is newer than this speechssl "
                f"reads ({MODEL_FORMAT_VERSION})"
            )
        try:
            meta = json.loads(header["speechssl"])
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: malformed topic model metadata ({e})") from None
        missing = {"components", "ngram_ids"} - set(tensors)
        if missing:
            raise ValueError(f"{path}: topic model lacks tensors {sorted(missing)}")
        try:
            return cls.from_components(
                tensors["components"],
                num_units=int(meta["num_units"]),
                documents=DocumentConfig.from_dict(meta["documents"]),
                config=TopicConfig.from_dict(meta["config"]),
                ngram_ids=tensors["ngram_ids"],
                doc_topic_prior=float(meta["doc_topic_prior"]),
                topic_word_prior=float(meta["topic_word_prior"]),
                info=dict(meta.get("fit") or {}),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed topic model ({type(e).__name__}: {e})") from None


def fit_topic_model(
    seqs: Sequence[np.ndarray],
    num_units: int,
    documents: DocumentConfig = DocumentConfig(),
    config: TopicConfig = TopicConfig(),
    *,
    ids: Optional[Sequence[str]] = None,
    progress: bool = False,
    info: Optional[dict] = None,
) -> TopicModel:
    """Fit an LDA on the unit sequences ``seqs`` (units in ``[0, num_units)``).

    Empty documents are left out; of the rest, at most ``config.max_fit_docs`` (a seeded random
    sample) are fitted on, ``config.resolved_passes(n)`` times in the same shuffled order, in mini-batches of
    ``config.batch_size`` (scikit-learn's ``partial_fit``, with ``total_samples`` the number of
    documents fitted on, which is what its ``fit`` does, without its final perplexity pass).
    """
    if num_units < 1:
        raise ValueError(f"num_units must be >= 1, got {num_units}")
    _check_ngram_range(num_units, documents.ngram)
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    nonempty = np.flatnonzero(np.fromiter((len(s) > 0 for s in seqs), dtype=bool, count=len(seqs)))
    if nonempty.size == 0:
        raise ValueError(f"no documents to fit on: all {len(seqs)} unit sequences are empty")
    order = rng.permutation(nonempty)
    if config.max_fit_docs is not None:
        order = order[: config.max_fit_docs]
    fit_seqs = [seqs[i] for i in order]
    fit_ids = [ids[i] for i in order] if ids is not None else None
    ngram_ids = select_ngrams(fit_seqs, num_units, documents) if documents.ngram > 1 else np.zeros(0, np.int64)
    matrix = document_matrix(fit_seqs, num_units, documents, ngram_ids, fit_ids)
    jobs = config.resolved_jobs()
    passes = config.resolved_passes(matrix.shape[0])
    logger.info(
        "fitting %d topics on %d of %d documents (%d features: %d units + %d n-grams), %d pass(es), %d job(s)",
        config.num_topics,
        matrix.shape[0],
        len(seqs),
        matrix.shape[1],
        num_units,
        ngram_ids.size,
        passes,
        jobs,
    )
    lda = _make_lda(config, jobs, matrix.shape[0])
    num_batches = math.ceil(matrix.shape[0] / config.batch_size)
    with tqdm(total=passes * num_batches, desc="fit LDA", unit="batch", file=sys.stderr, disable=not progress) as bar:
        for _ in range(passes):
            for b in range(num_batches):
                lda.partial_fit(matrix[b * config.batch_size : (b + 1) * config.batch_size])
                bar.update(1)
    lda.n_iter_ = lda.max_iter = passes
    # sklearn caches exp(E[log beta]); compute it the way load() does, so a saved and loaded model
    # transforms exactly as this one
    lda.exp_dirichlet_component_ = _exp_dirichlet_expectation(lda.components_)
    fit_info = dict(info or {})
    fit_info.update(
        docs=int(matrix.shape[0]),
        docs_available=int(len(seqs)),
        empty_docs=int(len(seqs) - nonempty.size),
        tokens=int(matrix.sum()),
        passes=int(passes),
        batches=int(passes * num_batches),
        n_jobs=int(jobs),
        seconds=round(time.perf_counter() - start, 3),
        sklearn_version=_sklearn_version(),
    )
    return TopicModel(
        lda=lda, num_units=num_units, documents=documents, config=config, ngram_ids=ngram_ids, info=fit_info
    )


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def fit_label_dir(
    label_dir: str | os.PathLike | LabelDir,
    split: str = "train",
    documents: DocumentConfig = DocumentConfig(),
    config: TopicConfig = TopicConfig(),
    *,
    progress: bool = False,
) -> TopicModel:
    """Fit a topic model on split ``split`` of a label folder."""
    info = label_dir if isinstance(label_dir, LabelDir) else read_label_dir(label_dir)
    labels = info.read(split)
    ids = list(labels)
    return fit_topic_model(
        list(labels.values()),
        info.num_units,
        documents,
        config,
        ids=ids,
        progress=progress,
        info={"label_dir": str(Path(info.path).resolve()), "split": split, "kmeans_id": info.kmeans_id, "frame_rate": info.frame_rate},
    )


# --------------------------------------------------------------------------------------------------
# topic folders


@dataclass
class TopicSplit:
    cuts: int  # cuts labelled
    empty: int  # of which had no units (they get the uniform distribution and topic argmax = 0)
    topic_counts: list[int]  # cuts per topic


@dataclass
class TopicDir:
    path: Path
    model: str  # the topic model file
    model_id: str  # its fingerprint (sha256 of the topic-word parameters)
    num_topics: int
    num_units: int
    documents: DocumentConfig
    label_dir: str  # the label folder labelled
    kmeans_id: Optional[str]
    splits: dict[str, TopicSplit] = field(default_factory=dict)

    def topics_path(self, split: str) -> Path:
        return self.path / f"{split}.topics"

    def dist_path(self, split: str) -> Path:
        return self.path / f"{split}.topic_dist.npz"

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(
                f"{self.path}: no topic labels for split '{split}'; it has {', '.join(self.splits) or 'none'}"
            )

    def read(self, split: str) -> dict[str, int]:
        """``{cut_id: topic}`` of one split."""
        self._check_split(split)
        out = {}
        for cut_id, seq in read_labels(self.topics_path(split)).items():
            if seq.size != 1:
                raise ValueError(f"{self.topics_path(split)}: cut '{cut_id}' has {seq.size} topics, expected one")
            out[cut_id] = int(seq[0])
        return out

    def read_dist(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Cut ids (unicode array) and topic distributions ``(N, T)`` float32 of one split."""
        self._check_split(split)
        return read_topic_dist(self.dist_path(split))

    def as_dict(self) -> dict:
        return {
            "format": TOPICS_FORMAT,
            "format_version": TOPICS_FORMAT_VERSION,
            "model": self.model,
            "model_id": self.model_id,
            "num_topics": self.num_topics,
            "num_units": self.num_units,
            "documents": self.documents.as_dict(),
            "label_dir": self.label_dir,
            "kmeans_id": self.kmeans_id,
            "splits": {name: asdict(s) for name, s in self.splits.items()},
        }


def read_topic_dist(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: topic distribution file not found")
    with np.load(path, allow_pickle=False) as z:
        if "ids" not in z or "dist" not in z:
            raise ValueError(f"{path}: expected arrays 'ids' and 'dist', found {sorted(z.files)}")
        return z["ids"], z["dist"]


def read_topic_dir(path: str | os.PathLike) -> TopicDir:
    """Read a topic folder's ``topics.json``; a clear error when it is missing or malformed."""
    path = Path(path)
    meta = path / TOPICS_META
    if not meta.is_file():
        what = (
            "is not a folder"
            if not path.is_dir()
            else f"has no {TOPICS_META} (not a topic folder, or its labelling did not finish)"
        )
        raise FileNotFoundError(f"{path}: {what}")
    try:
        d = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta}: not valid JSON ({e})") from None
    if d.get("format") != TOPICS_FORMAT:
        raise ValueError(f"{meta}: not a speechssl topic folder (format {d.get('format')!r})")
    if int(d.get("format_version", 0)) > TOPICS_FORMAT_VERSION:
        raise ValueError(
            f"{meta}: format version {d['format_version']} is newer than this speechssl reads ({TOPICS_FORMAT_VERSION})"
        )
    return TopicDir(
        path=path,
        model=d["model"],
        model_id=d["model_id"],
        num_topics=int(d["num_topics"]),
        num_units=int(d["num_units"]),
        documents=DocumentConfig.from_dict(d["documents"]),
        label_dir=d["label_dir"],
        kmeans_id=d.get("kmeans_id"),
        splits={name: TopicSplit(**s) for name, s in d["splits"].items()},
    )


def check_compatible(model: TopicModel, info: LabelDir) -> None:
    """Refuse a label folder whose units are not the ones the model was fitted on."""
    if info.num_units != model.num_units:
        raise ValueError(
            f"{info.path}: labels have {info.num_units} units but the topic model was fitted on {model.num_units}; "
            "fit a topic model on labels of this k-means model"
        )
    fitted_on = model.info.get("kmeans_id")
    if fitted_on and info.kmeans_id and fitted_on != info.kmeans_id:
        raise ValueError(
            f"{info.path}: labels come from k-means model {info.kmeans_id[:12]} but the topic model was fitted on units "
            f"of k-means model {fitted_on[:12]} ({model.info.get('label_dir')}); unit ids of different k-means models "
            "do not mean the same"
        )


def label_topic_dir(
    model: TopicModel,
    label_dir: str | os.PathLike | LabelDir,
    out_dir: str | os.PathLike,
    splits: Optional[Sequence[str]] = None,
    *,
    model_path: str | os.PathLike | None = None,
    n_jobs: Optional[int] = None,
    progress: bool = False,
) -> TopicDir:
    """Give every cut of ``splits`` (default: all) of a label folder a topic label and distribution;
    write them to ``out_dir`` (see the module docstring), ``topics.json`` last."""
    info = label_dir if isinstance(label_dir, LabelDir) else read_label_dir(label_dir)
    check_compatible(model, info)
    splits = list(dict.fromkeys(splits)) if splits else list(info.splits)
    for split in splits:
        if split not in info.splits:
            raise ValueError(f"{info.path}: no labels for split '{split}'; it has {', '.join(info.splits) or 'none'}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TOPICS_META).unlink(missing_ok=True)  # the folder is incomplete until the end
    result = TopicDir(
        path=out_dir,
        model=str(model_path) if model_path is not None else "",
        model_id=model.model_id,
        num_topics=model.num_topics,
        num_units=model.num_units,
        documents=model.documents,
        label_dir=str(Path(info.path).resolve()),
        kmeans_id=info.kmeans_id,
    )
    for split in splits:
        labels = info.read(split)
        ids = list(labels)
        seqs = list(labels.values())
        dist = model.transform(seqs, ids=ids, n_jobs=n_jobs, progress=progress)
        topics = dist.argmax(axis=1).astype(np.int64)
        write_labels(result.topics_path(split), ((cut_id, [t]) for cut_id, t in zip(ids, topics.tolist())))
        with atomic_path(result.dist_path(split)) as tmp, open(tmp, "wb") as f:
            np.savez(f, ids=np.array(ids, dtype=str), dist=dist.astype(np.float32))
        result.splits[split] = TopicSplit(
            cuts=len(ids),
            empty=int(sum(1 for s in seqs if len(s) == 0)),
            topic_counts=np.bincount(topics, minlength=model.num_topics).tolist(),
        )
        logger.info(
            "%s: %d cuts labelled, %d topics used",
            split,
            len(ids),
            int(np.count_nonzero(result.splits[split].topic_counts)),
        )
    atomic_write_text(out_dir / TOPICS_META, json.dumps(result.as_dict(), indent=2) + "\n")
    return result


# --------------------------------------------------------------------------------------------------
# analysis

ATTRIBUTES = ("speaker", "gender", "language", "style")


def cut_attributes(cut) -> dict[str, Optional[str]]:
    """Speaker, gender, language and style (``custom["style"]``) of a cut: the first supervision
    that has each; None where none has it."""
    out: dict[str, Optional[str]] = dict.fromkeys(ATTRIBUTES)
    for sup in cut.supervisions:
        values = {
            "speaker": sup.speaker,
            "gender": sup.gender,
            "language": sup.language,
            "style": (sup.custom or {}).get("style"),
        }
        for name, value in values.items():
            if out[name] is None and value:
                out[name] = str(value)
    return out


@dataclass
class AttributeScore:
    """How topic labels relate to one attribute of the cuts (over the cuts that have it)."""

    name: str
    cuts: int  # cuts with this attribute
    classes: int  # distinct values
    nmi: float  # normalized mutual information (sklearn, arithmetic mean normalisation)
    purity: float  # sum over topics of the topic's majority-class count, over cuts
    majority: float  # the purity of a single topic: the share of the most frequent class

    def as_dict(self) -> dict:
        return asdict(self)


def entropy_bits(counts: np.ndarray) -> float:
    counts = np.asarray(counts, dtype=np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) if p.size else 0.0


def attribute_score(name: str, topics: Sequence[int], classes: Sequence[str]) -> AttributeScore:
    """NMI and purity between topic labels and class labels of the same cuts."""
    from sklearn.metrics import normalized_mutual_info_score

    topics = np.asarray(topics)
    if len(topics) != len(classes):
        raise ValueError(f"{len(topics)} topic labels but {len(classes)} '{name}' values")
    if len(topics) == 0:
        raise ValueError(f"no cuts with attribute '{name}'")
    _, t = np.unique(topics, return_inverse=True)
    class_names, c = np.unique(np.asarray(classes, dtype=str), return_inverse=True)
    table = np.zeros((t.max() + 1, c.max() + 1), dtype=np.int64)  # (topic, class) counts
    np.add.at(table, (t, c), 1)
    return AttributeScore(
        name=name,
        cuts=int(len(topics)),
        classes=int(class_names.size),
        nmi=float(normalized_mutual_info_score(c, t)),
        purity=float(table.max(axis=1).sum() / len(topics)),
        majority=float(table.sum(axis=0).max() / len(topics)),
    )


@dataclass
class TopicAnalysis:
    """Topic usage and how topic labels relate to the attributes of the cuts."""

    path: str
    splits: list[str]
    num_topics: int
    cuts: int  # topic-labelled cuts found in the manifests
    topics_used: int
    entropy_bits: float  # of the topic label distribution
    attributes: list[AttributeScore]
    unmatched: int = 0  # topic-labelled cuts not found in the manifests

    @property
    def max_entropy_bits(self) -> float:
        return math.log2(self.num_topics)

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "splits": self.splits,
            "num_topics": self.num_topics,
            "cuts": self.cuts,
            "unmatched": self.unmatched,
            "topics_used": self.topics_used,
            "entropy_bits": self.entropy_bits,
            "max_entropy_bits": self.max_entropy_bits,
            "attributes": {a.name: a.as_dict() for a in self.attributes},
        }

    def format(self) -> str:
        lines = [
            f"{self.path} ({', '.join(self.splits)}): {self.cuts} cuts, {self.topics_used}/{self.num_topics} topics used, "
            f"topic entropy {self.entropy_bits:.2f} bits (max {self.max_entropy_bits:.2f})",
        ]
        if self.unmatched:
            lines.append(f"({self.unmatched} topic-labelled cuts were not in the manifests)")
        if not self.attributes:
            lines.append("the cuts carry no speaker, gender, language or style")
            return "\n".join(lines)
        lines.append(f"{'attribute':<10} {'classes':>7} {'cuts':>7} {'NMI':>6} {'purity':>7} {'majority':>8}")
        for a in self.attributes:
            lines.append(f"{a.name:<10} {a.classes:>7} {a.cuts:>7} {a.nmi:>6.3f} {a.purity:>7.3f} {a.majority:>8.3f}")
        lines.append(
            "purity: share of each topic's cuts in its majority class; majority: the same for one topic of all cuts"
        )
        return "\n".join(lines)


def topic_analysis(
    topics: Mapping[str, int], cuts: Iterable, num_topics: int, *, path: str = "", splits: Sequence[str] = ()
) -> TopicAnalysis:
    """Analyse ``{cut_id: topic}`` against the attributes of ``cuts`` (lhotse cuts, any order)."""
    found: dict[str, int] = {}
    values: dict[str, list] = {name: [] for name in ATTRIBUTES}
    for cut in cuts:
        topic = topics.get(cut.id)
        if topic is None or cut.id in found:
            continue
        found[cut.id] = topic
        for name, value in cut_attributes(cut).items():
            values[name].append((topic, value))
    if not found:
        raise ValueError(f"{path or 'topics'}: none of the {len(topics)} topic-labelled cuts is in the manifests")
    counts = np.bincount(np.fromiter(found.values(), dtype=np.int64), minlength=num_topics)
    scores = []
    for name in ATTRIBUTES:
        pairs = [(t, v) for t, v in values[name] if v is not None]
        if pairs:
            scores.append(attribute_score(name, [t for t, _ in pairs], [v for _, v in pairs]))
    return TopicAnalysis(
        path=path,
        splits=list(splits),
        num_topics=num_topics,
        cuts=len(found),
        topics_used=int(np.count_nonzero(counts)),
        entropy_bits=entropy_bits(counts),
        attributes=scores,
        unmatched=len(topics) - len(found),
    )


def analyze_topic_dir(
    path: str | os.PathLike, splits: Optional[Sequence[str]] = None, *, progress: bool = False
) -> TopicAnalysis:
    """Analyse a topic folder against the cut manifests recorded in its label folder's labels.json
    (all its splits pooled, or ``splits``)."""
    from speechssl.data.manifest import load_cuts

    topic_dir = read_topic_dir(path)
    splits = list(dict.fromkeys(splits)) if splits else list(topic_dir.splits)
    for split in splits:
        topic_dir._check_split(split)
    label_dir = read_label_dir(topic_dir.label_dir)
    topics: dict[str, int] = {}
    manifests = []
    for split in splits:
        topics.update(topic_dir.read(split))
        if split not in label_dir.splits:
            raise ValueError(f"{label_dir.path}: labels.json records no manifest for split '{split}'")
        manifest = Path(label_dir.splits[split].manifest)
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{manifest}: cut manifest not found (recorded in {label_dir.path / 'labels.json'} for split '{split}')"
            )
        manifests.append(manifest)

    def all_cuts():
        for manifest in manifests:
            yield from load_cuts(manifest, lazy=True)

    total = sum(topic_dir.splits[s].cuts for s in splits)
    with tqdm(
        all_cuts(), total=total, desc=f"analyze {Path(path).name}", unit="cut", file=sys.stderr, disable=not progress
    ) as bar:
        return topic_analysis(topics, bar, topic_dir.num_topics, path=str(path), splits=splits)
