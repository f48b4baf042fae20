"""fairseq interop: ``.tsv`` audio manifests and ``.km`` label files.

fairseq's formats, as its wav2vec/HuBERT data loaders read them:

* ``<split>.tsv``: the first line is a root folder; every other line is ``relpath<TAB>num_samples``
  for one 16 kHz mono audio file (the whole file is one utterance).
* ``<split>.km``: one line per ``.tsv`` line, in the same order: space-separated integer labels.
* ``<split>.wrd`` / ``<split>.ltr``: transcripts, words and letters (``|`` between words).

speechssl's own format is a lhotse CutSet; these functions convert between the two.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from lhotse import AudioSource, CutSet, Recording

from speechssl.data.audio import SAMPLE_RATE, AudioError, audio_info, load_cut_audio
from speechssl.io import atomic_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TsvEntry:
    relpath: str
    num_samples: int


# --------------------------------------------------------------------------------------------- tsv
def read_tsv(path: str | os.PathLike) -> tuple[Path, list[TsvEntry]]:
    """Read a fairseq ``.tsv``: ``(root, entries)``. Malformed lines fail with their line number."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fairseq manifest not found")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}: empty fairseq manifest; expected a root folder on the first line")
    if "\t" in lines[0]:
        raise ValueError(f"{path}:1: expected the root folder on the first line, found '{lines[0]}'")
    root = Path(lines[0].strip())
    entries = []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[1].strip().isdigit():
            raise ValueError(f"{path}:{lineno}: expected 'relpath<TAB>num_samples', found '{line}'")
        entries.append(TsvEntry(parts[0], int(parts[1])))
    return root, entries


