"""Streaming frame features over a corpus, and the on-disk feature dump.

Features are computed batch by batch (length-bucketed batches from the manifest, decoded by
:class:`~speechssl.data.dataset.AudioDataset`) and handed on one utterance at a time; nothing is
kept in memory beyond the current batch. ``speechssl features`` can also dump them, one shard per
worker::

    <out>/<split>/shard-<i>-of-<n>.bin    frames, row-major (frames, dim), float32 or float16
    <out>/<split>/shard-<i>-of-<n>.tsv    <cut_id> <first frame> <frames>, one line per cut
    <out>/<split>/shard-<i>-of-<n>.json   the feature spec, manifest and counts; written last

A shard without its ``.json`` is incomplete and is recomputed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch
from lhotse import CutSet
from torch import Tensor

from speechssl.data.dataset import AudioDataset
from speechssl.data.manifest import find_splits, load_cuts
from speechssl.data.sampler import SamplerConfig, make_sampler
from speechssl.features.spec import FeatureSpec
from speechssl.io import atomic_path, atomic_write_text, escape_tsv

log = logging.getLogger(__name__)

SHARD_RE = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


class Extractor(Protocol):
    spec: FeatureSpec

    def __call__(self, wavs: Tensor, wav_lens: Tensor) -> list[Tensor]: ...


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (1-based, as Kaldi's JOB=1:nj) -> ``(i, n)``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"shard must be 'i/n' with 1 <= i <= n (e.g. 1/4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def shard_cuts(cuts: CutSet, index: int, count: int) -> CutSet:
    """Shard ``index`` of ``count`` (1-based): every count-th cut, starting at the index-th."""
    if count == 1:
        return cuts
    return CutSet.from_cuts(c for j, c in enumerate(cuts) if j % count == index - 1)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
    return device


@dataclass
class Skipped:
    cut_id: str
    reason: str


class FrameSource(Protocol):
    """Utterances' frame features of one split, one at a time, with what made them."""

    spec: FeatureSpec
    manifest: str
    skipped: list[Skipped]

    def __iter__(self) -> Iterator[tuple[str, Tensor]]: ...

    def estimated_frames(self) -> int: ...


@dataclass
class ComputedFeatures:
    """Features computed on the fly from a manifest (audio decoded in ``num_workers`` processes)."""

    cuts: CutSet
    extractor: Extractor
    manifest: str
    max_duration: float = 200.0  # seconds of audio per batch
    num_workers: int = 0
    strict: bool = False  # fail on an unreadable recording instead of reporting and skipping it
    progress: bool = True
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def spec(self) -> FeatureSpec:
        return self.extractor.spec

    def estimated_frames(self) -> int:
        return int(sum(c.duration for c in self.cuts) * self.spec.frame_rate)

    def __iter__(self) -> Iterator[tuple[str, Tensor]]:
        from tqdm import tqdm

        self.skipped.clear()
        sampler = make_sampler(self.cuts, SamplerConfig(max_duration=self.max_duration, shuffle=False))
        loader = torch.utils.data.DataLoader(
            AudioDataset(strict=self.strict),
            sampler=sampler,
            batch_size=None,
            num_workers=self.num_workers,
            multiprocessing_context="forkserver" if self.num_workers > 0 else None,
        )
        total = len(self.cuts) if not self.cuts.is_lazy else None
        with tqdm(total=total, desc=f"features {Path(self.manifest).name}", unit="utt", disable=not self.progress) as bar:
            for batch in loader:
                for cut_id, reason in batch.skipped:
                    self.skipped.append(Skipped(cut_id, reason))
                bar.update(len(batch) + len(batch.skipped))
                if len(batch) == 0:
                    continue
                feats = self.extractor(batch.wavs, batch.lengths)
                finite = torch.stack([torch.isfinite(f).all() for f in feats]).tolist()  # one sync a batch
                for cut_id, f, ok in zip(batch.cut_ids, feats, finite):
                    if ok:
                        yield cut_id, f
                        continue
                    # audio that decodes but is not a signal (samples near 1e30, say): reported like unreadable audio
                    reason = f"{self.spec.describe()} features hold NaN or infinite values (is the audio a valid signal?)"
                    if self.strict:
                        raise ValueError(f"{self.manifest}: cut {cut_id}: {reason}")
                    log.warning("%s: cut %s: %s; skipped", self.manifest, cut_id, reason)
                    self.skipped.append(Skipped(cut_id, reason))


@dataclass
class _ShardMeta:
    path: Path  # the .json
    spec: FeatureSpec
    manifest: str
    dtype: str
    frames: int
    cuts: int


