"""``speechssl convert``: encoder checkpoints between formats."""

from __future__ import annotations

from pathlib import Path

from speechssl.cli.common import ALLOW_PICKLE_HELP, add_verbosity, make_parser, own_output, setup_logging, user_errors

SOURCES = ("hf", "fairseq", "torchaudio", "speechssl")


def get_parser():
    p = make_parser(
        "convert",
        "Convert an encoder checkpoint. Sources: a Hugging Face folder (HubertModel, WavLMModel, "
        "Wav2Vec2Model or their ForCTC/ForPreTraining models), a fairseq checkpoint of HuBERT, WavLM "
        "or wav2vec 2.0 (read without running anything in it: a file that asks to unpickle more than a "
        "checkpoint holds is refused unless --allow-pickle), a torchaudio Wav2Vec2Model state dict, or a speechssl checkpoint. "
        "OUT ending in .safetensors is written as a speechssl checkpoint (weights, config, format "
        "version); any other OUT is written as a Hugging Face folder that transformers loads.",
        """speechssl convert --from hf exp/hf_hubert exp/hubert.safetensors
speechssl convert --from speechssl exp/hubert.safetensors exp/hubert_hf
speechssl convert --from fairseq hubert_base_ls960.pt exp/hubert_base.safetensors
speechssl convert --from torchaudio wavlm_base_state_dict.pt exp/wavlm.safetensors --preset wavlm_base""",
    )
    p.add_argument("--from", dest="source", choices=SOURCES, required=True, help="format of SRC")
    p.add_argument("src", type=Path, help="checkpoint file or folder")
    p.add_argument("out", type=Path, help="OUT.safetensors (speechssl) or a folder (Hugging Face)")
    p.add_argument(
        "--preset", default=None, help="torchaudio only: the architecture preset (a state dict does not say all of it)"
    )
    p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    add_verbosity(p)
    return p


def load_source(source: str, src: Path, preset_name: str | None = None, allow_pickle: bool = False):
    if source == "hf":
        from speechssl.convert.hf import encoder_from_hf

        return encoder_from_hf(src)
    if source == "fairseq":
        from speechssl.convert.fairseq import encoder_from_fairseq

        return encoder_from_fairseq(src, allow_pickle=allow_pickle)
    if source == "torchaudio":
        from speechssl.convert.torchaudio import encoder_from_torchaudio
        from speechssl.models import preset

        return encoder_from_torchaudio(src, preset(preset_name) if preset_name else None)
    from speechssl.checkpoint import load_encoder_checkpoint

    return load_encoder_checkpoint(src)


@user_errors("convert")
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args)
    if args.preset and args.source != "torchaudio":
        raise ValueError("--preset applies to --from torchaudio only")
    if args.allow_pickle and args.source != "fairseq":
        raise ValueError("--allow-pickle applies to --from fairseq only (the other formats hold no pickled objects)")
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"{args.out}: exists; pass --overwrite to replace it")
    encoder = load_source(args.source, args.src, args.preset, args.allow_pickle)
    from speechssl.nonfinite import check_finite

    check_finite(encoder.state_dict(), f"{args.src}: encoder")  # a diverged encoder is not converted
    if args.out.suffix == ".safetensors":
        from speechssl.checkpoint import save_encoder

        save_encoder(encoder, args.out)
        kind = "speechssl checkpoint"
    else:
        from speechssl.convert.hf import encoder_to_hf

        with own_output(args.out, "convert"):
            encoder_to_hf(encoder, args.out)
        kind = "Hugging Face folder"
    cfg = encoder.config
    print(
        f"wrote {kind} {args.out}: {cfg.family}, {cfg.num_layers} layers, width {cfg.hidden_size}, "
        f"{sum(p.numel() for p in encoder.parameters()) / 1e6:.1f}M parameters"
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
