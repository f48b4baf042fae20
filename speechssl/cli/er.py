"""``speechssl er train|evaluate|results``: emotion recognition (utterance classification).

The work is done by :mod:`speechssl.downstream.er`; this module parses arguments and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

from speechssl.cli.common import add_subcommand, add_verbosity, make_parser, user_errors
from speechssl.cli.downstream import add_input_options, add_results_command, add_train_command, dispatch, results_handler, run_train

EXAMPLES = """speechssl er train --config recipes/er/mini_mlp.yaml --corpus data/mini --encoder exp/tiny_hubert.safetensors --exp exp/er/pretrained head.projection_dim=32 head.hidden_size=32 optim.max_steps=4 run.valid_every=2 run.progress=false
speechssl er train --config recipes/er/mini_mlp.yaml --corpus data/mini --exp exp/er/mfcc encoder.kind=mfcc optim.max_steps=4 run.progress=false
speechssl er evaluate exp/er/pretrained --split test --out exp/er/pretrained/eval_test
speechssl er evaluate exp/er/mfcc --split test --out exp/er/mfcc/eval_test
speechssl er results --out exp/er/RESULTS.md --title "Emotion recognition on the mini corpus" mfcc=exp/er/mfcc/eval_test pretrained=exp/er/pretrained/eval_test"""


def get_parser():
    p = make_parser(
        "er",
        "Emotion recognition (any utterance-level classification). 'train' trains a pooling (mean or "
        "attentive statistics) + MLP classifier with class-balanced cross-entropy over an interface of "
        "an encoder (frozen, with adapters, or fine-tuned), a randomly initialised encoder "
        "(encoder.init=random) or MFCC / fbank features (encoder.kind); the class is data.label "
        "(IEMOCAP's emotion4, the mini corpus's style). 'evaluate' classifies a split and writes WA, "
        "UA, macro-F1 and the confusion matrix (table and plot). 'results' writes a Markdown table "
        "from evaluation folders, averaging folders given the same label (cross-validation folds). "
        "recipes/er/*.yaml are ready-made configs.",
        EXAMPLES,
    )
    sub = p.add_subparsers(dest="command", metavar="{train,evaluate,results}", required=True)
    tr = add_train_command(
        sub, "train an utterance classifier",
        "Train into EXP: config.yaml (resolved), command.txt, log.jsonl, tensorboard/, checkpoints/ "
        "(a re-run resumes from the newest), and at the end adapter.safetensors (adapters) or "
        "encoder.safetensors (finetune), summary.json and, last, model.safetensors (with the class "
        "names). Config keys are those of --print-config.",
        EXAMPLES.splitlines()[0],
    )
    ev = add_subcommand(
        sub, "evaluate", "classify and score a split",
        "Classify SPLIT of the corpus with the model in EXP; write OUT/predictions.jsonl, "
        "OUT/confusion.md, OUT/confusion.png and, last, OUT/metrics.json (WA, UA, macro-F1, per-class "
        "recall / precision / F1, the confusion matrix, the training run's trainable parameters and time).",
        EXAMPLES.splitlines()[2],
    )
    ev.add_argument("exp", type=Path, metavar="EXP", help="experiment folder of 'speechssl er train'")
    ev.add_argument("--out", type=Path, required=True, help="output folder")
    add_input_options(ev, "split to classify (default: test)")
    add_verbosity(ev)
    re_ = add_results_command(
        sub,
        "Write a Markdown table (system, upstream, mode, folds, test utterances, WA, UA, macro-F1, "
        "trainable parameters, training time), one row per label read from each evaluation folder's "
        "metrics.json; folders given the same label are averaged (IEMOCAP's five folds).",
        EXAMPLES.splitlines()[4], "Emotion recognition results",
    )
    p._commands = {"train": tr, "evaluate": ev, "results": re_}  # type: ignore[attr-defined]
    return p


def _train(args, argv: list[str]) -> int:
    from speechssl.downstream.er.train import ErConfig, ErTrainer

    return run_train(args, argv, "er", ErConfig, ErTrainer)


def _evaluate(args, argv=None) -> int:
    from speechssl.downstream.er.infer import evaluate_split

    m = evaluate_split(args.exp, args.out, corpus=args.corpus, split=args.split, device=args.device, max_duration=args.max_duration, strict=args.strict)
    skipped = f", {m['skipped']} unreadable (errors.tsv)" if m["skipped"] else ""
    print(f"{args.exp} {m['split']}: WA {100 * m['accuracy']:.2f}%, UA {100 * m['unweighted_accuracy']:.2f}%, "
          f"macro-F1 {100 * m['macro_f1']:.2f}% on {m['utterances']} utterances{skipped} -> {args.out}")
    return 0


def _results(args, argv=None) -> int:
    from speechssl.downstream.er.results import write_results

    return results_handler(write_results)(args)


@user_errors("er")
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = get_parser()
    subs = parser._commands  # type: ignore[attr-defined]
    return dispatch(parser, {"train": (subs["train"], _train), "evaluate": (subs["evaluate"], _evaluate), "results": (subs["results"], _results)}, argv)


if __name__ == "__main__":
    sys.exit(main())
