"""Utterance classification metrics for emotion recognition: WA, UA, macro F1, confusion matrix.

Given one reference and one predicted class per utterance and the class inventory ``labels``:

- WA (weighted accuracy) = overall accuracy = correct utterances / utterances;
- UA (unweighted accuracy) = unweighted average recall = the mean of the per-class recalls
  ``correct_c / support_c`` over the classes present in the references (a class nobody said cannot
  be recalled, so it is left out; a class only predicted still costs precision, not UA);
- macro F1 = the mean F1 over every class in ``labels`` (scikit-learn's ``average="macro"``); a class
  absent from the references and never predicted counts with F1 0 (``zero_division=0``);
- per class: recall, precision, F1 (0 where undefined) and support (reference count);
- the confusion matrix: rows are reference classes, columns predicted classes, in ``labels`` order.

>>> m = classification_metrics(["ang", "ang", "ang", "sad"], ["ang", "ang", "sad", "sad"], ["ang", "sad"])
>>> m.accuracy, m.unweighted_accuracy
(0.75, 0.8333333333333333)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechssl.io import atomic_path


@dataclass
class ClassificationMetrics:
    """Metrics of one set of utterance predictions; rates are fractions, not percent."""

    accuracy: float  # WA: overall accuracy
    unweighted_accuracy: float  # UA: mean recall over the classes present in the references
    macro_f1: float  # mean F1 over ``labels``
    per_class: dict[str, dict[str, float]]  # class -> {"recall", "precision", "f1", "support"}
    confusion: list[list[int]]  # [reference][predicted] counts, ``labels`` order
    labels: list[str]  # the class order
    utterances: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return asdict(self)


def _check(refs: Sequence[str], hyps: Sequence[str], labels: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    refs, hyps, labels = [str(r) for r in refs], [str(h) for h in hyps], [str(c) for c in labels]
    if not labels:
        raise ValueError("expected at least one class label, found none")
    if len(set(labels)) != len(labels):
        raise ValueError(f"expected distinct class labels, found {labels}")
    if len(refs) != len(hyps):
        raise ValueError(f"expected one prediction per reference, found {len(refs)} references and {len(hyps)} predictions")
    if not refs:
        raise ValueError("expected at least one utterance, found none")
    known = set(labels)
    for what, values in (("reference", refs), ("prediction", hyps)):
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {what} class {unknown[0]!r} (of {len(unknown)} unknown); the known classes are {labels}")
    return refs, hyps, labels


def classification_metrics(refs: Sequence[str], hyps: Sequence[str], labels: Sequence[str]) -> ClassificationMetrics:
    """WA, UA, macro F1, per-class scores and the confusion matrix of ``hyps`` against ``refs``."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

    refs, hyps, labels = _check(refs, hyps, labels)
    present = [c for c in labels if c in set(refs)]
    precision, recall, f1, support = precision_recall_fscore_support(refs, hyps, labels=labels, zero_division=0)
    per_class = {
        c: {"recall": float(recall[i]), "precision": float(precision[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, c in enumerate(labels)
    }
    return ClassificationMetrics(
        accuracy=float(accuracy_score(refs, hyps)),
        unweighted_accuracy=float(recall_score(refs, hyps, labels=present, average="macro", zero_division=0)),
        macro_f1=float(f1_score(refs, hyps, labels=labels, average="macro", zero_division=0)),
        per_class=per_class,
        confusion=confusion_matrix(refs, hyps, labels=labels).astype(int).tolist(),
        labels=labels,
        utterances=len(refs),
    )


def _row_percent(confusion: np.ndarray) -> np.ndarray:
    """Each row as percent of its total (0 for a class without references)."""
    totals = confusion.sum(axis=1, keepdims=True)
    return np.divide(100.0 * confusion, totals, out=np.zeros(confusion.shape), where=totals > 0)


def confusion_table(metrics: ClassificationMetrics) -> str:
    """The confusion matrix as a Markdown table: one row per reference class, one count column per
    predicted class, then the row's recall in percent ("-" for a class without references)."""
    header = ["reference \\ predicted", *metrics.labels, "recall %"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(metrics.labels) + 1)]
    for c, row in zip(metrics.labels, metrics.confusion):
        stats = metrics.per_class[c]
        recall = f"{100 * stats['recall']:.1f}" if stats["support"] else "-"
        lines.append("| " + " | ".join([c, *(str(n) for n in row), recall]) + " |")
    return "\n".join(lines) + "\n"


def plot_confusion(
    metrics: ClassificationMetrics,
    path: str | os.PathLike,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> Path:
    """Write a PNG heatmap of the confusion matrix to ``path`` (atomically) and return the path.

    Rows are reference classes, columns predicted ones. With ``normalize`` the colours and cell texts
    are row percentages (each reference class sums to 100%) with the counts below them; otherwise the
    colours are counts.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(metrics.confusion, dtype=np.int64)
    values = _row_percent(counts) if normalize else counts.astype(np.float64)
    n = len(metrics.labels)
    size = max(3.5, 0.6 * n + 2.0)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    vmax = 100.0 if normalize else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, label="% of the reference class" if normalize else "utterances")
    for i in range(n):
        for j in range(n):
            text = f"{values[i, j]:.1f}%\n({counts[i, j]})" if normalize else str(counts[i, j])
            colour = "white" if values[i, j] > 0.6 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize="small")
    ax.set_xticks(np.arange(n), metrics.labels, rotation=45, ha="right")
    ax.set_yticks(np.arange(n), metrics.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    if title:
        ax.set_title(title)

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)
