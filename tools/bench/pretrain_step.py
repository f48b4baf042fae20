#!/usr/bin/env python
"""HuBERT pretraining step against torchaudio's ``hubert_pretrain_model``, same architecture, same
weights, same batch, measured in one run: throughput (seconds of audio per second) and peak memory.

    .venv/bin/python tools/bench/pretrain_step.py                              # HuBERT Base, 4 x 10 s, CPU fp32
    .venv/bin/python tools/bench/pretrain_step.py --dtype bf16                 # both under CPU bf16 autocast
    .venv/bin/python tools/bench/pretrain_step.py --device cuda --dtype bf16 --batch 8
    .venv/bin/python tools/bench/pretrain_step.py --malloc default                             # glibc's malloc defaults
    .venv/bin/python tools/bench/pretrain_step.py --preset tiny_hubert --batch 2 --seconds 1   # smoke test

One timed step is what a trainer does per batch: draw the span mask, forward, loss, backward,
optimizer step, ``zero_grad``. Ours is ``PretrainModel`` with ``span_mask`` (drawn on the CPU, as
the trainer does) and the loss ``masked CE / num_masked + 10 * feature penalty``. The peer is
``torchaudio.models.hubert_pretrain_model`` (mask_prob 0.8, mask_length 10, static spans, drawn
inside its forward), skip_masked False, skip_nomask True, with the loss of torchaudio's HuBERT
recipe written per masked frame: ``(CE(logit_m, 0, sum) + 10 * feature_penalty * num_masked) /
num_masked`` (the positive logit is column 0 of ``logit_m``). Both sides: dropout and layer drop 0,
feature_grad_mult 0.1, final_dim 256, no padding, the peer loaded with our initial weights.
Optimizers: ours AdamW(fused=True), as the trainer builds it; the peer plain AdamW (torch's default:
foreach on CUDA, a per-parameter loop on CPU) unless ``--peer-fused``; lr 5e-4, betas (0.9, 0.98),
eps 1e-6, weight decay 0.01.

On CPU both sides run in one process with glibc's malloc set to keep freed memory
(``speechssl.runtime.keep_freed_memory``, what ``speechssl pretrain`` does on CPU); ``--malloc
default`` leaves glibc's defaults, under which each large tensor of each step is a fresh mmap that
page-faults in (the kernel time then costs torchaudio's step more than ours).

Before timing, both sides run one forward on the batch's first item with one shared mask: the masked
CE per frame must be finite and near log(K), and both should equal ours in fp32 (a warning if not).
Each side then runs ``--warmup`` steps, and ``--rounds`` timed steps alternate peer, ours, peer,
ours, ...; the median counts.

Peak memory is the growth over the memory held after building model and optimizer, over the
warm-up steps (so it includes optimizer state, gradients and activations). CUDA:
``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before the side's warm-up (stats
reset per side). CPU: each side runs in a child process of this script; peak RSS (``VmHWM`` of
/proc/self/status, reset after the build through /proc/self/clear_refs) minus RSS after the build.
On CUDA the FLOPs of one step (forward + backward, ``FlopCounterMode``) give model FLOPs
utilisation against the GPU's peak dense bf16 rate. Prints, last, one ``name: value`` line per
headline figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

# peak dense bf16 FLOP/s by GPU name (first match wins); --peak-tflops overrides
PEAK_BF16_FLOPS = [("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12)]
LR, BETAS, EPS, WEIGHT_DECAY = 5e-4, (0.9, 0.98), 1e-6, 0.01
MASK_PROB, MASK_LENGTH, FINAL_DIM, FEATURE_GRAD_MULT, FEATURE_WEIGHT = 0.8, 10, 256, 0.1, 10.0
SIDES = ("torchaudio", "speechssl")


def log(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Side:
    """One side of the comparison: its model, optimizer and a closure running one training step
    (returns the loss per masked frame, detached, and the number of masked frames, an int or a
    0-dim tensor)."""

    name: str
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: Callable[[], tuple[torch.Tensor, int | torch.Tensor]]
    fused: bool


@dataclass
class Batch:
    wavs: torch.Tensor  # (B, S) on the device
    targets: torch.Tensor  # (B, T) long unit labels on the device
    frame_lens: torch.Tensor  # (B,) long, on the CPU (span_mask draws there)


# ------------------------------------------------------------------------------------------ models
def encoder_config(args):
    from speechssl.models import preset

    zero = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feature_dropout=0.0, layer_drop=0.0)
    cfg = preset(args.preset, **zero)
    if cfg.relative_position_buckets:
        raise ValueError(f"torchaudio has no WavLM pretraining model; pick a HuBERT / wav2vec 2.0 preset, found {args.preset!r}")
    return cfg


def build_ours(cfg, clusters: int):
    from speechssl.models import build_encoder
    from speechssl.pretrain.model import PredictionConfig, PretrainModel

    pred = PredictionConfig(final_dim=FINAL_DIM, feature_grad_mult=FEATURE_GRAD_MULT, feature_penalty=FEATURE_WEIGHT)
    return PretrainModel(build_encoder(cfg), num_units=[clusters], prediction=pred).train()


def build_peer(cfg, clusters: int, ours=None):
    """torchaudio's HuBERTPretrainModel of ``cfg``'s architecture; with ``ours``, its weights."""
    import torchaudio

    from speechssl.convert.torchaudio import encoder_to_torchaudio_state_dict, torchaudio_factory_kwargs

    kwargs = torchaudio_factory_kwargs(cfg)
    kwargs.pop("aux_num_out")
    peer = torchaudio.models.hubert_pretrain_model(
        **kwargs,
        mask_prob=MASK_PROB, mask_selection="static", mask_other=0.0, mask_length=MASK_LENGTH,
        no_mask_overlap=False, mask_min_space=1,
        mask_channel_prob=0.0, mask_channel_selection="static", mask_channel_other=0.0,
        mask_channel_length=10, no_mask_channel_overlap=False, mask_channel_min_space=1,
        skip_masked=False, skip_nomask=True, num_classes=clusters, final_dim=FINAL_DIM,
        feature_grad_mult=FEATURE_GRAD_MULT,
    )  # fmt: skip
    if ours is not None:
        peer.wav2vec2.load_state_dict(encoder_to_torchaudio_state_dict(ours.encoder), strict=True)
        with torch.no_grad():
            peer.mask_generator.mask_embedding.copy_(ours.encoder.mask_embedding)
            peer.logit_generator.label_embeddings.copy_(ours.label_embeddings[0])
        peer.logit_generator.final_proj.load_state_dict(ours.final_proj.state_dict())
    return peer.train()


def make_batch(model, cfg, args, device: str) -> Batch:
    gen = torch.Generator().manual_seed(0)
    samples = int(args.seconds * 16000)
    frames = int(model.frame_lengths(torch.tensor([samples]))[0])
    wavs = 0.1 * torch.randn(args.batch, samples, generator=gen)
    targets = torch.randint(args.clusters, (args.batch, frames), generator=gen)
    return Batch(wavs.to(device), targets.to(device), torch.full((args.batch,), frames, dtype=torch.long))


def autocast(args):
    return torch.autocast(args.device, dtype=torch.bfloat16) if args.dtype == "bf16" else contextlib.nullcontext()


def adamw(model, fused: bool):
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, fused=fused if fused else None)


def peer_loss(logit_m: torch.Tensor, penalty: torch.Tensor) -> tuple[torch.Tensor, int]:
    """torchaudio's recipe loss per masked frame; the positive unit is column 0 of ``logit_m``."""
    n = logit_m.shape[0]
    target = torch.zeros(n, dtype=torch.long, device=logit_m.device)
    ce = F.cross_entropy(logit_m, target, reduction="sum")
    return (ce + FEATURE_WEIGHT * penalty * n) / max(1, n), n


