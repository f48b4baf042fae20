"""``speechssl prepare CORPUS CORPUS_DIR OUT_DIR [options]``: make lhotse cut manifests for a corpus.

Writes ``OUT_DIR/cuts_<split>.jsonl.gz`` per split and ``OUT_DIR/skipped.tsv`` (inputs left out and
why), then prints cuts, hours and speakers per split. The work is done by the library functions in
:mod:`speechssl.data.corpora`; this module only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechssl.cli.common import add_verbosity, make_parser, own_output, positive_int, setup_logging, user_errors
from speechssl.data.corpora import PREPARERS, read_skipped

# corpus -> (one-line summary, example command); every example must parse (tested).
CORPORA: dict[str, tuple[str, str]] = {
    "librispeech": (
        "LibriSpeech / Mini LibriSpeech (lhotse recipe): one split per part",
        "speechssl prepare librispeech /data/LibriSpeech data/librispeech --parts train-clean-100 dev-clean test-clean --num-jobs 8",
    ),
    "librilight": (
        "Libri-Light small/medium/large (lhotse recipe): one cut per voice-activity segment",
        "speechssl prepare librilight /data/librilight data/librilight --parts small --num-jobs 8",
    ),
    "voxceleb": (
        "VoxCeleb1 (+ VoxCeleb2): train/test splits and trial lists",
        "speechssl prepare voxceleb /data/voxceleb1 data/voxceleb --voxceleb2-dir /data/voxceleb2 --num-jobs 8",
    ),
    "commonvoice": (
        "Mozilla Common Voice (lhotse recipe; MP3 clips)",
        "speechssl prepare commonvoice /data/cv-corpus-17.0-2024-03-15 data/commonvoice_cy --languages cy --splits train dev test",
    ),
    "fleurs": (
        "FLEURS (lhotse recipe; lhotse's or the google/fleurs layout)",
        "speechssl prepare fleurs /data/fleurs data/fleurs_sw --languages sw_ke",
    ),
    "iemocap": (
        "IEMOCAP: one split per session, emotion labels with the 4-class merge",
        "speechssl prepare iemocap /data/IEMOCAP_full_release data/iemocap",
    ),
    "folder": (
        "any folder of audio files, with optional transcripts and speakers",
        "speechssl prepare folder /data/my_recordings data/my_recordings --split train --sibling-text --speaker-from-dir 1",
    ),
}

# corpus -> the argparse dests passed to its preparer as keyword arguments (named like the parameters)
OPTIONS: dict[str, tuple[str, ...]] = {
    "librispeech": ("parts",),
    "librilight": ("parts",),
    "voxceleb": ("voxceleb2_dir", "trials"),
    "commonvoice": ("languages", "splits"),
    "fleurs": ("languages",),
    "iemocap": ("sessions", "four_class"),
    "folder": (
        "split",
        "text_file",
        "sibling_text",
        "utt2spk",
        "speaker_from_dir",
        "spk2gender",
        "language",
        "allow_missing_text",
        "allow_missing_speaker",
        "extensions",
    ),
}



def _level(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a folder level such as 1 or -1, got {value!r}") from None
    if n == 0:
        raise argparse.ArgumentTypeError(
            "folder levels count from 1 (top folder) or -1 (the file's folder); 0 is neither"
        )
    return n


def _common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("corpus_dir", type=Path, metavar="CORPUS_DIR", help="the corpus as downloaded and unpacked")
    common.add_argument(
        "out_dir", type=Path, metavar="OUT_DIR", help="where to write cuts_<split>.jsonl.gz and skipped.tsv"
    )
    common.add_argument(
        "--num-jobs", type=positive_int, default=1, metavar="N", help="parallel jobs for reading audio (default: 1)"
    )
    common.add_argument(
        "--strict", action="store_true", help="fail at the first unusable input instead of reporting and skipping it"
    )
    common.add_argument(
        "--verify", action="store_true", help="decode every file completely (slow) instead of trusting its header"
    )
    add_verbosity(common)
    return common


def _add_corpus_options(name: str, p: argparse.ArgumentParser) -> None:
    if name == "librispeech":
        from speechssl.data.corpora.librispeech import PARTS

        p.add_argument(
            "--parts", nargs="+", metavar="PART", help=f"parts to prepare (default: those present): {' '.join(PARTS)}"
        )
    elif name == "librilight":
        p.add_argument(
            "--parts",
            nargs="+",
            choices=("small", "medium", "large"),
            metavar="PART",
            help="subsets to prepare: small medium large (default: those present)",
        )
    elif name == "voxceleb":
        p.add_argument(
            "--voxceleb2-dir",
            type=Path,
            metavar="DIR",
            help="VoxCeleb2 folder (vox2_meta.csv; audio converted to WAV/FLAC) to add to train; "
            "CORPUS_DIR is then VoxCeleb1 (vox1_meta.csv + wav/)",
        )
        p.add_argument(
            "--trials",
            nargs="+",
            type=Path,
            metavar="FILE",
            help="VoxCeleb1 trial lists to convert (default: veri_test2.txt etc. found in CORPUS_DIR)",
        )
    elif name == "commonvoice":
        from speechssl.data.corpora.commonvoice import SPLITS

        p.add_argument(
            "--languages", nargs="+", metavar="LANG", help="language folders (default: every folder with clips/)"
        )
        p.add_argument(
            "--splits",
            nargs="+",
            choices=SPLITS,
            metavar="SPLIT",
            help=f"TSV splits: {' '.join(SPLITS)} (default: train dev test, those present)",
        )
    elif name == "fleurs":
        p.add_argument(
            "--languages", nargs="+", metavar="LANG", help="FLEURS codes such as en_us sw_ke (default: all found)"
        )
    elif name == "iemocap":
        p.add_argument(
            "--sessions",
            nargs="+",
            type=int,
            choices=(1, 2, 3, 4, 5),
            metavar="N",
            help="sessions 1-5 to prepare (default: those present)",
        )
        p.add_argument(
            "--all-labels",
            dest="four_class",
            action="store_false",
            help="keep every utterance (fru, sur, fea, dis, oth, xxx too); default: only the 4 classes "
            "neu, hap (+exc), ang, sad",
        )
    elif name == "folder":
        from speechssl.data.corpora.folder import AUDIO_EXTENSIONS

        p.add_argument("--split", default="all", help="split name of the manifest (default: all)")
        text = p.add_mutually_exclusive_group()
        text.add_argument("--text-file", type=Path, metavar="FILE", help="Kaldi-style '<id> <transcript>' file")
        text.add_argument(
            "--sibling-text", action="store_true", help="read <name>.txt or <name>.lab next to each audio file"
        )
        spk = p.add_mutually_exclusive_group()
        spk.add_argument("--utt2spk", type=Path, metavar="FILE", help="Kaldi-style '<id> <speaker>' file")
        spk.add_argument(
            "--speaker-from-dir",
            type=_level,
            metavar="N",
            help="speaker = the N-th folder of the relative path (1 = top folder, -1 = the file's folder)",
        )
        p.add_argument("--spk2gender", type=Path, metavar="FILE", help="Kaldi-style '<speaker> <m|f>' file")
        p.add_argument("--language", metavar="CODE", help="language code for every utterance")
        p.add_argument(
            "--allow-missing-text",
            action="store_true",
            help="keep files without a transcript (text=None) instead of skipping them",
        )
        p.add_argument(
            "--allow-missing-speaker",
            action="store_true",
            help="keep files without a speaker (speaker=None) instead of skipping them",
        )
        p.add_argument(
            "--extensions",
            nargs="+",
            default=list(AUDIO_EXTENSIONS),
            metavar="EXT",
            help="audio extensions, any case (default: %(default)s)",
        )


def get_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "prepare",
        "Make lhotse cut manifests for a corpus: OUT_DIR/cuts_<split>.jsonl.gz per split, and OUT_DIR/skipped.tsv "
        "listing the inputs left out (unreadable, empty or too-short audio, missing transcripts) with the "
        "problem. Run 'speechssl prepare CORPUS --help' for a corpus's layout and options.",
        "\n".join(example for _, example in CORPORA.values()),
    )
    sub = parser.add_subparsers(dest="corpus", metavar="CORPUS", required=True, help="one of: " + ", ".join(CORPORA))
    common = _common_parser()
    for name, (summary, example) in CORPORA.items():
        doc = (sys.modules[PREPARERS[name].__module__].__doc__ or "").strip()  # the corpus layout
        p = sub.add_parser(
            name,
            parents=[common],
            help=summary,
            description=doc or summary,
            epilog=f"Example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_corpus_options(name, p)
    return parser


def _print_summary(corpus: str, splits: dict, out_dir: Path) -> None:
    from speechssl.data.manifest import cuts_path
    from speechssl.data.stats import corpus_stats, format_stats

    print(f"prepared {corpus}: {len(splits)} split(s) in {out_dir}")
    print(format_stats(corpus_stats(splits)))
    for name in splits:
        print(f"  {cuts_path(out_dir, name)}")
    skipped = read_skipped(out_dir, splits)
    if skipped:
        print(f"skipped {len(skipped)} input(s), listed with the problem in {out_dir / 'skipped.tsv'}")


@user_errors("prepare")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    kwargs = {dest: getattr(args, dest) for dest in OPTIONS[args.corpus]}
    if args.corpus == "folder":
        kwargs["extensions"] = tuple(kwargs["extensions"])
    prepare = PREPARERS[args.corpus]
    with own_output(args.out_dir, "prepare"):
        splits = prepare(
            args.corpus_dir, args.out_dir, num_jobs=args.num_jobs, strict=args.strict, verify=args.verify, **kwargs
        )
        _print_summary(args.corpus, splits, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
