#!/usr/bin/env python
"""Write docs/cli.md, the reference of every ``speechssl`` verb, from the parsers themselves.

    .venv/bin/python tools/cli_reference.py            # rewrite docs/cli.md
    .venv/bin/python tools/cli_reference.py --check    # exit 1 if docs/cli.md is out of date

Each verb's section is its ``--help`` (usage, description, options, example) and, for verbs with
sub-commands (``kmeans fit``, ``asr train``, ...), each sub-command's ``--help``. Help text is
formatted 100 columns wide so the file does not depend on the terminal. tests/test_cli_reference.py
fails when the file and the parsers disagree.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "cli.md"
WIDTH = "100"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-parsers in a _SubParsersAction
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help().rstrip() + "\n"
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def render() -> str:
    from speechssl.cli.main import VERBS

    lines = [
        "# Command-line reference",
        "",
        "Generated from the parsers by `tools/cli_reference.py` (do not edit by hand; "
        "`tests/test_cli_reference.py` checks it is current). `speechssl --help` lists the verbs; "
        "`speechssl <verb> --help` prints the same text as below.",
        "",
        *(f"- [`{verb}`](#{verb}): {summary}" for verb, (_, summary) in VERBS.items()),
        "",
    ]
    for verb, (module, _) in VERBS.items():
        parser = importlib.import_module(f"speechssl.cli.{module}").get_parser()
        lines += [f"## {verb}", "", "```text", _help(parser).rstrip(), "```", ""]
        for name, sub in _subcommands(parser).items():
            lines += [f"### {verb} {name}", "", "```text", _help(sub).rstrip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md differs from the parsers")
    check = args.parse_args(argv).check
    text = render()
    if check:
        current = OUT.read_text(encoding="utf-8") if OUT.is_file() else ""
        if current != text:
            print(f"{OUT} is out of date: run tools/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_name(OUT.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