def side_ours(model, cfg, batch: Batch, args) -> Side:
    from speechssl.pretrain.masking import MaskingConfig, span_mask

    masking = MaskingConfig(mask_prob=MASK_PROB, mask_length=MASK_LENGTH)
    gen = torch.Generator().manual_seed(1)
    opt = adamw(model, fused=True)
    T = batch.targets.shape[1]

    def step():
        mask = span_mask(batch.frame_lens, T, masking, gen).to(args.device, non_blocking=True)  # (B, T)
        with autocast(args):
            out = model(batch.wavs, None, mask, [batch.targets], None)
            n = out.num_masked  # an int, or a 0-dim tensor (no host-device sync)
            n = n.clamp(min=1) if torch.is_tensor(n) else max(1, n)
            loss = out.masked_loss / n + FEATURE_WEIGHT * out.feature_penalty
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach(), out.num_masked

    return Side("speechssl", model, opt, step, fused=True)


def side_peer(model, cfg, batch: Batch, args) -> Side:
    opt = adamw(model, fused=args.peer_fused)

    def step():
        wavs = F.layer_norm(batch.wavs, batch.wavs.shape[-1:]) if cfg.normalize_waveform else batch.wavs
        with autocast(args):
            logit_m, _, penalty = model(wavs, batch.targets, None)
            loss, n = peer_loss(logit_m, penalty)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach(), n

    return Side("torchaudio", model, opt, step, fused=args.peer_fused)


