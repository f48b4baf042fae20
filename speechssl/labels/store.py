"""A label folder: the frame labels of every split of a corpus, produced by one k-means model.

Layout::

    <dir>/labels.json       what made the labels (feature spec, k-means model, k, frame rate) and,
                            per split, the manifest labelled and the counts
    <dir>/<split>.labels    one line per cut: ``<cut_id> <unit> <unit> ...`` (see labels.files)
    <dir>/<split>.km        optional fairseq export (manifest order) + <dir>/dict.km.txt

``labels.json`` is written last, so a folder without it is incomplete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speechssl.features.spec import FeatureSpec
from speechssl.io import atomic_write_text
from speechssl.labels.files import read_labels

META = "labels.json"
FORMAT = "speechssl-labels"
FORMAT_VERSION = 1


@dataclass
class SplitInfo:
    manifest: str  # the cut manifest that was labelled
    cuts: int  # cuts labelled
    frames: int  # frames labelled
    skipped: int = 0  # cuts left out (unreadable audio)


@dataclass
class LabelDir:
    path: Path
    num_units: int  # k: units are 0..k-1
    frame_rate: float  # labels per second
    feature: FeatureSpec
    kmeans: str  # the k-means model file
    kmeans_id: str  # its fingerprint (sha256 of the centroids)
    splits: dict[str, SplitInfo] = field(default_factory=dict)

    def labels_path(self, split: str) -> Path:
        return self.path / f"{split}.labels"

    def read(self, split: str) -> dict[str, np.ndarray]:
        if split not in self.splits:
            raise ValueError(f"{self.path}: no labels for split '{split}'; it has {', '.join(self.splits) or 'none'}")
        return read_labels(self.labels_path(split))

    def as_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "num_units": self.num_units,
            "frame_rate": self.frame_rate,
            "feature": self.feature.as_dict(),
            "kmeans": self.kmeans,
            "kmeans_id": self.kmeans_id,
            "splits": {name: vars(info) for name, info in self.splits.items()},
        }


def write_label_dir_meta(info: LabelDir) -> Path:
    """Write ``labels.json`` (atomically; call it after the label files)."""
    path = Path(info.path) / META
    atomic_write_text(path, json.dumps(info.as_dict(), indent=2) + "\n")
    return path


def read_label_dir(path: str | os.PathLike) -> LabelDir:
    """Read a label folder's ``labels.json``; a clear error when it is missing or malformed."""
    path = Path(path)
    meta = path / META
    if not meta.is_file():
        what = "is not a folder" if not path.is_dir() else f"has no {META} (not a label folder, or its labelling did not finish)"
        raise FileNotFoundError(f"{path}: {what}")
    try:
        d = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{meta}: not valid JSON ({e})") from None
    if d.get("format") != FORMAT:
        raise ValueError(f"{meta}: not a speechssl label folder (format {d.get('format')!r})")
    if int(d.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{meta}: format version {d['format_version']} is newer than this speechssl reads ({FORMAT_VERSION})")
    return LabelDir(
        path=path,
        num_units=int(d["num_units"]),
        frame_rate=float(d["frame_rate"]),
        feature=FeatureSpec.from_dict(d["feature"]),
        kmeans=d["kmeans"],
        kmeans_id=d["kmeans_id"],
        splits={name: SplitInfo(**s) for name, s in d["splits"].items()},
    )
