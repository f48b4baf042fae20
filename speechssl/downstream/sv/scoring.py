"""Speaker verification scoring: trial lists, cosine and AS-norm scores, EER, minDCF, DET plots.

Trials
    One trial a line, VoxCeleb style: ``"<1|0> <enroll> <test>"`` (1 target, 0 non-target), fields
    separated by whitespace; blank lines and lines starting with ``#`` are skipped. An utterance is a
    cut id (``id10270-5r0dWxy17C8-00001``, ``spk002_es_00002``) or a VoxCeleb relative path
    (``id10270/5r0dWxy17C8/00001.wav``); a token containing ``/`` becomes lhotse's VoxCeleb cut id
    by dropping the extension and replacing ``/`` with ``-``.

Scores
    ``cosine(e, t) = e.t / (|e| |t|)``. Adaptive symmetric normalisation (AS-norm, Matejka et al.
    2017; Cumani et al. 2011) scores each side against a cohort of impostor embeddings, keeps the
    ``top_k`` highest cohort scores of that side, and with their mean ``mu`` and standard deviation
    ``sigma`` (population, ddof=0; at least ``EPS``)::

        s_norm = 0.5 * ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t)

Error curve and metrics (a trial is accepted when ``score >= threshold``)
    ``fpr`` (false acceptances / non-targets) and ``fnr`` (misses / targets) at every distinct score,
    from ``sklearn.metrics.roc_curve(drop_intermediate=False)`` with ``fnr = 1 - tpr``; the first point
    rejects every trial (fpr 0, fnr 1; its threshold, infinite in scikit-learn, is replaced by the
    next float above the highest score so that it stays finite), the last accepts every trial
    (fpr 1, fnr 0). Between points the curve is read as straight segments, as the ROC curve is: a run
    of target (non-target) scores gives a vertical (horizontal) run, and target and non-target scores
    tied at one value give one diagonal segment.

    EER: ``fnr - fpr`` falls strictly from 1 to -1 along the curve; the EER is where it reaches 0, by
    linear interpolation between the two points around the sign change (the threshold is
    interpolated the same way). It equals the usual ``brentq(lambda x: 1 - x - interp(x, fpr, tpr))``.

    minDCF (NIST SRE / VoxSRC): ``min over points of C_miss * fnr * P_t + C_fa * fpr * (1 - P_t)``
    divided by ``min(C_miss * P_t, C_fa * (1 - P_t))`` (the cost of the better trivial system).

>>> compute_eer([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
(0.0, 0.8)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from speechssl.io import atomic_path, atomic_write_text

if TYPE_CHECKING:
    import torch

    Vector = Union[np.ndarray, torch.Tensor]
else:
    Vector = Any

EPS = 1e-8  # floor of an AS-norm cohort standard deviation
_NORM_EPS = 1e-12  # floor of an embedding's L2 norm (an all-zero embedding scores 0 against anything)
_CHUNK = 4096  # utterances per matrix product against the cohort
_FIXED_COLUMNS = ("label", "enroll", "test")


# ----------------------------------------------------------------------------------------- trials


@dataclass(frozen=True)
class Trial:
    """One verification trial: is ``test`` spoken by the speaker of ``enroll``? (cut ids)"""

    label: int  # 1 target (same speaker), 0 non-target
    enroll: str
    test: str


def utterance_id(token: str) -> str:
    """The cut id of a trial-list token: a VoxCeleb path ``id/video/00001.wav`` -> ``id-video-00001``;
    anything without ``/`` is returned as it is."""
    if "/" not in token:
        return token
    head, tail = token.rsplit("/", 1)
    stem = os.path.splitext(tail)[0]
    return f"{head}/{stem}".strip("/").replace("/", "-")


def _parse_label(token: str, where: str) -> int:
    if token not in ("0", "1"):
        raise ValueError(f"{where}: expected a trial label 1 (target) or 0 (non-target), found {token!r}")
    return int(token)


def read_trials(path: str | os.PathLike) -> list[Trial]:
    """Read a VoxCeleb-style trial list ``"<1|0> <enroll> <test>"`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trial list {path} does not exist")
    trials = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}, line {lineno}"
        if len(fields) != 3:
            raise ValueError(f"{where}: expected 3 fields '<1|0> <enroll> <test>', found {len(fields)}: {line.strip()!r}")
        trials.append(Trial(_parse_label(fields[0], where), utterance_id(fields[1]), utterance_id(fields[2])))
    if not trials:
        raise ValueError(f"trial list {path} has no trials")
    return trials


def trial_labels(trials: Sequence[Trial]) -> np.ndarray:
    """The trials' labels as an int64 array (1 target, 0 non-target)."""
    return np.array([t.label for t in trials], dtype=np.int64)


# ----------------------------------------------------------------------------------------- scores


def _as_array(x: Vector | np.ndarray) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().double().numpy()  # float64 (also from bfloat16, which numpy lacks)
    return np.asarray(x, dtype=np.float64)


def _as_matrix(vectors: Sequence[Vector] | np.ndarray, what: str) -> np.ndarray:
    """Stack vectors (numpy or torch; ``(D,)`` or ``(1, D)``) into a float64 ``(N, D)`` matrix."""
    rows = []
    for v in vectors:
        row = _as_array(v)
        rows.append(row[0] if row.ndim == 2 and row.shape[0] == 1 else row)
    if not rows:
        raise ValueError(f"expected at least one {what}, found none")
    dims = {r.shape for r in rows}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ValueError(f"expected every {what} as a 1-D vector of one size, found shapes {sorted(dims)}")
    return np.stack(rows)


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise ValueError("expected finite embeddings, found NaN or infinite values")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _NORM_EPS)


def _trial_embeddings(embeddings: Mapping[str, Vector], trials: Sequence[Trial]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2-normalised ``(U, D)`` matrix of the trials' utterances and each trial's enroll/test rows."""
    if not trials:
        raise ValueError("expected at least one trial, found none")
    ids: dict[str, int] = {}
    for t in trials:
        ids.setdefault(t.enroll, len(ids))
        ids.setdefault(t.test, len(ids))
    missing = [u for u in ids if u not in embeddings]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {len(ids)} utterances in the trials have no embedding, e.g. {missing[0]!r}"
            f" (the embeddings have {len(embeddings)} ids, e.g. {next(iter(embeddings), None)!r})"
        )
    matrix = _l2_normalise(_as_matrix([embeddings[u] for u in ids], "embedding"))
    enroll = np.array([ids[t.enroll] for t in trials], dtype=np.int64)
    test = np.array([ids[t.test] for t in trials], dtype=np.int64)
    return matrix, enroll, test


def cosine_scores(embeddings: Mapping[str, Vector], trials: Sequence[Trial]) -> np.ndarray:
    """Cosine similarity of each trial's enroll and test embeddings, float64 ``(len(trials),)``."""
    matrix, enroll, test = _trial_embeddings(embeddings, trials)
    return np.einsum("nd,nd->n", matrix[enroll], matrix[test])


def cohort_stats(normalised: np.ndarray, cohort: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof=0, at least ``EPS``) of each row's ``top_k`` highest cosine
    scores against the (already L2-normalised) cohort; products are taken ``_CHUNK`` rows at a time."""
    k = min(top_k, cohort.shape[0])
    mu = np.empty(normalised.shape[0])
    sigma = np.empty(normalised.shape[0])
    for start in range(0, normalised.shape[0], _CHUNK):
        block = normalised[start : start + _CHUNK] @ cohort.T  # (chunk, N)
        top = np.partition(block, block.shape[1] - k, axis=1)[:, block.shape[1] - k :]
        mu[start : start + _CHUNK] = top.mean(axis=1)
        sigma[start : start + _CHUNK] = top.std(axis=1)
    return mu, np.maximum(sigma, EPS)


def as_norm(
    embeddings: Mapping[str, Vector],
    trials: Sequence[Trial],
    cohort: np.ndarray | torch.Tensor,
    top_k: int = 300,
) -> np.ndarray:
    """AS-norm scores of the trials against a cohort ``(N, D)`` of impostor embeddings (module docstring).

    ``top_k`` is clipped to the cohort size; each utterance's cohort statistics are computed once.
    """
    if top_k < 1:
        raise ValueError(f"expected top_k >= 1, found {top_k}")
    cohort = _as_array(cohort)
    matrix, enroll, test = _trial_embeddings(embeddings, trials)
    if cohort.ndim != 2 or cohort.shape[0] == 0 or cohort.shape[1] != matrix.shape[1]:
        raise ValueError(f"expected a cohort of shape (N >= 1, {matrix.shape[1]}), found {cohort.shape}")
    mu, sigma = cohort_stats(matrix, _l2_normalise(cohort), top_k)
    scores = np.einsum("nd,nd->n", matrix[enroll], matrix[test])
    return 0.5 * ((scores - mu[enroll]) / sigma[enroll] + (scores - mu[test]) / sigma[test])


# ---------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class ErrorCurve:
    """False-acceptance and miss rates at every distinct threshold (accept when ``score >= threshold``),
    from rejecting every trial (fpr 0, fnr 1) to accepting every trial (fpr 1, fnr 0)."""

    thresholds: np.ndarray  # decreasing, finite
    fpr: np.ndarray  # false-acceptance rate, non-decreasing
    fnr: np.ndarray  # miss rate, non-increasing


def _scores_labels(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"expected scores and labels as 1-D arrays of one length, found shapes {s.shape} and {y.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("expected finite scores, found NaN or infinite values")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"expected labels 1 (target) or 0 (non-target), found {sorted(set(np.unique(y).tolist()) - {0, 1})[:5]}")
    targets = int(np.count_nonzero(y == 1))
    if targets == 0 or targets == y.size:
        raise ValueError(f"expected both target and non-target trials, found {targets} targets and {y.size - targets} non-targets")
    return s, y.astype(np.int64)


def error_curve(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> ErrorCurve:
    """The DET/ROC error curve of the scores (see the module docstring)."""
    from sklearn.metrics import roc_curve

    s, y = _scores_labels(scores, labels)
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    thresholds = thresholds.astype(np.float64)
    # scikit-learn puts an extra first point that rejects everything, its threshold inf (older: max + 1)
    thresholds[0] = np.nextafter(s.max(), np.inf)
    # fnr = misses / targets rather than 1 - tpr: each rate is then one correctly rounded division, so
    # fnr == fpr exactly where the two fractions are equal (the EER lands on that point, not next to it)
    targets = int(y.sum())
    misses = targets - np.rint(tpr * targets)
    return ErrorCurve(thresholds=thresholds, fpr=fpr.astype(np.float64), fnr=misses / targets)


def eer_of_curve(curve: ErrorCurve) -> tuple[float, float]:
    """(EER, threshold) of an error curve: the linear interpolation where ``fnr - fpr`` reaches 0."""
    diff = curve.fnr - curve.fpr  # 1 at the first point, -1 at the last, strictly falling
    i = int(np.argmax(diff <= 0))  # the first point at or past the crossing; i >= 1
    if diff[i] == 0:
        return float(curve.fpr[i]), float(curve.thresholds[i])
    w = diff[i - 1] / (diff[i - 1] - diff[i])  # in (0, 1): where the segment i-1 -> i crosses
    eer = curve.fpr[i - 1] + w * (curve.fpr[i] - curve.fpr[i - 1])
    threshold = curve.thresholds[i - 1] + w * (curve.thresholds[i] - curve.thresholds[i - 1])
    return float(eer), float(threshold)


def compute_eer(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """(equal error rate as a fraction in [0, 1], its threshold)."""
    return eer_of_curve(error_curve(scores, labels))


def min_dcf_of_curve(curve: ErrorCurve, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """(normalised minimum detection cost, its threshold) of an error curve; among equal costs the
    highest threshold wins."""
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"expected a target prior p_target in (0, 1), found {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"expected positive costs, found c_miss={c_miss} and c_fa={c_fa}")
    cost = c_miss * curve.fnr * p_target + c_fa * curve.fpr * (1.0 - p_target)
    i = int(np.argmin(cost))
    return float(cost[i] / min(c_miss * p_target, c_fa * (1.0 - p_target))), float(curve.thresholds[i])


def compute_min_dcf(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """(normalised minimum detection cost, threshold) at target prior ``p_target`` (module docstring)."""
    return min_dcf_of_curve(error_curve(scores, labels), p_target, c_miss, c_fa)


@dataclass
class SvMetrics:
    """Verification metrics of one scored trial list; rates are fractions, not percent."""

    eer: float
    eer_threshold: float
    min_dcf: dict[float, float]  # p_target -> normalised minDCF (C_miss = C_fa = 1)
    trials: int
    targets: int
    nontargets: int
    min_dcf_threshold: dict[float, float] = field(default_factory=dict)  # p_target -> its threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the prior keys become strings (``"0.01"``)."""
        return {
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "min_dcf": {f"{p:g}": v for p, v in self.min_dcf.items()},
            "min_dcf_threshold": {f"{p:g}": v for p, v in self.min_dcf_threshold.items()},
            "trials": self.trials,
            "targets": self.targets,
            "nontargets": self.nontargets,
        }


def sv_metrics(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    p_targets: Sequence[float] = (0.01, 0.05),
) -> SvMetrics:
    """EER and minDCF at each target prior (C_miss = C_fa = 1) of scored trials."""
    curve = error_curve(scores, labels)
    eer, eer_threshold = eer_of_curve(curve)
    dcf = {float(p): min_dcf_of_curve(curve, float(p)) for p in p_targets}
    y = np.asarray(labels)
    targets = int(np.count_nonzero(y == 1))
    return SvMetrics(
        eer=eer,
        eer_threshold=eer_threshold,
        min_dcf={p: v for p, (v, _) in dcf.items()},
        trials=int(y.size),
        targets=targets,
        nontargets=int(y.size) - targets,
        min_dcf_threshold={p: t for p, (_, t) in dcf.items()},
    )


# ------------------------------------------------------------------------------------------- plot

_DET_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 40, 60, 80, 90, 95, 98, 99)  # percent
_DET_CLIP = 1e-4


def _probit(rates: np.ndarray | float) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf(np.clip(rates, _DET_CLIP, 1.0 - _DET_CLIP))


def plot_det(curves: Mapping[str, ErrorCurve], path: str | os.PathLike, title: str = "DET curve") -> Path:
    """Write a PNG DET plot (miss rate against false-acceptance rate on probit axes, rates clipped to
    ``[1e-4, 1 - 1e-4]``) of one or more systems to ``path`` (atomically) and return the path.

    Each system is one line with its EER point marked and given in the legend. The axes span 0.1% to
    40%, widened to 0.01% when an EER is below 1% and to 99% when one is above 30%.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("expected at least one system's error curve, found an empty mapping")
    eers = {name: eer_of_curve(c)[0] for name, c in curves.items()}
    lo = 0.0001 if min(eers.values()) < 0.01 else 0.001
    hi = 0.99 if max(eers.values()) > 0.30 else 0.40
    ticks = [t for t in _DET_TICKS if lo * 100 <= t <= hi * 100]

    fig = Figure(figsize=(5.0, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        (line,) = ax.plot(_probit(curve.fpr), _probit(curve.fnr), label=f"{name} (EER {100 * eers[name]:.2f}%)")
        ax.plot(_probit(eers[name]), _probit(eers[name]), "o", color=line.get_color())
    limits = _probit(np.array([lo, hi]))
    ax.plot(limits, limits, ":", color="grey", linewidth=0.8)  # fpr = fnr
    positions = _probit(np.array(ticks) / 100)
    labels = [f"{t:g}" for t in ticks]
    ax.set_xticks(positions, labels)
    ax.set_yticks(positions, labels)
    ax.set_xlim(*limits)
    ax.set_ylim(*limits)
    ax.set_xlabel("false acceptance rate (%)")
    ax.set_ylabel("miss rate (%)")
    ax.grid(True, linewidth=0.5, alpha=0.5)
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


# -------------------------------------------------------------------------------------- score files


def write_scores(
    path: str | os.PathLike,
    trials: Sequence[Trial],
    scores: Sequence[float] | np.ndarray,
    extra: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write scored trials atomically: a header ``# label enroll test score [extra...]``, then one line a
    trial ``label enroll test score [extra...]``; floats are written exactly (shortest round trip)."""
    columns = {"score": np.asarray(scores, dtype=np.float64)}
    for name, values in (extra or {}).items():
        if not name or any(c.isspace() for c in name) or name in columns or name in _FIXED_COLUMNS:
            raise ValueError(f"expected extra column names without whitespace, distinct from {[*_FIXED_COLUMNS, 'score']}, found {name!r}")
        columns[name] = np.asarray(values, dtype=np.float64)
    for name, values in columns.items():
        if values.shape != (len(trials),):
            raise ValueError(f"expected {len(trials)} values in column {name!r} (one a trial), found shape {values.shape}")
    lines = ["# " + " ".join([*_FIXED_COLUMNS, *columns])]
    for i, t in enumerate(trials):
        lines.append(" ".join([str(t.label), t.enroll, t.test, *(repr(float(v[i])) for v in columns.values())]))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_scores(path: str | os.PathLike) -> tuple[list[Trial], dict[str, np.ndarray]]:
    """Read a file of :func:`write_scores` back: (trials, column name -> float64 values)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"score file {path} does not exist")
    header: list[str] | None = None
    trials: list[Trial] = []
    rows: list[list[float]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {lineno}"
        if header is None:
            if fields[0] != "#" or tuple(fields[1:4]) != _FIXED_COLUMNS or len(fields) < 5:
                raise ValueError(f"{where}: expected a header '# label enroll test score ...', found {line.strip()!r}")
            header = fields[4:]
            continue
        if len(fields) != 3 + len(header):
            raise ValueError(f"{where}: expected {3 + len(header)} fields ({' '.join([*_FIXED_COLUMNS, *header])}), found {len(fields)}")
        try:
            values = [float(v) for v in fields[3:]]
        except ValueError:
            raise ValueError(f"{where}: expected numbers in the columns {header}, found {fields[3:]}") from None
        trials.append(Trial(_parse_label(fields[0], where), fields[1], fields[2]))
        rows.append(values)
    if header is None:
        raise ValueError(f"score file {path} is empty")
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    return trials, {name: table[:, j].copy() for j, name in enumerate(header)}
