"""CTC ASR training on an encoder (frozen + head, adapters / LoRA, or fine-tuning), written out.

``AsrTrainer(cfg, exp).train()`` writes into ``exp``: ``config.yaml`` (resolved; the encoder path
made absolute), ``command.txt``, the vocabulary (``vocab.json`` or ``vocab.model``), ``log.jsonl``
and ``tensorboard/`` (training loss; validation loss, greedy CER and WER), ``checkpoints/step-N.pt``
(atomic; a re-run resumes from the newest and takes the same steps as an uninterrupted run), and at
the end the model: ``adapter.safetensors`` (adapters mode; a few MB) or ``encoder.safetensors``
(finetune mode), then ``summary.json`` and, last, ``model.safetensors`` (interface + head, with the
config, the vocabulary's name and the base encoder's fingerprint in its metadata).

The loss of a batch is the CTC loss summed over its utterances divided by their number.
Randomness is derived from (seed, step), and the data position is in the checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from lhotse import CutSet

from speechssl.data.sampler import SamplerConfig
from speechssl.downstream.asr.data import (
    AsrBatch,
    AsrDataConfig,
    AsrDataset,
    AsrSplit,
    TargetConfig,
    build_vocab,
    encode_texts,
    load_asr_split,
)
from speechssl.downstream.asr.decode import ctc_greedy
from speechssl.downstream.asr.metrics import error_rates
from speechssl.downstream.asr.model import AsrEncoderConfig, CTCModel, HeadConfig, build_ctc_model
from speechssl.downstream.asr.text import vocab_from_file
from speechssl.downstream.trainer import DownstreamTrainer
from speechssl.pretrain.checkpoint import latest_checkpoint
from speechssl.pretrain.trainer import OptimConfig, RunConfig

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "speechssl-asr-state"


@dataclass
class AsrConfig:
    encoder: AsrEncoderConfig = field(default_factory=AsrEncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    data: AsrDataConfig = field(default_factory=AsrDataConfig)
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(max_duration=200.0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, warmup_steps=1000, max_steps=20000, weight_decay=0.0, clip_norm=5.0))
    run: RunConfig = field(default_factory=lambda: RunConfig(log_every=50, valid_every=1000, save_every=1000))


def ctc_feasible(target_len: int, repeats: int, frames: int) -> bool:
    """Whether ``frames`` frames can emit a target of ``target_len`` ids with ``repeats`` adjacent
    repeated ids (each needs a blank between its copies)."""
    return frames >= target_len + repeats


def _repeats(ids: list[int]) -> int:
    return sum(a == b for a, b in zip(ids, ids[1:]))


class AsrTrainer(DownstreamTrainer):
    """Train a CTC model on ``cfg.data.corpus``; ``AsrTrainer(cfg, exp).train()``."""

    checkpoint_kind = CHECKPOINT_KIND
    name = "asr"

    # ---- setup ----
    def prepare(self, upstream) -> None:
        cfg = self.cfg
        self.train_split = load_asr_split(cfg.data, cfg.data.train_split, cfg.target.language, train=True)
        self.vocab, self.vocab_path = self._vocab()
        train_targets = encode_texts(self.vocab, self.train_split.texts, drop_unknown=False)
        self.train_split, self.train_targets = self._feasible(self.train_split, train_targets, upstream)
        self.train_cuts = self.train_split.cuts
        self.valid_split: Optional[AsrSplit] = None
        if cfg.data.valid_split:
            self.valid_split = load_asr_split(cfg.data, cfg.data.valid_split, cfg.target.language)
            self.valid_targets = encode_texts(self.vocab, self.valid_split.texts, drop_unknown=True, what=f"{self.valid_split.name} transcripts")
            self.valid_cuts = self.valid_split.cuts

    def build_model(self, upstream) -> CTCModel:
        return build_ctc_model(upstream, self.cfg.encoder, self.cfg.head, self.vocab.vocab_size)

    def _vocab(self):
        """The vocabulary: built from the training transcripts, or the one an earlier start of this
        run wrote (a resumed run must keep its ids)."""
        for name in ("vocab.json", "vocab.model"):
            path = self.exp / name
            if path.is_file() and latest_checkpoint(self.exp / "checkpoints") is not None:
                return vocab_from_file(path), path
        return build_vocab(self.cfg.target, list(self.train_split.texts.values()), self.exp)

    def _feasible(self, split: AsrSplit, targets: dict[str, list[int]], encoder) -> tuple[AsrSplit, dict[str, list[int]]]:
        """Leave out training cuts whose transcripts need more frames than the encoder gives them."""
        samples = torch.tensor([c.num_samples for c in split.cuts], dtype=torch.long)
        frames = encoder.output_lengths(samples).tolist()
        keep = {c.id for c, n in zip(split.cuts, frames) if ctc_feasible(len(targets[c.id]), _repeats(targets[c.id]), int(n))}
        dropped = len(split.cuts) - len(keep)
        if dropped:
            log.warning("%d training cuts have transcripts longer than their frames allow and are left out", dropped)
            if not keep:
                raise ValueError(f"{split.manifest}: every training transcript is longer than its audio's frames allow")
            split = AsrSplit(split.name, CutSet.from_cuts(c for c in split.cuts if c.id in keep), {k: split.texts[k] for k in keep}, split.manifest)
        return split, {k: targets[k] for k in keep}

    # ---- data ----
    def make_dataset(self, train: bool, crop: bool = True) -> AsrDataset:
        return AsrDataset(self.train_targets if train else self.valid_targets, strict=self.cfg.data.strict)

    def valid_batches(self) -> Iterator[AsrBatch]:
        assert self.valid_split is not None
        yield from self.eval_batches(self.valid_split.cuts)

    # ---- steps ----
    def _forward(self, batch: AsrBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-utterance CTC losses (B,), log-probs (B, T, V), frame lengths (B,))."""
        logits, lengths, b = self.forward(batch)
        log_probs = logits.float().log_softmax(-1)  # (B, T, V)
        losses = F.ctc_loss(
            log_probs.transpose(0, 1), b.targets, lengths, b.target_lens, blank=self.vocab.blank, reduction="none", zero_infinity=True
        )  # (B,)
        return losses, log_probs, lengths

    def compute_loss(self, batch: AsrBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        losses, _, _ = self._forward(batch)
        tokens = max(1, int(batch.target_lens.sum()))
        return losses.sum() / max(1, len(batch)), {"loss_per_token": losses.detach().sum() / tokens}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss (per utterance and per token) and greedy WER / CER."""
        self.model.eval()
        loss_sum, tokens, utts = 0.0, 0, 0
        refs, hyps = [], []
        limit = self.cfg.run.max_valid_batches
        for i, batch in enumerate(self.valid_batches()):
            if limit and i >= limit:
                break
            losses, log_probs, lengths = self._forward(batch)
            loss_sum += float(losses.sum())
            tokens += int(batch.target_lens.sum())
            utts += len(batch)
            for cid, ids in zip(batch.cut_ids, ctc_greedy(log_probs, lengths, blank=self.vocab.blank)):
                refs.append(self.valid_split.texts[cid])
                hyps.append(self.vocab.decode(ids))
        rates = error_rates(refs, hyps)
        return {"loss": loss_sum / max(1, utts), "loss_per_token": loss_sum / max(1, tokens), "wer": rates.wer, "cer": rates.cer}

    def valid_message(self, m: dict[str, float]) -> str:
        return f"loss {m['loss']:.3f}, CER {100 * m['cer']:.2f}%, WER {100 * m['wer']:.2f}%"

    def export(self, last: dict[str, float]) -> None:
        """Write the trained model: adapter or encoder weights, summary.json, then model.safetensors."""
        from speechssl.downstream.asr.store import save_ctc_model

        summary = {**self.base_summary(last), "vocab_size": self.vocab.vocab_size}
        save_ctc_model(self.model, self.cfg, self.vocab_path, self.base_fingerprint, self.exp, summary)
