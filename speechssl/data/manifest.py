"""lhotse CutSet manifests: the toolkit's own data format (lazy ``jsonl.gz``).

Convention: a prepared corpus is a folder with one ``cuts_<split>.jsonl.gz`` per split.

A manifest is data, and reading one never runs code: lhotse's ``command`` audio sources (a shell
command whose output is the audio, as Kaldi's ``wav.scp`` pipes become) would run when the audio is
read, so :func:`load_cuts` refuses a cut that has one, naming the manifest, the cut and the command,
unless ``SPEECHSSL_ALLOW_COMMAND_AUDIO=1`` says the manifest is trusted.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Mapping

from lhotse import CutSet

from speechssl.io import atomic_path

MANIFEST_SUFFIX = ".jsonl.gz"
# set to 1 to read manifests whose audio sources are shell commands (they run when the audio is read)
ALLOW_COMMAND_AUDIO = "SPEECHSSL_ALLOW_COMMAND_AUDIO"


def cuts_path(out_dir: str | os.PathLike, split: str) -> Path:
    """Where split ``split`` of a prepared corpus lives: ``<out_dir>/cuts_<split>.jsonl.gz``."""
    return Path(out_dir) / f"cuts_{split}{MANIFEST_SUFFIX}"


def load_cuts(path: str | os.PathLike, *, lazy: bool = False) -> CutSet:
    """Open a CutSet manifest; a missing or malformed file raises an error that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: cut manifest not found")
    if not path.name.endswith((".jsonl.gz", ".jsonl", ".json", ".json.gz")):
        raise ValueError(f"{path}: expected a lhotse cut manifest (.jsonl.gz), found '{''.join(path.suffixes)}'")
    try:
        cuts = CutSet.from_jsonl_lazy(path) if lazy else CutSet.from_file(path)
    except Exception as e:  # lhotse/json/gzip errors of several types
        raise ValueError(f"{path}: not a readable lhotse cut manifest ({type(e).__name__}: {e})") from None
    if cuts is None:  # lhotse reads a file without a line as None
        raise ValueError(f"{path}: an empty cut manifest (no cuts in it)")
    if os.environ.get(ALLOW_COMMAND_AUDIO) == "1":
        return cuts
    return cuts.map(NoCommandAudio(path))  # lazy stays lazy: each cut is checked as it is read


class NoCommandAudio:
    """``CutSet.map`` check: a cut whose audio comes from a shell command is refused (a class, not a
    closure, so that data-loader workers can pickle it)."""

    def __init__(self, manifest: str | os.PathLike):
        self.manifest = str(manifest)

    def __call__(self, cut):
        for recording in _recordings(cut):
            for source in recording.sources:
                if source.type == "command":
                    raise ValueError(
                        f"{self.manifest}: cut {cut.id}: its audio comes from the shell command {source.source!r}, "
                        f"which would run when the audio is read; refused. If you trust this manifest, set {ALLOW_COMMAND_AUDIO}=1"
                    )
        return cut


def _recordings(cut):
    """The recordings a cut's audio is read from (a mixed cut's tracks each have theirs)."""
    if hasattr(cut, "tracks"):
        for track in cut.tracks:
            yield from _recordings(track.cut)
    elif getattr(cut, "recording", None) is not None:
        yield cut.recording


def save_cuts(cuts: CutSet, path: str | os.PathLike) -> Path:
    """Write ``cuts`` to ``path`` atomically (a crash never leaves a truncated manifest).

    The bytes depend only on the cuts: the gzip header carries no time stamp and no file name, so
    the same corpus made twice gives identical files.
    """
    path = Path(path)
    if not path.name.endswith(MANIFEST_SUFFIX):
        raise ValueError(f"{path}: cut manifests are written as {MANIFEST_SUFFIX}")
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            for cut in cuts:
                gz.write((json.dumps(cut.to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def save_splits(splits: Mapping[str, CutSet], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write each split as ``cuts_<split>.jsonl.gz`` in ``out_dir``; returns split -> path."""
    return {split: save_cuts(cuts, cuts_path(out_dir, split)) for split, cuts in splits.items()}


def find_splits(data_dir: str | os.PathLike) -> dict[str, Path]:
    """The ``cuts_<split>.jsonl.gz`` files of a prepared corpus folder, split -> path."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data folder not found")
    found = {
        p.name[len("cuts_") : -len(MANIFEST_SUFFIX)]: p
        for p in sorted(data_dir.glob(f"cuts_*{MANIFEST_SUFFIX}"))
        if not p.name.startswith(".")
    }
    if not found:
        raise FileNotFoundError(f"{data_dir}: no cuts_<split>{MANIFEST_SUFFIX} manifests in this folder")
    usual = ("train", "dev", "valid", "test")  # the usual splits first, in this order; the rest by name
    return dict(sorted(found.items(), key=lambda kv: (usual.index(kv[0]) if kv[0] in usual else len(usual), kv[0])))
