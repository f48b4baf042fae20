"""VoxCeleb1 and VoxCeleb2 (speaker recognition).

Layouts (robots.ox.ac.uk/~vgg/data/voxceleb, unpacked as lhotse's downloader does)::

    VoxCeleb1:  <root>/wav/<speaker id>/<youtube id>/<nnnnn>.wav
                <root>/vox1_meta.csv          tab-separated: VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set
                <root>/veri_test2.txt ...     optional trial lists: "<1|0> <spk>/<yt>/<n>.wav <spk>/<yt>/<n>.wav"
    VoxCeleb2:  <root>/dev/aac/<speaker id>/<youtube id>/<nnnnn>.m4a  and  <root>/aac/... (test)
                <root>/vox2_meta.csv          comma-separated: VoxCeleb2 ID, VGGFace2 ID, Gender, Set

Splits follow lhotse and Kaldi: ``train`` = VoxCeleb1 dev (+ all of VoxCeleb2 when given), ``test`` =
VoxCeleb1 test. Cut id ``<speaker>-<youtube id>-<nnnnn>`` (lhotse's), speaker and gender from the
metadata, ``custom`` = speaker_name, nationality, split (the corpus's own dev/test), dataset.

Each trial list found in the VoxCeleb1 folder (or given) is written as ``trials_<name>.txt`` in
the output folder with cut ids instead of paths: ``<1|0> <cut id> <cut id>`` per line.

Why not lhotse's ``prepare_voxceleb``: with VoxCeleb1 it downloads the trial list from openslr.org
into the current directory on every call (fails offline, writes outside the output folder). The
metadata parsing, ids and fields here are the same as lhotse's. VoxCeleb2 ships AAC (``.m4a``),
which libsndfile cannot read: convert it to WAV or FLAC first (same names, other extension); any
``.m4a`` that cannot be read is reported and skipped like any unreadable file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lhotse import CutSet, RecordingSet, SupervisionSegment, SupervisionSet

from speechssl.data.corpora._common import (
    SkipList,
    check_audio_files,
    check_cuts,
    cuts_from_manifests,
    listing,
    recording_from_header,
    resolve_corpus_dir,
    write_prepared,
)
from speechssl.io import atomic_write_text

log = logging.getLogger(__name__)

VOX1_META = "vox1_meta.csv"
VOX2_META = "vox2_meta.csv"
#: Trial lists picked up from the VoxCeleb1 folder when present (Vox1-O, Vox1-E, Vox1-H; cleaned and original).
TRIAL_LISTS = (
    "veri_test2.txt",
    "veri_test.txt",
    "voxceleb1_test_v2.txt",
    "list_test_all2.txt",
    "list_test_all.txt",
    "list_test_hard2.txt",
    "list_test_hard.txt",
)
AUDIO_SUFFIXES = (".wav", ".flac", ".m4a")


@dataclass(frozen=True)
class SpeakerMeta:
    speaker: str
    name: str
    gender: str
    nationality: str
    split: str  # the corpus's own set: dev or test


def read_vox1_meta(path: Path) -> dict[str, SpeakerMeta]:
    """``vox1_meta.csv``: a header line, then tab-separated id, name, gender, nationality, set."""
    out = {}
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 5:
            raise ValueError(
                f"{path}:{n}: expected 5 tab-separated fields (id, name, gender, nationality, set), found {len(fields)}"
            )
        spk, name, gender, nationality, split = fields[:5]
        out[spk] = SpeakerMeta(spk, name, gender.lower(), nationality, split.lower())
    return out


def read_vox2_meta(path: Path) -> dict[str, SpeakerMeta]:
    """``vox2_meta.csv``: a header line, then comma-separated id, VGGFace2 id, gender, set."""
    out = {}
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            raise ValueError(
                f"{path}:{n}: expected 4 comma-separated fields (id, VGGFace2 id, gender, set), found {len(fields)}"
            )
        spk, _, gender, split = fields[:4]
        out[spk] = SpeakerMeta(spk, "", gender.lower(), "", split.lower())
    return out


def _audio_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _collect(
    root: Path,
    files: list[Path],
    meta: dict[str, SpeakerMeta],
    dataset: str,
    skips: SkipList,
    verify: bool,
    num_jobs: int,
) -> dict[str, list[tuple]]:
    """(recording, supervision) pairs per output split for the files of one VoxCeleb version."""
    by_split: dict[str, list[tuple]] = {}
    known = []
    for path in files:
        speaker = path.parent.parent.name
        if speaker not in meta:
            skips.add(
                path,
                f"speaker {speaker} is not listed in {root / (VOX1_META if dataset == 'voxceleb1' else VOX2_META)}",
                audio=False,
            )
        else:
            known.append(path)
    headers = check_audio_files(known, skips, verify=verify, num_jobs=num_jobs)
    for path, header in headers.items():
        speaker, youtube, utt = path.parent.parent.name, path.parent.name, path.stem
        m = meta[speaker]
        rec_id = f"{speaker}-{youtube}-{utt}"
        recording = recording_from_header(path, rec_id, header)
        sup = SupervisionSegment(
            id=rec_id,
            recording_id=rec_id,
            start=0.0,
            duration=recording.duration,
            channel=0 if header.num_channels == 1 else list(range(header.num_channels)),
            speaker=speaker,
            gender=m.gender if m.gender in ("m", "f") else None,
            custom={
                k: v
                for k, v in (
                    ("speaker_name", m.name),
                    ("nationality", m.nationality),
                    ("split", m.split),
                    ("dataset", dataset),
                )
                if v
            },
        )
        split = "test" if (dataset == "voxceleb1" and m.split == "test") else "train"
        by_split.setdefault(split, []).append((recording, sup))
    return by_split


def _write_trials(trial_file: Path, cuts: CutSet, out_dir: Path) -> Path:
    """Rewrite a VoxCeleb trial list with cut ids; trials naming unknown utterances are dropped (logged)."""
    ids = {c.id for c in cuts}
    lines, dropped = [], 0
    for n, line in enumerate(trial_file.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise ValueError(
                f"{trial_file}:{n}: expected '<1|0> <spk>/<yt>/<n>.wav <spk>/<yt>/<n>.wav', found {line!r}"
            )
        a, b = ("-".join(Path(f).with_suffix("").parts) for f in fields[1:])
        if a not in ids or b not in ids:
            dropped += 1
            continue
        lines.append(f"{fields[0]} {a} {b}")
    if dropped:
        log.warning("%s: %d trial(s) name utterances not in the test split; left out", trial_file, dropped)
    path = out_dir / f"trials_{trial_file.stem}.txt"
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    log.info("VoxCeleb: wrote %d trials to %s", len(lines), path)
    return path


def prepare_voxceleb(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    voxceleb2_dir: str | os.PathLike | None = None,
    trials: Sequence[str | os.PathLike] | None = None,
    num_jobs: int = 1,
    strict: bool = False,
    verify: bool = False,
) -> dict[str, CutSet]:
    """Prepare VoxCeleb1 and/or VoxCeleb2 as ``cuts_train`` / ``cuts_test`` (+ ``trials_<name>.txt``).

    :param corpus_dir: the VoxCeleb1 folder (``vox1_meta.csv`` + ``wav/``), or the VoxCeleb2 folder
        (``vox2_meta.csv``) when only VoxCeleb2 is prepared.
    :param voxceleb2_dir: the VoxCeleb2 folder, added to ``train``.
    :param trials: trial lists to convert; default: the known lists found in the VoxCeleb1 folder.
    :param num_jobs: threads for reading audio headers.
    :param strict: raise on the first unusable file instead of skipping it.
    :param verify: decode every file (slow) instead of trusting the headers.
    :return: split name -> CutSet.
    """
    root = resolve_corpus_dir(corpus_dir, "VoxCeleb")
    vox1 = vox2 = None
    if (root / VOX1_META).is_file():
        vox1 = root
    elif (root / VOX2_META).is_file():
        vox2 = root
    else:
        raise ValueError(
            f"{root}: expected a VoxCeleb1 folder ({VOX1_META} + wav/<id>/<youtube id>/*.wav) or a VoxCeleb2 "
            f"folder ({VOX2_META} + dev/aac/<id>/<youtube id>/*); found {listing(root)}"
        )
    if voxceleb2_dir is not None:
        if vox2 is not None:
            raise ValueError(
                f"{root} is already a VoxCeleb2 folder; voxceleb2_dir is for adding VoxCeleb2 to VoxCeleb1"
            )
        vox2 = resolve_corpus_dir(voxceleb2_dir, "VoxCeleb2")
        if not (vox2 / VOX2_META).is_file():
            raise ValueError(f"{vox2}: expected {VOX2_META} in the VoxCeleb2 folder; found {listing(vox2)}")

    skips = SkipList(strict=strict)
    pairs: dict[str, list[tuple]] = {}
    if vox1 is not None:
        if not (vox1 / "wav").is_dir():
            raise ValueError(f"{vox1}: expected the audio under wav/<id>/<youtube id>/*.wav; found {listing(vox1)}")
        files = _audio_files(vox1 / "wav")
        log.info("VoxCeleb1: %d audio files in %s", len(files), vox1 / "wav")
        for split, items in _collect(
            vox1, files, read_vox1_meta(vox1 / VOX1_META), "voxceleb1", skips, verify, num_jobs
        ).items():
            pairs.setdefault(split, []).extend(items)
    if vox2 is not None:
        files = _audio_files(vox2)
        log.info("VoxCeleb2: %d audio files in %s", len(files), vox2)
        for split, items in _collect(
            vox2, files, read_vox2_meta(vox2 / VOX2_META), "voxceleb2", skips, verify, num_jobs
        ).items():
            pairs.setdefault(split, []).extend(items)

    splits = {}
    for split in ("train", "test"):
        items = pairs.get(split, [])
        recordings = RecordingSet.from_recordings(r for r, _ in items)
        supervisions = SupervisionSet.from_segments(s for _, s in items)
        splits[split] = check_cuts(cuts_from_manifests(recordings, supervisions), skips, num_jobs=num_jobs)
    if vox1 is None:
        splits.pop("test")
    out = write_prepared(splits, out_dir, skips, corpus="VoxCeleb")

    if trials is None:
        trial_files = [vox1 / name for name in TRIAL_LISTS if vox1 is not None and (vox1 / name).is_file()]
    else:
        trial_files = [Path(t) for t in trials]
        for t in trial_files:
            if not t.is_file():
                raise FileNotFoundError(f"{t}: trial list not found")
    if trial_files and "test" not in out:
        raise ValueError(
            f"trial lists {', '.join(map(str, trial_files))} need the VoxCeleb1 test split, which is empty"
        )
    for t in trial_files:
        _write_trials(t, out["test"], Path(out_dir))
    return out
