"""LibriSpeech (and Mini LibriSpeech) through lhotse's recipe.

Layout (openslr.org/12, unpacked)::

    LibriSpeech/
      SPEAKERS.TXT                                   speaker | sex | subset | minutes | name
      <part>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
      <part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt    "<utt id> <TRANSCRIPT>" per line

One split per part (``cuts_dev-clean.jsonl.gz``, ...), cut id = utterance id. On top of lhotse:
gender from SPEAKERS.TXT (lhotse leaves it empty) and the language as the code ``en``.
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
    write_prepared,
)

log = logging.getLogger(__name__)

PARTS = (
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean-2",  # Mini LibriSpeech
    "train-clean-5",
)


def read_speakers_txt(path: Path) -> dict[str, str]:
    """Speaker id -> ``m``/``f`` from LibriSpeech's SPEAKERS.TXT (``;`` lines are comments)."""
    genders: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 2 and fields[1].lower() in ("m", "f"):
            genders[fields[0]] = fields[1].lower()
    return genders


def _find_root(corpus_dir: Path) -> Path:
    """Accept the ``LibriSpeech`` folder itself or the folder that holds it."""
    if not any((corpus_dir / p).is_dir() for p in PARTS) and (corpus_dir / "LibriSpeech").is_dir():
        return corpus_dir / "LibriSpeech"
    return corpus_dir


def prepare_librispeech(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    parts: Sequence[str] | None = None,
    num_jobs: int = 1,
    strict: bool = False,
    verify: bool = False,
) -> dict[str, CutSet]:
    """Prepare LibriSpeech parts as ``<out_dir>/cuts_<part>.jsonl.gz``.

    :param corpus_dir: the ``LibriSpeech`` folder (or its parent).
    :param parts: part folders to prepare, e.g. ``["train-clean-100", "dev-clean"]``; default: every
        known part present.
    :param num_jobs: threads lhotse uses to read the audio headers.
    :param strict: raise on the first unusable utterance instead of skipping it.
    :param verify: decode every file (slow) instead of trusting the headers.
    :return: split name -> CutSet.
    """
    from lhotse.recipes.librispeech import prepare_librispeech as lhotse_prepare

    root = _find_root(resolve_corpus_dir(corpus_dir, "LibriSpeech"))
    if parts is None:
        parts = [p for p in PARTS if (root / p).is_dir()]
        if not parts:
            raise ValueError(
                f"{root}: expected LibriSpeech part folders ({', '.join(PARTS)}) holding "
                f"<speaker>/<chapter>/*.flac and *.trans.txt; found {listing(root)}"
            )
    else:
        missing = [p for p in parts if not (root / p).is_dir()]
        if missing:
            raise ValueError(
                f"{root}: requested LibriSpeech part(s) {', '.join(missing)} not found; found {listing(root)}"
            )
    parts = list(dict.fromkeys(parts))
    log.info("LibriSpeech: preparing %s from %s", ", ".join(parts), root)
    skips = SkipList(strict=strict)
    manifests = call_lhotse(
        "LibriSpeech",
        lhotse_prepare,
        root,
        dataset_parts=parts,
        output_dir=None,
        num_jobs=num_jobs,
        unreadable_scan=lambda: (f for p in parts for f in (root / p).rglob("*.flac")),
        skips=skips,
        out_dir=Path(out_dir),
    )
    speakers_txt = root / "SPEAKERS.TXT"
    genders = read_speakers_txt(speakers_txt) if speakers_txt.is_file() else {}
    if not genders:
        log.info("LibriSpeech: no SPEAKERS.TXT in %s; gender left empty", root)

    def normalize(sup: SupervisionSegment) -> SupervisionSegment:
        return dataclasses.replace(sup, language="en", gender=sup.gender or genders.get(sup.speaker))

    splits = lhotse_splits_to_cuts(manifests, normalize)
    splits = {
        p: check_cuts(splits.get(p, CutSet.from_cuts([])), skips, verify=verify, num_jobs=num_jobs) for p in parts
    }
    return write_prepared(splits, out_dir, skips, corpus="LibriSpeech")
