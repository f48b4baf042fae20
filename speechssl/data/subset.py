"""Subsets of a prepared corpus (Kaldi's ``utils/subset_data_dir.sh`` for lhotse manifests).

A subset is a folder with ``cuts_<split>.jsonl.gz`` for the chosen splits, holding the cuts that
pass the language and speaker filters, and, for the splits under a budget, a seeded random
selection of them whose total duration fits ``max_minutes``. Cuts are written as they are (their
audio paths still point at the source corpus; nothing is copied) and in their original order.

``subset.json`` is written last: its presence marks the subset complete, and it records the
arguments, so that running the same subset again rewrites it while different arguments are refused.
While a subset is being written, the folder holds ``.subset.partial.json`` instead; a later run
clears such an interrupted subset's manifests before writing its own.

Filters on a cut with several supervisions: the cut is kept when the languages of its supervisions
are all in ``languages`` and its speakers all in ``speakers`` (none in ``exclude_speakers``); a cut
with no language (or speaker) set passes only the exclusion filter.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from speechssl.data.manifest import MANIFEST_SUFFIX, cuts_path, find_splits, load_cuts, save_cuts
from speechssl.io import atomic_write_text

log = logging.getLogger(__name__)

DONE_FILE = "subset.json"  # written last; marks the subset complete
PARTIAL_FILE = ".subset.partial.json"  # present while a subset is being written
FORMAT_VERSION = 1


@dataclass
class SplitSummary:
    """What one split of a subset holds."""

    name: str
    cuts: int = 0
    seconds: float = 0.0
    speakers: set[str] = field(default_factory=set)
    languages: dict[str, int] = field(default_factory=dict)  # language -> cuts

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0

    def as_dict(self) -> dict:
        return {
            "cuts": self.cuts,
            "seconds": round(self.seconds, 3),
            "speakers": sorted(self.speakers),
            "languages": dict(sorted(self.languages.items())),
        }

    def line(self) -> str:
        """``train: 12 cuts, 0.50 min, 4 speakers, languages: de, en``"""
        langs = ", ".join(sorted(self.languages)) or "-"
        return f"{self.name}: {self.cuts} cuts, {self.minutes:.2f} min, {len(self.speakers)} speakers, languages: {langs}"


@dataclass
class _CutInfo:
    id: str
    duration: float
    speakers: frozenset[str]
    languages: frozenset[str]


def _info(cut) -> _CutInfo:
    sups = cut.supervisions
    return _CutInfo(
        cut.id,
        float(cut.duration),
        frozenset(s.speaker for s in sups if s.speaker is not None),
        frozenset(s.language for s in sups if s.language is not None),
    )


def _matcher(
    languages: set[str] | None, speakers: set[str] | None, exclude_speakers: set[str] | None
) -> Callable[[_CutInfo], bool]:
    def matches(c: _CutInfo) -> bool:
        if languages is not None and not (c.languages and c.languages <= languages):
            return False
        if speakers is not None and not (c.speakers and c.speakers <= speakers):
            return False
        if exclude_speakers is not None and c.speakers & exclude_speakers:
            return False
        return True

    return matches


class _HasId:
    """``CutSet.filter`` predicate: the cut's id is one of ``ids`` (a class, not a lambda, so it pickles)."""

    def __init__(self, ids: set[str]):
        self.ids = ids

    def __call__(self, cut) -> bool:
        return cut.id in self.ids


def budget_select(durations: Sequence[float], max_seconds: float, seed: int) -> list[int]:
    """Indices (ascending) of a seeded random selection whose durations sum to at most ``max_seconds``.

    The items are shuffled with ``numpy.random.default_rng(seed)`` and taken in that order while the
    sum stays within the budget; an item that would exceed it is skipped and the next ones are
    tried. Plain random selection: speakers are not balanced.
    """
    order = np.random.default_rng(seed).permutation(len(durations))
    kept, total = [], 0.0
    for i in order:
        if total + durations[i] <= max_seconds:
            kept.append(int(i))
            total += durations[i]
    return sorted(kept)


def _short_list(values, limit: int = 20) -> str:
    values = sorted(values)
    if not values:
        return "none"
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown}, ... ({len(values)} in all)"


