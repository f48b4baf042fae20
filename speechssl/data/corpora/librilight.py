"""Libri-Light (unlabelled audiobooks) through lhotse's recipe.

Layout (dl.fbaipublicfiles.com/librilight, unpacked)::

    <corpus>/<subset>/<speaker>/<book>/<file>.flac     subset: small, medium, large
    <corpus>/<subset>/<speaker>/<book>/<file>.json     {"speaker": ..., "voice_activity": [[start, end], ...], ...}

One cut per voice-activity segment (cut id ``<subset>/<speaker>/<book>/<file>_<n>``), one split per
subset (``cuts_small.jsonl.gz``, ...). Speaker from the JSON file, language ``en``, no text.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

from lhotse import CutSet, SupervisionSegment

from speechssl.data.corpora._common import (
    SkipList,
    call_lhotse,
    check_cuts,
    lhotse_splits_to_cuts,
    listing,
    resolve_corpus_dir,
    select_parts,
    write_prepared,
)

log = logging.getLogger(__name__)

SUBSETS = ("small", "medium", "large")


def prepare_librilight(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    parts: Sequence[str] | None = None,
    num_jobs: int = 1,
    strict: bool = False,
    verify: bool = False,
) -> dict[str, CutSet]:
    """Prepare Libri-Light subsets as ``<out_dir>/cuts_<subset>.jsonl.gz``.

    :param corpus_dir: the folder holding ``small/``, ``medium/`` and/or ``large/``.
    :param parts: subsets to prepare; default: those present.
    :param num_jobs: threads lhotse uses to read the audio headers.
    :param strict: raise on the first unusable segment (e.g. shorter than 25 ms) instead of skipping it.
    :param verify: decode every segment (slow) instead of trusting the headers.
    :return: split name -> CutSet.
    """
    from lhotse.recipes.librilight import _prepare_subset

    root = resolve_corpus_dir(corpus_dir, "Libri-Light")
    present = [p for p in SUBSETS if (root / p).is_dir()]
    parts = select_parts(
        parts,
        present,
        root=root,
        what="Libri-Light subset(s)",
        valid=SUBSETS,
        expected=f"Libri-Light subset folders ({', '.join(SUBSETS)}) holding <speaker>/<book>/*.flac with *.json",
    )
    skips = SkipList(strict=strict)
    log.info("Libri-Light: preparing %s from %s", ", ".join(parts), root)
    # lhotse's public prepare_librilight() insists on all three subsets (it fails on a missing
    # one), so its per-subset step is called for the requested subsets only.
    manifests = {}
    for part in parts:
        if next((root / part).rglob("*.flac"), None) is None:
            raise ValueError(
                f"{root / part}: expected <speaker>/<book>/*.flac files (with *.json); found {listing(root / part)}"
            )
        recordings, supervisions = call_lhotse(
            "Libri-Light",
            _prepare_subset,
            part,
            root,
            num_jobs,
            unreadable_scan=lambda part=part: (root / part).rglob("*.flac"),
            skips=skips,
            out_dir=Path(out_dir),
        )
        manifests[part] = {"recordings": recordings, "supervisions": supervisions}

    def normalize(sup: SupervisionSegment) -> SupervisionSegment:
        return dataclasses.replace(sup, language="en", speaker=str(sup.speaker) if sup.speaker is not None else None)

    splits = lhotse_splits_to_cuts(manifests, normalize)
    splits = {
        p: check_cuts(splits.get(p, CutSet.from_cuts([])), skips, verify=verify, num_jobs=num_jobs) for p in parts
    }
    return write_prepared(splits, out_dir, skips, corpus="Libri-Light")
