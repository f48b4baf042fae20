"""Mozilla Common Voice through lhotse's recipe.

Layout (a release, unpacked)::

    cv-corpus-<version>/<lang>/clips/common_voice_<lang>_<n>.mp3
    cv-corpus-<version>/<lang>/{train,dev,test,validated,invalidated,other}.tsv
        tab-separated with a header: client_id, path, sentence, up_votes, down_votes, age, gender,
        accents, variant, locale, segment (newer releases add sentence_id, sentence_domain)

The clips are MP3, which libsndfile >= 1.1 decodes (the soundfile wheels bundle 1.2): no ffmpeg
needed. lhotse needs the ``accents`` and ``variant`` columns (releases 11 and later).

Cut id = clip name without extension, speaker = client_id, gender normalised to m/f (the releases
spell it male/female or male_masculine/female_feminine; anything else is left empty), language =
the language folder name, ``custom`` = age, accents, variant (lhotse's). Splits are named
``<split>`` when one language is prepared and ``<lang>_<split>`` when several are.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

from lhotse import CutSet, SupervisionSegment

from speechssl.data.corpora._common import (
    SkipList,
    call_lhotse,
    check_cuts,
    lhotse_splits_to_cuts,
    normalize_gender,
    resolve_corpus_dir,
    select_parts,
    write_prepared,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test", "validated", "invalidated", "other")
DEFAULT_SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("client_id", "path", "sentence", "age", "gender", "accents", "variant")


def _check_tsv(path: Path) -> list[str]:
    """The clip names a split's TSV lists; ValueError when its header lacks a column lhotse reads."""
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().rstrip("\n").split("\t")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{path}: Common Voice TSV lacks column(s) {', '.join(missing)} "
                f"(expected {', '.join(REQUIRED_COLUMNS)}, "
                f"found {', '.join(header)}); lhotse's recipe reads releases 11 and later"
            )
        col = header.index("path")
        return [line.split("\t")[col] for line in f if line.strip()]


def prepare_commonvoice(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    languages: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    num_jobs: int = 1,
    strict: bool = False,
    verify: bool = False,
) -> dict[str, CutSet]:
    """Prepare Common Voice languages and splits.

    :param corpus_dir: a release folder (``cv-corpus-<version>``, holding ``<lang>/clips``), or one
        language folder (holding ``clips/`` and the TSVs).
    :param languages: language folders to prepare; default: every folder with ``clips/``.
    :param splits: TSV splits to prepare; default: those of train, dev and test that exist.
    :param num_jobs: processes lhotse uses to read the clips.
    :param strict: raise on the first unusable clip instead of skipping it.
    :param verify: decode every clip (slow) instead of trusting the headers.
    :return: split name (``<split>``, or ``<lang>_<split>`` with several languages) -> CutSet.
    """
    from lhotse.recipes.commonvoice import prepare_commonvoice as lhotse_prepare

    root = resolve_corpus_dir(corpus_dir, "Common Voice")
    if (root / "clips").is_dir():  # a single language folder
        if languages is not None and list(languages) != [root.name]:
            raise ValueError(
                f"{root} is the language folder '{root.name}'; languages={list(languages)} does not match it"
            )
        root, languages = root.parent, [root.name]
    found = sorted(p.name for p in root.iterdir() if (p / "clips").is_dir())
    languages = select_parts(
        languages,
        found,
        root=root,
        what="Common Voice language folder(s)",
        expected="Common Voice language folders (<lang>/clips/ + <lang>/train.tsv ...)",
    )
    if splits is None:
        splits = [s for s in DEFAULT_SPLITS if all((root / lang / f"{s}.tsv").is_file() for lang in languages)]
        if not splits:
            raise ValueError(f"{root}: no {', '.join(f'{s}.tsv' for s in DEFAULT_SPLITS)} in {', '.join(languages)}")
    else:
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise ValueError(f"unknown Common Voice split(s) {', '.join(unknown)}; valid: {', '.join(SPLITS)}")
        missing = [
            str(root / lang / f"{s}.tsv")
            for lang in languages
            for s in splits
            if not (root / lang / f"{s}.tsv").is_file()
        ]
        if missing:
            raise FileNotFoundError(f"Common Voice split file(s) not found: {', '.join(missing)}")
    splits = list(dict.fromkeys(splits))
    listed = {(lang, s): _check_tsv(root / lang / f"{s}.tsv") for lang in languages for s in splits}

    skips = SkipList(strict=strict)
    log.info("Common Voice: preparing %s / %s from %s", ", ".join(languages), ", ".join(splits), root)
    # lhotse's recipe writes its own manifests into output_dir: let it write them somewhere temporary.
    with tempfile.TemporaryDirectory(prefix="speechssl-commonvoice-") as tmp:
        manifests = call_lhotse(
            "Common Voice",
            lhotse_prepare,
            root,
            output_dir=tmp,
            languages=languages,
            splits=splits,
            num_jobs=num_jobs,
            unreadable_scan=lambda: {root / lang / "clips" / c for (lang, _), names in listed.items() for c in names},
            skips=skips,
            out_dir=Path(out_dir),
        )

    def normalize(sup: SupervisionSegment) -> SupervisionSegment:
        return dataclasses.replace(sup, gender=normalize_gender(sup.gender))

    out: dict[str, CutSet] = {}
    for lang in languages:
        lang_splits = lhotse_splits_to_cuts(manifests.get(lang, {}), normalize)
        for s in splits:
            have = {c.recording_id for c in lang_splits.get(s, [])}
            for clip in listed[lang, s]:
                if Path(clip).stem not in have:  # lhotse only logs these
                    skips.add(root / lang / "clips" / clip, f"listed in {s}.tsv but not found", audio=False)
            name = s if len(languages) == 1 else f"{lang}_{s}"
            out[name] = check_cuts(lang_splits.get(s, CutSet.from_cuts([])), skips, verify=verify, num_jobs=num_jobs)
    return write_prepared(out, out_dir, skips, corpus="Common Voice")