class DumpedFeatures:
    """Features of one split read back from a dump folder (all of its shards, in shard order)."""

    def __init__(self, folder: str | os.PathLike, progress: bool = True):
        self.folder = Path(folder)
        self.progress = progress
        self.skipped: list[Skipped] = []
        self.shards = _read_shards(self.folder)
        first = self.shards[0]
        for s in self.shards[1:]:
            why = first.spec.mismatch(s.spec)
            if why:
                raise ValueError(f"{s.path}: its features differ from {first.path.name}'s ({why})")
        self.spec = first.spec
        self.manifest = first.manifest

    def estimated_frames(self) -> int:
        return sum(s.frames for s in self.shards)

    def __iter__(self) -> Iterator[tuple[str, Tensor]]:
        from tqdm import tqdm

        with tqdm(total=sum(s.cuts for s in self.shards), desc=f"features {self.folder}", unit="utt", disable=not self.progress) as bar:
            for s in self.shards:
                data = np.memmap(s.path.with_suffix(".bin"), dtype=s.dtype, mode="r", shape=(s.frames, self.spec.dim))
                with open(s.path.with_suffix(".tsv"), encoding="utf-8") as f:
                    for line in f:
                        cut_id, start, n = line.split()
                        start, n = int(start), int(n)
                        yield cut_id, torch.from_numpy(np.array(data[start : start + n], dtype=np.float32))
                        bar.update(1)


def _read_shards(folder: Path) -> list[_ShardMeta]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: feature folder not found")
    found = {}
    for p in folder.iterdir():
        m = SHARD_RE.match(p.name)
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = p
    if not found:
        raise FileNotFoundError(f"{folder}: no finished feature shards (shard-<i>-of-<n>.json) in it")
    counts = {n for _, n in found}
    if len(counts) > 1:
        raise ValueError(f"{folder}: shards of different splittings ({sorted(counts)}); remove the stale ones")
    n = counts.pop()
    missing = [i for i in range(1, n + 1) if (i, n) not in found]
    if missing:
        raise ValueError(f"{folder}: shards {missing} of {n} are missing or unfinished; run 'speechssl features --shard i/{n}' for them")
    shards = []
    for i in range(1, n + 1):
        p = found[(i, n)]
        d = json.loads(p.read_text(encoding="utf-8"))
        shards.append(_ShardMeta(p, FeatureSpec.from_dict(d["feature"]), d["manifest"], d["dtype"], int(d["frames"]), int(d["cuts"])))
    return shards


def shard_name(index: int, count: int) -> str:
    return f"shard-{index}-of-{count}"


def dump_features(source: FrameSource, folder: str | os.PathLike, index: int = 1, count: int = 1, dtype: str = "float32") -> Path:
    """Write ``source``'s features as shard ``index`` of ``count`` in ``folder``; returns its ``.json``.

    The frames and the index are written under temporary names and renamed when complete; the
    ``.json`` comes last. Unreadable cuts are listed in ``shard-<i>-of-<n>.skipped.tsv``."""
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / shard_name(index, count)
    meta = base.with_suffix(".json")
    meta.unlink(missing_ok=True)  # we are rewriting this shard: it is not finished until the end
    frames = cuts = 0
    with atomic_path(base.with_suffix(".bin")) as tmp_bin, atomic_path(base.with_suffix(".tsv")) as tmp_tsv:
        with open(tmp_bin, "wb") as fb, open(tmp_tsv, "w", encoding="utf-8") as ft:
            for cut_id, feats in source:
                arr = feats.detach().cpu().numpy().astype(dtype, copy=False)
                fb.write(np.ascontiguousarray(arr).tobytes())
                ft.write(f"{cut_id}\t{frames}\t{arr.shape[0]}\n")
                frames += arr.shape[0]
                cuts += 1
    if source.skipped:
        with atomic_path(base.with_suffix(".skipped.tsv")) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.writelines(f"{escape_tsv(s.cut_id)}\t{escape_tsv(s.reason)}\n" for s in source.skipped)
    info = {
        "feature": source.spec.as_dict(),
        "manifest": str(Path(source.manifest).resolve()),
        "dtype": dtype,
        "frames": frames,
        "cuts": cuts,
        "skipped": len(source.skipped),
        "shard": [index, count],
    }
    atomic_write_text(meta, json.dumps(info, indent=2) + "\n")
    return meta


def is_feature_dump(path: str | os.PathLike) -> bool:
    """A feature folder of one split, or a folder of such folders (one per split)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if any(SHARD_RE.match(p.name) for p in path.iterdir()):
        return True
    return any(p.is_dir() and any(SHARD_RE.match(q.name) for q in p.iterdir()) for p in path.iterdir())


def split_manifests(data: str | os.PathLike) -> dict[str, Path]:
    """``data`` as split -> manifest: a corpus folder (cuts_<split>.jsonl.gz) or one manifest file."""
    data = Path(data)
    if data.is_dir():
        splits = find_splits(data)
        if not splits:
            raise FileNotFoundError(f"{data}: no cuts_<split>.jsonl.gz manifests in this folder")
        return splits
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no such manifest or folder")
    name = data.name
    for suffix in (".jsonl.gz", ".jsonl"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return {name[len("cuts_") :] if name.startswith("cuts_") else name: data}


def feature_dump_splits(data: str | os.PathLike) -> dict[str, Path]:
    """A feature dump as split -> folder (a single-split folder is named by its folder name)."""
    data = Path(data)
    if any(SHARD_RE.match(p.name) for p in data.iterdir()):
        return {data.name: data}
    return {p.name: p for p in sorted(data.iterdir()) if p.is_dir() and any(SHARD_RE.match(q.name) for q in p.iterdir())}


def open_manifest(path: str | os.PathLike, shard: tuple[int, int] = (1, 1)) -> CutSet:
    cuts = load_cuts(path)
    if cuts.is_lazy:
        cuts = cuts.to_eager()
    return shard_cuts(cuts, *shard)
