"""RESULTS.md from decode folders: one table row per ``metrics.json`` that ``decode_split`` wrote,
so a recipe's results are its measured output, never typed in."""

from __future__ import annotations

import os
from typing import Sequence

from speechssl.downstream.results import minutes_str, size_str, trainable_str, write_results_page


def results_table(rows: Sequence[tuple[str, dict]]) -> str:
    """A Markdown table of ``(label, metrics)`` rows."""
    lines = [
        "| system | mode | split | utterances | CER % | WER % | trainable parameters | stored beyond the base encoder | training time | decoder |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, m in rows:
        decoder = m["decoder"] if m["decoder"] == "greedy" else f"beam {m['beam']}" + (f", {m['lm_order']}-gram LM x{m['lm_weight']:g}" if m.get("lm_order") else "")
        lines.append(
            f"| {label} | {m['mode']} | {m['split']} | {m['utterances']} | {100 * m['cer']:.2f} | {100 * m['wer']:.2f} "
            f"| {trainable_str(m)} | {size_str(m.get('stored_bytes'))} | {minutes_str(m.get('train_seconds'))} | {decoder} |"
        )
    return "\n".join(lines)


def write_results(rows: Sequence[tuple[str, str | os.PathLike]], out: str | os.PathLike, title: str, notes: str = "") -> str:
    """Write ``out`` (Markdown) with the table of ``(label, decode folder)`` rows; returns the text."""
    return write_results_page(rows, out, title, results_table, "speechssl asr decode", notes)
