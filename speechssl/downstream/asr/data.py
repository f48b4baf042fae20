"""ASR data: a corpus split's cuts with normalised transcripts, the CTC vocabulary built from the
training transcripts, and padded batches of waveforms with their target ids."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from lhotse import CutSet

from speechssl.data.dataset import collate_audio, load_cut_batch
from speechssl.data.manifest import find_splits, load_cuts
from speechssl.downstream.asr.text import NORMALIZERS, CharVocab, SentencePieceVocab, normalize_generic, normalize_text

log = logging.getLogger(__name__)

TARGETS = ("char", "unigram", "bpe")


@dataclass
class TargetConfig:
    kind: str = "char"  # "char" (characters, '|' between words), or sentencepiece "unigram" / "bpe" trained on the training transcripts
    vocab_size: int = 0  # sentencepiece: ids including the blank (e.g. 300); char: unused (0)
    language: Optional[str] = None  # normalise every transcript as this language (en, de, es, fr, or another code: the common rules); null: each cut's own

    def __post_init__(self):
        if self.kind not in TARGETS:
            raise ValueError(f"target.kind must be one of {', '.join(TARGETS)}, found {self.kind!r}")
        if self.kind != "char" and self.vocab_size < 3:
            raise ValueError(f"target.kind {self.kind!r} needs target.vocab_size >= 3 (the sentencepiece ids plus the blank), found {self.vocab_size}")


@dataclass
class AsrDataConfig:
    corpus: Optional[str] = None  # corpus folder with cuts_<split>.jsonl.gz (speechssl prepare, make-mini-corpus, subset)
    train_split: str = "train"
    valid_split: Optional[str] = "dev"  # null: no validation
    languages: list[str] = field(default_factory=list)  # keep only cuts in these languages (empty: all)
    min_seconds: float = 0.5  # shorter training cuts are left out
    max_seconds: float = 30.0  # longer training cuts are left out
    num_workers: int = 0  # audio-loading worker processes (0: in the training process)
    strict: bool = False  # fail on an unreadable recording instead of logging it and leaving it out of its batch

    def __post_init__(self):
        if self.min_seconds < 0 or self.max_seconds <= self.min_seconds:
            raise ValueError(f"need 0 <= data.min_seconds < data.max_seconds, found {self.min_seconds} and {self.max_seconds}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, found {self.num_workers}")


def cut_text(cut, language: Optional[str] = None) -> str:
    """The cut's transcript (its supervisions' texts joined), normalised for ``language`` or, when it
    is None, for the supervision's own language; languages without a normaliser get the common rules."""
    sups = [s for s in cut.supervisions if s.text]
    text = " ".join(s.text for s in sups)
    lang = language or next((s.language for s in sups if s.language), None)
    return normalize_text(text, lang) if lang in NORMALIZERS else normalize_generic(text)


@dataclass
class AsrSplit:
    name: str
    cuts: CutSet
    texts: dict[str, str]  # cut id -> normalised transcript
    manifest: Path


def load_asr_split(cfg: AsrDataConfig, split: str, language: Optional[str] = None, *, train: bool = False) -> AsrSplit:
    """The cuts of ``split`` of ``cfg.corpus`` that have a transcript (and are of ``cfg.languages``;
    in training, of ``cfg.min_seconds`` .. ``cfg.max_seconds``), with their normalised transcripts."""
    if not cfg.corpus:
        raise ValueError("data.corpus is not set: give the corpus folder (--corpus DIR)")
    splits = find_splits(cfg.corpus)
    if split not in splits:
        raise FileNotFoundError(f"{cfg.corpus}: no split '{split}' (cuts_{split}.jsonl.gz); found {', '.join(sorted(splits)) or 'none'}")
    path = splits[split]
    cuts = CutSet.from_cuts(load_cuts(path))  # in memory: the texts are looked up by id, and small sets batch right
    total = len(cuts)
    if cfg.languages:
        wanted = set(cfg.languages)
        cuts = CutSet.from_cuts(c for c in cuts if any(s.language in wanted for s in c.supervisions))
        if len(cuts) == 0:
            found = sorted({s.language or "?" for c in load_cuts(path) for s in c.supervisions})
            raise ValueError(f"{path}: no cut in languages {sorted(wanted)}; the split has {', '.join(found)}")
    if train:
        cuts = CutSet.from_cuts(c for c in cuts if cfg.min_seconds <= c.duration <= cfg.max_seconds)
    texts = {c.id: cut_text(c, language) for c in cuts}
    empty = [cid for cid, t in texts.items() if not t]
    if empty:
        log.warning("%s: %d cuts have no transcript and are left out (e.g. %s)", path, len(empty), empty[0])
        for cid in empty:
            del texts[cid]
        cuts = CutSet.from_cuts(c for c in cuts if c.id in texts)
    if len(cuts) == 0:
        raise ValueError(f"{path}: no cut with a transcript left (of {total}; durations {cfg.min_seconds}-{cfg.max_seconds} s in training)")
    log.info("%s: %d of %d cuts, %.2f h", path, len(cuts), total, sum(c.duration for c in cuts) / 3600)
    return AsrSplit(split, cuts, texts, path)


