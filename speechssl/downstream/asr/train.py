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

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F
from lhotse import CutSet

from speechssl.adapters.freeze import trainable_report
from speechssl.config import save_config, to_dict
from speechssl.data.sampler import EpochStream, SamplerConfig, make_sampler
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
from speechssl.metrics_log import MetricsLog
from speechssl.pretrain.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from speechssl.pretrain.trainer import OptimConfig, RunConfig, derived_seed, lr_factor

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


class AsrTrainer:
    """Train a CTC model on ``cfg.data.corpus``; ``AsrTrainer(cfg, exp).train()``."""

    def __init__(self, cfg: AsrConfig, exp_dir: str | os.PathLike, command: Optional[str] = None):
        from speechssl import load_encoder
        from speechssl.features.layer import encoder_fingerprint
        from speechssl.runtime import setup_device

        if not cfg.encoder.path:
            raise ValueError("encoder.path is not set: give the encoder to train on (--encoder PATH)")
        cfg = replace(cfg, encoder=replace(cfg.encoder, path=str(Path(cfg.encoder.path).resolve())))
        if cfg.data.corpus:
            cfg = replace(cfg, data=replace(cfg.data, corpus=str(Path(cfg.data.corpus).resolve())))
        self.cfg, self.exp = cfg, Path(exp_dir)
        run = cfg.run
        self.device = setup_device(run.device, threads=run.threads, keep_freed=run.keep_freed_memory, precision=run.precision)
        self.exp.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.exp / "config.yaml")
        if command:
            (self.exp / "command.txt").write_text(command + "\n", encoding="utf-8")

        encoder = load_encoder(cfg.encoder.path, allow_pickle=cfg.encoder.allow_pickle)
        self.base_fingerprint = encoder_fingerprint(encoder)
        self.train_split = load_asr_split(cfg.data, cfg.data.train_split, cfg.target.language, train=True)
        self.vocab, self.vocab_path = self._vocab()
        train_targets = encode_texts(self.vocab, self.train_split.texts, drop_unknown=False)
        self.train_split, train_targets = self._feasible(self.train_split, train_targets, encoder)
        self.train_targets = train_targets
        self.valid_split: Optional[AsrSplit] = None
        if cfg.data.valid_split:
            self.valid_split = load_asr_split(cfg.data, cfg.data.valid_split, cfg.target.language)
            self.valid_targets = encode_texts(self.vocab, self.valid_split.texts, drop_unknown=True)

        torch.manual_seed(run.seed)  # the interface's and head's initial weights
        self.model: CTCModel = build_ctc_model(encoder, cfg.encoder, cfg.head, self.vocab.vocab_size).to(self.device)
        self.report = trainable_report(self.model)
        log.info("%s", self.report)
        encoder_params = [p for p in self.model.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in encoder_params}
        other_params = [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": other_params, "lr": cfg.optim.lr}]
        if encoder_params:
            groups.append({"params": encoder_params, "lr": cfg.encoder.lr or cfg.optim.lr})
        fused = cfg.optim.fused if cfg.optim.fused is not None else self.device.type in ("cuda", "cpu")
        self.optimizer = torch.optim.AdamW(groups, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay, fused=fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg.optim))
        self.scaler = torch.amp.GradScaler("cuda", enabled=run.precision == "fp16")
        self.step, self.epoch, self.batches_in_epoch = 0, 0, 0
        self.audio_seconds, self.train_seconds = 0.0, 0.0
        self.ckpt_dir = self.exp / "checkpoints"
        if run.resume and (ckpt := latest_checkpoint(self.ckpt_dir)) is not None:
            self.load_state(ckpt)
        self.metrics_log = MetricsLog(self.exp)

    # ---- setup ----
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

    # ---- state ----
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        """The state the run changes: everything but the frozen encoder parameters."""
        frozen = {f"encoder.{n}" for n, p in self.model.encoder.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.model.state_dict().items() if k not in frozen}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self._trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "data": {"epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch, "audio_seconds": self.audio_seconds},
            "train_seconds": self.train_seconds,
            "base_fingerprint": self.base_fingerprint,
            "config": json.dumps(to_dict(self.cfg)),
        }

    def load_state(self, path: Path) -> None:
        state = load_checkpoint(path, map_location="cpu", kind=CHECKPOINT_KIND)
        if state.get("base_fingerprint") != self.base_fingerprint:
            raise ValueError(
                f"{path}: written for base encoder {str(state.get('base_fingerprint'))[:12]}, this run's encoder is "
                f"{self.base_fingerprint[:12]}; use another --exp or remove {self.ckpt_dir}"
            )
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        expected_missing = set(self.model.state_dict()) - set(self._trainable_state())
        if unexpected or set(missing) - expected_missing:
            raise ValueError(f"{path}: the checkpoint's model does not match this config (missing {sorted(set(missing) - expected_missing)[:5]}, unexpected {unexpected[:5]})")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.epoch = int(state["data"]["epoch"])
        self.batches_in_epoch = int(state["data"]["batches_in_epoch"])
        self.audio_seconds = float(state["data"]["audio_seconds"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        log.info("resumed from %s (step %d, epoch %d)", path, self.step, self.epoch)

    def save(self) -> Path:
        return save_checkpoint(self.ckpt_dir, self.step, self.state_dict(), keep=self.cfg.run.keep_checkpoints, kind=CHECKPOINT_KIND)

    # ---- data ----
    def _loader(self, targets: dict[str, list[int]], stream) -> torch.utils.data.DataLoader:
        workers = self.cfg.data.num_workers
        return torch.utils.data.DataLoader(
            AsrDataset(targets, strict=self.cfg.data.strict),
            sampler=stream,
            batch_size=None,
            num_workers=workers,
            multiprocessing_context="spawn" if workers > 0 else None,
            pin_memory=self.device.type == "cuda",
        )

    def _train_batches(self) -> Iterator[AsrBatch]:
        sampler = make_sampler(self.train_split.cuts, self.cfg.sampler, world_size=1, rank=0)
        for batch in self._loader(self.train_targets, EpochStream([sampler], self.epoch, self.batches_in_epoch)):
            self.epoch, self.batches_in_epoch = batch.epoch, batch.index + 1
            yield batch

    def valid_batches(self) -> Iterator[AsrBatch]:
        assert self.valid_split is not None
        cfg = SamplerConfig(**{**to_dict(self.cfg.sampler), "shuffle": False, "drop_last": False})
        sampler = make_sampler(self.valid_split.cuts, cfg, world_size=1, rank=0)
        yield from self._loader(self.valid_targets, sampler)

    # ---- steps ----
    def _autocast(self):
        p = self.cfg.run.precision
        if p == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)

    def _forward(self, batch: AsrBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-utterance CTC losses (B,), log-probs (B, T, V), frame lengths (B,))."""
        padded = bool((batch.wav_lens < batch.wavs.shape[1]).any())
        b = batch.to(self.device)
        with self._autocast():
            logits, lengths = self.model(b.wavs, b.wav_lens if padded else None)
        log_probs = logits.float().log_softmax(-1)  # (B, T, V)
        losses = F.ctc_loss(
            log_probs.transpose(0, 1), b.targets, lengths, b.target_lens, blank=self.vocab.blank, reduction="none", zero_infinity=True
        )  # (B,)
        return losses, log_probs, lengths

    def train_step(self, batch: AsrBatch) -> dict[str, float]:
        self.model.train()
        self.model.encoder_grad = (
            any(p.requires_grad for p in self.model.encoder.parameters()) and self.step >= self.cfg.encoder.freeze_steps
        )
        torch.manual_seed(derived_seed(self.cfg.run.seed, self.step))  # dropout
        losses, _, _ = self._forward(batch)
        loss = losses.sum() / max(1, len(batch))
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.cfg.optim.clip_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        tokens = max(1, int(batch.target_lens.sum()))
        values = torch.stack([loss.detach(), losses.detach().sum(), grad_norm.float()]).tolist()  # the step's one sync
        self.audio_seconds += batch.seconds
        return {
            "loss": values[0],
            "loss_per_token": values[1] / tokens,
            "grad_norm": values[2],
            "lr": self.scheduler.get_last_lr()[0],
            "audio_seconds": batch.seconds,
        }

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

    # ---- the loop ----
    def train(self) -> dict[str, float]:
        """Train to ``optim.max_steps``; returns the last validation metrics (or training metrics)."""
        from tqdm import tqdm

        cfg = self.cfg
        max_steps = cfg.optim.max_steps
        bar = tqdm(total=max_steps, initial=self.step, desc="asr", unit="step", disable=not cfg.run.progress, file=sys.stderr, dynamic_ncols=True)
        batches = self._train_batches()
        window: dict[str, float] = {}
        window_steps, window_start = 0, time.perf_counter()
        last: dict[str, float] = {}
        try:
            while self.step < max_steps:
                start = time.perf_counter()
                metrics = self.train_step(next(batches))
                self.train_seconds += time.perf_counter() - start
                for k, v in metrics.items():
                    window[k] = window.get(k, 0.0) + v
                window_steps += 1
                bar.set_postfix(loss=f"{metrics['loss']:.3f}")
                bar.update(1)
                if self.step % cfg.run.log_every == 0 or self.step == max_steps:
                    avg = {k: v / window_steps for k, v in window.items()}
                    avg["lr"], avg["audio_seconds"] = metrics["lr"], window["audio_seconds"]
                    avg["audio_seconds_per_second"] = window["audio_seconds"] / max(1e-9, time.perf_counter() - window_start)
                    self.metrics_log.write("train", self.step, self.epoch, avg)
                    last = avg
                    window, window_steps, window_start = {}, 0, time.perf_counter()
                if self.valid_split is not None and (self.step % cfg.run.valid_every == 0 or self.step == max_steps):
                    last = self.validate()
                    self.metrics_log.write("valid", self.step, self.epoch, last)
                    bar.write(f"step {self.step}: valid loss {last['loss']:.3f}, CER {100 * last['cer']:.2f}%, WER {100 * last['wer']:.2f}%")
                    window_start = time.perf_counter()
                if self.step % cfg.run.save_every == 0 or self.step == max_steps:
                    self.save()
        finally:
            bar.close()
            self.metrics_log.close()
        self.export(last)
        return last

    def export(self, last: dict[str, float]) -> None:
        """Write the trained model: adapter or encoder weights, summary.json, then model.safetensors."""
        from speechssl.downstream.asr.store import save_ctc_model

        summary = {
            "mode": self.cfg.encoder.mode,
            "steps": self.step,
            "epoch": self.epoch,  # 0-based epoch of the last step, and batches taken in it
            "batches_in_epoch": self.batches_in_epoch,
            "train_seconds": round(self.train_seconds, 2),
            "train_audio_hours": round(self.audio_seconds / 3600, 4),
            "train_cuts": len(self.train_split.cuts),
            "train_minutes_of_audio": round(sum(c.duration for c in self.train_split.cuts) / 60, 2),
            "trainable_params": self.report.trainable,
            "total_params": self.report.total,
            "trainable_by_group": {k: v[0] for k, v in self.report.by_group.items() if v[0]},
            "vocab_size": self.vocab.vocab_size,
            "last": last,
        }
        save_ctc_model(self.model, self.cfg, self.vocab_path, self.base_fingerprint, self.exp, summary)