def _clean_list(name: str, values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    values = sorted(set(values))
    if not values:
        raise ValueError(f"{name} is empty: give at least one value, or None for no filter")
    return values


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _prepare_out_dir(out_dir: Path, arguments: dict) -> None:
    """Refuse a folder that holds something else; clear our own interrupted or same-argument subset."""
    done = out_dir / DONE_FILE
    partial = out_dir / PARTIAL_FILE
    if done.exists():
        old = _read_json(done)
        old_args = (old or {}).get("arguments")
        if old_args != arguments:
            if old_args is None:
                raise FileExistsError(f"{done}: exists but is not a readable subset record; choose another output folder")
            diff = ", ".join(
                f"{k}: {old_args.get(k)!r} -> {arguments.get(k)!r}"
                for k in sorted(set(old_args) | set(arguments))
                if old_args.get(k) != arguments.get(k)
            )
            raise FileExistsError(
                f"{out_dir}: already holds a subset made with other arguments ({diff}); "
                "choose another output folder or remove this one"
            )
    elif not partial.exists() and out_dir.is_dir():
        present = sorted(p.name for p in out_dir.glob(f"cuts_*{MANIFEST_SUFFIX}"))
        if present:
            raise FileExistsError(
                f"{out_dir}: holds manifests ({', '.join(present)}) but no {DONE_FILE}; it is not a subset "
                "made by this tool; choose another output folder"
            )
    # from here on the folder is ours: mark it incomplete, then clear the manifests of an earlier run
    atomic_write_text(partial, json.dumps({"arguments": arguments}, indent=2) + "\n")
    if done.exists():
        done.unlink()
    for p in out_dir.glob(f"cuts_*{MANIFEST_SUFFIX}"):
        p.unlink()


def subset_corpus(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    splits: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    speakers: Sequence[str] | None = None,
    exclude_speakers: Sequence[str] | None = None,
    max_minutes: float | None = None,
    budget_splits: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, SplitSummary]:
    """Write a subset of the corpus in ``src_dir`` to ``out_dir``; returns split -> summary.

    :param splits: splits to write (default: every ``cuts_<split>.jsonl.gz`` of ``src_dir``).
    :param languages: keep cuts whose supervision language is one of these.
    :param speakers: keep cuts whose speaker is one of these (not with ``exclude_speakers``).
    :param exclude_speakers: drop cuts whose speaker is one of these.
    :param max_minutes: for the splits in ``budget_splits``, keep a seeded random selection of the
        filtered cuts whose total duration is at most this many minutes (see :func:`budget_select`).
    :param budget_splits: the splits ``max_minutes`` applies to (default: ``train``); the others are
        kept whole.
    :param seed: seed of the random selection under ``max_minutes``.

    Every check (unknown splits, languages or speakers; a filter or a budget that leaves a split
    empty) runs before anything is written. ``out_dir`` may hold an earlier subset only if it was
    made with the same arguments (it is then rewritten).
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    available = find_splits(src_dir)
    if out_dir.resolve() == src_dir.resolve():
        raise ValueError(f"{out_dir}: the output folder is the source folder; choose another one")
    if speakers is not None and exclude_speakers is not None:
        raise ValueError("give either speakers (keep only these) or exclude_speakers (drop these), not both")
    if splits is None:
        chosen = list(available)
    else:
        chosen = list(dict.fromkeys([splits] if isinstance(splits, str) else splits))
        if not chosen:
            raise ValueError("splits is empty: give at least one split, or None for all of them")
        missing = [s for s in chosen if s not in available]
        if missing:
            raise ValueError(f"{src_dir}: no split(s) {', '.join(missing)}; it has: {', '.join(available)}")
    languages = _clean_list("languages", languages)
    speakers = _clean_list("speakers", speakers)
    exclude_speakers = _clean_list("exclude_speakers", exclude_speakers)
    if max_minutes is None:
        if budget_splits is not None:
            raise ValueError("budget_splits is given without max_minutes: it names the splits a budget applies to")
        budgeted: list[str] = []
    else:
        if not max_minutes > 0:
            raise ValueError(f"max_minutes must be a positive number, got {max_minutes}")
        budgeted = list(dict.fromkeys(["train"] if budget_splits is None else budget_splits))
        missing = [s for s in budgeted if s not in chosen]
        if missing:
            raise ValueError(
                f"budget split(s) {', '.join(missing)} not among the chosen splits: {', '.join(chosen)}"
                + (" (budget_splits defaults to train)" if budget_splits is None else "")
            )
    arguments = {
        "source": str(src_dir.resolve()),
        "splits": chosen,
        "languages": languages,
        "speakers": speakers,
        "exclude_speakers": exclude_speakers,
        "max_minutes": max_minutes,
        "budget_splits": budgeted or None,
        "seed": seed if max_minutes is not None else None,
    }

    # 1. read every chosen split once: what it has, and which cuts pass the filters
    matches = _matcher(
        set(languages) if languages else None,
        set(speakers) if speakers else None,
        set(exclude_speakers) if exclude_speakers else None,
    )
    passing: dict[str, list[_CutInfo]] = {}
    has_speakers: dict[str, set[str]] = {}
    has_languages: dict[str, set[str]] = {}
    for split in chosen:
        infos = [_info(cut) for cut in load_cuts(available[split], lazy=True)]
        has_speakers[split] = set().union(*(c.speakers for c in infos))
        has_languages[split] = set().union(*(c.languages for c in infos))
        passing[split] = [c for c in infos if matches(c)]

    # values to keep that no chosen split has are most likely typos; values to drop do no harm
    for name, values, found in (
        ("languages", languages, has_languages),
        ("speakers", speakers, has_speakers),
        ("exclude_speakers", exclude_speakers, has_speakers),
    ):
        everywhere = set().union(*found.values())
        unknown = [v for v in values or () if v not in everywhere]
        if unknown and name == "exclude_speakers":
            log.warning("exclude_speakers: %s found in none of the splits %s", ", ".join(unknown), ", ".join(chosen))
        elif unknown:
            raise ValueError(
                f"{name}: {', '.join(unknown)} found in none of the splits {', '.join(chosen)} of {src_dir}; "
                f"they have {name.replace('exclude_', '')}: {_short_list(everywhere)}"
            )
    for split in chosen:
        if not passing[split]:
            filters = "; ".join(
                f"{name} {' '.join(values)}"
                for name, values in (("languages", languages), ("speakers", speakers), ("exclude_speakers", exclude_speakers))
                if values
            )
            raise ValueError(
                f"split {split}: no cut left after filtering by {filters}; this split has languages: "
                f"{_short_list(has_languages[split])}; speakers: {_short_list(has_speakers[split])}"
            )

    # 2. the budget
    keep: dict[str, list[_CutInfo]] = dict(passing)
    for split in budgeted:
        infos = passing[split]
        idx = budget_select([c.duration for c in infos], max_minutes * 60.0, seed)
        if not idx:
            raise ValueError(
                f"split {split}: max_minutes {max_minutes} ({max_minutes * 60.0:g} s) keeps no cut; "
                f"its shortest cut lasts {min(c.duration for c in infos):.2f} s"
            )
        keep[split] = [infos[i] for i in idx]

    # 3. write: the manifests, then subset.json last
    out_dir.mkdir(parents=True, exist_ok=True)
    _prepare_out_dir(out_dir, arguments)
    summaries: dict[str, SplitSummary] = {}
    for split in chosen:
        ids = {c.id for c in keep[split]}
        cuts = load_cuts(available[split], lazy=True).filter(_HasId(ids))
        save_cuts(cuts, cuts_path(out_dir, split))
        summary = SplitSummary(split)
        for c in keep[split]:
            summary.cuts += 1
            summary.seconds += c.duration
            summary.speakers |= c.speakers
            for lang in c.languages:
                summary.languages[lang] = summary.languages.get(lang, 0) + 1
        summaries[split] = summary
        log.debug("%s", summary.line())
    record = {
        "format_version": FORMAT_VERSION,
        "arguments": arguments,
        "splits": {split: s.as_dict() for split, s in summaries.items()},
    }
    atomic_write_text(out_dir / DONE_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    (out_dir / PARTIAL_FILE).unlink()
    return summaries
