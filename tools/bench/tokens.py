#!/usr/bin/env python
"""Token extraction, in one run on the same utterances: ``speechssl.tokens.extract_tokens`` (files
in, JSONL out) against

1. the bare encoder forward on the same batches (the audio decoded beforehand, only
   ``extract_features(wavs, lens, output_layer=L)`` timed): what batching, k-means assignment,
   decoding and writing add on top of the model;
2. the common recipe: a per-file loop with transformers (``HubertModel``, the same weights exported
   to a Hugging Face folder, ``output_hidden_states=True``, hidden state L) and scikit-learn
   ``KMeans.predict`` with the same centroids. ``--peer-truncate`` also times the peer with its
   layers after L removed (what a careful user of transformers does).

    .venv/bin/python tools/bench/tokens.py                               # HuBERT Base, layer 6, K=500, CPU
    .venv/bin/python tools/bench/tokens.py --device cuda --dtype bf16
    .venv/bin/python tools/bench/tokens.py --preset tiny_hubert --layer 2 --clusters 20 --max-utts 8   # smoke test

On CPU, glibc's malloc keeps freed memory for the whole process (all sides), as ``speechssl
tokens extract`` sets it. Audio: the ``--split`` of the mini corpus in ``--data`` (the default corpus is built there if
missing). The encoder has random weights (seed 0) unless ``--encoder`` names one; the centroids
are ``--clusters`` frames of layer L drawn from the first utterances (their units are then
well spread). Before timing, each side runs on the first utterances (warm-up), and the units of
all sides are compared: they must agree (a warning if not). Real-time factor (RTF) = wall seconds /
seconds of audio. Prints, last, one ``name: value`` line per headline figure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import default_mini_corpus, log




def build_encoder_files(args, tmp: Path):
    """Our checkpoint and its Hugging Face export (same weights)."""
    from speechssl import load_encoder
    from speechssl.checkpoint import save_encoder
    from speechssl.convert.hf import encoder_to_hf
    from speechssl.models import build_encoder, preset

    if args.encoder:
        enc = load_encoder(args.encoder)
        path = Path(args.encoder)
    else:
        torch.manual_seed(0)
        enc = build_encoder(preset(args.preset)).eval()
        path = save_encoder(enc, tmp / "encoder.safetensors")
    encoder_to_hf(enc, tmp / "hf")
    return enc, path, tmp / "hf"


def build_kmeans(enc, enc_path, cuts, args, tmp: Path) -> Path:
    from speechssl.data.dataset import AudioDataset
    from speechssl.features.layer import LayerExtractor
    from speechssl.labels.kmeans import KMeansModel

    ext = LayerExtractor(enc, args.layer, encoder_path=enc_path)
    frames, n = [], 0
    for cut in cuts:
        batch = AudioDataset()[cuts.subset(cut_ids=[cut.id])]
        x = ext(batch.wavs, batch.lengths)[0]
        frames.append(x)
        n += len(x)
        if n >= 4 * args.clusters:
            break
    allx = torch.cat(frames)
    if len(allx) < args.clusters:
        raise SystemExit(f"only {len(allx)} frames for {args.clusters} centroids")
    pick = torch.randperm(len(allx), generator=torch.Generator().manual_seed(0))[: args.clusters]
    path = tmp / "kmeans.safetensors"
    KMeansModel(allx[pick].clone(), ext.spec).save(path)
    return path


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_ours(tokenizer, cuts, args, out: Path) -> tuple[float, dict]:
    from speechssl.tokens.extract import ExtractConfig, extract_tokens, read_tokens_jsonl

    cfg = ExtractConfig(max_duration=args.max_duration, num_workers=args.num_workers, progress=False)
    sync(args.device)
    t0 = time.perf_counter()
    extract_tokens(tokenizer, cuts, out, cfg)
    sync(args.device)
    return time.perf_counter() - t0, {k: r["units"] for k, r in read_tokens_jsonl(out / "tokens.jsonl").items()}


def run_bare(tokenizer, cuts, args) -> float:
    """The encoder forward alone on the batches extract_tokens makes (same sampler settings)."""
    from speechssl.data.dataset import AudioDataset
    from speechssl.tokens.extract import length_batches

    batches = [AudioDataset()[b] for b in length_batches(cuts, args.max_duration)]
    ext = tokenizer.extractor
    device = tokenizer.device
    total = 0.0
    with torch.inference_mode():
        for b in batches:
            wavs, lens = b.wavs.to(device), b.lengths.to(device)
            sync(args.device)
            t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=ext.dtype, enabled=ext.dtype is not None):
                out = ext.encoder.extract_features(wavs, lens, output_layer=ext.layer)
            out.hidden_states[ext.layer].sum().item()  # wait for the result, as extraction does
            total += time.perf_counter() - t0
    return total


class Peer:
    """transformers' HubertModel per file + scikit-learn KMeans.predict."""

    def __init__(self, hf_dir: Path, centroids: np.ndarray, layer: int, args, truncate: bool):
        from sklearn.cluster import KMeans
        from transformers import AutoModel

        self.model = AutoModel.from_pretrained(hf_dir).eval().to(args.device)
        if truncate:
            self.model.encoder.layers = self.model.encoder.layers[:layer]
        self.layer, self.args = layer, args
        # a fitted scikit-learn model (as a recipe would load with joblib) holding exactly our centroids
        self.km = KMeans(n_clusters=len(centroids), init=centroids, n_init=1, max_iter=1).fit(centroids)
        self.km.cluster_centers_ = centroids.astype(self.km.cluster_centers_.dtype)

    def __call__(self, cuts) -> tuple[float, dict]:
        import soundfile as sf

        out = {}
        t0 = time.perf_counter()
        for cut in cuts:
            wav, rate = sf.read(cut.recording.sources[0].source, dtype="float32")
            assert rate == 16000
            x = torch.from_numpy(wav)[None].to(self.args.device)
            with torch.inference_mode(), torch.autocast(self.args.device, dtype=torch.bfloat16, enabled=self.args.dtype == "bf16"):
                hs = self.model(x, output_hidden_states=True).hidden_states[self.layer]
            out[cut.id] = self.km.predict(hs[0].float().cpu().numpy())
        return time.perf_counter() - t0, out


