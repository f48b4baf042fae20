"""``speechssl make-mini-corpus OUT [options] [KEY=VALUE ...]``: synthesise the mini corpus.

The work is done by :func:`speechssl.data.mini.make_mini_corpus`; this module parses arguments,
resolves the config (defaults or ``--tiny`` < ``--config`` YAML < flags < ``KEY=VALUE``) and prints.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from speechssl.cli.common import add_verbosity, make_parser, own_output, positive_float, positive_int, setup_logging, user_errors
from speechssl.config import add_config_args, config_to_yaml, resolve_config

EXAMPLES = """speechssl make-mini-corpus data/mini
speechssl make-mini-corpus data/mini_tiny --tiny
speechssl make-mini-corpus data/mini_3h --hours 3 --num-speakers 60 --languages en,de,es,fr --seed 1
speechssl make-mini-corpus data/mini_en --config recipes/data/mini.yaml --languages en styles=neutral,sad"""


def get_parser() -> argparse.ArgumentParser:
    from speechssl.data.mini import LANGUAGES, STYLES

    p = make_parser(
        "make-mini-corpus",
        "Synthesise the mini corpus with espeak-ng: many voices (both genders), several languages, "
        "transcripts, prosody styles standing in for emotions, and phone/word alignments from the "
        "synthesiser's phoneme events. Writes OUT/wavs/<speaker>/<cut>.flac, OUT/cuts_{train,dev,test}"
        ".jsonl.gz (dev and test speakers held out), OUT/trials_{dev,test}.txt, OUT/styles_<split>.txt, "
        "OUT/stats.json, OUT/config.yaml and OUT/.complete (last). Deterministic under --seed for any "
        "--num-jobs; an interrupted run resumes; a finished OUT with the same config is left alone.",
        EXAMPLES,
    )
    p.add_argument("out_dir", type=Path, metavar="OUT", help="output folder")
    p.add_argument(
        "--tiny", action="store_true", help="start from the CI-sized preset (16 speakers, 80 short utterances)"
    )
    p.add_argument("--hours", type=positive_float, metavar="H", help="target size in hours (default 1.0)")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    p.add_argument("--num-speakers", type=positive_int, metavar="N", help="number of speakers (default 40)")
    p.add_argument(
        "--languages",
        metavar="CODES",
        help=f"comma-separated language codes from: {','.join(LANGUAGES)} (default: all)",
    )
    p.add_argument(
        "--styles",
        metavar="NAMES",
        help=f"comma-separated prosody styles from: {','.join(STYLES)} (default: neutral,happy,sad,angry)",
    )
    p.add_argument(
        "--num-jobs", type=positive_int, metavar="N", help="synthesis processes (default: the CPUs available)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="delete a previous mini corpus in OUT (any config) and build again"
    )
    add_verbosity(p)
    add_config_args(p)
    return p


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """What the flags mean as config overrides."""
    out = []
    if args.hours is not None:
        out += [f"hours={args.hours}", "utterances=null"]  # size by hours, also under --tiny
    if args.seed is not None:
        out.append(f"seed={args.seed}")
    if args.num_speakers is not None:
        out.append(f"num_speakers={args.num_speakers}")
    if args.languages is not None:
        out.append(f"languages={args.languages}")
    if args.styles is not None:
        out.append(f"styles={args.styles}")
    return out


@user_errors("make-mini-corpus")
def main(argv: list[str] | None = None) -> int:
    from speechssl.data.mini import MiniCorpusConfig, is_complete, load_mini_corpus_stats, make_mini_corpus
    from speechssl.data.stats import format_stats

    args = get_parser().parse_intermixed_args(argv)
    base = MiniCorpusConfig.tiny() if args.tiny else MiniCorpusConfig()
    config = resolve_config(base, args, _flag_overrides(args))
    if args.print_config:
        print(config_to_yaml(config), end="")
        return 0
    setup_logging(args)
    out = args.out_dir
    with own_output(out, "make-mini-corpus"):
        if not args.overwrite and is_complete(out, config):
            print(f"{out}: the mini corpus is already there with this config (pass --overwrite to build it again)")
            stats = load_mini_corpus_stats(out)
        else:
            t0 = time.perf_counter()
            stats = make_mini_corpus(out, config, num_jobs=args.num_jobs, overwrite=args.overwrite)
            print(f"made the mini corpus in {out} in {time.perf_counter() - t0:.1f} s")
    print(format_stats(stats))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