def build_side(name: str, cfg, args, ours=None, batch: Batch | None = None) -> tuple[Side, Batch]:
    """Build one side on ``args.device``: ours with seed 0, the peer with ``ours``' weights (a fresh
    seed-0 model of ours when None); ``batch`` defaults to a new one (seed 0, the same each time)."""
    if ours is None or name == "speechssl":
        torch.manual_seed(0)
        ours = build_ours(cfg, args.clusters)
    if batch is None:
        batch = make_batch(ours, cfg, args, args.device)
    if name == "speechssl":
        return side_ours(ours.to(args.device), cfg, batch, args), batch
    return side_peer(build_peer(cfg, args.clusters, ours).to(args.device), cfg, batch, args), batch


# ------------------------------------------------------------------------------------- correctness
@contextlib.contextmanager
def peer_mask(mask: torch.Tensor):
    """Make torchaudio's mask generator return ``mask`` (the check compares both sides on one mask)."""
    import torchaudio.models.wav2vec2.components as components

    original = components._compute_mask_indices
    components._compute_mask_indices = lambda *a, **k: mask.cpu()
    try:
        yield
    finally:
        components._compute_mask_indices = original


def check_losses(ours: Side, peer: Side, cfg, batch: Batch, args) -> str:
    """Masked CE per frame at init of both sides on the batch's first item and one mask, through the
    training path (autograd on): finite, near log(K), and equal to fp32 speechssl (to 1e-3 log(K)
    in fp32, 0.05 under bf16; a warning otherwise). Returns the lines to print."""
    from speechssl.pretrain.masking import MaskingConfig, span_mask

    T = batch.targets.shape[1]
    masking = MaskingConfig(mask_prob=MASK_PROB, mask_length=MASK_LENGTH)
    mask = span_mask(batch.frame_lens[:1], T, masking, torch.Generator().manual_seed(2)).to(args.device)  # (1, T)
    wavs, targets = batch.wavs[:1], batch.targets[:1]  # (1, S), (1, T)

    def ce_ours(amp) -> float:
        with amp:
            out = ours.model(wavs, None, mask, [targets], None)
        return float(out.masked_loss.detach()) / max(1, int(out.num_masked))

    with autocast(args), peer_mask(mask):
        logit_m, _, _ = peer.model(F.layer_norm(wavs, wavs.shape[-1:]) if cfg.normalize_waveform else wavs, targets, None)
    target = torch.zeros(logit_m.shape[0], dtype=torch.long, device=logit_m.device)
    ce = {"speechssl": ce_ours(autocast(args)), "torchaudio": float(F.cross_entropy(logit_m.detach().float(), target))}
    reference = ce["speechssl"] if args.dtype == "fp32" else ce_ours(contextlib.nullcontext())
    log_k = math.log(args.clusters)
    for name, value in ce.items():
        if not math.isfinite(value) or abs(value - log_k) > max(1.0, 0.25 * log_k):
            raise SystemExit(f"{name}: masked CE per frame at init is {value:.4f}, expected a finite value near log(K) = {log_k:.4f}")
    tol = 1e-3 * log_k if args.dtype == "fp32" else 0.05
    off = [name for name, value in ce.items() if abs(value - reference) > tol]
    line = (
        f"check at init, first item, same weights and mask: masked CE per frame speechssl {ce['speechssl']:.4f}, torchaudio "
        f"{ce['torchaudio']:.4f}, log K {log_k:.4f}"
    )
    if args.dtype != "fp32":
        line += f", fp32 speechssl {reference:.4f}"
    if off:
        line += f"\n  WARNING: {' and '.join(off)} off the fp32 value by more than {tol:.3g}"
        if args.device == "cpu" and args.dtype == "bf16" and "torchaudio" in off:
            line += " (torch's CPU bf16 grouped conv1d is wrong at some small shapes; speechssl keeps its positional conv fp32 on CPU)"
    return line


# ------------------------------------------------------------------------------------------- timing
def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_step(side: Side, device: str) -> tuple[float, torch.Tensor, int | torch.Tensor]:
    sync(device)
    t0 = time.perf_counter()
    loss, n = side.step()
    sync(device)
    return time.perf_counter() - t0, loss, n


