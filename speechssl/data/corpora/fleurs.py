"""FLEURS (102 languages, read Wikipedia sentences) through lhotse's recipe.

Two layouts are accepted::

    lhotse's download (lhotse.recipes.download_fleurs):
        <root>/<lang>/{train,dev,test}/<n>.wav
        <root>/metadata/<lang>/{train,dev,test}.tsv
    the google/fleurs repository (data/<lang>/audio/<split>.tar.gz unpacked in place):
        <root>/<lang>/audio/{train,dev,test}/<n>.wav
        <root>/<lang>/{train,dev,test}.tsv

Both TSVs have no header and 7 tab-separated columns: sentence id, file name, raw transcription,
normalised transcription, characters, number of samples, gender (FEMALE/MALE). The first layout
goes through lhotse's ``prepare_single_fleurs_language``; the second is read here the same way.

Cut id = ``<sentence id>_<repetition>_<file stem>`` (lhotse's supervision id), text = the
normalised transcription (raw one in ``custom["raw_text"]``), gender m/f, language = the FLEURS
code (``en_us``, ...), ``custom["sentence_id"]``. FLEURS has no speaker ids: lhotse fills the
speaker with ``<sentence id>_<repetition>``, which names no speaker, so it is cleared here.
Splits are named ``<split>`` for one language and ``<lang>_<split>`` for several.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

from lhotse import CutSet, RecordingSet, SupervisionSegment, SupervisionSet

from speechssl.data.corpora._common import (
    SkipList,
    call_lhotse,
    check_audio_files,
    check_cuts,
    cuts_from_manifests,
    normalize_gender,
    recording_from_header,
    resolve_corpus_dir,
    select_parts,
    write_prepared,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


def _layout(root: Path, lang: str) -> str | None:
    """``"lhotse"``, ``"hf"`` or None (not a FLEURS language folder)."""
    if all((root / "metadata" / lang / f"{s}.tsv").is_file() for s in SPLITS) and (root / lang).is_dir():
        return "lhotse"
    if (root / lang / "audio").is_dir() and any((root / lang / f"{s}.tsv").is_file() for s in SPLITS):
        return "hf"
    return None


def _read_tsv(path: Path) -> list[list[str]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 7:
            raise ValueError(
                f"{path}:{n}: expected 7 tab-separated FLEURS fields (id, file, raw text, text, characters, "
                f"samples, gender), found {len(fields)}"
            )
        rows.append(fields)
    return rows


def _normalize(sup: SupervisionSegment) -> SupervisionSegment:
    custom = dict(sup.custom or {})
    custom["sentence_id"] = sup.id.split("_", 1)[0]
    return dataclasses.replace(sup, speaker=None, gender=normalize_gender(sup.gender), custom=custom)


def _prepare_hf_language(
    root: Path, lang: str, skips: SkipList, num_jobs: int
) -> dict[str, dict[str, RecordingSet | SupervisionSet]]:
    """The google/fleurs layout, into lhotse's per-split manifests (same ids and fields as lhotse's)."""
    out = {}
    for split in SPLITS:
        tsv = root / lang / f"{split}.tsv"
        if not tsv.is_file():
            log.info("FLEURS %s: no %s; split left out", lang, tsv)
            continue
        rows = _read_tsv(tsv)
        paths = [root / lang / "audio" / split / Path(r[1]).name for r in rows]
        missing = [p for p in paths if not p.is_file()]
        for p in dict.fromkeys(missing):
            skips.add(p, f"listed in {tsv} but not found", audio=False)
        present = list(dict.fromkeys(p for p in paths if p.is_file()))
        headers = check_audio_files(present, skips, num_jobs=num_jobs)
        recordings, supervisions, repeats = {}, [], {}
        for (sid, fname, raw, text, _, _, gender), path in zip(rows, paths, strict=True):
            repeats[sid] = repeats.get(sid, 0) + 1  # counted over every row, as lhotse does
            if path not in headers:
                continue
            rec_id = Path(fname).stem
            rec = recordings.setdefault(rec_id, recording_from_header(path, rec_id, headers[path]))
            supervisions.append(
                SupervisionSegment(
                    id=f"{sid}_{repeats[sid]}_{rec_id}",
                    recording_id=rec_id,
                    start=0.0,
                    duration=rec.duration,
                    channel=0,
                    text=text,
                    language=lang,
                    gender=gender,
                    custom={"raw_text": raw},
                )
            )
        out[split] = {
            "recordings": RecordingSet.from_recordings(recordings.values()),
            "supervisions": SupervisionSet.from_segments(supervisions),
        }
    return out


def prepare_fleurs(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    languages: Sequence[str] | None = None,
    num_jobs: int = 1,
    strict: bool = False,
    verify: bool = False,
) -> dict[str, CutSet]:
    """Prepare FLEURS languages (train, dev and test each).

    :param corpus_dir: the FLEURS root in lhotse's or the google/fleurs layout (see the module doc).
    :param languages: FLEURS codes such as ``en_us``; default: every language found.
    :param num_jobs: parallel jobs for reading audio headers.
    :param strict: raise on the first unusable file instead of skipping it.
    :param verify: decode every file (slow) instead of trusting the headers.
    :return: split name (``<split>``, or ``<lang>_<split>`` with several languages) -> CutSet.
    """
    from lhotse.recipes.fleurs import prepare_single_fleurs_language

    root = resolve_corpus_dir(corpus_dir, "FLEURS")
    candidates = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    candidates |= (
        {p.name for p in (root / "metadata").iterdir() if p.is_dir()} if (root / "metadata").is_dir() else set()
    )
    found = sorted(lang for lang in candidates - {"metadata"} if _layout(root, lang))
    languages = select_parts(
        languages,
        found,
        root=root,
        what="FLEURS language(s)",
        expected="FLEURS language folders: <lang>/<split>/*.wav with metadata/<lang>/<split>.tsv "
        "(lhotse's download) or <lang>/audio/<split>/*.wav with <lang>/<split>.tsv (google/fleurs), "
        f"split in {', '.join(SPLITS)}",
    )

    skips = SkipList(strict=strict)
    out: dict[str, CutSet] = {}
    for lang in languages:
        log.info("FLEURS: preparing %s from %s (%s layout)", lang, root, _layout(root, lang))
        if _layout(root, lang) == "lhotse":
            manifests = call_lhotse(
                "FLEURS",
                prepare_single_fleurs_language,
                root / lang,
                output_dir=None,
                language=lang,
                num_jobs=num_jobs,
                unreadable_scan=lambda lang=lang: (root / lang).rglob("*.wav"),
                skips=skips,
                out_dir=Path(out_dir),
            )
        else:
            manifests = _prepare_hf_language(root, lang, skips, num_jobs)
        for split, m in manifests.items():
            sups = SupervisionSet.from_segments([_normalize(s) for s in m["supervisions"]])
            cuts = check_cuts(cuts_from_manifests(m["recordings"], sups), skips, verify=verify, num_jobs=num_jobs)
            out[split if len(languages) == 1 else f"{lang}_{split}"] = cuts
    return write_prepared(out, out_dir, skips, corpus="FLEURS")