def agreement(a: dict, b: dict) -> float:
    same = total = 0
    for k, u in a.items():
        v = b[k]
        n = min(len(u), len(v))
        same += int((np.asarray(u[:n]) == np.asarray(v[:n])).sum())
        total += max(len(u), len(v))
    return same / max(total, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/mini"), help="the mini corpus (built if missing)")
    p.add_argument("--split", default="dev")
    p.add_argument("--max-utts", type=int, default=None, help="only the first N utterances of the split")
    p.add_argument("--preset", default="hubert_base")
    p.add_argument("--encoder", default=None, help="an encoder checkpoint (default: the preset with random weights)")
    p.add_argument("--layer", type=int, default=6)
    p.add_argument("--clusters", type=int, default=500)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="both sides under autocast with bf16")
    p.add_argument("--max-duration", type=float, default=None, help="seconds of audio per batch (default: as tokens extract: 20 on CPU, 200 on a GPU)")
    p.add_argument("--num-workers", type=int, default=0, help="decoding processes (ours)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: 2 on CPU)")
    p.add_argument("--peer-truncate", action="store_true", help="also time the peer with the layers after L removed")
    args = p.parse_args()
    args.max_duration = args.max_duration or (200.0 if args.device == "cuda" else 20.0)
    if args.threads or args.device == "cpu":
        torch.set_num_threads(args.threads or 2)
    if args.device == "cpu":
        from speechssl.runtime import keep_freed_memory

        keep_freed_memory()  # as `speechssl tokens extract` does on CPU; every side runs in this process
    from speechssl.data.manifest import load_cuts
    from speechssl.tokens.tokenizer import Tokenizer

    cuts = load_cuts(default_mini_corpus(args.data) / f"cuts_{args.split}.jsonl.gz").to_eager()
    if args.max_utts:
        cuts = cuts.subset(first=args.max_utts)
    seconds = sum(c.duration for c in cuts)
    warm = cuts.subset(first=min(4, len(cuts)))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        enc, enc_path, hf_dir = build_encoder_files(args, tmp)
        km_path = build_kmeans(enc, enc_path, cuts, args, tmp)
        tokenizer = Tokenizer.from_files(enc_path, km_path, device=args.device, dtype="bf16" if args.dtype == "bf16" else "float32")
        centroids = tokenizer.kmeans.centroids.numpy()
        log(f"{args.preset if not args.encoder else args.encoder}: layer {args.layer} of {tokenizer.extractor.encoder.num_layers}, "
            f"K = {args.clusters}, {args.device} {args.dtype}, threads {torch.get_num_threads()}")  # fmt: skip
        log(f"audio: {len(cuts)} utterances of {args.data}/{args.split}, {seconds:.1f} s")
        peers = {"transformers+sklearn": Peer(hf_dir, centroids, args.layer, args, truncate=False)}
        if args.peer_truncate:
            peers["transformers+sklearn, layers > L removed"] = Peer(hf_dir, centroids, args.layer, args, truncate=True)

        # warm-up on a few utterances
        run_ours(tokenizer, warm, args, tmp / "warm")
        run_bare(tokenizer, warm, args)
        for peer in peers.values():
            peer(warm)

        bare = run_bare(tokenizer, cuts, args)
        ours, units = run_ours(tokenizer, cuts, args, tmp / "ours")
        timed = {}
        for name, peer in peers.items():
            timed[name], peer_units = peer(cuts)
            agree = agreement(units, peer_units)
            log(f"units equal to {name}'s on {100 * agree:.2f}% of frames")
            if agree < 0.99:
                log("WARNING: the sides disagree on more than 1% of frames")

    rows = [("bare encoder forward (same batches)", bare), ("speechssl tokens extract", ours)] + list(timed.items())
    log("")
    log(f"{'':40s} {'wall s':>8s} {'RTF':>8s} {'x real time':>12s}")
    for name, t in rows:
        log(f"{name:40s} {t:8.2f} {t / seconds:8.4f} {seconds / t:12.1f}")
    log("")
    common = timed["transformers+sklearn"]
    print(f"tokens_rtf: {ours / seconds:.4f}")
    print(f"tokens_overhead_vs_bare_forward: {100 * (ours / bare - 1):.1f}%")
    print(f"tokens_speedup_vs_transformers_sklearn: {common / ours:.2f}x")
    if args.peer_truncate:
        print(f"tokens_speedup_vs_transformers_sklearn_truncated: {timed['transformers+sklearn, layers > L removed'] / ours:.2f}x")


if __name__ == "__main__":
    main()
