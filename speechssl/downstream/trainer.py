"""The training loop every downstream task shares (ASR, speaker verification, emotion).

A task subclasses :class:`DownstreamTrainer` and fills in its data, model, loss, validation and
export (the methods that raise ``NotImplementedError``). The base does the rest, the same way for
every task:

* the experiment folder: ``config.yaml`` (resolved; paths made absolute), ``command.txt``,
  ``log.jsonl`` and ``tensorboard/`` (:class:`~speechssl.metrics_log.MetricsLog`);
* the upstream (:func:`~speechssl.downstream.upstream.load_upstream`: an encoder, a randomly
  initialised one, or MFCC / fbank features) and its fingerprint, which ties checkpoints and the
  saved model to the weights they were trained on;
* AdamW with the encoder's trainable parameters in their own group (``encoder.lr``), warm-up and
  decay (:func:`~speechssl.pretrain.trainer.lr_factor`), gradient clipping, bf16 / fp16 autocast;
* checkpoints (atomic) of the trainable state only: the frozen encoder is never copied. Dropout
  seeds come from (seed, step) and the data position is stored, so a re-run resumes and takes the
  same steps as an uninterrupted run.

The config a trainer takes has the fields ``encoder`` (:class:`UpstreamConfig`), ``data`` (with
``corpus``, ``num_workers`` and ``strict``), ``sampler``, ``optim`` and ``run``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

from speechssl.config import save_config, to_dict
from speechssl.data.sampler import EpochStream, SamplerConfig, make_sampler
from speechssl.metrics_log import MetricsLog, StepWindow
from speechssl.nonfinite import StepGuard, check_finite, save_unless_skipping
from speechssl.pretrain.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from speechssl.pretrain.trainer import derived_seed, lr_factor

log = logging.getLogger(__name__)


class DownstreamTrainer:
    """Train a downstream model into ``exp_dir``; ``Trainer(cfg, exp).train()``."""

    checkpoint_kind = "speechssl-downstream-state"  # what load_checkpoint checks; one per task
    name = "downstream"  # the progress bar's label

    def __init__(self, cfg, exp_dir: str | os.PathLike, command: Optional[str] = None):
        from speechssl.adapters.freeze import trainable_report
        from speechssl.downstream.upstream import load_upstream, upstream_fingerprint
        from speechssl.runtime import setup_device

        if cfg.encoder.kind == "encoder" and not cfg.encoder.path:
            raise ValueError("encoder.path is not set: give the encoder to train on (--encoder PATH), or encoder.kind=mfcc|fbank")
        if cfg.encoder.path:
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

        upstream = load_upstream(cfg.encoder, seed=run.seed)
        self.base_fingerprint = upstream_fingerprint(upstream)
        self.prepare(upstream)
        torch.manual_seed(run.seed)  # the interface's and head's initial weights
        self.model = self.build_model(upstream).to(self.device)
        self.ckpt_dir = self.exp / "checkpoints"
        resuming = run.resume and latest_checkpoint(self.ckpt_dir) is not None
        if getattr(self.model, "norm", None) is not None and not resuming:
            self.measure_norm()
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
        self.guard = StepGuard(cfg.optim.nonfinite_patience, str(self.exp), scaler_enabled=self.scaler.is_enabled())
        self.step, self.epoch, self.batches_in_epoch = 0, 0, 0
        self.audio_seconds, self.train_seconds = 0.0, 0.0
        if run.resume and (ckpt := latest_checkpoint(self.ckpt_dir)) is not None:
            self.load_state(ckpt)
        self.metrics_log = MetricsLog(self.exp, start_step=self.step)

    # ---- what a task fills in ----
    def prepare(self, upstream: torch.nn.Module) -> None:
        """Load the training (and validation) data; runs before the model is built."""
        raise NotImplementedError

    def build_model(self, upstream: torch.nn.Module) -> torch.nn.Module:
        """The model to train: a :class:`~speechssl.downstream.upstream.DownstreamModel` (``.encoder``)."""
        raise NotImplementedError

    def make_dataset(self, train: bool, crop: bool = True) -> torch.utils.data.Dataset:
        """A map dataset indexed by ``(epoch, index, cuts)`` returning a batch with ``wavs``,
        ``wav_lens``, ``epoch``, ``index``, ``seconds``, ``to(device)`` and ``len()``; of the training
        data (``crop``: with its random crops, if any) or of the validation data."""
        raise NotImplementedError

    def compute_loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss to minimise, {name: 0-dim tensor to log})`` of a training batch."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        raise NotImplementedError

    def valid_message(self, metrics: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())

    def export(self, last: dict[str, float]) -> None:
        """Write the trained model into the experiment folder."""
        raise NotImplementedError

    train_cuts: Any = None  # the training CutSet (set by prepare)
    valid_cuts: Any = None  # the validation CutSet, or None

    # ---- state ----
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The state the run changes: everything but the frozen encoder parameters."""
        frozen = {f"encoder.{n}" for n, p in self.model.encoder.named_parameters() if not p.requires_grad}
        return {k: v for k, v in self.model.state_dict().items() if k not in frozen}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "data": {"epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch, "audio_seconds": self.audio_seconds},
            "train_seconds": self.train_seconds,
            "base_fingerprint": self.base_fingerprint,
            "config": json.dumps(to_dict(self.cfg)),
        }

    def load_state(self, path: Path) -> None:
        state = load_checkpoint(path, map_location="cpu", kind=self.checkpoint_kind)
        if state.get("base_fingerprint") != self.base_fingerprint:
            raise ValueError(
                f"{path}: written for base encoder {str(state.get('base_fingerprint'))[:12]}, this run's encoder is "
                f"{self.base_fingerprint[:12]}; use another --exp or remove {self.ckpt_dir}"
            )
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        expected_missing = set(self.model.state_dict()) - set(self.trainable_state())
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
        check_finite(self.trainable_state(), f"{self.ckpt_dir}: checkpoint of step {self.step}")  # never a diverged model
        return save_checkpoint(self.ckpt_dir, self.step, self.state_dict(), keep=self.cfg.run.keep_checkpoints, kind=self.checkpoint_kind)

    # ---- data ----
    def loader(self, dataset, sampler) -> torch.utils.data.DataLoader:
        workers = self.cfg.data.num_workers
        return torch.utils.data.DataLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            num_workers=workers,
            multiprocessing_context="spawn" if workers > 0 else None,
            pin_memory=self.device.type == "cuda",
        )

    def train_batches(self) -> Iterator:
        sampler = make_sampler(self.train_cuts, self.cfg.sampler, world_size=1, rank=0)
        for batch in self.loader(self.make_dataset(train=True), EpochStream([sampler], self.epoch, self.batches_in_epoch)):
            self.epoch, self.batches_in_epoch = batch.epoch, batch.index + 1
            yield batch

    def eval_batches(self, cuts, train_data: bool = False) -> Iterator:
        """Batches of ``cuts`` in order, whole utterances (no shuffling, cropping or dropping); of
        the validation data, or with ``train_data`` of the training data."""
        cfg = SamplerConfig(**{**to_dict(self.cfg.sampler), "shuffle": False, "drop_last": False})
        dataset = self.make_dataset(train=False) if not train_data else self.make_dataset(train=True, crop=False)
        yield from self.loader(dataset, make_sampler(cuts, cfg, world_size=1, rank=0))

    def measure_norm(self) -> None:
        """The hidden-state statistics of ``encoder.normalize``, from the first
        ``encoder.normalize_utterances`` training utterances (whole, before any training)."""
        from lhotse import CutSet

        from speechssl.downstream.upstream import measure_hidden_state_stats

        cuts = CutSet.from_cuts(list(self.train_cuts)[: self.cfg.encoder.normalize_utterances])
        self.model.eval()
        frames = measure_hidden_state_stats(self.model.encoder, self.eval_batches(cuts, train_data=True), self.model.norm, self.device)
        log.info("hidden-state statistics from %d utterances (%d frames)", len(cuts), frames)

    # ---- steps ----
    def autocast(self):
        p = self.cfg.run.precision
        if p == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)

    def forward(self, batch):
        """``(head output, frame lengths (B,), the batch on the device)``; the model gets lengths
        (and builds padding masks) only when the batch is padded."""
        padded = bool((batch.wav_lens < batch.wavs.shape[1]).any())
        b = batch.to(self.device)
        with self.autocast():
            out, lengths = self.model(b.wavs, b.wav_lens if padded else None)
        return out, lengths, b

    def train_step(self, batch) -> dict[str, float]:
        self.model.train()
        self.model.encoder_grad = (
            any(p.requires_grad for p in self.model.encoder.parameters()) and self.step >= self.cfg.encoder.freeze_steps
        )
        torch.manual_seed(derived_seed(self.cfg.run.seed, self.step))  # dropout
        loss, stats = self.compute_loss(batch)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.cfg.optim.clip_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        names = ["loss", "grad_norm", *stats]
        values = torch.stack([loss.detach().float(), grad_norm.float(), *(v.detach().float() for v in stats.values())]).tolist()  # the step's one sync
        applied = self.guard.apply(self.step + 1, values[0], values[1], hint=f"Lower optim.lr (now {self.cfg.optim.lr:g})")
        if applied:
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.audio_seconds += batch.seconds
        return {**dict(zip(names, values)), "lr": self.scheduler.get_last_lr()[0], "audio_seconds": batch.seconds, "skipped": 0.0 if applied else 1.0}

    # ---- the loop ----
    def train(self) -> dict[str, float]:
        """Train to ``optim.max_steps``; returns the last validation metrics (or training metrics)."""
        from tqdm import tqdm

        cfg = self.cfg
        max_steps = cfg.optim.max_steps
        bar = tqdm(total=max_steps, initial=self.step, desc=self.name, unit="step", disable=not cfg.run.progress, file=sys.stderr, dynamic_ncols=True)
        batches = self.train_batches()
        window = StepWindow()
        last: dict[str, float] = {}
        validating = self.valid_cuts is not None
        try:
            while self.step < max_steps:
                start = time.perf_counter()
                metrics = self.train_step(next(batches))
                self.train_seconds += time.perf_counter() - start
                window.add(metrics)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}")
                bar.update(1)
                if self.step % cfg.run.log_every == 0 or self.step == max_steps:
                    last = window.record(metrics["lr"])
                    self.metrics_log.write("train", self.step, self.epoch, last)
                    window.reset()
                if validating and (self.step % cfg.run.valid_every == 0 or self.step == max_steps):
                    last = self.validate()
                    self.metrics_log.write("valid", self.step, self.epoch, last)
                    bar.write(f"step {self.step}: valid {self.valid_message(last)}")
                    window.restart_clock()
                if self.step % cfg.run.save_every == 0 or self.step == max_steps:
                    save_unless_skipping(self.guard, self.step, self.save)
        finally:
            bar.close()
            self.metrics_log.close()
        self.export(last)
        return last

    def base_summary(self, last: dict[str, float]) -> dict[str, Any]:
        """What every task's summary.json holds: the run's length, data and trainable parameters."""
        return {
            "mode": self.cfg.encoder.mode,
            "upstream": self.cfg.encoder.describe,
            "steps": self.step,
            "epoch": self.epoch,  # 0-based epoch of the last step, and batches taken in it
            "batches_in_epoch": self.batches_in_epoch,
            "train_seconds": round(self.train_seconds, 2),
            "train_audio_hours": round(self.audio_seconds / 3600, 4),
            "train_cuts": len(self.train_cuts),
            "train_minutes_of_audio": round(sum(c.duration for c in self.train_cuts) / 60, 2),
            "trainable_params": self.report.trainable,
            "total_params": self.report.total,
            "trainable_by_group": {k: v[0] for k, v in self.report.by_group.items() if v[0]},
            "last": last,
        }
