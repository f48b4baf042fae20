"""``speechssl asr train|decode|results``: CTC speech recognition on an encoder.

The work is done by :mod:`speechssl.downstream.asr`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from speechssl.cli.common import add_subcommand, add_verbosity, make_parser, non_negative_int, positive_float, positive_int, setup_logging, user_errors
from speechssl.config import add_config_args, config_to_yaml, resolve_config

EXAMPLES = """speechssl asr train --config recipes/asr/frozen.yaml --corpus data/mini --encoder exp/tiny_hubert.safetensors --exp exp/asr/frozen data.languages=[en] head.hidden_size=32 optim.max_steps=4 run.valid_every=2 run.progress=false
speechssl asr train --config recipes/asr/adapters.yaml --corpus data/mini --encoder exp/tiny_hubert.safetensors --exp exp/asr/adapters data.languages=[en] optim.max_steps=2 run.progress=false
speechssl asr decode exp/asr/frozen --split test --out exp/asr/frozen/decode_test
speechssl asr decode exp/asr/adapters --split test --beam 4 --lm-order 2 --out exp/asr/adapters/decode_test_lm
speechssl asr results --out exp/asr/RESULTS.md --title "ASR on the mini corpus" frozen=exp/asr/frozen/decode_test adapters=exp/asr/adapters/decode_test_lm"""

COMMANDS = ("train", "decode", "results")


def _label_dir(value: str) -> tuple[str, Path]:
    label, sep, path = value.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=DECODE_DIR, got {value!r}")
    return label, Path(path)


def get_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "asr",
        "CTC speech recognition on an encoder. 'train' trains a CTC model in one of three modes "
        "(encoder.mode): frozen (interface over all layers + a head such as a 2-layer BiLSTM), "
        "adapters (bottleneck adapters and/or LoRA inside the frozen encoder), finetune (the whole "
        "encoder but its conv front end); targets are characters or sentencepiece units of the "
        "training transcripts. 'decode' transcribes a split (greedy, or prefix beam search with an "
        "optional word n-gram LM) and scores WER and CER. 'results' writes a Markdown table from "
        "decode folders. recipes/asr/*.yaml are ready-made configs.",
        EXAMPLES,
    )
    sub = p.add_subparsers(dest="command", metavar="{train,decode,results}", required=True)

    tr = add_subcommand(
        sub, "train", "train a CTC model",
        "Train into EXP: config.yaml (resolved), command.txt, vocab.json or vocab.model, log.jsonl, "
        "tensorboard/, checkpoints/ (a re-run resumes from the newest), and at the end "
        "adapter.safetensors (adapters) or encoder.safetensors (finetune), summary.json and, last, "
        "model.safetensors. Config keys are those of --print-config.",
        EXAMPLES.splitlines()[0],
    )
    tr.add_argument("--exp", type=Path, default=None, help="experiment folder (required, except with --print-config)")
    tr.add_argument("--corpus", default=None, help="corpus folder with cuts_<split>.jsonl.gz (data.corpus)")
    tr.add_argument("--encoder", default=None, help="encoder: speechssl .safetensors, Hugging Face folder, fairseq .pt (encoder.path)")
    tr.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (optim.max_steps)")
    tr.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (run.device)")
    add_config_args(tr)
    add_verbosity(tr)

    de = add_subcommand(
        sub, "decode", "transcribe and score a split",
        "Decode SPLIT of the corpus (default: the training run's) with the model in EXP; writes "
        "OUT/hyps.jsonl ({\"id\", \"ref\", \"hyp\"} per utterance) and OUT/metrics.json (WER, CER, "
        "edit counts, decoding settings, the training run's trainable parameters and time), last.",
        EXAMPLES.splitlines()[2],
    )
    de.add_argument("exp", type=Path, metavar="EXP", help="experiment folder of 'speechssl asr train'")
    de.add_argument("--out", type=Path, required=True, help="output folder")
    de.add_argument("--corpus", default=None, help="corpus folder (default: the one the model was trained on)")
    de.add_argument("--split", default="test", help="split to decode (default: test)")
    de.add_argument("--beam", type=positive_int, default=1, help="beam size; 1 with no LM is greedy decoding (default: 1)")
    de.add_argument("--lm-order", type=non_negative_int, default=0, help="word n-gram LM of the training transcripts, this order (0: none)")
    de.add_argument("--lm-weight", type=float, default=0.5, help="weight of the LM's log-probability per word (default: 0.5)")
    de.add_argument("--word-bonus", type=float, default=0.0, help="score added per word in beam search (default: 0)")
    de.add_argument("--prune-top-k", type=positive_int, default=16, help="beam search: tokens tried per frame (default: 16)")
    de.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    de.add_argument("--max-duration", type=positive_float, default=None, help="seconds of audio per batch (default: the training run's)")
    de.add_argument("--strict", action="store_true", help="fail on an unreadable recording instead of reporting and skipping it")
    add_verbosity(de)

    re_ = add_subcommand(
        sub, "results", "write RESULTS.md from decode folders",
        "Write a Markdown table (system, mode, split, CER, WER, trainable parameters, stored weights, "
        "training time, decoder) with one row per LABEL=DECODE_DIR, read from each folder's metrics.json.",
        EXAMPLES.splitlines()[4],
    )
    re_.add_argument("rows", nargs="+", type=_label_dir, metavar="LABEL=DECODE_DIR", help="one table row each")
    re_.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    re_.add_argument("--title", default="ASR results", help="the page's heading")
    re_.add_argument("--notes", default="", help="a paragraph under the table")
    add_verbosity(re_)
    p._asr_commands = {"train": tr, "decode": de, "results": re_}  # type: ignore[attr-defined]
    return p


def _train(args, argv: list[str]) -> int:
    from speechssl.downstream.asr.train import AsrConfig, AsrTrainer

    flags = []
    if args.corpus:
        flags.append(f"data.corpus={args.corpus}")
    if args.encoder:
        flags.append(f"encoder.path={args.encoder}")
    if args.max_steps:
        flags.append(f"optim.max_steps={args.max_steps}")
    if args.device:
        flags.append(f"run.device={args.device}")
    cfg = resolve_config(AsrConfig, args, flags)
    if args.print_config:
        print(config_to_yaml(cfg), end="")
        return 0
    if args.exp is None:
        raise ValueError("--exp is required")
    trainer = AsrTrainer(cfg, args.exp, command="speechssl asr " + shlex.join(argv))
    print(trainer.report)
    metrics = trainer.train()
    if metrics:
        print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


def _decode(args) -> int:
    from speechssl.downstream.asr.infer import decode_split

    m = decode_split(
        args.exp, args.out, corpus=args.corpus, split=args.split, beam=args.beam, lm_order=args.lm_order,
        lm_weight=args.lm_weight, word_bonus=args.word_bonus, prune_top_k=args.prune_top_k, device=args.device,
        max_duration=args.max_duration, strict=args.strict,
    )
    skipped = f", {m['skipped']} unreadable (errors.tsv)" if m["skipped"] else ""
    print(f"{args.exp} {m['split']}: WER {100 * m['wer']:.2f}%, CER {100 * m['cer']:.2f}% on {m['utterances']} utterances "
          f"({m['decoder']}; RTF {m['real_time_factor']:.4f}){skipped} -> {args.out}")
    return 0


def _results(args) -> int:
    from speechssl.downstream.asr.results import write_results

    print(write_results(args.rows, args.out, args.title, args.notes), end="")
    return 0


@user_errors("asr")
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = get_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints usage (or help) and exits
        return 2
    command, rest = argv[0], argv[1:]
    sub = parser._asr_commands[command]  # type: ignore[attr-defined]
    # train mixes options and trailing KEY=VALUE overrides in any order
    args = sub.parse_intermixed_args(rest) if command == "train" else sub.parse_args(rest)
    setup_logging(args)
    if command == "train":
        return _train(args, argv)
    if command == "decode":
        return _decode(args)
    return _results(args)


if __name__ == "__main__":
    sys.exit(main())