def build_vocab(cfg: TargetConfig, texts: list[str], out_dir: str | os.PathLike):
    """Build the CTC vocabulary from the training transcripts and save it in ``out_dir``
    (``vocab.json`` for characters, ``vocab.model`` for sentencepiece); returns (vocab, path)."""
    out_dir = Path(out_dir)
    if cfg.kind == "char":
        vocab, path = CharVocab.build(texts), out_dir / "vocab.json"
        vocab.save(path)
    else:
        path = out_dir / "vocab.model"
        vocab = SentencePieceVocab.train(texts, cfg.vocab_size, path, model_type=cfg.kind)
    return vocab, path


def encode_texts(vocab, texts: dict[str, str], *, drop_unknown: bool, what: str = "transcripts") -> dict[str, list[int]]:
    """Target ids of each transcript. With ``drop_unknown`` characters the vocabulary lacks are left
    out (validation texts may hold characters the training texts never had), and a warning says
    which, how often and in how many transcripts; else they raise."""
    out = {}
    dropped: dict[str, int] = {}
    touched = 0
    for cid, text in texts.items():
        if drop_unknown:
            kept = vocab.drop_unknown(text)
            if len(kept) != len(text):
                touched += 1
                for c in text:
                    if not c.isspace() and c not in kept:
                        dropped[c] = dropped.get(c, 0) + 1
            text = kept
        try:
            out[cid] = vocab.encode(text)
        except ValueError as e:
            raise ValueError(f"the transcript of cut {cid}: {e}") from None
    if dropped:
        shown = ", ".join(f"{c!r} x{n}" for c, n in sorted(dropped.items(), key=lambda kv: -kv[1])[:10])
        log.warning("%s: %d of %d transcripts hold characters the vocabulary lacks, left out of their targets: %s",
                    what, touched, len(texts), shown)
    return out


@dataclass
class AsrBatch:
    wavs: torch.Tensor  # (B, S) float32, zero-padded
    wav_lens: torch.Tensor  # (B,) int64
    targets: torch.Tensor  # (sum of target lengths,) int64, concatenated
    target_lens: torch.Tensor  # (B,) int64
    cut_ids: list[str]
    epoch: int = 0
    index: int = 0  # the batch's position in its epoch's stream
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cut_ids)

    @property
    def seconds(self) -> float:
        return float(self.wav_lens.sum()) / 16000

    def to(self, device) -> "AsrBatch":
        return AsrBatch(
            self.wavs.to(device, non_blocking=True), self.wav_lens.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True), self.target_lens.to(device, non_blocking=True),
            self.cut_ids, self.epoch, self.index, self.skipped,
        )


class AsrDataset(torch.utils.data.Dataset):
    """Indexed by ``(epoch, index, cuts)`` from :class:`~speechssl.data.sampler.EpochStream` (or a
    plain CutSet); returns an :class:`AsrBatch`. Unreadable recordings are logged and left out."""

    def __init__(self, targets: dict[str, list[int]], *, strict: bool = False):
        self.targets, self.strict = targets, strict

    def __getitem__(self, item) -> AsrBatch:
        epoch, index, cuts = item if isinstance(item, tuple) else (0, 0, item)
        audio = collate_audio(*load_cut_batch(cuts, strict=self.strict))
        tgt = [self.targets[i] for i in audio.cut_ids]
        flat = torch.tensor([t for seq in tgt for t in seq], dtype=torch.int64)
        lens = torch.tensor([len(t) for t in tgt], dtype=torch.int64)
        return AsrBatch(audio.wavs, audio.lengths, flat, lens, audio.cut_ids, epoch, index, audio.skipped)
