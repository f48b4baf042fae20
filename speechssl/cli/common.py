"""What every verb shares: its parser's shape (prog name, example epilog), logging, and turning
user errors into one clear line on stderr instead of a traceback."""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import sys
from typing import Callable

from speechssl.config import ConfigError
from speechssl.deps import DependencyError, import_torchaudio


def make_parser(verb: str, description: str, examples: str) -> argparse.ArgumentParser:
    """An ArgumentParser for ``speechssl <verb>`` whose ``--help`` ends with working examples."""
    return argparse.ArgumentParser(
        prog=f"speechssl {verb}",
        description=description,
        epilog="Example:\n" + "\n".join(f"  {line}" for line in examples.strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_subcommand(subparsers, name: str, help_: str, description: str, example: str) -> argparse.ArgumentParser:
    """A sub-verb (``speechssl <verb> <name>``) whose ``--help`` ends with a working example."""
    return subparsers.add_parser(
        name,
        help=help_,
        description=description,
        epilog="Example:\n  " + example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _int_at_least(minimum: int, what: str):
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {n}")
        return n

    return parse


positive_int = _int_at_least(1, "a positive integer")  # argparse type: an integer >= 1
non_negative_int = _int_at_least(0, "an integer >= 0")  # argparse type: an integer >= 0


def positive_float(value: str) -> float:
    """argparse type: a number > 0."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {x}")
    return x


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    # faiss logs at INFO which of its CPU builds it loads, trying the ones this CPU lacks first
    logging.getLogger("faiss").setLevel(logging.DEBUG if level == logging.DEBUG else logging.WARNING)


def own_output(folder, verb: str, shard: tuple[int, int] = (1, 1)):
    """:func:`speechssl.io.own_folder` for a verb's output folder, taken by the process that writes
    it: every process of a sharded job (each its shard), rank 0 alone of a torchrun job."""
    import contextlib
    import os

    from speechssl.io import own_folder

    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext(folder)
    return own_folder(folder, verb, shard)


# --allow-pickle, wherever a verb reads an encoder or checkpoint
ALLOW_PICKLE_HELP = (
    "unpickle a fairseq checkpoint fully, running whatever it holds: only for a file you trust that "
    "the safe reader refuses (it reads real fairseq, unilm and CTC checkpoints without this)"
)


def user_errors(verb: str) -> Callable:
    """Decorate a verb's ``main``: errors a user can cause print ``speechssl <verb>: error: ...``
    and return 1; anything else is a bug and keeps its traceback. A torch or torchaudio that does
    not load (:mod:`speechssl.deps`) is such an error, checked before the verb starts."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                if not {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):
                    # a torchaudio that cannot load is said at once, not a traceback mid-run
                    import_torchaudio()
                return main(argv)
            except (ValueError, FileNotFoundError, FileExistsError, ConfigError, DependencyError) as e:
                print(f"speechssl {verb}: error: {e}", file=sys.stderr)
                return 1
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                # a full disk: the path and the space, never a library's trace
                where = f"{e.filename}: " if e.filename else ""
                print(f"speechssl {verb}: error: {where}{e.strerror or e}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print(f"speechssl {verb}: interrupted", file=sys.stderr)
                return 130

        return run

    return wrap
