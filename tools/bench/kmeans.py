#!/usr/bin/env python
"""k-means against scikit-learn's MiniBatchKMeans with fairseq's settings, on the same frames, in one
run; then peak memory of the streamed sample and of labelling as the corpus grows 10x.

    .venv/bin/python tools/bench/kmeans.py                      # both cases, as in BENCHMARKS.md
    .venv/bin/python tools/bench/kmeans.py --cases mfcc --threads 2

Frames are real: 39-dim MFCC of the mini corpus (built with the default config into --data if it is
not there), and layer-6 features (768 dims) of a HuBERT Base encoder over the same audio (random
weights, seed 0, unless --encoder names a checkpoint); they are cached under --cache. Both sides
get the frames in memory and are timed on the fit alone; inertia (sum of squared distances to the
nearest centroid) is computed for both by the same function over every frame. The peer is fairseq's
``learn_kmeans.py``: MiniBatchKMeans(init="k-means++", max_iter=100, batch_size=10000, tol=0,
max_no_improvement=100, init_size=None, n_init=20, reassignment_ratio=0). Prints, last, one
``name: value`` line per headline figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchlib import default_mini_corpus, log




def collect(source, frames: int, seed: int) -> np.ndarray:
    """Frames of ``source`` until there are 10% more than ``frames``, then a seeded uniform subset."""
    parts, total = [], 0
    for _, x in source:
        parts.append(x.numpy())
        total += len(x)
        if total >= 1.1 * frames:
            break
    allx = np.concatenate(parts)
    if len(allx) < frames:
        raise SystemExit(f"the corpus has only {len(allx)} frames, {frames} were asked for")
    keep = np.sort(np.random.default_rng(seed).choice(len(allx), frames, replace=False))
    return np.ascontiguousarray(allx[keep])


def frames_for(case: str, args) -> tuple[np.ndarray, object]:
    from lhotse import CutSet

    from speechssl.data.manifest import load_cuts
    from speechssl.features.mfcc import MfccExtractor
    from speechssl.features.stream import ComputedFeatures

    data = default_mini_corpus(args.data)
    n = args.mfcc_frames if case == "mfcc" else args.layer_frames
    cache = args.cache / f"{case}_{n}.npy"
    cuts = [c for split in ("train", "dev", "test") for c in load_cuts(data / f"cuts_{split}.jsonl.gz")]
    order = np.random.default_rng(0).permutation(len(cuts))  # every speaker, language and style
    cuts = CutSet.from_cuts(cuts[i] for i in order)
    if case == "mfcc":
        extractor = MfccExtractor()
    else:
        from speechssl import load_encoder
        from speechssl.features.layer import LayerExtractor
        from speechssl.models import build_encoder, preset

        if args.encoder:
            encoder = load_encoder(args.encoder)
        else:
            torch.manual_seed(0)
            encoder = build_encoder(preset("hubert_base"))
        extractor = LayerExtractor(encoder, args.layer, encoder_path=args.encoder)
    if cache.is_file():
        return np.load(cache), extractor.spec
    t0 = time.perf_counter()
    x = collect(ComputedFeatures(cuts, extractor, str(data), max_duration=80.0, progress=False), n, seed=0)
    log(f"{case}: computed {x.shape} features in {time.perf_counter() - t0:.1f} s (cached in {cache})")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, x)
    return x, extractor.spec


def run_case(case: str, args) -> dict:
    from sklearn.cluster import MiniBatchKMeans

    from speechssl.labels.kmeans import KMeansConfig, KMeansModel, fit_kmeans

    x, spec = frames_for(case, args)
    k = args.mfcc_k if case == "mfcc" else args.layer_k
    log(f"\n== {case}: {x.shape[0]} x {x.shape[1]} frames, k = {k}, {torch.get_num_threads()} threads")
    xt = torch.from_numpy(x)
    out = {"frames": x.shape[0], "dim": x.shape[1], "k": k}
    for rnd in range(args.rounds):
        t0 = time.perf_counter()
        peer = MiniBatchKMeans(
            n_clusters=k, init="k-means++", max_iter=100, batch_size=10000, tol=0.0, max_no_improvement=100,
            init_size=None, n_init=20, reassignment_ratio=0.0, compute_labels=False, random_state=rnd, verbose=0,
        )  # fmt: skip
        peer.fit(x)
        t_peer = time.perf_counter() - t0
        peer_model = KMeansModel(torch.from_numpy(peer.cluster_centers_.astype(np.float32)), spec)
        t0 = time.perf_counter()
        ours = fit_kmeans(x, spec, KMeansConfig(clusters=k, max_frames=x.shape[0], seed=rnd))
        t_ours = time.perf_counter() - t0
        i_peer, i_ours = peer_model.inertia(xt), ours.inertia(xt)
        log(
            f"round {rnd}: sklearn {t_peer:.2f} s ({peer.n_steps_} steps), inertia {i_peer:.6g} | "
            f"speechssl {t_ours:.2f} s ({ours.info['iterations_run']} Lloyd iterations), inertia {i_ours:.6g} | "
            f"speedup {t_peer / t_ours:.1f}x, inertia ratio {i_ours / i_peer:.4f}"
        )
        out.setdefault("rounds", []).append({"sklearn_s": t_peer, "ours_s": t_ours, "sklearn_inertia": i_peer, "ours_inertia": i_ours})
    r = out["rounds"]
    out["speedup"] = sum(a["sklearn_s"] for a in r) / sum(a["ours_s"] for a in r)
    out["inertia_ratio"] = sum(a["ours_inertia"] for a in r) / sum(a["sklearn_inertia"] for a in r)
    return out


# ------------------------------------------------------------------------------------------ memory
class SyntheticSource:
    """``frames`` 39-dim frames in 500-frame utterances, generated on the fly (a corpus of any size)."""

    def __init__(self, frames: int, dim: int = 39):
        from speechssl.features.spec import FeatureSpec

        self.frames, self.spec, self.manifest, self.skipped = frames, FeatureSpec(kind="mfcc", dim=dim, frame_rate=100.0), "synthetic", []
        self.gen = torch.Generator().manual_seed(0)

    def estimated_frames(self) -> int:
        return self.frames

    def __iter__(self):
        for i, start in enumerate(range(0, self.frames, 500)):
            yield f"utt{i:08d}", torch.randn(min(500, self.frames - start), self.spec.dim, generator=self.gen)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_probe(what: str, frames: int, sample: int) -> None:
    """Run one streamed job over ``frames`` frames; print, as JSON, the resident memory before it and
    its peak while it ran (sampled every 5 ms by a thread), in MiB."""
    import tempfile
    import threading

    from speechssl.labels.assign import label_corpus
    from speechssl.labels.kmeans import KMeansConfig, KMeansModel, sample_frames

    src = SyntheticSource(frames)
    model = KMeansModel(torch.randn(100, 39), src.spec)
    base = _rss_mib()
    peak, done = [base], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    if what == "sample":
        got, seen = sample_frames(src, KMeansConfig(clusters=100, max_frames=sample))
        assert seen == frames and len(got) == min(sample, frames)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            label_corpus(model, {"train": src}, tmp)
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    peak[0] = max(peak[0], _rss_mib())
    print(json.dumps({"what": what, "frames": frames, "base_mib": base, "peak_mib": peak[0], "seconds": seconds}))


def run_memory(args) -> dict:
    out = {}
    for what in ("sample", "label"):
        rows = []
        for mult in (1, 10):
            cmd = [sys.executable, __file__, "--probe", what, "--probe-frames", str(args.memory_sample * mult), "--memory-sample", str(args.memory_sample)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        a, b = rows
        grow_a, grow_b = a["peak_mib"] - a["base_mib"], b["peak_mib"] - b["base_mib"]
        log(
            f"{what}: {a['frames']} frames: +{grow_a:.0f} MiB over the {a['base_mib']:.0f} MiB after imports ({a['seconds']:.1f} s); "
            f"{b['frames']} frames: +{grow_b:.0f} MiB ({b['seconds']:.1f} s); the frames themselves are "
            f"{b['frames'] * 39 * 4 / 2**20:.0f} MiB"
        )
        out[what] = {"rows": rows, "growth_ratio_10x": grow_b / grow_a, "peak_ratio_10x": b["peak_mib"] / a["peak_mib"]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="mfcc,layer", help="comma-separated: mfcc, layer, memory")
    p.add_argument("--data", type=Path, default=Path("data/mini"), help="the mini corpus (built if missing)")
    p.add_argument("--cache", type=Path, default=Path("exp/bench/kmeans"), help="where computed frames are cached")
    p.add_argument("--mfcc-frames", type=int, default=200_000)
    p.add_argument("--mfcc-k", type=int, default=100)
    p.add_argument("--layer-frames", type=int, default=100_000)
    p.add_argument("--layer-k", type=int, default=500)
    p.add_argument("--layer", type=int, default=6)
    p.add_argument("--encoder", default=None, help="an encoder checkpoint (default: HuBERT Base, random weights)")
    p.add_argument("--rounds", type=int, default=1, help="fits per side (seeds 0, 1, ...)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-sample", type=int, default=200_000, help="fit sample size of the memory test")
    p.add_argument("--probe", choices=("sample", "label"), help=argparse.SUPPRESS)
    p.add_argument("--probe-frames", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe:
        memory_probe(args.probe, args.probe_frames, args.memory_sample)
        return
    cases = args.cases.split(",")
    results = {case: run_case(case, args) for case in cases if case in ("mfcc", "layer")}
    if "memory" in cases or args.cases == "mfcc,layer":
        log("\n== memory: streamed sample and labelling, 1x and 10x the fit sample")
        results["memory"] = run_memory(args)
    print()
    for case in ("mfcc", "layer"):
        if case in results:
            print(f"kmeans_{case}_speedup_vs_sklearn: {results[case]['speedup']:.1f}x")
            print(f"kmeans_{case}_inertia_ratio: {results[case]['inertia_ratio']:.4f}")
    if "memory" in results:
        for what in ("sample", "label"):
            print(f"kmeans_{what}_memory_growth_ratio_10x: {results['memory'][what]['growth_ratio_10x']:.3f}")


if __name__ == "__main__":
    main()
