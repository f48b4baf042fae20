"""RESULTS.md from decode folders: one table row per ``metrics.json`` that ``decode_split`` wrote,
so a recipe's results are its measured output, never typed in."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

from speechssl.io import atomic_write_text


def _count(n: Optional[int]) -> str:
    if n is None:
        return "-"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def _size(n: Optional[int]) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"


def read_metrics(decode_dir: str | os.PathLike) -> dict:
    path = Path(decode_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run 'speechssl asr decode' into {decode_dir} first)")
    return json.loads(path.read_text(encoding="utf-8"))


def results_table(rows: Sequence[tuple[str, dict]]) -> str:
    """A Markdown table of ``(label, metrics)`` rows."""
    lines = [
        "| system | mode | split | utterances | CER % | WER % | trainable parameters | stored beyond the base encoder | training time | decoder |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, m in rows:
        trainable, total = m.get("trainable_params"), m.get("total_params")
        share = f" ({100 * trainable / total:.1f}%)" if trainable is not None and total else ""
        train_s = m.get("train_seconds")
        train = f"{train_s / 60:.1f} min" if train_s is not None else "-"
        decoder = m["decoder"] if m["decoder"] == "greedy" else f"beam {m['beam']}" + (f", {m['lm_order']}-gram LM x{m['lm_weight']:g}" if m.get("lm_order") else "")
        lines.append(
            f"| {label} | {m['mode']} | {m['split']} | {m['utterances']} | {100 * m['cer']:.2f} | {100 * m['wer']:.2f} "
            f"| {_count(trainable)}{share} | {_size(m.get('stored_bytes'))} | {train} | {decoder} |"
        )
    return "\n".join(lines)


def write_results(rows: Sequence[tuple[str, str | os.PathLike]], out: str | os.PathLike, title: str, notes: str = "") -> str:
    """Write ``out`` (Markdown) with the table of ``(label, decode folder)`` rows; returns the text."""
    if not rows:
        raise ValueError("no results to write: give at least one LABEL=DECODE_DIR")
    metrics = [(label, read_metrics(d)) for label, d in rows]
    parts = [f"# {title}", "", results_table(metrics), ""]
    if notes:
        parts += [notes.strip(), ""]
    parts += [
        "Written by `speechssl asr results` from these decode folders (their `metrics.json` and `hyps.jsonl`):",
        "",
        *(f"- {label}: `{d}`" for label, d in rows),
        "",
    ]
    text = "\n".join(parts)
    atomic_write_text(out, text)
    return text
