"""``speechssl pretrain``: masked unit prediction (HuBERT / WavLM), optionally with HuBERTopic's
topic loss, on label folders from ``speechssl kmeans label`` (and ``speechssl topics label``).

Several processes: ``torchrun --nproc_per_node N -m speechssl.cli.pretrain ...`` (DDP; gloo on
CPU, nccl on GPUs); ``sampler.max_duration`` is per process.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from speechssl.cli.common import add_verbosity, make_parser, own_output, positive_int, setup_logging, user_errors
from speechssl.config import add_config_args, config_to_yaml, resolve_config


def get_parser():
    p = make_parser(
        "pretrain",
        "Pretrain an encoder by masked prediction of frame labels. EXP receives config.yaml (the "
        "resolved config), command.txt, log.jsonl, tensorboard/, checkpoints/step-N.pt (atomic; a "
        "re-run resumes from the newest) and, at the end, encoder.safetensors (for load_encoder, "
        "'speechssl features --encoder' and the next iteration's labels). Config keys are those "
        "of --print-config; recipes/pretrain/*.yaml are ready-made configs.",
        """speechssl pretrain --config recipes/pretrain/tiny.yaml --labels exp/labels/mfcc_km100 --exp exp/pretrain/tiny optim.max_steps=4 run.valid_every=2 data.num_workers=0 run.progress=false
speechssl pretrain --config recipes/pretrain/tiny.yaml --labels exp/labels/mfcc_km100 --topics exp/topics/mfcc_km100_t4 topic.weight=0.5 --exp exp/pretrain/tiny_topic optim.max_steps=2 data.num_workers=0 run.progress=false""",
    )
    p.add_argument("--exp", type=Path, default=None, help="experiment folder (required, except with --print-config)")
    p.add_argument("--labels", default=None, metavar="DIR[,DIR]", help="label folders, comma-separated, one per label set (data.labels)")
    p.add_argument("--topics", default=None, metavar="DIR", help="topic folder for the HuBERTopic loss (data.topics)")
    p.add_argument("--max-steps", type=positive_int, default=None, help="optimizer steps (optim.max_steps)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda[:N] (run.device)")
    add_config_args(p)
    add_verbosity(p)
    return p


def _flag_overrides(args) -> list[str]:
    out = []
    if args.labels:
        out.append(f"data.labels={args.labels}")
    if args.topics:
        out.append(f"data.topics={args.topics}")
    if args.max_steps:
        out.append(f"optim.max_steps={args.max_steps}")
    if args.device:
        out.append(f"run.device={args.device}")
    return out


@user_errors("pretrain")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_intermixed_args(argv)
    setup_logging(args)
    from speechssl.pretrain.trainer import PretrainConfig, Trainer

    cfg = resolve_config(PretrainConfig, args, _flag_overrides(args))
    if args.print_config:
        print(config_to_yaml(cfg), end="")
        return 0
    if args.exp is None:
        get_parser().error("the following arguments are required: --exp")
    command = "speechssl pretrain " + shlex.join(sys.argv[1:] if argv is None else argv)
    with own_output(args.exp, "pretrain"):
        metrics = Trainer(cfg, args.exp, command=command).train()
    if metrics:
        print(" ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
