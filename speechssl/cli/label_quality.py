"""``speechssl label-quality``: phone purity, cluster purity, PNMI and unit usage of label folders."""

from __future__ import annotations

import json
from pathlib import Path

from speechssl.cli.common import make_parser, user_errors
from speechssl.labels.quality import LabelQuality, format_quality, split_quality
from speechssl.labels.store import read_label_dir


def get_parser():
    p = make_parser(
        "label-quality",
        "Measure how well the frame labels of label folders match phone alignments: phone purity, "
        "cluster purity and PNMI (as in HuBERT), with unit usage and unit entropy. Each split recorded "
        "in labels.json is compared with the manifest recorded there, unless --cuts names another. "
        "Without phone alignments only usage and entropy are reported.",
        """speechssl label-quality exp/labels/mfcc_km100
speechssl label-quality exp/labels/mfcc_km100 --split dev --json""",
    )
    p.add_argument("label_dirs", nargs="+", type=Path, metavar="LABEL_DIR", help="label folders (with labels.json)")
    p.add_argument(
        "--split",
        dest="splits",
        action="extend",
        nargs="+",
        metavar="SPLIT",
        help="splits to evaluate (default: every split of each folder)",
    )
    p.add_argument(
        "--cuts",
        type=Path,
        metavar="MANIFEST_OR_FOLDER",
        help="cut manifest with phone alignments, or a corpus folder of cuts_<split>.jsonl.gz "
        "(default: the manifest recorded in labels.json)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


@user_errors("label-quality")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    label_dirs = list(dict.fromkeys(args.label_dirs))
    infos = [read_label_dir(path) for path in label_dirs]  # every folder checked before any work
    for info in infos:
        for split in args.splits or ():
            if split not in info.splits:
                raise ValueError(f"{info.path}: no labels for split '{split}'; it has {', '.join(info.splits) or 'none'}")
    rows: list[tuple[str, str, LabelQuality]] = []
    for path, info in zip(label_dirs, infos):
        splits = list(dict.fromkeys(args.splits)) if args.splits else list(info.splits)
        for split in splits:
            rows.append((str(path), split, split_quality(info, split, args.cuts, len(splits))))
    if args.json:
        out: dict[str, dict] = {}
        for name, split, q in rows:
            out.setdefault(name, {})[split] = q.as_dict()
        print(json.dumps(out, indent=2))
    else:
        print(format_quality(rows))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
