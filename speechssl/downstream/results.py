"""RESULTS.md pages from evaluation folders: every downstream task's table is read from the
``metrics.json`` files its evaluation wrote, so a recipe's results are its measured output, never
typed in. Rows given the same label (the folds of a cross-validation) become one row: the mean of
each figure, with the number of folds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from speechssl.io import atomic_write_text


def count_str(n: Optional[int]) -> str:
    if n is None:
        return "-"
    if n >= 1e6:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def size_str(n: Optional[int]) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"


def trainable_str(m: dict) -> str:
    trainable, total = m.get("trainable_params"), m.get("total_params")
    share = f" ({100 * trainable / total:.1f}%)" if trainable is not None and total else ""
    return f"{count_str(trainable)}{share}"


def minutes_str(seconds: Optional[float]) -> str:
    return f"{seconds / 60:.1f} min" if seconds is not None else "-"


def read_metrics(folder: str | os.PathLike, made_by: str) -> dict:
    """``folder/metrics.json``; ``made_by`` names the command that writes it, for the error."""
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run '{made_by}' into {folder} first)")
    return json.loads(path.read_text(encoding="utf-8"))


def mean_rows(rows: Sequence[tuple[str, dict]], keys: Sequence[str]) -> list[tuple[str, dict, int]]:
    """Rows with the same label merged, in first-seen order: ``(label, metrics, folds)`` where each
    of ``keys`` (paths into the metrics, ``/`` between levels, e.g. ``asnorm/eer`` or ``min_dcf/0.01``) is the mean over the folds and
    the rest comes from the first fold. A key missing in some fold is left out of the mean row."""
    groups: dict[str, list[dict]] = {}
    for label, m in rows:
        groups.setdefault(label, []).append(m)
    out = []
    for label, ms in groups.items():
        merged = json.loads(json.dumps(ms[0]))
        for key in keys:
            values = [_get(m, key) for m in ms]
            if all(v is not None for v in values):
                _set(merged, key, sum(values) / len(values))
            elif len(ms) > 1:
                _set(merged, key, None)
        if len(ms) > 1:
            merged["utterances"] = sum(m.get("utterances", 0) for m in ms)
            merged["train_seconds"] = sum(m.get("train_seconds") or 0.0 for m in ms)
        out.append((label, merged, len(ms)))
    return out


def _get(m: dict, key: str):
    for part in key.split("/"):
        if not isinstance(m, dict) or part not in m:
            return None
        m = m[part]
    return m


def _set(m: dict, key: str, value) -> None:
    *parents, last = key.split("/")
    for part in parents:
        m = m.setdefault(part, {})
    m[last] = value


def write_results_page(
    rows: Sequence[tuple[str, str | os.PathLike]],
    out: str | os.PathLike,
    title: str,
    table: Callable[[list[tuple[str, dict]]], str],
    made_by: str,
    notes: str = "",
) -> str:
    """Write ``out`` (Markdown): the heading, ``table`` of the ``(label, folder)`` rows' metrics,
    the notes and the folders read; returns the text."""
    if not rows:
        raise ValueError("no results to write: give at least one LABEL=FOLDER")
    metrics = [(label, read_metrics(d, made_by)) for label, d in rows]
    parts = [f"# {title}", "", table(metrics), ""]
    if notes:
        parts += [notes.strip(), ""]
    parts += [
        f"Written by `{made_by.split()[0]} {made_by.split()[1]} results` from these folders (their `metrics.json`):",
        "",
        *(f"- {label}: `{d}`" for label, d in rows),
        "",
    ]
    text = "\n".join(parts)
    atomic_write_text(out, text)
    return text
