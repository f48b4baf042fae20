"""The pretraining loop, written out: no training framework.

One optimizer step = ``accum_steps`` micro-batches on each of ``world_size`` ranks. Before the
forward passes, the step's masks are drawn and the labelled masked / unmasked frames and the
utterances are counted and summed over micro-batches and ranks; each micro-batch's loss is its
loss *sum* divided by those step-wide counts. So the update is the same whether the step's audio
comes as one batch, as micro-batches (gradient accumulation) or spread over ranks (DDP):
``torchrun --nproc_per_node 2`` with ``accum_steps=1`` equals one process with ``accum_steps=2``.

Randomness is derived, not carried: the masks, the utterance mixing and the global torch RNG
(dropout, layer drop) of step ``s`` on rank ``r`` come from seeds made of (seed, s, r, micro-batch),
and the crops from (seed, epoch, cut ids). With the position in the data stream stored in the
checkpoint, a resumed run takes exactly the steps the uninterrupted run would have taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from speechssl.config import save_config, to_dict
from speechssl.data.sampler import EpochStream, SamplerConfig, make_sampler
from speechssl.metrics_log import MetricsLog, StepWindow
from speechssl.models.encoder import EncoderConfig, SSLEncoder, build_encoder
from speechssl.nonfinite import StepGuard, check_finite, save_unless_skipping
from speechssl.pretrain.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from speechssl.pretrain.data import PretrainBatch, PretrainDataConfig, PretrainDataset, SplitData, load_split
from speechssl.pretrain.masking import MaskingConfig, span_mask
from speechssl.pretrain.mixing import MixingConfig, NoiseSource, mix_utterances
from speechssl.pretrain.model import IGNORE, PredictionConfig, PretrainModel, TopicLossConfig

log = logging.getLogger(__name__)


@dataclass
class EncoderSpec:
    preset: str = "hubert_base"  # a name from speechssl.models.presets
    overrides: dict[str, Any] = field(default_factory=dict)  # EncoderConfig fields to change, e.g. num_layers: 4
    init_from: Optional[str] = None  # start from this encoder (anything load_encoder reads) instead of random weights


@dataclass
class OptimConfig:
    lr: float = 5e-4  # peak learning rate (HuBERT Base: 5e-4)
    betas: tuple[float, float] = (0.9, 0.98)  # adam_betas
    eps: float = 1e-6  # adam_eps
    weight_decay: float = 0.01
    warmup_steps: int = 32000  # linear warm-up from 0
    max_steps: int = 400000  # total optimizer steps (max_update)
    decay: str = "linear"  # after warm-up: "linear" (fairseq polynomial_decay, power 1), "cosine" or "constant"
    final_lr_ratio: float = 0.0  # the learning rate at max_steps, as a fraction of lr
    clip_norm: float = 10.0  # gradient clipping by global norm (0: off)
    accum_steps: int = 1  # micro-batches per optimizer step (fairseq update_freq)
    fused: Optional[bool] = None  # fused AdamW (None: wherever torch supports it)
    # steps in a row with a non-finite loss or gradient norm that are skipped (not applied) before
    # training stops with an error (0: stop at the first); see speechssl.nonfinite
    nonfinite_patience: int = 5

    def __post_init__(self):
        if self.nonfinite_patience < 0:
            raise ValueError(f"nonfinite_patience must be >= 0, found {self.nonfinite_patience}")
        if self.decay not in ("linear", "cosine", "constant"):
            raise ValueError(f"decay must be 'linear', 'cosine' or 'constant', found {self.decay!r}")
        if self.max_steps < 1 or self.accum_steps < 1 or self.warmup_steps < 0:
            raise ValueError("max_steps and accum_steps must be >= 1, warmup_steps >= 0")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, found {self.lr}")


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"  # auto (GPU when present), cpu, cuda[:N]
    precision: str = "fp32"  # "fp32", "bf16" or "fp16" (autocast; fp16 with a grad scaler)
    log_every: int = 50  # optimizer steps between log lines
    valid_every: int = 1000  # optimizer steps between validations (and at the end)
    save_every: int = 1000  # optimizer steps between checkpoints (and at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept
    resume: bool = True  # continue from the newest checkpoint in <exp>/checkpoints when there is one
    threads: int = 0  # torch intra-op threads on CPU (0: torch's default)
    progress: bool = True  # tqdm bar with loss and seconds of audio per second
    max_valid_batches: int = 0  # 0: the whole validation split
    keep_freed_memory: bool = True  # on CPU: glibc malloc keeps freed memory (no page faults per step)

    def __post_init__(self):
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16', found {self.precision!r}")
        if min(self.log_every, self.valid_every, self.save_every) < 1:
            raise ValueError("log_every, valid_every and save_every must be >= 1")


@dataclass
class PretrainConfig:
    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
    topic: TopicLossConfig = field(default_factory=TopicLossConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    mixing: MixingConfig = field(default_factory=MixingConfig)
    noise: Optional[str] = None  # noise manifest (e.g. MUSAN through lhotse) for mixing.noise_prob
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(max_duration=87.5))  # HuBERT Base: 1.4M samples per GPU
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


def build_pretrain_encoder(spec: EncoderSpec) -> SSLEncoder:
    from speechssl.models.presets import preset

    if spec.init_from:
        from speechssl import load_encoder

        encoder = load_encoder(spec.init_from)
        if spec.overrides:
            raise ValueError("encoder.overrides cannot change an encoder loaded with encoder.init_from")
        return encoder
    return build_encoder(preset(spec.preset, **spec.overrides))


def lr_factor(step: int, cfg: OptimConfig) -> float:
    """The learning rate at ``step`` (0-based: the step about to be taken) as a fraction of ``lr``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return 1.0
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    shape = 1.0 - progress if cfg.decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.final_lr_ratio + (1.0 - cfg.final_lr_ratio) * shape


def derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """torchrun's environment -> a process group (gloo on CPU, nccl on CUDA); one process without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


class _ValidStream(torch.utils.data.Sampler):
    def __init__(self, sampler):
        self.sampler = sampler

    def __iter__(self):
        for i, cuts in enumerate(self.sampler):
            yield 0, i, cuts


@dataclass
class _Prepared:
    batch: PretrainBatch  # on the device
    mask: torch.Tensor  # (B, T) bool, on the device
    counts: torch.Tensor  # CPU float64: labelled masked frames, labelled unmasked frames, utterances, seconds
    padded: bool  # whether any item is shorter than the batch


class Trainer:
    """Pretrain an encoder by masked unit prediction. ``Trainer(cfg, exp_dir).train()``."""

    def __init__(self, cfg: PretrainConfig, exp_dir: str | os.PathLike, command: Optional[str] = None):
        self.cfg, self.exp = cfg, Path(exp_dir)
        run = cfg.run
        from speechssl.runtime import setup_device

        self.device = setup_device(run.device, threads=run.threads, keep_freed=run.keep_freed_memory, precision=run.precision)
        self.dist = init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.ckpt_dir = self.exp / "checkpoints"
        if self.dist.is_main:
            self.exp.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.exp / "config.yaml")
            if command:
                (self.exp / "command.txt").write_text(command + "\n", encoding="utf-8")

        self.train_data = load_split(cfg.data, cfg.data.train_split)
        self.valid_data: Optional[SplitData] = load_split(cfg.data, cfg.data.valid_split) if cfg.data.valid_split else None
        torch.manual_seed(cfg.run.seed)  # the same initial weights on every rank
        encoder = build_pretrain_encoder(cfg.encoder)
        num_topics = self.train_data.topics.num_topics if self.train_data.topics else 0
        if cfg.topic.weight > 0 and self.train_data.topics is None:
            raise ValueError("topic.weight > 0 needs topic labels: set data.topics to a folder written by 'speechssl topics label'")
        self.model = PretrainModel(
            encoder, [s.num_units for s in self.train_data.label_sets], cfg.prediction, cfg.topic, num_topics
        ).to(self.device)
        if cfg.prediction.feature_grad_mult == 0:
            self.model.encoder.feature_extractor.requires_grad_(False)
        self.noise = NoiseSource.from_manifest(cfg.noise) if cfg.noise else None
        if cfg.mixing.noise_prob > 0 and self.noise is None:
            raise ValueError("mixing.noise_prob > 0 needs noise: set noise to a manifest of noise recordings (e.g. MUSAN)")

        params = [p for p in self.model.parameters() if p.requires_grad]
        fused = cfg.optim.fused
        if fused is None:
            fused = self.device.type in ("cuda", "cpu")
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
            weight_decay=cfg.optim.weight_decay, fused=fused,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg.optim))
        self.scaler = torch.amp.GradScaler("cuda", enabled=run.precision == "fp16")
        self.guard = StepGuard(cfg.optim.nonfinite_patience, str(self.exp), scaler_enabled=self.scaler.is_enabled())
        self.step = 0  # optimizer steps taken
        self.epoch = 0
        self.batches_in_epoch = 0  # batches of this rank's epoch stream already consumed
        self.audio_seconds = 0.0  # audio trained on, summed over ranks
        if run.resume and (ckpt := latest_checkpoint(self.ckpt_dir)) is not None:
            self.load_state(ckpt)
        self.ddp: nn.Module = self.model
        if self.dist.enabled:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=encoder.config.layer_drop > 0,
            )
        self.metrics_log = MetricsLog(self.exp, enabled=self.dist.is_main, start_step=self.step)

    # ---- state ----
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "data": {"epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch, "audio_seconds": self.audio_seconds},
            "rng": {"seed": self.cfg.run.seed, "torch": torch.get_rng_state()},
            "config": json.dumps(to_dict(self.cfg)),
            "virtual_ranks": self.dist.world_size * self.cfg.optim.accum_steps,
        }

    def load_state(self, path: Path) -> None:
        state = load_checkpoint(path, map_location="cpu")
        virtual = self.dist.world_size * self.cfg.optim.accum_steps
        if state.get("virtual_ranks", virtual) != virtual:
            log.warning(
                "%s was written with %d micro-batches per step (processes x accum_steps), this run has %d: "
                "the data order from here differs from the original run's",
                path, state["virtual_ranks"], virtual,
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ValueError(f"{path}: the checkpoint's model does not match this config ({e})") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.epoch = int(state["data"]["epoch"])
        self.batches_in_epoch = int(state["data"]["batches_in_epoch"])
        self.audio_seconds = float(state["data"]["audio_seconds"])
        torch.set_rng_state(state["rng"]["torch"])
        log.info("resumed from %s (step %d, epoch %d)", path, self.step, self.epoch)

    def save(self) -> Optional[Path]:
        if not self.dist.is_main:
            return None
        state = self.state_dict()
        check_finite(state["model"], f"{self.ckpt_dir}: checkpoint of step {self.step}")  # never a diverged model
        return save_checkpoint(self.ckpt_dir, self.step, state, keep=self.cfg.run.keep_checkpoints)

    # ---- data ----
    def _loader(self, data: SplitData, stream, train: bool) -> torch.utils.data.DataLoader:
        cfg = self.cfg
        dataset = PretrainDataset(
            data, self.model.encoder.config.conv_layers, cfg.data, seed=cfg.run.seed, random_crop=train, strict=cfg.data.strict
        )
        workers = cfg.data.num_workers
        return torch.utils.data.DataLoader(
            dataset,
            sampler=stream,
            batch_size=None,
            num_workers=workers,
            multiprocessing_context="spawn" if workers > 0 else None,  # a forked torch process can hang in OpenMP
            pin_memory=self.device.type == "cuda",
        )

    def _train_batches(self) -> Iterator[PretrainBatch]:
        """This rank's training batches, endlessly, from where the run is (``self.epoch`` and
        ``self.batches_in_epoch``); consuming a batch advances that position."""
        # A micro-batches per step on each of W ranks: W * A virtual ranks of lhotse's distributed
        # sampler, this process owning A of them. The step's global batch is then the same, batch for
        # batch, whatever the split between processes and accumulation (and lhotse's bucket sync
        # gives every micro-batch of a step the same length bucket).
        A, W = self.cfg.optim.accum_steps, self.dist.world_size
        samplers = [make_sampler(self.train_data.cuts, self.cfg.sampler, world_size=W * A, rank=self.dist.rank * A + j) for j in range(A)]
        for batch in self._loader(self.train_data, EpochStream(samplers, self.epoch, self.batches_in_epoch), train=True):
            self.epoch, self.batches_in_epoch = batch.epoch, batch.index + 1
            yield batch

    def _valid_batches(self) -> Iterator[PretrainBatch]:
        assert self.valid_data is not None
        cfg = SamplerConfig(**{**to_dict(self.cfg.sampler), "shuffle": False, "drop_last": False})
        sampler = make_sampler(self.valid_data.cuts, cfg, world_size=self.dist.world_size, rank=self.dist.rank)
        yield from self._loader(self.valid_data, _ValidStream(sampler), train=False)

    # ---- one step ----
    def _autocast(self):
        p = self.cfg.run.precision
        if p == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if p == "bf16" else torch.float16)

    def _prepare(self, batch: PretrainBatch, generator: torch.Generator, train: bool) -> "_Prepared":
        """Mix (training only) and draw the mask on the CPU; the batch and mask go to the device,
        what the step needs to know about them is read here, before they do."""
        if train and self.cfg.mixing.prob > 0:
            wavs, _ = mix_utterances(batch.wavs, batch.wav_lens, self.cfg.mixing, generator, self.noise)
            batch = dataclasses.replace(batch, wavs=wavs)
        T = batch.targets[0].shape[1]
        mask = span_mask(batch.frame_lens, T, self.cfg.masking, generator)
        labelled = batch.targets[0] != IGNORE
        counts = torch.tensor(
            [(mask & labelled).sum(), (~mask & labelled).sum(), len(batch), batch.seconds], dtype=torch.float64
        )  # masked and unmasked labelled frames, utterances, seconds of audio
        padded = bool((batch.wav_lens < batch.wavs.shape[1]).any())
        return _Prepared(batch.to(self.device), mask.to(self.device, non_blocking=True), counts, padded)

    def _loss(self, out, counts: torch.Tensor, num_micro: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """This micro-batch's share of the step's loss (already divided by the step-wide counts)."""
        p, t = self.cfg.prediction, self.cfg.topic
        n_m, n_u, n_utt = (max(1.0, float(c)) for c in counts[:3])
        parts = {
            "masked": out.masked_loss / n_m,
            "unmasked": out.unmasked_loss / n_u,
            "feature_penalty": out.feature_penalty / (num_micro * self.dist.world_size),
        }
        loss = p.masked_weight * parts["masked"] + p.unmasked_weight * parts["unmasked"] + p.feature_penalty * parts["feature_penalty"]
        if out.topic_loss is not None:
            parts["topic"] = out.topic_loss / n_utt
            loss = loss + t.weight * parts["topic"]
        return loss, {k: v.detach().float() for k, v in parts.items()}

    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (NCCL needs the tensor on the GPU); returns it on its original device."""
        if not self.dist.enabled:
            return t
        on = t.to(self.device) if self.device.type == "cuda" else t
        dist.all_reduce(on)
        return on.to(t.device)

    def _forward(self, model: nn.Module, p: "_Prepared"):
        batch = p.batch
        topic = None
        if self.model.topic_head is not None:
            topic = batch.topic_soft if self.cfg.topic.targets == "soft" else batch.topic_hard
        with self._autocast():
            return model(batch.wavs, batch.wav_lens if p.padded else None, p.mask, batch.targets, topic)

    def train_step(self, micro_batches: list[PretrainBatch]) -> dict[str, float]:
        """One optimizer step over this rank's micro-batches; returns the step's metrics (summed
        over ranks)."""
        self.model.train()
        # a micro-batch's randomness follows its place in the step's global batch (its virtual rank,
        # see _train_batches), so one process with accum_steps=2 and two processes with
        # accum_steps=1 draw the same masks and dropout for the same audio
        seed, A = self.cfg.run.seed, len(micro_batches)
        positions = [self.dist.rank * A + j for j in range(A)]
        prepared = [
            self._prepare(b, torch.Generator().manual_seed(derived_seed(seed, self.step, pos)), train=True)
            for b, pos in zip(micro_batches, positions)
        ]
        counts = self._all_reduce(torch.stack([p.counts for p in prepared]).sum(0))  # the step's counts, all ranks
        # metrics stay on the device until the step ends: one host-device sync per step
        totals: dict[str, torch.Tensor] = {}
        correct = torch.zeros(2, device=self.device)
        for i, p in enumerate(prepared):
            last = i == len(prepared) - 1
            sync = contextlib.nullcontext() if (last or not self.dist.enabled) else self.ddp.no_sync()
            with sync:
                torch.manual_seed(derived_seed(seed, self.step, positions[i], 1))  # dropout, layer drop
                out = self._forward(self.ddp, p)
                loss, parts = self._loss(out, counts, len(prepared))
                self.scaler.scale(loss * self.dist.world_size).backward()
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + v
            correct += torch.stack([out.masked_correct[0], out.unmasked_correct[0]]).float()
        self.scaler.unscale_(self.optimizer)
        clip = self.cfg.optim.clip_norm
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))

        names = list(totals)
        summed = self._all_reduce(torch.cat([correct, torch.stack([totals[k] for k in names])]).double())
        values = torch.cat([summed, grad_norm.detach().double().reshape(1)]).tolist()  # the step's one sync
        grad_norm = values.pop()
        seconds = float(counts[3])
        metrics = dict(zip(names, values[2:]))
        p = self.cfg.prediction
        loss = p.masked_weight * metrics["masked"] + p.unmasked_weight * metrics["unmasked"] + p.feature_penalty * metrics["feature_penalty"]
        if "topic" in metrics:
            loss += self.cfg.topic.weight * metrics["topic"]
        # every rank sees the same reduced loss and gradient norm, so all skip the same steps
        applied = self.guard.apply(self.step + 1, loss, grad_norm, hint=f"Lower optim.lr (now {self.cfg.optim.lr:g}) or raise optim.warmup_steps")
        if applied:
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        metrics.update(
            loss=loss,
            masked_acc=values[0] / max(1.0, float(counts[0])),
            unmasked_acc=values[1] / max(1.0, float(counts[1])),
            grad_norm=grad_norm,
            lr=self.scheduler.get_last_lr()[0],
            audio_seconds=seconds,
            skipped=0.0 if applied else 1.0,
        )
        self.audio_seconds += seconds
        return metrics

    # ---- validation ----
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Loss and masked / unmasked accuracy (every label set) on the validation split, with masks
        drawn from a fixed seed so that numbers are comparable across the run."""
        assert self.valid_data is not None
        self.model.eval()
        n_sets = len(self.model.num_units)
        # sums: masked CE, unmasked CE, penalty, batches, masked n, unmasked n, topic CE, topic correct, utts, correct per set (m, u)
        acc = torch.zeros(9 + 2 * n_sets, dtype=torch.float64)
        limit = self.cfg.run.max_valid_batches
        for i, batch in enumerate(self._valid_batches()):
            if limit and i >= limit:
                break
            gen = torch.Generator().manual_seed(derived_seed(self.cfg.run.seed, 2**31 - 1, self.dist.rank, i))
            out = self._forward(self.model, self._prepare(batch, gen, train=False))
            row = [out.masked_loss, out.unmasked_loss, out.feature_penalty, 1, out.num_masked, out.num_unmasked]
            row += [out.topic_loss or 0.0, out.topic_correct or 0, out.num_utterances]
            row += [float(c) for c in out.masked_correct] + [float(c) for c in out.unmasked_correct]
            acc += torch.tensor([float(v) for v in row], dtype=torch.float64)
        v = self._all_reduce(acc).tolist()
        n_m, n_u, n_utt = max(1.0, v[4]), max(1.0, v[5]), max(1.0, v[8])
        metrics = {
            "masked": v[0] / n_m,  # summed over label sets, as in training
            "unmasked": v[1] / n_u,
            "feature_penalty": v[2] / max(1.0, v[3]),
        }
        for s in range(n_sets):
            suffix = "" if s == 0 else f"_{s}"
            metrics[f"masked_acc{suffix}"] = v[9 + s] / n_m
            metrics[f"unmasked_acc{suffix}"] = v[9 + n_sets + s] / n_u
        p = self.cfg.prediction
        metrics["loss"] = p.masked_weight * metrics["masked"] + p.unmasked_weight * metrics["unmasked"] + p.feature_penalty * metrics["feature_penalty"]
        if self.model.topic_head is not None:
            metrics["topic"] = v[6] / n_utt
            metrics["topic_acc"] = v[7] / n_utt
            metrics["loss"] += self.cfg.topic.weight * metrics["topic"]
        return metrics

    # ---- logging ----
    def _log(self, split: str, metrics: dict[str, float]) -> None:
        self.metrics_log.write(split, self.step, self.epoch, metrics)

    # ---- the loop ----
    def train(self, until: Optional[int] = None) -> dict[str, float]:
        """Run to ``optim.max_steps`` (or stop early at step ``until``, with a checkpoint there:
        the schedule stays that of the whole run); returns the last validation metrics (or training
        metrics without a validation split). Writes ``<exp>/encoder.safetensors`` at the end."""
        from tqdm import tqdm

        cfg = self.cfg
        max_steps = cfg.optim.max_steps
        stop = max_steps if until is None else min(until, max_steps)
        bar = tqdm(total=max_steps, initial=self.step, desc="pretrain", unit="step", disable=not (cfg.run.progress and self.dist.is_main), file=sys.stderr, dynamic_ncols=True)
        batches = self._train_batches()
        window = StepWindow()
        last_metrics: dict[str, float] = {}
        try:
            while self.step < stop:
                micro = [next(batches) for _ in range(cfg.optim.accum_steps)]
                metrics = self.train_step(micro)
                window.add(metrics)
                speed = window.speed()
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['masked_acc']:.3f}", audio_s_per_s=f"{speed:.1f}")
                bar.update(1)
                if self.step % cfg.run.log_every == 0 or self.step == max_steps:
                    avg = window.record(metrics["lr"])
                    avg["total_audio_hours"] = self.audio_seconds / 3600
                    self._log("train", avg)
                    last_metrics = avg
                    window.reset()
                if self.valid_data is not None and (self.step % cfg.run.valid_every == 0 or self.step == max_steps):
                    last_metrics = self.validate()
                    self._log("valid", last_metrics)
                    bar.write(f"step {self.step}: valid loss {last_metrics['loss']:.4f}, masked acc {last_metrics['masked_acc']:.4f}")
                if self.step % cfg.run.save_every == 0 or self.step == stop:
                    save_unless_skipping(self.guard, self.step, self.save)
                if self.step % cfg.run.valid_every == 0 or self.step % cfg.run.save_every == 0:
                    window.restart_clock()  # the speed excludes validation and saving
        finally:
            bar.close()
            self.metrics_log.close()
        if self.dist.is_main and self.step == max_steps:
            from speechssl.checkpoint import save_encoder

            save_encoder(self.model.encoder, self.exp / "encoder.safetensors")
        if self.dist.enabled:
            dist.barrier()
        return last_metrics


def encoder_config_of(cfg: PretrainConfig) -> EncoderConfig:
    """The architecture a config trains (without building the weights, unless init_from is set)."""
    if cfg.encoder.init_from:
        return build_pretrain_encoder(cfg.encoder).config
    from speechssl.models.presets import preset

    return preset(cfg.encoder.preset, **cfg.encoder.overrides)
