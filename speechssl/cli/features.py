"""``speechssl features``: compute MFCC or encoder-layer features and write them to disk."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from speechssl.cli.common import ALLOW_PICKLE_HELP, add_verbosity, make_parser, non_negative_int, own_output, positive_float, setup_logging, user_errors

log = logging.getLogger("speechssl.features")


def add_compute_args(p: argparse.ArgumentParser, *, kind_required: bool = False) -> None:
    """Options that say which features to compute and how (shared with ``speechssl kmeans``)."""
    g = p.add_argument_group("features to compute (when DATA is a manifest or corpus folder)")
    g.add_argument("--kind", choices=("mfcc", "layer"), default=None, help="MFCC (39 dims, 100 Hz) or an encoder layer (50 Hz)")
    g.add_argument("--encoder", default=None, help="layer features: a speechssl checkpoint, Hugging Face folder or fairseq checkpoint")
    g.add_argument("--layer", type=int, default=None, help="layer features: index into hidden_states (0 = input of the first layer)")
    g.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    g.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda[:N] (default: auto)")
    g.add_argument("--dtype", choices=("float32", "bf16", "fp16"), default="float32", help="encoder compute precision (autocast); features are stored as float32")
    g.add_argument("--max-duration", type=positive_float, default=200.0, help="seconds of audio per batch (default: 200)")
    g.add_argument("--num-workers", type=non_negative_int, default=0, help="audio decoding processes (default: 0, decode in the main process)")
    g.add_argument("--strict", action="store_true", help="fail on an unreadable recording instead of reporting and skipping it")


def extractor_from_args(args: argparse.Namespace):
    from speechssl.features.build import build_extractor

    kind = args.kind or ("layer" if args.encoder else None)
    if kind is None:
        raise ValueError("say which features to compute: --kind mfcc, or --encoder PATH --layer L")
    return build_extractor(kind, encoder=args.encoder, layer=args.layer, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)


def get_parser():
    p = make_parser(
        "features",
        "Compute frame features of a manifest (or of every split of a corpus folder) and write them "
        "to OUT/<split>/shard-<i>-of-<n>.{bin,tsv,json}. With --shard i/n, this worker does every n-th "
        "utterance starting at the i-th; 'speechssl kmeans' reads the shards of a split together once "
        "all are finished. A finished shard (its .json exists) is skipped unless --overwrite. The "
        "k-means verbs can also compute features on the fly from the audio, with no dump at all.",
        """speechssl features --kind mfcc data/mini exp/feats/mfcc
speechssl features --kind mfcc data/mini/cuts_train.jsonl.gz exp/feats/mfcc_sharded --shard 1/2
speechssl features --kind mfcc data/mini/cuts_train.jsonl.gz exp/feats/mfcc_sharded --shard 2/2
speechssl features --encoder exp/tiny_hubert.safetensors --layer 1 data/mini exp/feats/tiny_hubert_l1 --dtype float32""",
    )
    p.add_argument("data", type=Path, help="a cut manifest (cuts_<split>.jsonl.gz) or a corpus folder of them")
    p.add_argument("out", type=Path, help="output folder (one subfolder per split)")
    add_compute_args(p)
    p.add_argument("--shard", default="1/1", help="this worker's part, i/n with 1 <= i <= n (default: 1/1)")
    p.add_argument("--splits", default=None, help="comma-separated splits of a corpus folder (default: all)")
    p.add_argument("--store-dtype", choices=("float32", "float16"), default="float32", help="dtype on disk (default: float32)")
    p.add_argument("--overwrite", action="store_true", help="recompute finished shards")
    add_verbosity(p)
    return p


@user_errors("features")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    from speechssl.features.stream import is_feature_dump, parse_shard

    shard = parse_shard(args.shard)
    if is_feature_dump(args.data):
        raise ValueError(f"{args.data} already holds computed features; give a manifest or corpus folder")
    with own_output(args.out, "features", shard):
        return _dump(args, shard)


def _dump(args, shard: tuple[int, int]) -> int:
    from speechssl.features.build import open_sources
    from speechssl.features.stream import dump_features, shard_name

    extractor = extractor_from_args(args)
    splits = args.splits.split(",") if args.splits else None
    sources = open_sources(
        args.data, splits=splits, extractor=extractor, shard=shard, max_duration=args.max_duration, num_workers=args.num_workers, strict=args.strict
    )
    for split, source in sources.items():
        folder = args.out / split
        meta = folder / f"{shard_name(*shard)}.json"
        if meta.is_file() and not args.overwrite:
            done = json.loads(meta.read_text(encoding="utf-8"))
            why = source.spec.mismatch(type(source.spec).from_dict(done["feature"]))
            if why:
                raise ValueError(f"{meta}: a finished shard of other features is there ({why}); use --overwrite or another folder")
            print(f"{split}: {meta} is finished, skipped (--overwrite recomputes it)")
            continue
        dump_features(source, folder, *shard, dtype=args.store_dtype)
        info = json.loads(meta.read_text(encoding="utf-8"))
        skipped = f", {info['skipped']} unreadable skipped" if info["skipped"] else ""
        print(f"{split}: {info['cuts']} utterances, {info['frames']} frames of {source.spec.describe()} -> {folder}{skipped}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
