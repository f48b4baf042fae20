"""Argument pieces the downstream verbs share (``asr``, ``sv``, ``er``): the ``train`` sub-command
(config file, ``KEY=VALUE`` overrides and the common flags), the ``results`` sub-command, and the
dispatch from ``<verb> <command> ...`` to the command's handler."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Callable

from speechssl.cli.common import add_subcommand, add_verbosity, own_output, positive_float, positive_int, setup_logging
from speechssl.config import add_config_args, config_to_yaml, resolve_config


def label_dir(value: str) -> tuple[str, Path]:
    label, sep, path = value.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=FOLDER, got {value!r}")
    return label, Path(path)


def add_train_command(sub, help_: str, description: str, example: str) -> argparse.ArgumentParser:
    tr = add_subcommand(sub, "train", help_, description, example)
    tr.add_argument("--exp", type=Path, default=None, help="experiment folder (required, except with --print-config)")
    tr.add_argument("--corpus", default=None, help="corpus folder with cuts_<split>.jsonl.gz (data.corpus)")
    tr.add_argument("--encoder", default=None, help="encoder: speechssl .safetensors, Hugging Face folder, fairseq .pt (encoder.path)")
    tr.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (optim.max_steps)")
    tr.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (run.device)")
    add_config_args(tr)
    add_verbosity(tr)
    return tr


def run_train(args, argv: list[str], verb: str, config_cls, trainer_cls) -> int:
    flags = []
    if args.corpus:
        flags.append(f"data.corpus={args.corpus}")
    if args.encoder:
        flags.append(f"encoder.path={args.encoder}")
    if args.max_steps:
        flags.append(f"optim.max_steps={args.max_steps}")
    if args.device:
        flags.append(f"run.device={args.device}")
    cfg = resolve_config(config_cls, args, flags)
    if args.print_config:
        print(config_to_yaml(cfg), end="")
        return 0
    if args.exp is None:
        raise ValueError("--exp is required")
    with own_output(args.exp, f"{verb} train"):
        trainer = trainer_cls(cfg, args.exp, command=f"speechssl {verb} " + shlex.join(argv))
        print(trainer.report)
        metrics = trainer.train()
    if metrics:
        print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


def add_input_options(p: argparse.ArgumentParser, split_help: str) -> None:
    """The options of commands that run a trained model over a corpus split (decode, evaluate)."""
    p.add_argument("--corpus", default=None, help="corpus folder (default: the one the model was trained on)")
    p.add_argument("--split", default="test", help=split_help)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument("--max-duration", type=positive_float, default=None, help="seconds of audio per batch (default: the training run's)")
    p.add_argument("--strict", action="store_true", help="fail on an unreadable recording instead of reporting and skipping it")


def results_handler(write_results: Callable) -> Callable:
    """The ``results`` command's handler: print the page ``write_results(rows, out, title, notes)`` wrote."""

    def handler(args, argv=None) -> int:
        print(write_results(args.rows, args.out, args.title, args.notes), end="")
        return 0

    return handler


def add_results_command(sub, description: str, example: str, default_title: str) -> argparse.ArgumentParser:
    re_ = add_subcommand(sub, "results", "write RESULTS.md from evaluation folders", description, example)
    re_.add_argument("rows", nargs="+", type=label_dir, metavar="LABEL=FOLDER", help="one table row each (a label given several times: their mean)")
    re_.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    re_.add_argument("--title", default=default_title, help="the page's heading")
    re_.add_argument("--notes", default="", help="a paragraph under the table")
    add_verbosity(re_)
    return re_


def dispatch(parser: argparse.ArgumentParser, commands: dict[str, tuple[argparse.ArgumentParser, Callable]], argv: list[str]) -> int:
    """Run ``argv[0]``'s handler with its parsed arguments (``handler(args, argv)``); ``train``
    mixes options and trailing ``KEY=VALUE`` overrides in any order."""
    if not argv or argv[0] not in commands:
        parser.parse_args(argv)  # prints usage (or help) and exits
        return 2
    sub, handler = commands[argv[0]]
    args = sub.parse_intermixed_args(argv[1:]) if argv[0] == "train" else sub.parse_args(argv[1:])
    setup_logging(args)
    if argv[0] in ("decode", "evaluate"):  # they write the folder --out (train holds --exp itself)
        with own_output(args.out, f"{parser.prog.split()[-1]} {argv[0]}"):
            return handler(args, argv)
    return handler(args, argv)
