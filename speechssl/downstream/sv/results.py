"""RESULTS.md of speaker verification: one row per system from the ``metrics.json`` that
:func:`~speechssl.downstream.sv.infer.evaluate_trials` wrote (rows with the same label averaged)."""

from __future__ import annotations

import os
from typing import Sequence

from speechssl.downstream.results import mean_rows, minutes_str, trainable_str, write_results_page


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _dcf(m: dict, p: str, key: str = "min_dcf") -> str:
    v = (m.get(key) or {}).get(p)
    return "-" if v is None else f"{v:.4f}"


def results_table(rows: Sequence[tuple[str, dict]]) -> str:
    """A Markdown table of ``(label, metrics)`` rows: EER and minDCF, raw cosine and AS-norm."""
    lines = [
        "| system | upstream | mode | split | trials | EER % | minDCF 0.01 | minDCF 0.05 | EER % AS-norm | minDCF 0.01 AS-norm | trainable parameters | training time |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, m, folds in mean_rows(rows, ["eer", "min_dcf/0.01", "min_dcf/0.05", "asnorm/eer", "asnorm/min_dcf/0.01"]):
        asn = m.get("asnorm") or {}
        name = label if folds == 1 else f"{label} (mean of {folds})"
        lines.append(
            f"| {name} | {m.get('upstream', '-')} | {m.get('mode', '-')} | {m['split']} | {m['trials']} | {_pct(m['eer'])} "
            f"| {_dcf(m, '0.01')} | {_dcf(m, '0.05')} | {_pct(asn.get('eer'))} | {_dcf(asn, '0.01')} "
            f"| {trainable_str(m)} | {minutes_str(m.get('train_seconds'))} |"
        )
    return "\n".join(lines)


def write_results(rows: Sequence[tuple[str, str | os.PathLike]], out: str | os.PathLike, title: str, notes: str = "") -> str:
    """Write ``out`` (Markdown) with the table of ``(label, evaluation folder)`` rows; returns the text."""
    return write_results_page(rows, out, title, results_table, "speechssl sv evaluate", notes)
