#!/usr/bin/env python
"""Encoder throughput against transformers, same weights, same batch, measured in one run.

    .venv/bin/python tools/bench/encoder.py --model hubert_base --batch 4 --seconds 10
    .venv/bin/python tools/bench/encoder.py --model wavlm_base_plus --device cuda --dtype bf16

A randomly initialised transformers model of the preset's architecture is saved and converted, so
both sides hold identical weights. On CPU both run fp32 (or both under bf16 autocast with --dtype
bf16). On GPU the peer is transformers' best setting (sdpa attention, weights in half precision)
and ours runs under bf16 autocast. Prints, last, one ``name: value`` line per headline figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext

import torch


def timed(fn, repeats: int, device: str) -> float:
    """Best of ``repeats`` calls after one warm-up (noise on a shared machine only adds time)."""
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="hubert_base", help="a speechssl preset with a transformers twin")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating peer and ours")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--padded", action="store_true", help="give per-item lengths (the last item half as long)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import transformers

    from speechssl.convert.hf import config_to_hf, encoder_from_hf
    from speechssl.models import preset

    cfg = preset(args.model)
    hf_cfg = config_to_hf(cfg)
    hf_cls = getattr(transformers, hf_cfg["architectures"][0])
    torch.manual_seed(0)
    peer = hf_cls(hf_cls.config_class(**hf_cfg)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        peer.save_pretrained(tmp)
        ours = encoder_from_hf(tmp).eval()
        if args.device == "cuda":
            dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
            peer = hf_cls.from_pretrained(tmp, attn_implementation="sdpa", dtype=dtype).eval()
    device = args.device
    peer.to(device)
    ours.to(device)

    samples = int(args.seconds * 16000)
    wavs = torch.randn(args.batch, samples, device=device)
    lens = torch.full((args.batch,), samples, device=device)
    if args.padded:
        lens[-1] = samples // 2
    mask = (torch.arange(samples, device=device)[None] < lens[:, None]).long()
    peer_dtype = next(peer.parameters()).dtype
    amp = torch.autocast(device, dtype=torch.bfloat16) if args.dtype == "bf16" else nullcontext()
    peer_amp = amp if device == "cpu" else nullcontext()

    def run_ours():
        with torch.inference_mode(), amp:
            ours.extract_features(wavs, lens if args.padded else None)

    def run_peer():
        with torch.inference_mode(), peer_amp:
            kwargs = {"attention_mask": mask} if args.padded else {}
            peer(wavs.to(peer_dtype), output_hidden_states=True, **kwargs)

    # interleave so that machine noise hits both sides alike
    t_ours, t_peer = [], []
    for _ in range(args.rounds):
        t_peer.append(timed(run_peer, args.repeats, device))
        t_ours.append(timed(run_ours, args.repeats, device))
    ours_s, peer_s = min(t_ours), min(t_peer)
    audio = args.batch * args.seconds
    print(f"model {args.model}, batch {args.batch} x {args.seconds:.0f} s, {device} {args.dtype}, threads {torch.get_num_threads()}")
    print(f"transformers: {peer_s:.3f} s/batch ({audio / peer_s:.1f} s audio/s); speechssl: {ours_s:.3f} s/batch ({audio / ours_s:.1f} s audio/s)")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        run_ours()
        mem = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
        run_peer()
        peer_mem = torch.cuda.max_memory_allocated() / 2**30
        print(f"encoder_peak_memory_gib: {mem:.2f} (transformers {peer_mem:.2f})")
    print(f"encoder_audio_seconds_per_second: {audio / ours_s:.1f}")
    print(f"encoder_speedup_vs_transformers: {peer_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
