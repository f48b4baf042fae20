"""What to tokenize: a manifest, a corpus folder, a folder of audio files, or a list of files.

Every input becomes a lhotse CutSet with one id per utterance. Audio files are looked at once, for
their header (sample rate, length, channels); a file whose header cannot be read is reported as an
:class:`InputError` and left out, never silently dropped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from lhotse import AudioSource, CutSet, Recording

from speechssl.data.audio import AudioError, audio_info
from speechssl.data.manifest import find_splits, load_cuts

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".sph")
MANIFEST_SUFFIXES = (".jsonl.gz", ".jsonl", ".json")


@dataclass(frozen=True)
class InputError:
    """An input that could not be used: its id, its file and what was wrong."""

    id: str
    path: str
    problem: str


def is_manifest(path: Path) -> bool:
    return path.is_file() and path.name.endswith(MANIFEST_SUFFIXES)


def _recording(rec_id: str, path: Path) -> Recording:
    rate, frames, channels = audio_info(path)
    if frames <= 0:
        raise AudioError(path, "no audio samples (empty file)")
    source = AudioSource(type="file", channels=list(range(channels)), source=str(path))
    return Recording(id=rec_id, sources=[source], sampling_rate=rate, num_samples=frames, duration=frames / rate)


def _from_files(entries: list[tuple[str, Path]], strict: bool) -> tuple[CutSet, list[InputError]]:
    """(id, audio path) pairs -> a CutSet of whole recordings, plus the files that could not be read."""
    seen: dict[str, Path] = {}
    for rec_id, path in entries:
        if rec_id in seen:
            raise ValueError(
                f"two inputs have the id {rec_id!r}: {seen[rec_id]} and {path}; "
                "give ids explicitly (a list of '<id> <path>' lines)"
            )
        seen[rec_id] = path
    recordings, errors = [], []
    for rec_id, path in entries:
        try:
            recordings.append(_recording(rec_id, path))
        except (AudioError, FileNotFoundError) as e:
            if strict:
                raise
            log.warning("skipping %s: %s", path, e)
            errors.append(InputError(rec_id, str(path), str(e)))
    cuts = CutSet.from_cuts(rec.to_cut() for rec in recordings)  # cut id = recording id
    return cuts, errors


def _read_list(path: Path) -> list[tuple[str, Path]]:
    """One audio file per line: ``<path>`` (the id is the file's name without extension) or
    ``<id> <path>`` (Kaldi's wav.scp); relative paths are relative to the list's folder; blank
    lines and ``#`` comments are skipped."""
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(maxsplit=1)
        if len(fields) == 2 and not Path(fields[0]).suffix.lower() in AUDIO_EXTENSIONS:
            rec_id, file = fields
        else:
            rec_id, file = None, line
        audio = Path(file) if os.path.isabs(file) else path.parent / file
        if audio.suffix == "" and rec_id is None:
            raise ValueError(f"{path}:{lineno}: expected '<path>' or '<id> <path>', found {line!r}")
        entries.append((rec_id or audio.stem, audio))
    return entries


def collect_inputs(
    source: str | os.PathLike | list[str | os.PathLike],
    *,
    splits: list[str] | None = None,
    strict: bool = False,
) -> tuple[CutSet, list[InputError]]:
    """``source`` as cuts to tokenize, and the inputs that could not be used.

    - a lhotse manifest (``.jsonl.gz``, ``.jsonl``, ``.json``): its cuts, ids as they are;
    - a folder holding speechssl split manifests (``cuts_<split>.jsonl.gz``, e.g. ``data/mini``):
      the cuts of every split (or of ``splits``);
    - any other folder: the audio files under it (recursively; extensions in ``AUDIO_EXTENSIONS``),
      each id its path relative to the folder without the extension;
    - a text file: a list of audio files (see :func:`_read_list`);
    - a Python list of audio paths: ids are the file names without extension.

    ``strict``: a file whose header cannot be read raises instead of being reported.
    """
    if isinstance(source, (list, tuple)):
        return _from_files([(Path(p).stem, Path(p)) for p in source], strict)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such manifest, folder or list of audio files")
    if is_manifest(path):
        return load_cuts(path), []
    if path.is_dir():
        found = find_splits(path) if any(path.glob("cuts_*.jsonl.gz")) else {}
        if found:
            wanted = splits or list(found)
            unknown = [s for s in wanted if s not in found]
            if unknown:
                raise ValueError(f"{path}: no split {', '.join(map(repr, unknown))}; it has {', '.join(found)}")
            cuts = [c for s in wanted for c in load_cuts(found[s])]
            return CutSet.from_cuts(cuts), []
        if splits:
            raise ValueError(f"{path}: --splits applies to a corpus folder with manifests; this is a folder of audio files")
        # a dangling link is an input that cannot be read, reported like one (not left out unseen)
        files = sorted(p for p in path.rglob("*") if (p.is_file() or p.is_symlink()) and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise ValueError(f"{path}: no manifests and no audio files ({', '.join(AUDIO_EXTENSIONS)}) under this folder")
        return _from_files([(str(p.relative_to(path).with_suffix("")), p) for p in files], strict)
    return _from_files(_read_list(path), strict)
