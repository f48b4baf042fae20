"""``speechssl kmeans fit`` / ``speechssl kmeans label``: k-means pseudo-labels."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from speechssl.cli.common import ALLOW_PICKLE_HELP, add_verbosity, make_parser, non_negative_int, own_output, positive_float, positive_int, setup_logging, user_errors
from speechssl.cli.features import add_compute_args, extractor_from_args

log = logging.getLogger("speechssl.kmeans")

EXAMPLES = """speechssl kmeans fit --kind mfcc --clusters 100 data/mini exp/kmeans/mfcc_km100.safetensors
speechssl kmeans label --model exp/kmeans/mfcc_km100.safetensors data/mini exp/labels/mfcc_km100 --fairseq
speechssl kmeans fit --clusters 50 exp/feats/mfcc exp/kmeans/mfcc_km50.safetensors
speechssl kmeans label --model exp/kmeans/mfcc_km50.safetensors exp/feats/mfcc exp/labels/mfcc_km50
speechssl kmeans fit --clusters 20 exp/feats/tiny_hubert_l1 exp/kmeans/tiny_hubert_l1_km20.safetensors"""


def get_parser():
    p = make_parser(
        "kmeans",
        "k-means pseudo-labels. 'fit' streams over a split (default: train) once, keeps a uniform "
        "random sample of frames of fixed size (--max-frames, or --percent of the frames), and fits a "
        "faiss k-means (k-means++ start, Lloyd until converged); the model records the features it was "
        "fitted on. 'label' streams over every split and gives each frame its nearest centroid, into "
        "a label folder (labels.json + <split>.labels; --fairseq adds <split>.km and dict.km.txt). "
        "DATA is a corpus folder or manifest (features computed from the audio, nothing dumped) or a "
        "folder written by 'speechssl features'.",
        EXAMPLES,
    )
    sub = p.add_subparsers(dest="command", metavar="{fit,label}", required=True)

    fit = sub.add_parser("fit", help="fit a k-means model", description="Fit a k-means model on a streamed frame sample.")
    fit.add_argument("data", type=Path, help="corpus folder, manifest, or feature folder")
    fit.add_argument("out", type=Path, help="the model, OUT.safetensors")
    fit.add_argument("--split", default="train", help="split to fit on (default: train; a single manifest is used as it is)")
    fit.add_argument("--clusters", "-k", type=positive_int, default=100, help="number of clusters (default: 100)")
    fit.add_argument("--max-frames", type=positive_int, default=1_000_000, help="frames in the fit sample, the memory bound (default: 1000000)")
    fit.add_argument("--percent", type=positive_float, default=None, help="sample this %% of the frames instead (still at most --max-frames)")
    fit.add_argument("--iterations", type=positive_int, default=100, help="Lloyd iterations at most on the subset (default: 100)")
    fit.add_argument("--tolerance", type=float, default=1e-4, help="stop when an iteration improves the objective by less than this fraction (default: 1e-4)")
    fit.add_argument("--points-per-centroid", type=positive_int, default=256, help="the first iterations run on this many sampled frames per cluster (default: 256)")
    fit.add_argument("--refine-iterations", type=non_negative_int, default=20, help="then at most this many on the whole sample, 0 for none (default: 20)")
    fit.add_argument("--redo", type=positive_int, default=1, help="independent runs, best kept (default: 1)")
    fit.add_argument("--init", choices=("kmeans++", "afk-mc2", "random"), default="kmeans++", help="initialisation (default: kmeans++)")
    fit.add_argument("--seed", type=int, default=0, help="sampling and initialisation seed (default: 0)")
    fit.add_argument("--gpu", action="store_true", help="fit with faiss on the GPU (needs faiss built with GPU support)")
    add_compute_args(fit)
    add_verbosity(fit)

    lab = sub.add_parser("label", help="label every split with a model", description="Label frames with their nearest centroid.")
    lab.add_argument("data", type=Path, help="corpus folder, manifest, or feature folder")
    lab.add_argument("out", type=Path, help="label folder")
    lab.add_argument("--model", type=Path, required=True, help="a model written by 'speechssl kmeans fit'")
    lab.add_argument("--splits", default=None, help="comma-separated splits (default: all of DATA)")
    lab.add_argument("--fairseq", action="store_true", help="also write <split>.km (manifest order) and a checked dict.km.txt")
    g = lab.add_argument_group("computing features (the model says which; these say how)")
    g.add_argument("--encoder", default=None, help="where the model's encoder is now, if it moved (its weights must be the same)")
    g.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    g.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda[:N] (default: auto)")
    g.add_argument("--dtype", choices=("float32", "bf16", "fp16"), default="float32", help="encoder compute precision (default: float32)")
    g.add_argument("--max-duration", type=positive_float, default=200.0, help="seconds of audio per batch (default: 200)")
    g.add_argument("--num-workers", type=non_negative_int, default=0, help="audio decoding processes (default: 0)")
    g.add_argument("--strict", action="store_true", help="fail on an unreadable recording instead of reporting and skipping it")
    add_verbosity(lab)
    return p


def _fit(args: argparse.Namespace) -> int:
    from speechssl.features.build import open_sources
    from speechssl.features.stream import is_feature_dump, split_manifests
    from speechssl.labels.kmeans import KMeansConfig, fit_kmeans, sample_frames

    cfg = KMeansConfig(
        clusters=args.clusters,
        max_frames=args.max_frames,
        percent=args.percent,
        iterations=args.iterations,
        tolerance=args.tolerance,
        points_per_centroid=args.points_per_centroid,
        refine_iterations=args.refine_iterations,
        redo=args.redo,
        init=args.init,
        seed=args.seed,
    )
    if args.out.suffix != ".safetensors":
        raise ValueError(f"{args.out}: the model is written as a .safetensors file")
    dump = is_feature_dump(args.data)
    extractor = None if dump else extractor_from_args(args)
    if not dump and len(split_manifests(args.data)) == 1:
        splits = None  # a single manifest: fit on it whatever its name
    else:
        splits = [args.split]
    sources = open_sources(
        args.data, splits=splits, extractor=extractor, max_duration=args.max_duration, num_workers=args.num_workers, strict=args.strict
    )
    (split, source), = sources.items()
    t0 = time.perf_counter()
    sample, seen = sample_frames(source, cfg)
    t1 = time.perf_counter()
    print(f"sampled {len(sample)} of {seen} frames of {split} ({source.spec.describe()}) in {t1 - t0:.1f} s")
    if source.skipped:
        print(f"{len(source.skipped)} unreadable utterances were skipped (see the log)")
    model = fit_kmeans(sample, source.spec, cfg, gpu=args.gpu, verbose=args.verbose)
    model.info["manifest"] = str(source.manifest)
    model.save(args.out)
    info = model.info
    print(
        f"k={cfg.clusters}: {info['iterations_run']} iterations in {time.perf_counter() - t1:.1f} s, "
        f"inertia per frame {info['sample_inertia_per_frame']:.4g} -> {args.out}"
    )
    return 0


def _label(args: argparse.Namespace) -> int:
    from speechssl.features.build import extractor_for_spec, open_sources
    from speechssl.features.stream import is_feature_dump
    from speechssl.labels.assign import export_fairseq_km, label_corpus
    from speechssl.labels.kmeans import KMeansModel

    model = KMeansModel.load(args.model)
    extractor = None
    if not is_feature_dump(args.data):
        extractor = extractor_for_spec(model.spec, encoder=args.encoder, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)
        model.check_features(extractor.spec, f"--encoder {args.encoder or model.spec.encoder_path}")
    splits = args.splits.split(",") if args.splits else None
    sources = open_sources(
        args.data, splits=splits, extractor=extractor, max_duration=args.max_duration, num_workers=args.num_workers, strict=args.strict
    )
    info = label_corpus(model, sources, args.out, model_path=str(args.model))
    for split in sources:
        s = info.splits[split]
        skipped = f", {s.skipped} unreadable skipped" if s.skipped else ""
        print(f"{split}: {s.cuts} utterances, {s.frames} frames labelled{skipped}")
    if args.fairseq:
        written = export_fairseq_km(info)
        print("fairseq: " + ", ".join(str(p) for p in written.values()))
    print(f"labels of {len(info.splits)} split(s), k={info.num_units}, {info.frame_rate:g} Hz -> {args.out}")
    return 0


@user_errors("kmeans")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    if args.command == "fit":
        return _fit(args)  # one file, written atomically
    with own_output(args.out, "kmeans label"):
        return _label(args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