def write_tsv(path: str | os.PathLike, root: str | os.PathLike, entries: Sequence[TsvEntry]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{os.fspath(root)}\n")
        for e in entries:
            f.write(f"{e.relpath}\t{e.num_samples}\n")
    return Path(path)


# ---------------------------------------------------------------------------------------------- km
def read_km(path: str | os.PathLike, num_lines: int | None = None) -> list[np.ndarray]:
    """Read a ``.km`` file: one int64 array per line. ``num_lines`` checks the count."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label file not found")
    out = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            try:
                out.append(np.array([int(t) for t in line.split()], dtype=np.int64))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: expected space-separated integers, found '{line.strip()[:60]}'") from None
    if num_lines is not None and len(out) != num_lines:
        raise ValueError(f"{path}: {len(out)} label lines but the manifest has {num_lines} utterances")
    return out


def write_km(path: str | os.PathLike, labels: Sequence[Sequence[int]]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for seq in labels:
            f.write(" ".join(str(int(u)) for u in np.asarray(seq).reshape(-1)) + "\n")
    return Path(path)


# --------------------------------------------------------------------------------------- import
def cuts_from_tsv(
    path: str | os.PathLike, *, check_audio: bool = False, strict: bool = False
) -> tuple[CutSet, list[tuple[str, str]]]:
    """Turn a fairseq ``.tsv`` into a CutSet (one cut per file, 16 kHz as fairseq assumes).

    Cut ids are the relative paths without their extension. Missing files (and, with
    ``check_audio``, files whose header disagrees with the tsv or cannot be read) are reported and
    skipped; ``strict`` raises on the first one instead. Returns ``(cuts, skipped)`` where
    ``skipped`` holds ``(relpath, problem)``; the kept cuts keep the tsv's order.
    """
    root, entries = read_tsv(path)
    base = root if root.is_absolute() else (Path(path).parent / root)
    recordings, skipped = [], []
    seen: set[str] = set()
    for e in entries:
        audio_path = base / e.relpath
        rec_id = os.path.splitext(e.relpath)[0]
        problem = None
        if rec_id in seen:
            problem = f"duplicate entry (id '{rec_id}')"
        elif not audio_path.is_file():
            problem = "audio file not found"
        elif e.num_samples <= 0:
            problem = "num_samples is 0"
        elif check_audio:
            try:
                rate, frames, _ = audio_info(audio_path)
                if rate != SAMPLE_RATE or frames != e.num_samples:
                    problem = f"header says {frames} samples at {rate} Hz, tsv says {e.num_samples} at {SAMPLE_RATE} Hz"
            except AudioError as err:
                problem = err.problem
        if problem:
            if strict:
                raise ValueError(f"{path}: {audio_path}: {problem}")
            log.warning("skipping %s: %s", audio_path, problem)
            skipped.append((e.relpath, problem))
            continue
        seen.add(rec_id)
        recordings.append(
            Recording(
                id=rec_id,
                sources=[AudioSource(type="file", channels=[0], source=str(audio_path))],
                sampling_rate=SAMPLE_RATE,
                num_samples=e.num_samples,
                duration=e.num_samples / SAMPLE_RATE,
            )
        )
    return CutSet.from_cuts(rec.to_cut() for rec in recordings), skipped  # cut id = recording id


def labels_from_km(
    tsv_path: str | os.PathLike, km_path: str | os.PathLike, cuts: CutSet | None = None
) -> dict[str, np.ndarray]:
    """Key a ``.km`` file by cut id, using the ``.tsv`` it belongs to (same order, same count).

    When ``cuts`` is given (e.g. the result of :func:`cuts_from_tsv` with some files skipped), only
    labels of those cuts are returned.
    """
    _, entries = read_tsv(tsv_path)
    km = read_km(km_path, num_lines=len(entries))
    labels = {os.path.splitext(e.relpath)[0]: seq for e, seq in zip(entries, km)}
    if cuts is not None:
        keep = set(cuts.ids)
        labels = {k: v for k, v in labels.items() if k in keep}
    return labels


# --------------------------------------------------------------------------------------- export
def _whole_file_16k(cut) -> str | None:
    """The audio path if fairseq can read ``cut`` as it is (whole 16 kHz mono file), else None."""
    rec = cut.recording
    if len(rec.sources) != 1 or rec.sources[0].type != "file" or rec.sampling_rate != SAMPLE_RATE:
        return None
    if rec.num_channels != 1 or cut.start > 1e-6 or abs(cut.duration - rec.duration) > 1e-3:
        return None
    return rec.sources[0].source


def export_fairseq(
    cuts: CutSet,
    out_dir: str | os.PathLike,
    split: str,
    *,
    labels: Mapping[str, np.ndarray] | None = None,
    root: str | os.PathLike | None = None,
    audio_dir: str | os.PathLike | None = None,
    transcripts: bool = False,
) -> dict[str, Path]:
    """Write ``<split>.tsv`` (and ``.km`` with ``labels``, ``.wrd``/``.ltr`` with ``transcripts``).

    fairseq reads whole 16 kHz mono files. Cuts that are not (a segment of a longer recording, a
    different rate or channel count) are written as 16 kHz mono WAV files under ``audio_dir``; if
    ``audio_dir`` is not given, such cuts are an error that says so.
    """
    import soundfile as sf

    out_dir = Path(out_dir)
    cuts = list(cuts)
    if not cuts:
        raise ValueError(f"no cuts to export for split '{split}'")
    paths: list[Path] = []
    for cut in cuts:
        src = _whole_file_16k(cut)
        if src is None:
            if audio_dir is None:
                raise ValueError(
                    f"cut '{cut.id}' is not a whole 16 kHz mono file (rate {cut.recording.sampling_rate}, "
                    f"{cut.recording.num_channels} channel(s), start {cut.start:.2f} s): pass an audio "
                    "folder (--write-audio DIR) to write fairseq-readable copies"
                )
            target = Path(audio_dir) / f"{cut.id}.wav"
            if not target.is_file():
                wav = load_cut_audio(cut)
                with atomic_path(target) as tmp:
                    sf.write(str(tmp), wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
            paths.append(target.resolve())
        else:
            paths.append(Path(src).resolve())
    root_dir = Path(root).resolve() if root is not None else Path(os.path.commonpath([str(p.parent) for p in paths]))
    entries = []
    for cut, p in zip(cuts, paths):
        try:
            rel = p.relative_to(root_dir)
        except ValueError:
            raise ValueError(f"{p}: not under the root folder {root_dir}") from None
        entries.append(TsvEntry(rel.as_posix(), int(round(cut.duration * SAMPLE_RATE))))
    written = {"tsv": write_tsv(out_dir / f"{split}.tsv", root_dir, entries)}
    if labels is not None:
        missing = [c.id for c in cuts if c.id not in labels]
        if missing:
            raise ValueError(f"{len(missing)} cuts have no labels (first: '{missing[0]}')")
        written["km"] = write_km(out_dir / f"{split}.km", [labels[c.id] for c in cuts])
    if transcripts:
        texts = []
        for c in cuts:
            text = " ".join(s.text for s in c.supervisions if s.text)
            if not text:
                raise ValueError(f"cut '{c.id}' has no transcript; export without transcripts or drop it")
            texts.append(" ".join(text.split()))
        with atomic_path(out_dir / f"{split}.wrd") as tmp:
            tmp.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        with atomic_path(out_dir / f"{split}.ltr") as tmp:
            # letters separated by spaces, '|' between words and at the end: "t h e | c a t |"
            tmp.write_text("".join(" ".join(t.replace(" ", "|")) + " |\n" for t in texts), encoding="utf-8")
        written["wrd"], written["ltr"] = out_dir / f"{split}.wrd", out_dir / f"{split}.ltr"
    return written
