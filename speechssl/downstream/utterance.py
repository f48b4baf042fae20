"""Utterance-level data for speaker verification and emotion recognition: the cuts of one or more
splits with a class label each (the speaker, or a supervision field such as ``custom["emotion4"]``
or the mini corpus's ``custom["style"]``), and padded batches of (optionally randomly cropped)
waveforms with their class ids.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from lhotse import CutSet

from speechssl.data.dataset import collate_audio, load_cut_batch
from speechssl.data.manifest import find_splits, load_cuts
from speechssl.downstream.trainer import DownstreamTrainer

log = logging.getLogger(__name__)

#: Supervision attributes a label can be read from; any other name is a key of ``custom``.
ATTRIBUTES = ("speaker", "language", "gender")


@dataclass
class UtteranceDataConfig:
    corpus: Optional[str] = None  # corpus folder with cuts_<split>.jsonl.gz (speechssl prepare, make-mini-corpus, subset)
    train_splits: list[str] = field(default_factory=lambda: ["train"])  # one or more splits trained on together (IEMOCAP: four sessions)
    valid_split: Optional[str] = "dev"  # null: no validation
    label: str = "speaker"  # the class: speaker, language, gender, or a key of the supervision's custom fields (style, emotion4)
    classes: list[str] = field(default_factory=list)  # the class names in order (empty: every label in the training data, sorted)
    languages: list[str] = field(default_factory=list)  # keep only cuts in these languages (empty: all)
    min_seconds: float = 0.5  # shorter training cuts are left out
    max_seconds: float = 30.0  # longer training cuts are left out
    crop_seconds: float = 0.0  # training: a random crop of at most this many seconds of each utterance (0: whole utterances)
    num_workers: int = 0  # audio-loading worker processes (0: in the training process)
    strict: bool = False  # fail on an unreadable recording instead of logging it and leaving it out of its batch

    def __post_init__(self):
        if not self.train_splits:
            raise ValueError("data.train_splits needs at least one split")
        if self.min_seconds < 0 or self.max_seconds <= self.min_seconds:
            raise ValueError(f"need 0 <= data.min_seconds < data.max_seconds, found {self.min_seconds} and {self.max_seconds}")
        if self.crop_seconds < 0:
            raise ValueError(f"data.crop_seconds must be >= 0, found {self.crop_seconds}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, found {self.num_workers}")


def cut_label(cut, name: str) -> Optional[str]:
    """The cut's ``name`` label from its first supervision: an attribute (speaker, language, gender)
    or a key of ``custom``; None when the cut has none."""
    for sup in cut.supervisions:
        value = getattr(sup, name, None) if name in ATTRIBUTES else (sup.custom or {}).get(name)
        if value is not None:
            return str(value)
    return None


@dataclass
class LabelledSplit:
    name: str  # the split names joined by "+"
    cuts: CutSet
    labels: dict[str, str]  # cut id -> class name
    manifests: list[Path]

    def counts(self) -> Counter:
        return Counter(self.labels.values())


def load_labelled_split(cfg: UtteranceDataConfig, splits: list[str] | str, *, train: bool = False, require_label: bool = True) -> LabelledSplit:
    """The cuts of ``splits`` of ``cfg.corpus`` with their ``cfg.label`` (of ``cfg.languages``; in
    training, of ``cfg.min_seconds`` .. ``cfg.max_seconds``). Cuts without the label are left out
    (logged); with ``require_label=False`` they are kept with no label (speaker verification's
    evaluation cuts need none)."""
    if not cfg.corpus:
        raise ValueError("data.corpus is not set: give the corpus folder (--corpus DIR)")
    splits = [splits] if isinstance(splits, str) else list(splits)
    found = find_splits(cfg.corpus)
    missing = [s for s in splits if s not in found]
    if missing:
        raise FileNotFoundError(f"{cfg.corpus}: no split {', '.join(repr(s) for s in missing)} (cuts_<split>.jsonl.gz); found {', '.join(sorted(found)) or 'none'}")
    paths = [found[s] for s in splits]
    cuts = [c for p in paths for c in load_cuts(p)]
    total = len(cuts)
    if cfg.languages:
        wanted = set(cfg.languages)
        cuts = [c for c in cuts if any(s.language in wanted for s in c.supervisions)]
    if train:
        cuts = [c for c in cuts if cfg.min_seconds <= c.duration <= cfg.max_seconds]
    labels = {c.id: lab for c in cuts if (lab := cut_label(c, cfg.label)) is not None}
    if require_label and len(labels) < len(cuts):
        unlabelled = [c.id for c in cuts if c.id not in labels]
        log.warning("%s: %d cuts have no %r label and are left out (e.g. %s)", "+".join(splits), len(unlabelled), cfg.label, unlabelled[0])
        cuts = [c for c in cuts if c.id in labels]
    if not cuts:
        where = ", ".join(str(p) for p in paths)
        raise ValueError(
            f"{where}: no cut left of {total} (label {cfg.label!r}, languages {cfg.languages or 'any'}"
            + (f", durations {cfg.min_seconds}-{cfg.max_seconds} s" if train else "") + ")"
        )
    ids = [c.id for c in cuts]
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise ValueError(f"{'+'.join(splits)}: cut id {dup!r} occurs more than once across the splits")
    log.info("%s: %d of %d cuts, %.2f h, %d classes", "+".join(splits), len(cuts), total, sum(c.duration for c in cuts) / 3600, len(set(labels.values())))
    return LabelledSplit("+".join(splits), CutSet.from_cuts(cuts), labels, paths)


def class_names(cfg: UtteranceDataConfig, train: LabelledSplit) -> list[str]:
    """The classes in order: ``cfg.classes``, checked against the training labels, or the sorted labels."""
    seen = set(train.labels.values())
    if not cfg.classes:
        return sorted(seen)
    unknown = sorted(seen - set(cfg.classes))
    if unknown:
        raise ValueError(f"{train.name}: labels {unknown} are not in data.classes {cfg.classes}")
    return list(cfg.classes)


@dataclass
class UtteranceBatch:
    wavs: torch.Tensor  # (B, S) float32, zero-padded
    wav_lens: torch.Tensor  # (B,) int64
    labels: torch.Tensor  # (B,) int64 class ids (-1: none)
    cut_ids: list[str]
    epoch: int = 0
    index: int = 0  # the batch's position in its epoch's stream
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cut_ids)

    @property
    def seconds(self) -> float:
        return float(self.wav_lens.sum()) / 16000

    def to(self, device) -> "UtteranceBatch":
        return UtteranceBatch(
            self.wavs.to(device, non_blocking=True), self.wav_lens.to(device, non_blocking=True),
            self.labels.to(device, non_blocking=True), self.cut_ids, self.epoch, self.index, self.skipped,
        )


class UtteranceDataset(torch.utils.data.Dataset):
    """Indexed by ``(epoch, index, cuts)`` from :class:`~speechssl.data.sampler.EpochStream` (or a
    plain CutSet); returns an :class:`UtteranceBatch`. With ``crop_samples`` each longer utterance is
    cut to a random window of that many samples, drawn from ``(seed, epoch, index)`` so that a
    resumed run sees the same crops. Unreadable recordings are logged and left out."""

    def __init__(self, labels: dict[str, int], *, crop_samples: int = 0, seed: int = 0, strict: bool = False):
        self.labels, self.crop_samples, self.seed, self.strict = labels, crop_samples, seed, strict

    def __getitem__(self, item) -> UtteranceBatch:
        from speechssl.pretrain.trainer import derived_seed

        epoch, index, cuts = item if isinstance(item, tuple) else (0, 0, item)
        wavs, ids, skipped = load_cut_batch(cuts, strict=self.strict)
        if self.crop_samples:
            rng = np.random.default_rng(derived_seed(self.seed, epoch, index))
            for i, w in enumerate(wavs):
                if w.shape[0] > self.crop_samples:
                    start = int(rng.integers(0, w.shape[0] - self.crop_samples + 1))
                    wavs[i] = w[start : start + self.crop_samples]
        audio = collate_audio(wavs, ids, skipped)
        labels = torch.tensor([self.labels.get(i, -1) for i in audio.cut_ids], dtype=torch.int64)
        return UtteranceBatch(audio.wavs, audio.lengths, labels, audio.cut_ids, epoch, index, audio.skipped)


@torch.no_grad()
def predict_cuts(model, cuts: CutSet, *, device, max_duration: float = 200.0, strict: bool = False, autocast=None):
    """Run ``model`` (a :class:`~speechssl.downstream.upstream.DownstreamModel`, in eval mode) over
    whole utterances of ``cuts``; yields ``(cut ids, head outputs (B, ...) as float32 on the CPU,
    skipped (cut id, problem) pairs)`` per batch, shortest utterances first (least padding)."""
    import contextlib

    from speechssl.data.sampler import SamplerConfig, make_sampler

    cuts = CutSet.from_cuts(sorted(cuts, key=lambda c: c.duration))
    sampler = make_sampler(cuts, SamplerConfig(max_duration=max_duration, shuffle=False, drop_last=False, num_buckets=1), world_size=1, rank=0)
    dataset = UtteranceDataset({}, strict=strict)
    model.eval()
    for batch_cuts in sampler:
        batch = dataset[batch_cuts]
        if not len(batch):
            yield [], torch.empty(0), batch.skipped
            continue
        padded = bool((batch.wav_lens < batch.wavs.shape[1]).any())
        b = batch.to(device)
        with autocast() if autocast is not None else contextlib.nullcontext():
            out, _ = model(b.wavs, b.wav_lens if padded else None)
        yield batch.cut_ids, out.float().cpu(), batch.skipped


class UtteranceTrainer(DownstreamTrainer):
    """What the speaker and emotion trainers share: labelled training splits, class ids, and
    (cropped) utterance batches. A task adds ``prepare_valid`` (setting ``valid_cuts``), the model,
    the loss, validation and export."""

    def prepare(self, upstream) -> None:
        d = self.cfg.data
        self.train_split = load_labelled_split(d, d.train_splits, train=True)
        self.classes = class_names(d, self.train_split)
        if len(self.classes) < 2:
            raise ValueError(f"{self.train_split.name}: a classifier needs at least 2 classes of {d.label!r}, found {self.classes}")
        self.class_ids = {c: i for i, c in enumerate(self.classes)}
        self.train_labels = {cid: self.class_ids[lab] for cid, lab in self.train_split.labels.items()}
        self.train_cuts = self.train_split.cuts
        self.valid_labels: dict[str, int] = {}
        self.prepare_valid()

    def prepare_valid(self) -> None:
        raise NotImplementedError

    def make_dataset(self, train: bool, crop: bool = True) -> UtteranceDataset:
        d = self.cfg.data
        samples = int(round(d.crop_seconds * 16000)) if train and crop else 0
        return UtteranceDataset(self.train_labels if train else self.valid_labels, crop_samples=samples, seed=self.cfg.run.seed, strict=d.strict)

    def predict(self, cuts: CutSet):
        """Head outputs over whole utterances of ``cuts``: ``(cut ids, (N, ...) tensor)``."""
        ids, outs = [], []
        for batch_ids, out, _ in predict_cuts(
            self.model, cuts, device=self.device, max_duration=self.cfg.sampler.max_duration, strict=self.cfg.data.strict, autocast=self.autocast
        ):
            ids += batch_ids
            outs.append(out)
        return ids, torch.cat(outs) if outs else torch.empty(0)

    def base_summary(self, last: dict[str, float]) -> dict:
        return {**super().base_summary(last), "label": self.cfg.data.label, "classes": len(self.classes), "train_splits": list(self.cfg.data.train_splits)}
