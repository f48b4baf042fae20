"""``speechssl sv train|evaluate|results``: speaker verification on an upstream.

The work is done by :mod:`speechssl.downstream.sv`; this module parses arguments and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

from speechssl.cli.common import add_subcommand, add_verbosity, make_parser, positive_int, user_errors
from speechssl.cli.downstream import add_input_options, add_results_command, add_train_command, dispatch, results_handler, run_train

EXAMPLES = """speechssl sv train --config recipes/sv/mini_xvector.yaml --corpus data/mini --encoder exp/tiny_hubert.safetensors --exp exp/sv/pretrained data.valid_trials=data/mini/trials_dev.txt head.channels=32 head.stats_channels=64 head.embedding_dim=32 optim.max_steps=4 run.valid_every=2 run.progress=false
speechssl sv train --config recipes/sv/mini_xvector.yaml --corpus data/mini --exp exp/sv/fbank encoder.kind=fbank head.channels=32 head.stats_channels=64 head.embedding_dim=32 optim.max_steps=4 run.progress=false
speechssl sv evaluate exp/sv/pretrained --trials data/mini/trials_test.txt --split test --asnorm true --out exp/sv/pretrained/eval_test
speechssl sv evaluate exp/sv/fbank --trials data/mini/trials_test.txt --split test --out exp/sv/fbank/eval_test
speechssl sv results --out exp/sv/RESULTS.md --title "Speaker verification on the mini corpus" fbank=exp/sv/fbank/eval_test pretrained=exp/sv/pretrained/eval_test"""


def _bool(value: str) -> bool:
    if value not in ("true", "false"):
        import argparse

        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return value == "true"


def get_parser():
    p = make_parser(
        "sv",
        "Speaker verification. 'train' trains an x-vector TDNN head (statistics or attentive "
        "statistics pooling) with AAM-softmax on the training speakers, over an interface of an "
        "encoder (frozen, with adapters, or fine-tuned), a randomly initialised encoder "
        "(encoder.init=random) or MFCC / fbank features (encoder.kind); validation is the EER of a "
        "trial list (data.valid_trials). 'evaluate' scores a VoxCeleb-format trial list by cosine "
        "similarity, optionally with AS-norm, and writes EER, minDCF (p_target 0.01, 0.05) and a DET "
        "curve. 'results' writes a Markdown table from evaluation folders. recipes/sv/*.yaml are "
        "ready-made configs.",
        EXAMPLES,
    )
    sub = p.add_subparsers(dest="command", metavar="{train,evaluate,results}", required=True)
    tr = add_train_command(
        sub, "train a speaker-embedding model",
        "Train into EXP: config.yaml (resolved), command.txt, log.jsonl, tensorboard/, checkpoints/ "
        "(a re-run resumes from the newest), and at the end adapter.safetensors (adapters) or "
        "encoder.safetensors (finetune), summary.json and, last, model.safetensors. Config keys are "
        "those of --print-config.",
        EXAMPLES.splitlines()[0],
    )
    ev = add_subcommand(
        sub, "evaluate", "score a trial list",
        "Embed every utterance the trials name (split SPLIT of the corpus), score each trial by cosine "
        "similarity (and AS-norm with --asnorm true), and write OUT/scores.txt, OUT/det.png and, last, "
        "OUT/metrics.json (EER, minDCF at p_target 0.01 and 0.05, trial counts, the training run's "
        "trainable parameters and time). Trials: '<1|0> <utterance> <utterance>' per line, cut ids "
        "or VoxCeleb paths (id10270/5r0dWxy17C8/00001.wav).",
        EXAMPLES.splitlines()[2],
    )
    ev.add_argument("exp", type=Path, metavar="EXP", help="experiment folder of 'speechssl sv train'")
    ev.add_argument("--trials", type=Path, required=True, help="trial list (VoxCeleb format)")
    ev.add_argument("--out", type=Path, required=True, help="output folder")
    add_input_options(ev, "split holding the trials' utterances (default: test)")
    ev.add_argument("--asnorm", type=_bool, default=False, metavar="{true,false}", help="also score with adaptive symmetric score normalisation (default: false)")
    ev.add_argument("--cohort-split", default=None, help="AS-norm cohort split (default: the first training split of the training corpus)")
    ev.add_argument("--cohort-size", type=positive_int, default=5000, help="AS-norm cohort utterances, a seeded sample (default: 5000)")
    ev.add_argument("--top-k", type=positive_int, default=300, help="AS-norm: the top-k cohort scores per side (default: 300)")
    add_verbosity(ev)
    re_ = add_results_command(
        sub,
        "Write a Markdown table (system, upstream, mode, split, trials, EER and minDCF with cosine "
        "scoring and with AS-norm, trainable parameters, training time), one row per LABEL=FOLDER "
        "read from each evaluation folder's metrics.json.",
        EXAMPLES.splitlines()[4], "Speaker verification results",
    )
    p._commands = {"train": tr, "evaluate": ev, "results": re_}  # type: ignore[attr-defined]
    return p


def _train(args, argv: list[str]) -> int:
    from speechssl.downstream.sv.train import SvConfig, SvTrainer

    return run_train(args, argv, "sv", SvConfig, SvTrainer)


def _evaluate(args, argv=None) -> int:
    from speechssl.downstream.sv.infer import evaluate_trials

    m = evaluate_trials(
        args.exp, args.out, trials=args.trials, corpus=args.corpus, split=args.split, asnorm=args.asnorm,
        cohort_split=args.cohort_split, cohort_size=args.cohort_size, top_k=args.top_k, device=args.device,
        max_duration=args.max_duration, strict=args.strict,
    )
    line = f"{args.exp} {m['split']}: EER {100 * m['eer']:.2f}%, minDCF(0.01) {m['min_dcf']['0.01']:.4f}, minDCF(0.05) {m['min_dcf']['0.05']:.4f} on {m['trials']} trials"
    if m["asnorm"]:
        line += f"; AS-norm EER {100 * m['asnorm']['eer']:.2f}%"
    skipped = f", {m['skipped']} unreadable (errors.tsv)" if m["skipped"] else ""
    print(f"{line}{skipped} -> {args.out}")
    return 0


def _results(args, argv=None) -> int:
    from speechssl.downstream.sv.results import write_results

    return results_handler(write_results)(args)


@user_errors("sv")
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = get_parser()
    subs = parser._commands  # type: ignore[attr-defined]
    return dispatch(parser, {"train": (subs["train"], _train), "evaluate": (subs["evaluate"], _evaluate), "results": (subs["results"], _results)}, argv)


if __name__ == "__main__":
    sys.exit(main())
