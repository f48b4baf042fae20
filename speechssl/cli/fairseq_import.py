"""``speechssl fairseq-import``: fairseq .tsv (and .km) files as a manifest (and a label file)."""

from __future__ import annotations

from pathlib import Path

from speechssl.cli.common import add_verbosity, make_parser, setup_logging, user_errors
from speechssl.data.fairseq import cuts_from_tsv, labels_from_km
from speechssl.data.manifest import save_cuts
from speechssl.io import atomic_write_text
from speechssl.labels.files import write_labels


def get_parser():
    p = make_parser(
        "fairseq-import",
        "Read a fairseq <split>.tsv into a cut manifest (cut id = relative path without extension, "
        "16 kHz as fairseq assumes). With --km, its labels (one line per tsv line) are written as a "
        "speechssl label file keyed by cut id. Missing or (with --check-audio) mismatching files "
        "are reported, listed in <out>.skipped.tsv and skipped; --strict fails instead.",
        """speechssl fairseq-import exp/fairseq/train.tsv exp/imported/cuts_train.jsonl.gz""",
    )
    p.add_argument("tsv", type=Path, help="fairseq manifest")
    p.add_argument("out", type=Path, help="cut manifest to write (.jsonl.gz)")
    p.add_argument("--km", type=Path, default=None, help="fairseq label file belonging to the tsv")
    p.add_argument("--labels-out", type=Path, default=None, help="where the speechssl label file goes (needs --km)")
    p.add_argument("--check-audio", action="store_true", help="read each header and compare with the tsv")
    p.add_argument("--strict", action="store_true", help="fail at the first bad entry instead of skipping it")
    add_verbosity(p)
    return p


@user_errors("fairseq-import")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    if args.km is not None and args.labels_out is None:
        raise ValueError("--km needs --labels-out (where to write the label file)")
    cuts, skipped = cuts_from_tsv(args.tsv, check_audio=args.check_audio, strict=args.strict)
    if args.km is not None:
        labels = labels_from_km(args.tsv, args.km, cuts)
        write_labels(args.labels_out, labels)
    save_cuts(cuts, args.out)
    name = args.out.name[: -len(".jsonl.gz")] if args.out.name.endswith(".jsonl.gz") else args.out.stem
    skipped_path = args.out.with_name(f"{name}.skipped.tsv")
    atomic_write_text(skipped_path, "".join(f"{rel}\t{problem}\n" for rel, problem in skipped))
    print(f"imported {len(cuts)} cuts into {args.out}; {len(skipped)} skipped, listed in {skipped_path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
