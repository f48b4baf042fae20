"""k-means pseudo-labels: a faiss k-means fitted on a frame sample drawn while streaming over the
corpus, saved as a small safetensors file that knows which features it was fitted on.

Better than fairseq's ``simple_kmeans`` in three ways: the fit sample is a uniform reservoir sample
of frames (fixed memory, whatever the corpus size) instead of every frame of a share of the
utterances loaded into RAM; the fit is faiss's full-batch Lloyd from a k-means++ start instead of
scikit-learn's MiniBatchKMeans; and labelling streams features from the audio (nearest centroid by a
batched matmul, on the GPU when there is one) instead of reading a feature dump.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from torch import Tensor

from speechssl.config import from_dict, to_dict
from speechssl.features.spec import FeatureSpec
from speechssl.nonfinite import check_finite

log = logging.getLogger(__name__)

FORMAT = "speechssl-kmeans"
FORMAT_VERSION = 1


@dataclass
class KMeansConfig:
    """How a k-means model is fitted."""

    clusters: int = 100  # k (fairseq's n_clusters): 100 on MFCC, 500 on layer features in HuBERT
    max_frames: int = 1_000_000  # frames in the fit sample (the memory bound: max_frames x dim floats)
    percent: Optional[float] = None  # sample this % of the corpus's frames instead (still at most max_frames)
    iterations: int = 100  # Lloyd iterations at most on the subset (faiss niter); stops early at convergence
    tolerance: float = 1e-4  # stop when an iteration improves the objective by less than this fraction
    points_per_centroid: int = 256  # the first iterations run on this many sampled frames per cluster (faiss's default)
    refine_iterations: int = 20  # then at most this many on the whole sample (0: none)
    refine_tolerance: float = 1e-3  # ... stopping at this relative improvement
    redo: int = 1  # independent runs, the best objective kept (faiss nredo)
    init: Literal["kmeans++", "afk-mc2", "random"] = "kmeans++"  # initial centroids (kmeans++ is the greedy variant)
    init_frames: Optional[int] = None  # k-means++ runs on a random subset of this many sampled frames (None: 20 per cluster, 10k-50k)
    seed: int = 0  # sampling and initialisation seed

    def __post_init__(self):
        if self.clusters < 2:
            raise ValueError(f"clusters must be >= 2, got {self.clusters}")
        if self.max_frames < self.clusters:
            raise ValueError(f"max_frames ({self.max_frames}) must be at least the number of clusters ({self.clusters})")
        if self.percent is not None and not 0 < self.percent <= 100:
            raise ValueError(f"percent must be in (0, 100], got {self.percent}")
        if self.iterations < 1 or self.redo < 1 or self.points_per_centroid < 1 or self.refine_iterations < 0:
            raise ValueError("iterations and redo must be >= 1")
        if self.init_frames is not None and self.init_frames < self.clusters:
            raise ValueError(f"init_frames ({self.init_frames}) must be at least the number of clusters ({self.clusters})")
        if self.init not in _INIT_METHODS:
            raise ValueError(f"unknown init {self.init!r}; choose from {', '.join(_INIT_METHODS)}")


# faiss's own initialisations; "kmeans++" is ours (greedy k-means++), handed to faiss as init_centroids
_INIT_METHODS = {"kmeans++": "ClusteringInitMethod_RANDOM", "afk-mc2": "ClusteringInitMethod_AFK_MC2", "random": "ClusteringInitMethod_RANDOM"}


def greedy_kmeans_pp(x: Tensor, k: int, *, seed: int = 0, trials: int | None = None) -> Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with several candidates per step as
    scikit-learn does): each new centre is the best of ``trials`` (default ``2 + ln k``) candidates
    drawn with probability proportional to the squared distance to the nearest centre so far, "best"
    meaning the lowest total squared distance afterwards. ``x``: (N, D) -> (k, D)."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means++ needs at least k={k} points, got {n}")
    trials = trials or 2 + int(math.log(k))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = x.float()
    x_sq = x.square().sum(1)  # (N,)

    def sq_dist(idx: Tensor) -> Tensor:  # (len(idx), N) squared distances from points idx to every point
        return (x_sq[idx, None] + x_sq[None, :] - 2.0 * (x[idx] @ x.T)).clamp_min_(0)

    centres = torch.empty(k, dtype=torch.long)
    centres[0] = torch.randint(n, (1,), generator=gen)
    closest = sq_dist(centres[:1])[0]  # (N,) squared distance to the nearest centre
    for i in range(1, k):
        cdf = closest.double().cumsum(0)
        if float(cdf[-1]) <= 0:  # fewer distinct points than k: any point will do
            candidates = torch.randint(n, (trials,), generator=gen)
        else:
            draws = torch.rand(trials, generator=gen, dtype=torch.float64) * cdf[-1]
            candidates = torch.searchsorted(cdf, draws).clamp_max_(n - 1)
        after = torch.minimum(closest[None, :], sq_dist(candidates))  # (trials, N)
        best = int(after.double().sum(1).argmin())
        centres[i] = candidates[best]
        closest = after[best]
    return x[centres].clone()


class FrameReservoir:
    """A uniform random sample of at most ``capacity`` frames from a stream (reservoir sampling,
    Vitter's algorithm R, vectorised per utterance): memory is ``capacity x dim`` whatever the
    stream's length, and every frame seen has the same chance to be in the sample."""

    def __init__(self, capacity: int, dim: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.buffer = np.empty((capacity, dim), dtype=np.float32)
        self.seen = 0
        self.rng = np.random.default_rng(seed)

    def add(self, frames: np.ndarray) -> None:
        n = frames.shape[0]
        if n == 0:
            return
        fill = max(0, min(n, self.capacity - self.seen))
        if fill:
            self.buffer[self.seen : self.seen + fill] = frames[:fill]
        if fill < n:
            # frame number i (0-based, over the whole stream) replaces slot j ~ U{0..i} when j < capacity
            numbers = np.arange(self.seen + fill, self.seen + n, dtype=np.int64)
            slots = self.rng.integers(0, numbers + 1)
            keep = np.nonzero(slots < self.capacity)[0]
            if keep.size:
                # a slot drawn twice within this utterance keeps the later frame, as the sequential algorithm does
                rev = keep[::-1]
                _, first = np.unique(slots[rev], return_index=True)
                chosen = rev[first]
                self.buffer[slots[chosen]] = frames[fill + chosen]
        self.seen += n

    def sample(self) -> np.ndarray:
        return self.buffer[: min(self.seen, self.capacity)]


def sample_frames(source, cfg: KMeansConfig) -> tuple[np.ndarray, int]:
    """Stream ``source`` (cut id, (T, D) features) once; returns the fit sample and the frames seen."""
    capacity = cfg.max_frames
    if cfg.percent is not None:
        capacity = min(capacity, max(cfg.clusters, math.ceil(source.estimated_frames() * cfg.percent / 100)))
    reservoir = FrameReservoir(capacity, source.spec.dim, seed=cfg.seed)
    for _, feats in source:
        reservoir.add(feats.detach().float().cpu().numpy())
    return reservoir.sample(), reservoir.seen


class KMeansModel:
    """Centroids and what they were fitted on. ``assign`` gives each frame its nearest centroid."""

    def __init__(self, centroids: Tensor, spec: FeatureSpec, info: dict | None = None):
        if centroids.dim() != 2 or centroids.shape[1] != spec.dim:
            raise ValueError(f"centroids of shape {tuple(centroids.shape)} do not match {spec.dim}-dim features")
        self.centroids = centroids.float().contiguous()
        self.spec = spec
        self.info = dict(info or {})
        self._on_device: dict[torch.device, tuple[Tensor, Tensor]] = {}

    @property
    def num_clusters(self) -> int:
        return self.centroids.shape[0]

    @property
    def model_id(self) -> str:
        """sha256 of the centroids: two label folders with the same id came from the same model."""
        return hashlib.sha256(self.centroids.numpy().tobytes()).hexdigest()

    def _centroids(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if device not in self._on_device:
            c = self.centroids.to(device)
            self._on_device[device] = (c, c.square().sum(1))  # (K, D), (K,)
        return self._on_device[device]

    @torch.inference_mode()
    def distances(self, feats: Tensor) -> Tensor:
        """Squared distances minus ``|x|^2`` (the same ranking): ``|c|^2 - 2 x.c``, shape (N, K)."""
        c, c_sq = self._centroids(feats.device)
        return torch.addmm(c_sq, feats.float(), c.T, alpha=-2.0)  # (N, K)

    @torch.inference_mode()
    def assign(self, feats: Tensor, chunk: int = 65536) -> Tensor:
        """Nearest centroid of each frame ``(N, D)`` -> ``(N,)`` int64, on the frames' device."""
        if feats.dim() != 2 or feats.shape[1] != self.spec.dim:
            raise ValueError(f"expected frames of shape (N, {self.spec.dim}), found {tuple(feats.shape)}")
        return torch.cat([self.distances(x).argmin(1) for x in feats.split(chunk)]) if feats.shape[0] else feats.new_zeros(0, dtype=torch.long)

    @torch.inference_mode()
    def inertia(self, feats: Tensor, chunk: int = 65536) -> float:
        """Sum of squared distances of frames to their nearest centroid (float64 accumulation)."""
        total = 0.0
        for x in feats.split(chunk):
            x = x.float()
            d = self.distances(x).min(1).values + x.square().sum(1)
            total += float(d.clamp_min(0).double().sum())
        return total

    def check_features(self, spec: FeatureSpec, what: str) -> None:
        """Refuse features other than the ones this model was fitted on."""
        why = self.spec.mismatch(spec)
        if why:
            raise ValueError(
                f"{what}: the k-means model was fitted on {self.spec.describe()}, not on these features "
                f"({spec.describe()}): {why}"
            )

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        from speechssl.io import atomic_path

        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"{path}: k-means models are written as .safetensors files")
        metadata = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "feature": json.dumps(self.spec.as_dict()),
            "info": json.dumps(self.info),
        }
        check_finite({"centroids": self.centroids}, f"{path}: k-means model")
        with atomic_path(path) as tmp:
            save_file({"centroids": self.centroids}, str(tmp), metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KMeansModel":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: k-means model not found")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ValueError(f"{path}: not a speechssl k-means model (format {meta.get('format')!r})")
                if int(meta.get("format_version", "0")) > FORMAT_VERSION:
                    raise ValueError(f"{path}: format version {meta['format_version']} is newer than this speechssl reads")
                centroids = f.get_tensor("centroids")
        except ValueError:
            raise
        except Exception as e:  # safetensors' own errors for a truncated or foreign file
            raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
        bad = (~torch.isfinite(centroids).all(1)).nonzero().flatten().tolist() if centroids.dim() == 2 else []
        if bad:  # every frame nearest a NaN "centroid" would get one unit, in a label folder that looks complete
            shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
            raise ValueError(f"{path}: refused: {len(bad)} of {len(centroids)} centroids hold NaN or infinite values (units {shown}); fit the model again")
        return cls(centroids, FeatureSpec.from_dict(json.loads(meta["feature"])), json.loads(meta.get("info", "{}")))

    def config(self) -> KMeansConfig | None:
        cfg = self.info.get("config")
        return from_dict(KMeansConfig, cfg) if cfg else None


def _faiss_kmeans(d, k, iterations, tolerance, seed, points_per_centroid, gpu, verbose, init):
    import faiss

    return faiss.Kmeans(
        d,
        k,
        niter=iterations,
        seed=seed,
        verbose=verbose,
        gpu=gpu,
        max_points_per_centroid=max(1, points_per_centroid),
        min_points_per_centroid=1,
        init_method=getattr(faiss, _INIT_METHODS[init]),  # ignored when init_centroids are given
        early_stop_threshold=tolerance,
    )


def fit_kmeans(sample: np.ndarray, spec: FeatureSpec, cfg: KMeansConfig, *, gpu: bool = False, verbose: bool = False) -> KMeansModel:
    """faiss k-means on ``sample`` (N, D), best of ``cfg.redo`` runs, each:

    1. ``cfg.init`` start (greedy k-means++ on a random subset of the sample, by default);
    2. Lloyd iterations on a random subset of ``cfg.points_per_centroid`` frames per cluster (faiss's
       own subsampling and default) until ``cfg.tolerance`` or ``cfg.iterations``;
    3. when the sample is larger than that subset, Lloyd iterations on every sampled frame from
       there, until ``cfg.refine_tolerance`` or ``cfg.refine_iterations``: stage 2 lands near the
       full-sample optimum, so these few expensive iterations finish the job.
    """
    import faiss

    n, d = sample.shape
    if d != spec.dim:
        raise ValueError(f"sample has {d} dims, the feature spec says {spec.dim}")
    if n < cfg.clusters:
        raise ValueError(f"only {n} frames to fit {cfg.clusters} clusters; use fewer clusters or more data")
    if not np.isfinite(sample).all():
        raise ValueError("the fit sample holds NaN or infinite feature values")
    faiss.omp_set_num_threads(torch.get_num_threads())
    x = np.ascontiguousarray(sample, dtype=np.float32)
    coarse_frames = cfg.points_per_centroid * cfg.clusters
    best = None
    for run in range(cfg.redo):
        seed = cfg.seed + run
        init = None
        if cfg.init == "kmeans++":
            rng = np.random.default_rng(seed)
            m = cfg.init_frames or min(50_000, max(10_000, 20 * cfg.clusters))
            subset = x if n <= m else x[np.sort(rng.choice(n, m, replace=False))]
            init = greedy_kmeans_pp(torch.from_numpy(subset), cfg.clusters, seed=seed).numpy()
        # stage 1: Lloyd on a random subset of points_per_centroid frames per cluster (faiss subsamples)
        coarse = _faiss_kmeans(d, cfg.clusters, cfg.iterations, cfg.tolerance, seed, cfg.points_per_centroid, gpu, verbose, cfg.init)
        coarse.train(x, init_centroids=init)
        centroids, objective, iterations = coarse.centroids, float(coarse.obj[-1]), len(coarse.obj)
        if n > coarse_frames:
            if cfg.refine_iterations:  # stage 2: Lloyd on every sampled frame, from stage 1's centroids
                fine = _faiss_kmeans(d, cfg.clusters, cfg.refine_iterations, cfg.refine_tolerance, seed, math.ceil(n / cfg.clusters), gpu, verbose, "random")
                fine.train(x, init_centroids=np.ascontiguousarray(centroids))
                centroids, objective, iterations = fine.centroids, float(fine.obj[-1]), iterations + len(fine.obj)
            else:  # stage 1's objective is over its subset: measure the whole sample
                objective = KMeansModel(torch.from_numpy(np.array(centroids)), spec).inertia(torch.from_numpy(x))
        log.debug("k-means run %d: %d iterations, objective %.6g", run, iterations, objective)
        if best is None or objective < best[0]:
            best = (objective, np.array(centroids, dtype=np.float32), iterations)
    objective, centroids, iterations = best
    info = {
        "config": to_dict(cfg),
        "sample_frames": int(n),
        "iterations_run": int(iterations),
        "sample_inertia_per_frame": objective / n,  # of the last assignment of the sample
    }
    return KMeansModel(torch.from_numpy(centroids), spec, info)
