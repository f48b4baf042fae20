"""``speechssl tokens extract|bpe-train|bpe-encode``: discrete speech tokens.

The work is done by :mod:`speechssl.tokens`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechssl.cli.common import ALLOW_PICKLE_HELP, add_subcommand, add_verbosity, make_parser, non_negative_int, own_output, positive_float, positive_int, setup_logging, user_errors

EXAMPLES = """speechssl tokens extract --encoder exp/tiny_hubert.safetensors --kmeans exp/kmeans/tiny_hubert_l1_km20.safetensors data/mini exp/tokens --dedup
speechssl tokens extract --encoder exp/tiny_hubert.safetensors --kmeans exp/kmeans/tiny_hubert_l1_km20.safetensors --splits dev data/mini exp/tokens_sharded --format jsonl,npz --shard 1/2
speechssl tokens bpe-train --vocab-size 60 exp/tokens/tokens.jsonl exp/tokens/bpe60
speechssl tokens bpe-encode --model exp/tokens/bpe60.model exp/tokens/tokens.jsonl exp/tokens/bpe60.jsonl"""



def _formats(value: str) -> tuple[str, ...]:
    from speechssl.tokens.extract import FORMATS

    formats = tuple(dict.fromkeys(f.strip() for f in value.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(FORMATS)} separated by commas, got {value!r}")
    return formats


def _shard(value: str) -> tuple[int, int]:
    from speechssl.features.stream import parse_shard

    try:
        return parse_shard(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def get_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "tokens",
        "Discrete speech tokens. 'extract' turns audio into unit sequences: the layer-L hidden states "
        "of an encoder, each frame given its nearest k-means centroid (a model from 'speechssl kmeans "
        "fit' on that layer of that encoder: another is refused). 'bpe-train' trains a sentencepiece "
        "BPE over unit sequences, 'bpe-encode' applies it.",
        EXAMPLES,
    )
    sub = p.add_subparsers(dest="command", metavar="{extract,bpe-train,bpe-encode}", required=True)

    ext = add_subcommand(
        sub,
        "extract",
        "audio -> units",
        "Tokenize INPUT into the folder OUT: tokens.jsonl ({\"id\", \"units\"[, \"durations\"]} per line), "
        "with --format npz units.part-NNNNN.npz (ids, units, offsets[, durations]), errors.tsv (inputs "
        "that could not be read, skipped) and tokens.json (settings and summary, written last: a folder "
        "without it is incomplete). INPUT is a lhotse manifest, a corpus folder with split manifests, "
        "a folder of audio files (ids: paths relative to it, without extension), or a text file "
        "listing audio files ('<path>' or '<id> <path>' per line). Batches hold similar lengths; a "
        "re-run skips the ids already written; --shard i/n writes its own files (tokens.i-of-n.jsonl, ...).",
        EXAMPLES.splitlines()[0],
    )
    ext.add_argument("input", type=Path, metavar="INPUT", help="manifest, corpus folder, folder of audio files, or list of audio files")
    ext.add_argument("out", type=Path, metavar="OUT", help="output folder")
    ext.add_argument("--encoder", required=True, help="encoder: speechssl .safetensors, Hugging Face folder, or fairseq .pt")
    ext.add_argument("--kmeans", type=Path, required=True, help="k-means model fitted on that encoder's layer ('speechssl kmeans fit')")
    ext.add_argument("--layer", type=non_negative_int, default=None, help="encoder layer (default: the k-means model's; another is refused)")
    ext.add_argument("--dedup", action="store_true", help="collapse repeated units; write their run lengths as 'durations' (frames)")
    ext.add_argument("--format", type=_formats, default=("jsonl",), dest="formats", help="jsonl, npz or jsonl,npz (default: jsonl)")
    ext.add_argument("--splits", default=None, help="comma-separated splits of a corpus folder (default: all)")
    ext.add_argument("--shard", type=_shard, default=(1, 1), help="i/n: this worker's share of the inputs (default: 1/1)")
    ext.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda[:N] (default: auto)")
    ext.add_argument("--dtype", choices=("float32", "bf16", "fp16"), default="float32", help="encoder compute precision (default: float32)")
    ext.add_argument("--max-duration", type=positive_float, default=None,
                     help="seconds of audio per batch, padding counted (default: 200 on a GPU, 20 on CPU, where larger batches run slower)")
    ext.add_argument("--num-workers", type=non_negative_int, default=None, help="audio decoding processes (default: 2 on a GPU, 0 on CPU)")
    ext.add_argument("--part-size", type=positive_int, default=10000, help="utterances per npz part (default: 10000)")
    ext.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    ext.add_argument("--strict", action="store_true", help="fail on an unreadable file instead of reporting and skipping it")
    add_verbosity(ext)

    train = add_subcommand(
        sub,
        "bpe-train",
        "train a unit BPE (sentencepiece)",
        "Train a sentencepiece BPE over the unit sequences of tokens JSONL files; writes "
        "PREFIX.model, PREFIX.vocab and PREFIX.json. Units are de-duplicated first unless --no-dedup "
        "(the model remembers which, and encoding does the same).",
        EXAMPLES.splitlines()[2],
    )
    train.add_argument("tokens", type=Path, nargs="+", metavar="TOKENS_JSONL", help="tokens.jsonl file(s) from 'tokens extract'")
    train.add_argument("prefix", type=Path, metavar="PREFIX", help="output prefix of the model files")
    train.add_argument("--vocab-size", type=positive_int, required=True, help="pieces in the vocabulary (at least the units seen + specials)")
    train.add_argument("--no-dedup", dest="dedup", action="store_false", help="train on the unit sequences as they are")
    train.add_argument("--seed", type=int, default=0, help="sentencepiece's seed (default: 0)")
    add_verbosity(train)

    enc = add_subcommand(
        sub,
        "bpe-encode",
        "units -> BPE pieces",
        "Encode the units of a tokens JSONL with a unit BPE model; writes OUT_JSONL with "
        "{\"id\", \"pieces\"} per line.",
        EXAMPLES.splitlines()[3],
    )
    enc.add_argument("tokens", type=Path, metavar="TOKENS_JSONL")
    enc.add_argument("out", type=Path, metavar="OUT_JSONL")
    enc.add_argument("--model", type=Path, required=True, help="PREFIX.model from 'tokens bpe-train'")
    add_verbosity(enc)
    return p


def _extract(args: argparse.Namespace) -> int:
    with own_output(args.out, "tokens extract", args.shard):
        return _extract_owned(args)


def _extract_owned(args: argparse.Namespace) -> int:
    from speechssl.tokens.extract import ExtractConfig, extract_tokens
    from speechssl.tokens.inputs import collect_inputs
    from speechssl.tokens.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_files(args.encoder, args.kmeans, args.layer, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle)
    splits = args.splits.split(",") if args.splits else None
    cuts, input_errors = collect_inputs(args.input, splits=splits, strict=args.strict)
    gpu = tokenizer.device.type == "cuda"
    workers = args.num_workers if args.num_workers is not None else (2 if gpu else 0)
    if not gpu:
        from speechssl.runtime import keep_freed_memory

        keep_freed_memory()  # the front end's large buffers are reused, not page-faulted in per batch
    cfg = ExtractConfig(
        formats=args.formats,
        dedup=args.dedup,
        shard=args.shard,
        max_duration=args.max_duration,
        num_workers=workers,
        strict=args.strict,
        part_size=args.part_size,
        progress=not args.quiet,
    )
    print(f"layer {tokenizer.layer}, {tokenizer.num_units} units, {tokenizer.frame_rate:g} frames/s, on {tokenizer.device}")
    s = extract_tokens(tokenizer, cuts, args.out, cfg, input_errors=input_errors)
    print(
        f"{s.new_utterances} utterances ({s.new_audio_seconds:.1f} s of audio) in {s.wall_seconds:.1f} s: "
        f"real-time factor {s.real_time_factor:.4f}"
    )
    print(
        f"{args.out}: {s.utterances} utterances, {s.frames} frames at {s.frame_rate:g} Hz -> {s.tokens} tokens, "
        f"{s.token_rate:.2f} tokens/s" + (" (de-duplicated)" if args.dedup else "")
    )
    if s.errors:
        print(f"{s.errors} input(s) could not be read and were skipped: see {s.files['errors']}")
    return 0


def _read_units(paths: list[Path]):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                try:
                    r = json.loads(line)
                    yield r["id"], r["units"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{path}:{lineno}: not a tokens JSONL record with 'id' and 'units'") from None


def _bpe_train(args: argparse.Namespace) -> int:
    from speechssl.tokens.bpe import UnitBPE

    for path in args.tokens:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: tokens JSONL not found")
    bpe = UnitBPE.train((u for _, u in _read_units(args.tokens)), args.vocab_size, args.prefix, dedup=args.dedup, seed=args.seed)
    print(f"unit BPE with {bpe.vocab_size} pieces ({'de-duplicated units' if bpe.dedup else 'units as they are'}) -> {args.prefix}.model")
    return 0


def _bpe_encode(args: argparse.Namespace) -> int:
    from speechssl.io import atomic_path
    from speechssl.tokens.bpe import UnitBPE

    bpe = UnitBPE.load(args.model)
    records = list(_read_units([args.tokens]))
    pieces = bpe.encode_many([u for _, u in records])
    with atomic_path(args.out) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"id": i, "pieces": p}) + "\n" for (i, _), p in zip(records, pieces))
    units = sum(len(u) for _, u in records)
    count = sum(len(p) for p in pieces)
    print(f"{len(records)} utterances: {units} units -> {count} pieces ({units / max(count, 1):.2f} units per piece) -> {args.out}")
    return 0


@user_errors("tokens")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    return {"extract": _extract, "bpe-train": _bpe_train, "bpe-encode": _bpe_encode}[args.command](args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
