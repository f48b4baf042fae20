"""``speechssl report``: one Markdown report with PNG figures of a whole run (egs/mini/run.sh, stage 9)."""

from __future__ import annotations

from pathlib import Path

from speechssl.cli.common import add_verbosity, make_parser, own_output, setup_logging, user_errors
from speechssl.cli.downstream import label_dir
from speechssl.report import ReportInputs, read_runs, write_report


def get_parser():
    p = make_parser(
        "report",
        "Write OUT/report.md with PNG figures from what a run's stages wrote: the training curves of "
        "pretraining runs, the label quality of their units against the phone alignments and the "
        "topic-label analysis (--runs, --units); token statistics (--tokens, --bpe); the tables of "
        "downstream evaluations (--asr, --sv, --er, --interfaces), the learned layer weights of each "
        "task, a DET plot of every SV system, an ER confusion matrix, ASR's CER before and after "
        "adapters (--before-after), and a table comparing systems across tasks (--compare). Every "
        "input is checked before anything is written; report.md is written last.",
        """speechssl report --out exp/report --runs exp/ssl/report/runs.tsv --er iter2=exp/er/iter2/eval_test
speechssl report --out exp/report --asr mfcc=exp/asr/mfcc/decode_test iter2=exp/asr/iter2/decode_test --sv mfcc=exp/sv/mfcc/eval_test iter2=exp/sv/iter2/eval_test --compare mfcc iter2""",
    )
    p.add_argument("--out", type=Path, required=True, help="report folder (report.md and the figures)")
    p.add_argument("--title", default="Report", help="the report's heading")
    p.add_argument("--notes", default="", help="a paragraph under the heading")
    p.add_argument("--stats", type=Path, help="corpus statistics ('speechssl stats --json' output)")
    p.add_argument("--runs", type=Path, help="runs.tsv of the pretraining runs (egs/mini/ssl/run.sh's report stage)")
    named = dict(nargs="+", type=label_dir, default=[])
    p.add_argument("--units", metavar="NAME=LABEL_DIR", help="more label folders for the label-quality table", **named)
    p.add_argument("--tokens", type=Path, help="a 'speechssl tokens extract' folder")
    p.add_argument("--bpe", type=Path, help="a 'speechssl tokens bpe-encode' JSONL of those tokens")
    p.add_argument("--asr", metavar="NAME=FOLDER", help="'speechssl asr decode' folders", **named)
    p.add_argument("--sv", metavar="NAME=FOLDER", help="'speechssl sv evaluate' folders", **named)
    p.add_argument("--er", metavar="NAME=FOLDER", help="'speechssl er evaluate' folders", **named)
    p.add_argument("--interfaces", metavar="NAME=FOLDER", help="'speechssl er evaluate' folders of one encoder through different interfaces", **named)
    p.add_argument("--compare", nargs="+", default=[], metavar="NAME", help="systems of the comparison table (names in --asr/--sv/--er)")
    p.add_argument("--focus", metavar="NAME", help="the system whose layer weights per task and ER confusion matrix are shown (default: the last of --compare)")
    p.add_argument("--before-after", nargs=2, metavar=("BEFORE", "AFTER"), help="the ASR systems before and after adapters")
    add_verbosity(p)
    return p


def _named(pairs: list[tuple[str, Path]], option: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, path in pairs:
        if name in out:
            raise ValueError(f"{option}: the name '{name}' is given twice")
        out[name] = path
    return out


@user_errors("report")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    inputs = ReportInputs(
        out=args.out,
        title=args.title,
        notes=args.notes,
        stats=args.stats,
        runs=read_runs(args.runs) if args.runs else [],
        units=_named(args.units, "--units"),
        tokens=args.tokens,
        bpe=args.bpe,
        asr=_named(args.asr, "--asr"),
        sv=_named(args.sv, "--sv"),
        er=_named(args.er, "--er"),
        interfaces=_named(args.interfaces, "--interfaces"),
        compare=list(args.compare),
        focus=args.focus,
        before_after=tuple(args.before_after) if args.before_after else None,
    )
    with own_output(args.out, "report"):
        report = write_report(inputs)
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
