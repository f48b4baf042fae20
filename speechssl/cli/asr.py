"""``speechssl asr train|decode|results``: CTC speech recognition on an encoder.

The work is done by :mod:`speechssl.downstream.asr`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechssl.cli.common import add_subcommand, add_verbosity, make_parser, non_negative_int, positive_int, user_errors
from speechssl.cli.downstream import add_input_options, add_results_command, add_train_command, dispatch, results_handler, run_train

EXAMPLES = """speechssl asr train --config recipes/asr/frozen.yaml --corpus data/mini --encoder exp/tiny_hubert.safetensors --exp exp/asr/frozen data.languages=[en] head.hidden_size=32 optim.max_steps=4 run.valid_every=2 run.progress=false
speechssl asr train --config recipes/asr/adapters.yaml --corpus data/mini --encoder exp/tiny_hubert.safetensors --exp exp/asr/adapters data.languages=[en] optim.max_steps=2 run.progress=false
speechssl asr decode exp/asr/frozen --split test --out exp/asr/frozen/decode_test
speechssl asr decode exp/asr/adapters --split test --beam 4 --lm-order 2 --out exp/asr/adapters/decode_test_lm
speechssl asr results --out exp/asr/RESULTS.md --title "ASR on the mini corpus" frozen=exp/asr/frozen/decode_test adapters=exp/asr/adapters/decode_test_lm"""

COMMANDS = ("train", "decode", "results")


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

    tr = add_train_command(
        sub, "train a CTC model",
        "Train into EXP: config.yaml (resolved), command.txt, vocab.json or vocab.model, log.jsonl, "
        "tensorboard/, checkpoints/ (a re-run resumes from the newest), and at the end "
        "adapter.safetensors (adapters) or encoder.safetensors (finetune), summary.json and, last, "
        "model.safetensors. Config keys are those of --print-config.",
        EXAMPLES.splitlines()[0],
    )

    de = add_subcommand(
        sub, "decode", "transcribe and score a split",
        "Decode SPLIT of the corpus (default: the training run's) with the model in EXP; writes "
        "OUT/hyps.jsonl ({\"id\", \"ref\", \"hyp\"} per utterance) and OUT/metrics.json (WER, CER, "
        "edit counts, decoding settings, the training run's trainable parameters and time), last.",
        EXAMPLES.splitlines()[2],
    )
    de.add_argument("exp", type=Path, metavar="EXP", help="experiment folder of 'speechssl asr train'")
    de.add_argument("--out", type=Path, required=True, help="output folder")
    add_input_options(de, "split to decode (default: test)")
    de.add_argument("--beam", type=positive_int, default=1, help="beam size; 1 with no LM is greedy decoding (default: 1)")
    de.add_argument("--lm-order", type=non_negative_int, default=0, help="word n-gram LM of the training transcripts, this order (0: none)")
    de.add_argument("--lm-weight", type=float, default=0.5, help="weight of the LM's log-probability per word (default: 0.5)")
    de.add_argument("--word-bonus", type=float, default=0.0, help="score added per word in beam search (default: 0)")
    de.add_argument("--prune-top-k", type=positive_int, default=16, help="beam search: tokens tried per frame (default: 16)")
    add_verbosity(de)

    re_ = add_results_command(
        sub,
        "Write a Markdown table (system, mode, split, CER, WER, trainable parameters, stored weights, "
        "training time, decoder) with one row per LABEL=DECODE_DIR, read from each folder's metrics.json.",
        EXAMPLES.splitlines()[4], "ASR results",
    )
    p._asr_commands = {"train": tr, "decode": de, "results": re_}  # type: ignore[attr-defined]
    return p


def _train(args, argv: list[str]) -> int:
    from speechssl.downstream.asr.train import AsrConfig, AsrTrainer

    return run_train(args, argv, "asr", AsrConfig, AsrTrainer)


def _decode(args, argv=None) -> int:
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


def _results(args, argv=None) -> int:
    from speechssl.downstream.asr.results import write_results

    return results_handler(write_results)(args)


@user_errors("asr")
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = get_parser()
    subs = parser._asr_commands  # type: ignore[attr-defined]
    return dispatch(parser, {"train": (subs["train"], _train), "decode": (subs["decode"], _decode), "results": (subs["results"], _results)}, argv)


if __name__ == "__main__":
    sys.exit(main())
