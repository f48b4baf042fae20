"""Pretraining data: cuts with their frame labels (one or more label sets) and topic labels,
cropped at random and batched with the labels kept aligned to the model's frames.

Alignment. The model's frame ``t`` (``downsample_rate`` samples apart, 50 Hz for the standard conv
stack) gets label ``floor(t * label_rate / frame_rate)`` of its utterance: labels at 100 Hz (MFCC)
are subsampled by 2, labels at 50 Hz map one to one (fairseq's ``feat2tar_ratio``). A crop starts
on a frame boundary (a multiple of ``downsample_rate`` samples), so frame ``t`` of a crop starting
at frame ``k`` is frame ``k + t`` of the utterance and takes that frame's label.

Cropping. Each utterance longer than ``crop_seconds`` is cropped at random to it; with
``pad=False`` (fairseq's ``pad_audio=False``, HuBERT's default) every item of a batch is then
cropped to the batch's shortest item, so batches have no padding at all. Crop positions are drawn
from a generator seeded by (seed, epoch, the batch's cut ids): the same batch gets the same crops
whether it is loaded in a worker or not, and after a resume.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from lhotse import CutSet

from speechssl.data.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError
from speechssl.data.dataset import load_cut_batch
from speechssl.data.manifest import load_cuts
from speechssl.labels.store import read_label_dir
from speechssl.models.components import conv_output_lengths
from speechssl.pretrain.model import IGNORE

log = logging.getLogger(__name__)


@dataclass
class PretrainDataConfig:
    labels: list[str] = field(default_factory=list)  # label folders (speechssl kmeans label), one per label set
    topics: Optional[str] = None  # topic folder (speechssl topics label) for the HuBERTopic loss
    train_split: str = "train"  # split of the label folders to train on
    valid_split: Optional[str] = "dev"  # split to validate on (null: no validation)
    crop_seconds: float = 15.625  # fairseq max_sample_size (250000 samples)
    min_seconds: float = 0.5  # shorter utterances are left out of training
    pad: bool = False  # True: pad items to the batch's longest; False: crop to its shortest (fairseq pad_audio)
    label_tolerance: float = 0.1  # seconds a label sequence may differ from its audio's duration
    num_workers: int = 2  # audio-loading worker processes (0: in the training process)
    strict: bool = False  # fail on an unreadable recording instead of logging it and leaving it out of its batch

    def __post_init__(self):
        if self.crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be > 0, found {self.crop_seconds}")
        if self.min_seconds < 0 or self.label_tolerance < 0 or self.num_workers < 0:
            raise ValueError("min_seconds, label_tolerance and num_workers must be >= 0")


@dataclass
class LabelSet:
    """The labels of one split from one label folder."""

    path: Path
    num_units: int
    rate: float  # labels per second
    labels: dict[str, np.ndarray]  # cut id -> units


@dataclass
class TopicTargets:
    path: Path
    num_topics: int
    hard: dict[str, int]
    soft: dict[str, np.ndarray]  # cut id -> (num_topics,) float32


@dataclass
class SplitData:
    cuts: CutSet  # eager, only cuts that have every label
    label_sets: list[LabelSet]
    topics: Optional[TopicTargets]
    manifest: Path


def load_split(cfg: PretrainDataConfig, split: str) -> SplitData:
    """The cuts of ``split`` (the manifest the first label folder labelled) with their labels;
    cuts missing a label (skipped when labelling) are left out and counted in the log."""
    if not cfg.labels:
        raise ValueError("data.labels lists no label folder: pretraining needs at least one (speechssl kmeans label)")
    dirs = [read_label_dir(p) for p in cfg.labels]
    first = dirs[0]
    if split not in first.splits:
        raise ValueError(f"{first.path}: no labels for split '{split}'; it has {', '.join(first.splits) or 'none'}")
    manifest = Path(first.splits[split].manifest)
    sets = []
    for d in dirs:
        info = d.splits.get(split)
        if info is None:
            raise ValueError(f"{d.path}: no labels for split '{split}'; it has {', '.join(d.splits) or 'none'}")
        if Path(info.manifest).resolve() != manifest.resolve():
            raise ValueError(
                f"{d.path}: split '{split}' labels {info.manifest}, but {first.path} labels {manifest}: "
                "every label set must label the same manifest"
            )
        sets.append(LabelSet(d.path, d.num_units, d.frame_rate, d.read(split)))
    topics = None
    if cfg.topics:
        from speechssl.labels.topics import read_topic_dir  # scikit-learn: imported only when used

        tdir = read_topic_dir(cfg.topics)
        _check_topics(tdir, dirs, split, manifest)
        ids, dist = tdir.read_dist(split)
        topics = TopicTargets(Path(cfg.topics), tdir.num_topics, tdir.read(split), dict(zip(ids.tolist(), dist)))
    cuts = load_cuts(manifest).to_eager()
    keep, missing, no_topic, short = [], 0, 0, 0
    for cut in cuts:
        if cut.duration < cfg.min_seconds:
            short += 1
        elif not all(cut.id in s.labels for s in sets):
            missing += 1
        elif topics is not None and cut.id not in topics.hard:
            no_topic += 1
        else:
            keep.append(cut)
    if missing or no_topic or short:
        log.warning(
            "%s split %s: %d of %d cuts left out (%d without labels, %d without a topic label, %d shorter than %.2f s)",
            manifest, split, missing + no_topic + short, len(cuts), missing, no_topic, short, cfg.min_seconds,
        )
    if not keep:
        raise ValueError(f"{manifest}: no cut of split '{split}' has labels in {', '.join(map(str, cfg.labels))}")
    for s in sets:
        _check_label_lengths(s, keep, cfg.label_tolerance)
    return SplitData(CutSet.from_cuts(keep), sets, topics, manifest)


def _check_topics(tdir, label_dirs: list, split: str, manifest: Path) -> None:
    """A topic folder goes with the label folders it is trained with: topics of the units of the
    same k-means model (so the same features and frame rate), over the same manifest."""
    match = [d for d in label_dirs if not tdir.kmeans_id or not d.kmeans_id or d.kmeans_id == tdir.kmeans_id]
    if not match:
        theirs = ", ".join(f"{d.path} ({d.kmeans_id[:12]})" for d in label_dirs)
        raise ValueError(
            f"{tdir.path}: topic labels of the units of k-means model {tdir.kmeans_id[:12]} ({tdir.label_dir}), "
            f"but the label folders are of other k-means models: {theirs}; label the topics of these units "
            "(speechssl topics label --model ... LABEL_DIR OUT_DIR)"
        )
    labels = match[0]
    if tdir.num_units != labels.num_units:
        raise ValueError(f"{tdir.path}: a topic model of {tdir.num_units} units, but {labels.path} has {labels.num_units}")
    source = Path(tdir.label_dir)
    if source.resolve() == Path(labels.path).resolve():
        return
    try:  # the label folder the topics were made from, if it is still there: its manifest and frame rate
        src = read_label_dir(source)
    except (FileNotFoundError, ValueError):
        return
    if split in src.splits and Path(src.splits[split].manifest).resolve() != manifest.resolve():
        raise ValueError(
            f"{tdir.path}: its topic labels of split '{split}' are of {src.splits[split].manifest} (through {source}), "
            f"but {labels.path} labels {manifest}: topic and unit labels must label the same manifest"
        )
    if src.frame_rate != labels.frame_rate:
        raise ValueError(f"{tdir.path}: topics of units at {src.frame_rate:g} Hz ({source}), but {labels.path} is at {labels.frame_rate:g} Hz")


def _check_label_lengths(label_set: LabelSet, cuts: list, tolerance: float) -> None:
    for cut in cuts:
        n = len(label_set.labels[cut.id])
        expected = cut.duration * label_set.rate
        if abs(n - expected) > tolerance * label_set.rate + 2:
            raise ValueError(
                f"{label_set.path}: cut '{cut.id}' has {n} labels, but {cut.duration:.3f} s at {label_set.rate:g} Hz "
                f"is {expected:.0f}: these labels belong to other audio or another frame rate"
            )


@dataclass
class PretrainBatch:
    wavs: torch.Tensor  # (B, S) float32
    wav_lens: torch.Tensor  # (B,) samples
    frame_lens: torch.Tensor  # (B,) model frames
    targets: list[torch.Tensor]  # per label set (B, T) long, IGNORE where unlabelled
    topic_hard: Optional[torch.Tensor]  # (B,) long
    topic_soft: Optional[torch.Tensor]  # (B, num_topics) float32
    cut_ids: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    epoch: int = 0  # where the batch is in the data stream (for resuming)
    index: int = 0

    def __len__(self) -> int:
        return len(self.cut_ids)

    @property
    def seconds(self) -> float:
        return float(self.wav_lens.sum()) / SAMPLE_RATE

    def to(self, device) -> "PretrainBatch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return PretrainBatch(
            move(self.wavs), move(self.wav_lens), move(self.frame_lens), [move(t) for t in self.targets],
            move(self.topic_hard), move(self.topic_soft), self.cut_ids, self.skipped, self.epoch, self.index,
        )


def _batch_seed(seed: int, epoch: int, cut_ids: list[str]) -> int:
    h = hashlib.sha256(f"{seed}:{epoch}:{'|'.join(cut_ids)}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


class PretrainDataset(torch.utils.data.Dataset):
    """Map-style dataset indexed by ``(epoch, index, cuts)``: a batch of cuts from a lhotse
    sampler and its place in the stream (use with ``DataLoader(..., batch_size=None)``); returns a
    :class:`PretrainBatch`. A plain CutSet is read as ``(0, 0, cuts)``."""

    def __init__(
        self,
        data: SplitData,
        conv_layers: list[tuple[int, int, int]],
        cfg: PretrainDataConfig,
        *,
        seed: int = 0,
        random_crop: bool = True,
        strict: bool = False,
    ):
        self.data, self.cfg = data, cfg
        self.conv_layers = [tuple(c) for c in conv_layers]
        self.downsample = int(np.prod([s for _, _, s in self.conv_layers]))
        self.frame_rate = SAMPLE_RATE / self.downsample
        self.seed, self.random_crop, self.strict = seed, random_crop, strict

    def _frames(self, num_samples: int) -> int:
        return int(conv_output_lengths(torch.tensor([num_samples]), self.conv_layers)[0])

    def __getitem__(self, item) -> PretrainBatch:
        epoch, index, cuts = item if isinstance(item, tuple) else (0, 0, item)
        wavs, ids, skipped = load_cut_batch(cuts, strict=self.strict, min_samples=max(MIN_SAMPLES, self.conv_layers[0][1]))
        if not wavs:
            raise AudioError(f"batch of {len(cuts)} cuts", f"no readable audio ({'; '.join(p for _, p in skipped)})")
        gen = torch.Generator().manual_seed(_batch_seed(self.seed, epoch, ids))
        crop = int(self.cfg.crop_seconds * SAMPLE_RATE)
        lengths = [min(len(w), crop) for w in wavs]
        if not self.cfg.pad:
            lengths = [min(lengths)] * len(wavs)
        starts = []  # first frame of each crop
        for w, n in zip(wavs, lengths):
            spare_frames = (len(w) - n) // self.downsample
            if spare_frames > 0 and self.random_crop:
                starts.append(int(torch.randint(0, spare_frames + 1, (1,), generator=gen)))
            else:
                starts.append(0)
        B, S = len(wavs), max(lengths)
        out = torch.zeros(B, S, dtype=torch.float32)  # (B, S)
        for i, (w, n, k) in enumerate(zip(wavs, lengths, starts)):
            s0 = k * self.downsample
            out[i, :n] = torch.from_numpy(w[s0 : s0 + n])
        wav_lens = torch.tensor(lengths, dtype=torch.long)
        frame_lens = conv_output_lengths(wav_lens, self.conv_layers)
        T = int(frame_lens.max())
        targets = []
        for label_set in self.data.label_sets:
            ratio = label_set.rate / self.frame_rate
            tgt = torch.full((B, T), IGNORE, dtype=torch.long)
            for i, (cid, k, n) in enumerate(zip(ids, starts, frame_lens.tolist())):
                units = label_set.labels[cid]
                idx = np.floor((np.arange(n) + k) * ratio + 1e-6).astype(np.int64)  # frame k+t of the utterance
                ok = idx < len(units)
                tgt[i, : int(ok.sum())] = torch.from_numpy(units[idx[ok]].astype(np.int64))
            targets.append(tgt)
        topic_hard = topic_soft = None
        if self.data.topics is not None:
            topic_hard = torch.tensor([self.data.topics.hard[c] for c in ids], dtype=torch.long)
            topic_soft = torch.from_numpy(np.stack([self.data.topics.soft[c] for c in ids]).astype(np.float32))
        return PretrainBatch(out, wav_lens, frame_lens, targets, topic_hard, topic_soft, ids, skipped, epoch, index)
