"""RESULTS.md of emotion recognition: one row per system from the ``metrics.json`` that
:func:`~speechssl.downstream.er.infer.evaluate_split` wrote. Rows with the same label (IEMOCAP's
five leave-one-session-out folds) become one: the mean of WA, UA and macro-F1 over the folds."""

from __future__ import annotations

import os
from typing import Sequence

from speechssl.downstream.results import mean_rows, minutes_str, trainable_str, write_results_page


def results_table(rows: Sequence[tuple[str, dict]]) -> str:
    """A Markdown table of ``(label, metrics)`` rows."""
    lines = [
        "| system | upstream | mode | folds | test utterances | WA % | UA % | macro-F1 % | trainable parameters | training time |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, m, folds in mean_rows(rows, ["accuracy", "unweighted_accuracy", "macro_f1"]):
        lines.append(
            f"| {label} | {m.get('upstream', '-')} | {m.get('mode', '-')} | {folds} | {m['utterances']} | {100 * m['accuracy']:.2f} "
            f"| {100 * m['unweighted_accuracy']:.2f} | {100 * m['macro_f1']:.2f} | {trainable_str(m)} | {minutes_str(m.get('train_seconds'))} |"
        )
    return "\n".join(lines)


def write_results(rows: Sequence[tuple[str, str | os.PathLike]], out: str | os.PathLike, title: str, notes: str = "") -> str:
    """Write ``out`` (Markdown) with the table of ``(label, evaluation folder)`` rows; returns the text."""
    return write_results_page(rows, out, title, results_table, "speechssl er evaluate", notes)
