"""``speechssl doctor``: check the installation and say what is wrong, with a one-line fix each."""

from __future__ import annotations

import dataclasses
import json
import sys

from speechssl.cli.common import make_parser
from speechssl.doctor import FAIL, format_report, run_checks


def get_parser():
    p = make_parser(
        "doctor",
        "Check this installation: Python, speechssl's declared requirements (and the tested lock in a "
        "source checkout), torch, torchaudio (does its compiled library load with this torch?), CUDA "
        "and the GPUs, faiss (GPU support?), lhotse, transformers, soundfile, espeak-ng, thread "
        "settings and the CPU. Each problem comes with a one-line fix. Run it first, and paste its "
        "output into bug reports. Exits 1 when something must be fixed.",
        """speechssl doctor
speechssl doctor --json > doctor.json""",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON (a list of {name, status, found, fix})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    checks = run_checks()
    if args.json:
        print(json.dumps([dataclasses.asdict(c) for c in checks], indent=2))
    else:
        print(format_report(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
