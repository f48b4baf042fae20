"""``speechssl validate``: decode every cut of a manifest, report and drop the unusable ones."""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lhotse import CutSet

from speechssl.cli.common import add_verbosity, make_parser, setup_logging, user_errors
from speechssl.data.audio import MIN_SAMPLES, AudioError, load_cut_audio
from speechssl.data.manifest import load_cuts, save_cuts
from speechssl.io import atomic_write_text

log = logging.getLogger("speechssl.validate")


def get_parser():
    p = make_parser(
        "validate",
        "Decode every cut's audio (mono, 16 kHz). Unreadable, empty, too-short or missing files are "
        "reported and listed in a skipped file (cut id, problem); --out writes the manifest without "
        "them. With --strict the first bad cut fails the run.",
        """speechssl validate data/mini/cuts_train.jsonl.gz --out data/mini_clean/cuts_train.jsonl.gz""",
    )
    p.add_argument("cuts", type=Path, help="cut manifest (.jsonl.gz)")
    p.add_argument("--out", type=Path, default=None, help="write the manifest of good cuts here")
    p.add_argument(
        "--skipped", type=Path, default=None, help="list of bad cuts (default: next to --out, else next to CUTS, *.skipped.tsv)"
    )
    p.add_argument("--strict", action="store_true", help="fail at the first bad cut instead of skipping it")
    p.add_argument("--min-samples", type=int, default=MIN_SAMPLES, help="shortest usable audio, in 16 kHz samples")
    p.add_argument("--num-jobs", type=int, default=1, help="decoding processes")
    add_verbosity(p)
    return p


def _check(item: tuple) -> tuple[str, str | None]:
    cut, min_samples = item
    try:
        load_cut_audio(cut, min_samples=min_samples)
    except (AudioError, FileNotFoundError) as e:
        return cut.id, str(e)
    return cut.id, None


def _skipped_path(args) -> Path:
    if args.skipped is not None:
        return args.skipped
    base = args.out if args.out is not None else args.cuts
    name = base.name[: -len(".jsonl.gz")] if base.name.endswith(".jsonl.gz") else base.stem
    return base.with_name(f"{name}.skipped.tsv")


@user_errors("validate")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    cuts = load_cuts(args.cuts)
    items = [(c, args.min_samples) for c in cuts]
    bad: dict[str, str] = {}
    if args.num_jobs > 1:
        # spawn, not fork: a forked child of a process that already ran torch ops can hang in OpenMP
        with ProcessPoolExecutor(args.num_jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = pool.map(_check, items, chunksize=16)
            for cut_id, problem in results:
                if problem:
                    if args.strict:
                        pool.shutdown(cancel_futures=True)
                        raise ValueError(f"cut '{cut_id}': {problem}")
                    bad[cut_id] = problem
    else:
        for item in items:
            cut_id, problem = _check(item)
            if problem:
                if args.strict:
                    raise ValueError(f"cut '{cut_id}': {problem}")
                bad[cut_id] = problem
    for cut_id, problem in bad.items():
        log.warning("skipped %s: %s", cut_id, problem)
    skipped_path = _skipped_path(args)
    atomic_write_text(skipped_path, "".join(f"{k}\t{v}\n" for k, v in bad.items()))
    if args.out is not None:
        save_cuts(CutSet.from_cuts(c for c in cuts if c.id not in bad), args.out)
    print(f"{len(items) - len(bad)} of {len(items)} cuts are usable; {len(bad)} skipped, listed in {skipped_path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
