"""``speechssl stats``: statistics of cut manifests."""

from __future__ import annotations

import json
from pathlib import Path

from speechssl.cli.common import make_parser, user_errors
from speechssl.data.manifest import find_splits, load_cuts
from speechssl.data.stats import corpus_stats, format_stats


def get_parser():
    p = make_parser(
        "stats",
        "Print statistics of cut manifests: cuts, hours, speakers (by gender), durations, languages, "
        "styles and the phone inventory. A folder stands for all its cuts_<split>.jsonl.gz files.",
        """speechssl stats data/mini
speechssl stats data/mini/cuts_train.jsonl.gz data/mini/cuts_dev.jsonl.gz --json""",
    )
    p.add_argument("paths", nargs="+", type=Path, help="cut manifests or prepared corpus folders")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _split_name(path: Path) -> str:
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name[len("cuts_") :] if name.startswith("cuts_") else name


@user_errors("stats")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    manifests: dict[str, Path] = {}
    for path in args.paths:
        found = find_splits(path) if path.is_dir() else {_split_name(path): path}
        for split, p in found.items():
            manifests[split if split not in manifests else str(p)] = p
    stats = corpus_stats({split: load_cuts(p, lazy=True) for split, p in manifests.items()})
    if args.json:
        print(json.dumps({k: v.as_dict() for k, v in stats.items()}, indent=2, ensure_ascii=False))
    else:
        print(format_stats(stats))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
