"""``speechssl fairseq-export``: a manifest (and labels) as fairseq .tsv (and .km) files."""

from __future__ import annotations

from pathlib import Path

from speechssl.cli.common import add_verbosity, make_parser, own_output, setup_logging, user_errors
from speechssl.cli.stats import _split_name
from speechssl.data.fairseq import export_fairseq
from speechssl.data.manifest import load_cuts
from speechssl.labels.files import read_labels


def get_parser():
    p = make_parser(
        "fairseq-export",
        "Write a cut manifest as fairseq's <split>.tsv (root line, then relpath<TAB>num_samples), "
        "labels as <split>.km in the same order, and transcripts as <split>.wrd/.ltr. Cuts that are "
        "not whole 16 kHz mono files are written as WAV copies under --write-audio.",
        """speechssl fairseq-export data/mini/cuts_train.jsonl.gz exp/fairseq --write-audio exp/fairseq/wav --transcripts""",
    )
    p.add_argument("cuts", type=Path, help="cut manifest (.jsonl.gz)")
    p.add_argument("out_dir", type=Path, help="where <split>.tsv (.km, .wrd, .ltr) go")
    p.add_argument("--split", default=None, help="file stem (default: from the manifest name, cuts_<split>)")
    p.add_argument("--labels", type=Path, default=None, help="speechssl label file to write as <split>.km")
    p.add_argument("--root", type=Path, default=None, help="root folder of the tsv (default: common parent of the audio)")
    p.add_argument("--write-audio", type=Path, default=None, metavar="DIR", help="folder for 16 kHz mono WAV copies")
    p.add_argument("--transcripts", action="store_true", help="also write <split>.wrd and <split>.ltr")
    add_verbosity(p)
    return p


@user_errors("fairseq-export")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    split = args.split or _split_name(args.cuts)
    labels = read_labels(args.labels) if args.labels else None
    with own_output(args.out_dir, "fairseq-export"):
        written = export_fairseq(
            load_cuts(args.cuts),
            args.out_dir,
            split,
            labels=labels,
            root=args.root,
            audio_dir=args.write_audio,
            transcripts=args.transcripts,
        )
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