def step_flops(side: Side) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        side.step()
    return float(counter.get_total_flops())


def peak_flops(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


# ------------------------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(args) -> None:
    """Build one side, run the warm-up steps, print as JSON its peak RSS growth over the RSS after
    the build (MiB) and how the peak was read."""
    cfg = encoder_config(args)
    side, _ = build_side(args.memory_child, cfg, args)
    base = _status_kib("VmRSS")
    try:  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        how = "VmHWM reset after the build"
    except OSError:
        how = "VmHWM since start (clear_refs not writable)"
    for _ in range(args.warmup):
        side.step()
    peak = _status_kib("VmHWM")
    print(json.dumps({"side": side.name, "base_mib": base / 1024, "peak_mib": peak / 1024, "growth_mib": (peak - base) / 1024, "how": how}))


def cpu_memory(args) -> dict[str, dict]:
    out = {}
    for name in SIDES:
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", name] + [
            f"--{k}={v}" for k, v in (("preset", args.preset), ("batch", args.batch), ("seconds", args.seconds),
                                      ("clusters", args.clusters), ("dtype", args.dtype), ("threads", args.threads),
                                      ("warmup", args.warmup), ("malloc", args.malloc))
        ] + (["--peer-fused"] if args.peer_fused else [])  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode:
            raise SystemExit(f"memory child for {name} failed:\n{res.stderr}")
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="hubert_base", help="a speechssl HuBERT / wav2vec 2.0 preset (dropouts set to 0)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of audio per item (no padding)")
    p.add_argument("--clusters", type=int, default=100, help="units K of the label set (HuBERT: 100, then 500)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="bf16: both sides under autocast (on CPU too)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: 2 on CPU, torch's on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per side (default: 2 on CPU, 5 on CUDA)")
    p.add_argument("--rounds", type=int, default=None, help="timed steps per side, alternating (default: 5 on CPU, 20 on CUDA)")
    p.add_argument("--peer-fused", action="store_true", help="give torchaudio fused AdamW too (default: torch's default AdamW)")
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU peak dense bf16 TFLOP/s (default: from the GPU's name)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    p.add_argument("--malloc", default="keep", choices=["keep", "default"],
                   help="CPU: keep (both sides: glibc keeps freed memory, as speechssl pretrain sets it) or default "
                        "(glibc's defaults: large tensors mmapped and page-faulted in every step)")
    p.add_argument("--memory-child", choices=SIDES, help=argparse.SUPPRESS)
    args = p.parse_args()
    cuda = args.device == "cuda"
    if args.threads is None and not cuda:
        args.threads = 2
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 2)
    args.rounds = args.rounds if args.rounds is not None else (20 if cuda else 5)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "keep" and not cuda:
        from speechssl.runtime import keep_freed_memory

        if not keep_freed_memory():
            raise SystemExit("--malloc keep needs glibc; use --malloc default")
    if args.memory_child:
        memory_child(args)
        return
    if args.rounds < 1 or args.warmup < 1:
        raise SystemExit("--rounds and --warmup must be >= 1")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")

    cfg = encoder_config(args)
    ours, batch = build_side("speechssl", cfg, args)
    peer, _ = build_side("torchaudio", cfg, args, ours=ours.model, batch=batch)
    sides = {"torchaudio": peer, "speechssl": ours}
    n_params = {name: sum(p.numel() for p in s.model.parameters()) for name, s in sides.items()}
    B, T = batch.targets.shape
    where = f"{torch.cuda.get_device_name()}" if cuda else f"threads {torch.get_num_threads()}"
    log(f"preset {args.preset}: speechssl {n_params['speechssl'] / 1e6:.2f}M parameters, torchaudio {n_params['torchaudio'] / 1e6:.2f}M")
    log(f"batch {B} x {args.seconds:g} s ({T} frames each), K = {args.clusters}, {args.device} {args.dtype}, {where}")
    log(f"optimizer step included: speechssl {optimizer_name(ours, args)}, torchaudio {optimizer_name(peer, args)}")
    if not cuda:
        log(f"malloc (both sides): {'glibc keeps freed memory' if args.malloc == 'keep' else 'glibc defaults'}")
    log(check_losses(ours, peer, cfg, batch, args))

    torch.manual_seed(0)  # torchaudio draws its masks from torch's global generator
    mem = {name: warm_up(side, args) for name, side in sides.items()}
    runs = time_rounds(sides, args)
    flops = {name: step_flops(side) for name, side in sides.items()} if cuda else {}
    how = "CUDA max_memory_allocated over the warm-up steps minus memory_allocated before them"
    if not cuda and not args.no_memory:
        child = cpu_memory(args)
        mem = {name: child[name]["growth_mib"] for name in sides}
        how = f"a child process per side, peak RSS over its warm-up steps minus RSS after the build ({child['speechssl']['how']})"
    if args.no_memory:
        mem = {}
    print_report(runs, mem, how, flops, B * T, args)


