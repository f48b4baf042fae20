"""``speechssl subset``: a subset of a corpus's manifests (Kaldi's utils/subset_data_dir.sh)."""

from __future__ import annotations

import sys
from pathlib import Path

from speechssl.cli.common import add_verbosity, make_parser, own_output, positive_float, setup_logging, user_errors


def get_parser():
    p = make_parser(
        "subset",
        "Write a subset of a prepared corpus: OUT_DIR/cuts_<split>.jsonl.gz for the chosen splits, keeping the "
        "cuts of the given languages and speakers and, with --max-minutes, a seeded random selection of the "
        "budget splits' cuts (plain random, not balanced by speaker) whose total duration fits the budget. "
        "Cuts keep their order and their paths to the source audio (nothing is copied). OUT_DIR/subset.json, "
        "written last, records the arguments and what each split holds; an OUT_DIR made with other arguments "
        "is refused.",
        """speechssl subset data/mini data/mini_en_1min --languages en --max-minutes 1
speechssl subset data/mini data/mini_no_spk008 --splits train dev --exclude-speakers spk008""",
    )
    p.add_argument("src_dir", type=Path, metavar="SRC_DIR", help="prepared corpus folder (cuts_<split>.jsonl.gz)")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where to write the subset (not SRC_DIR)")
    p.add_argument("--splits", nargs="+", metavar="SPLIT", help="splits to write (default: all that SRC_DIR has)")
    p.add_argument("--languages", nargs="+", metavar="LANG", help="keep only cuts in these languages")
    spk = p.add_mutually_exclusive_group()
    spk.add_argument("--speakers", nargs="+", metavar="SPK", help="keep only cuts of these speakers")
    spk.add_argument("--exclude-speakers", nargs="+", metavar="SPK", help="drop the cuts of these speakers")
    p.add_argument(
        "--max-minutes",
        type=positive_float,
        metavar="M",
        help="keep a seeded random selection of at most M minutes in each budget split (default: keep all)",
    )
    p.add_argument(
        "--budget-splits",
        nargs="+",
        metavar="SPLIT",
        help="the splits --max-minutes applies to (default: train); the others are kept whole",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random selection (default: %(default)s)")
    add_verbosity(p)
    return p


@user_errors("subset")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    from speechssl.data.subset import subset_corpus

    with own_output(args.out_dir, "subset"):
        summaries = subset_corpus(
            args.src_dir,
            args.out_dir,
            splits=args.splits,
            languages=args.languages,
            speakers=args.speakers,
            exclude_speakers=args.exclude_speakers,
            max_minutes=args.max_minutes,
            budget_splits=args.budget_splits,
            seed=args.seed,
        )
    for summary in summaries.values():
        print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