def optimizer_name(side: Side, args) -> str:
    if side.fused:
        return "AdamW fused"
    return "AdamW torch default (" + ("foreach)" if args.device == "cuda" else "per-parameter loop on CPU)")


def warm_up(side: Side, args) -> float | None:
    """Run the warm-up steps of ``side``; on CUDA returns their peak allocation over the memory
    held before them (MiB)."""
    if args.device != "cuda":
        for _ in range(args.warmup):
            side.step()
        return None
    sync("cuda")
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        side.step()
    sync("cuda")
    return (torch.cuda.max_memory_allocated() - base) / 2**20


@dataclass
class Runs:
    """Timed steps of one side."""

    seconds: list[float]
    losses: list[float]
    masked: list[int]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_rounds(sides: dict[str, Side], args) -> dict[str, Runs]:
    """``args.rounds`` rounds of one timed step per side, in order (peer, ours, peer, ours, ...:
    drift on a shared machine hits both alike)."""
    runs = {name: Runs([], [], []) for name in sides}
    for _ in range(args.rounds):
        for name, side in sides.items():
            t, loss, n = timed_step(side, args.device)
            runs[name].seconds.append(t)
            runs[name].losses.append(float(loss))
            runs[name].masked.append(int(n))
    for name, run in runs.items():
        if not all(math.isfinite(v) for v in run.losses):
            raise SystemExit(f"{name}: non-finite loss while timing: {run.losses}")
    return runs


def print_report(runs: dict[str, Runs], mem: dict, how: str, flops: dict, frames: int, args) -> None:
    cuda = args.device == "cuda"
    peak = peak_flops(args) if cuda else None
    audio = args.batch * args.seconds
    log("")
    header = f"{'':<11} {'step s (median)':>15} {'min':>7} {'max':>7} {'audio s/s':>9} {'masked':>7} {'loss/frame':>10}"
    header += f" {'peak MiB':>9}" if mem else ""
    header += f" {'TFLOP/step':>10} {'MFU':>6}" if cuda else ""
    log(header)
    for name, run in runs.items():
        row = (
            f"{name:<11} {run.median:>15.4f} {min(run.seconds):>7.4f} {max(run.seconds):>7.4f} {audio / run.median:>9.1f} "
            f"{statistics.mean(run.masked) / frames:>7.1%} {run.losses[-1]:>10.4f}"
        )
        row += f" {mem[name]:>9.1f}" if mem else ""
        if cuda:
            mfu = f"{flops[name] / run.median / peak:.3f}" if peak else "n/a"
            row += f" {flops[name] / 1e12:>10.3f} {mfu:>6}"
        log(row)
    log(
        f"timed: {args.rounds} steps per side after {args.warmup} warm-up steps, alternating torchaudio / speechssl; "
        f"speedup on the fastest steps {min(runs['torchaudio'].seconds) / min(runs['speechssl'].seconds):.2f}x"
    )
    log("masked: share of frames masked (torchaudio trims every item to the batch's fewest masked frames)")
    if mem:
        log(f"peak memory: {how}")
    if cuda:
        log("MFU: FlopCounterMode FLOPs of one step (forward + backward) / median step time / peak dense bf16 FLOP/s"
            + ("" if peak else f"; unknown peak for {torch.cuda.get_device_name()}, pass --peak-tflops"))
    ours, peer = runs["speechssl"], runs["torchaudio"]
    print()
    print(f"pretrain_step_speedup_vs_torchaudio: {peer.median / ours.median:.2f}x")
    print(f"pretrain_step_audio_s_per_s: {audio / ours.median:.1f}")
    if mem:
        print(f"pretrain_step_peak_memory_ratio: {mem['speechssl'] / mem['torchaudio']:.2f}")
    if cuda and peak:
        print(f"pretrain_step_mfu: {flops['speechssl'] / ours.median / peak:.3f}")

if __name__ == "__main__":
    main()
