"""Hugging Face transformers folders <-> speechssl encoders.

Import reads ``config.json`` and the weights (``model.safetensors``, sharded safetensors, or
``pytorch_model.bin`` through ``torch.load(weights_only=True)``) of a HubertModel, WavLMModel or
Wav2Vec2Model folder, or the encoder of their ForCTC / ForPreTraining / ForSequenceClassification
variants (heads are left out). Export writes a folder that ``transformers.AutoModel`` loads.
transformers itself is not needed for either direction.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from speechssl.convert._common import Naming, load_strict, name_pairs, pop_weight_norm, rename_strict, safe_torch_load
from speechssl.models.encoder import EncoderConfig, SSLEncoder, build_encoder

_FAMILIES = {"hubert": "HubertModel", "wavlm": "WavLMModel", "wav2vec2": "Wav2Vec2Model"}
_PREFIXES = ("hubert.", "wavlm.", "wav2vec2.")
# encoder-less heads and training-only parts of the task models, dropped on import
_HEAD_KEYS = re.compile(
    r"^(lm_head|project_q|project_hid|quantizer|projector|classifier|layer_weights|final_proj|label_embeddings|"
    r"adapter)"
)


# ------------------------------------------------------------------------------------------ config
def config_from_hf(hf: dict) -> EncoderConfig:
    """Our EncoderConfig from a transformers ``config.json`` dict."""
    family = hf.get("model_type")
    if family not in _FAMILIES:
        raise ValueError(f"model_type {family!r} is not an encoder speechssl converts; valid: {', '.join(_FAMILIES)}")
    act = hf.get("hidden_act", "gelu")
    if act != "gelu" or hf.get("feat_extract_activation", "gelu") != "gelu":
        raise ValueError(f"only GELU activations are supported, found hidden_act={act!r}")
    if hf.get("conv_pos_batch_norm", False):
        raise ValueError("conv_pos_batch_norm=True (a batch-normed positional conv) is not supported")
    norm = hf.get("feat_extract_norm", "group")
    if norm not in ("group", "layer"):
        raise ValueError(f"feat_extract_norm must be 'group' or 'layer', found {norm!r}")
    conv = list(zip(hf["conv_dim"], hf["conv_kernel"], hf["conv_stride"]))
    cfg = dict(
        family=family,
        conv_layers=conv,
        extractor_mode=f"{norm}_norm",
        conv_bias=bool(hf.get("conv_bias", False)),
        feature_proj_layer_norm=bool(hf.get("feat_proj_layer_norm", True)) if family == "hubert" else True,
        hidden_size=hf["hidden_size"],
        num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"],
        ffn_size=hf["intermediate_size"],
        pre_norm=bool(hf.get("do_stable_layer_norm", False)),
        pos_conv_kernel=hf.get("num_conv_pos_embeddings", 128),
        pos_conv_groups=hf.get("num_conv_pos_embedding_groups", 16),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-5),
        dropout=hf.get("hidden_dropout", 0.1),
        attention_dropout=hf.get("attention_dropout", 0.1),
        activation_dropout=hf.get("activation_dropout", 0.0),
        feature_dropout=hf.get("feat_proj_dropout", 0.0),
        layer_drop=hf.get("layerdrop", 0.0),
    )
    if family == "wavlm":
        cfg.update(relative_position_buckets=hf.get("num_buckets", 320), relative_position_max_distance=hf.get("max_bucket_distance", 800))
    return EncoderConfig(**cfg)


def config_to_hf(cfg: EncoderConfig) -> dict:
    """A transformers ``config.json`` dict for ``cfg`` (AutoConfig fills the fields left out)."""
    out = {
        "architectures": [_FAMILIES[cfg.family]],
        "model_type": cfg.family,
        "feat_extract_norm": cfg.extractor_mode.split("_")[0],
        "feat_extract_activation": "gelu",
        "conv_dim": [c for c, _, _ in cfg.conv_layers],
        "conv_kernel": [k for _, k, _ in cfg.conv_layers],
        "conv_stride": [s for _, _, s in cfg.conv_layers],
        "num_feat_extract_layers": len(cfg.conv_layers),
        "conv_bias": cfg.conv_bias,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.ffn_size,
        "hidden_act": "gelu",
        "do_stable_layer_norm": cfg.pre_norm,
        "num_conv_pos_embeddings": cfg.pos_conv_kernel,
        "num_conv_pos_embedding_groups": cfg.pos_conv_groups,
        "layer_norm_eps": cfg.layer_norm_eps,
        "hidden_dropout": cfg.dropout,
        "attention_dropout": cfg.attention_dropout,
        "activation_dropout": cfg.activation_dropout,
        "feat_proj_dropout": cfg.feature_dropout,
        "layerdrop": cfg.layer_drop,
        "mask_time_prob": 0.05,  # keeps masked_spec_embed in the model, as released checkpoints have it
    }
    if cfg.family == "hubert":
        out["feat_proj_layer_norm"] = cfg.feature_proj_layer_norm
    elif not cfg.feature_proj_layer_norm:
        raise ValueError(f"transformers' {_FAMILIES[cfg.family]} always has a feature-projection LayerNorm")
    if cfg.family == "wavlm":
        if not cfg.gated_relative_position:
            raise ValueError("transformers' WavLMModel always gates the relative position bias")
        out.update(num_buckets=cfg.relative_position_buckets, max_bucket_distance=cfg.relative_position_max_distance)
    elif cfg.relative_position_buckets:
        raise ValueError(f"transformers' {_FAMILIES[cfg.family]} has no relative position bias; export as wavlm")
    return out


# --------------------------------------------------------------------------------------- weights
HF_NAMES = Naming(
    conv="feature_extractor.conv_layers.{i}.conv.{p}",
    first_conv_norm="feature_extractor.conv_layers.{i}.layer_norm.{p}",
    conv_norm="feature_extractor.conv_layers.{i}.layer_norm.{p}",
    feature_norm="feature_projection.layer_norm.{p}",
    projection="feature_projection.projection.{p}",
    encoder_norm="encoder.layer_norm.{p}",
    mask_embedding="masked_spec_embed",
    pos_conv_bias="encoder.pos_conv_embed.conv.bias",
    relative_bias="encoder.layers.0.attention.rel_attn_embed.weight",
    layer="encoder.layers.{i}.",
    attention="attention.{proj}.{p}",
    attention_norm="layer_norm.{p}",
    fc1="feed_forward.intermediate_dense.{p}",
    fc2="feed_forward.output_dense.{p}",
    ffn_norm="final_layer_norm.{p}",
    gate_proj="attention.gru_rel_pos_linear.{p}",
    gate_const="attention.gru_rel_pos_const",
)


def _name_pairs(cfg: EncoderConfig) -> list[tuple[str, str]]:
    """(ours, transformers') parameter names, excluding the positional conv's weight norm pair."""
    return name_pairs(cfg, HF_NAMES)


_POS_CONV = "encoder.pos_conv_embed.conv."


def state_dict_from_hf(hf_state: dict[str, Tensor], cfg: EncoderConfig, source: str = "checkpoint") -> dict[str, Tensor]:
    """Rename a transformers state dict to ours; unknown or missing keys raise ValueError."""
    state = {}
    for key, value in hf_state.items():  # drop the task-model prefix ("hubert.", ...)
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        state[key] = value
    pos = pop_weight_norm(state, _POS_CONV)
    if pos is None:
        raise ValueError(f"{source}: no positional conv weight ({_POS_CONV}weight_g / weight_v or parametrizations)")
    # masked_spec_embed is absent when a model was saved with mask_time_prob=0
    names = HF_NAMES if "masked_spec_embed" in state else replace(HF_NAMES, mask_embedding=None)
    out = rename_strict(state, name_pairs(cfg, names), source=source, ignore=_HEAD_KEYS)
    out["encoder.pos_conv.weight_g"], out["encoder.pos_conv.weight_v"] = pos
    return out


def state_dict_to_hf(encoder: SSLEncoder) -> dict[str, Tensor]:
    ours = encoder.state_dict()
    out = {theirs: ours[mine].detach().clone().contiguous() for mine, theirs in _name_pairs(encoder.config)}
    # the names of torch.nn.utils.parametrizations.weight_norm, which transformers uses
    out[_POS_CONV + "parametrizations.weight.original0"] = ours["encoder.pos_conv.weight_g"].detach().clone().contiguous()
    out[_POS_CONV + "parametrizations.weight.original1"] = ours["encoder.pos_conv.weight_v"].detach().clone().contiguous()
    return out


# ----------------------------------------------------------------------------------------- files
def _read_weights(folder: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single))
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, Tensor] = {}
        for shard in shards:
            state.update(load_file(str(folder / shard)))
        return state
    bin_file = folder / "pytorch_model.bin"
    if bin_file.is_file():
        return safe_torch_load(bin_file, what="a Hugging Face pytorch_model.bin")
    raise FileNotFoundError(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def is_hf_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / "config.json").is_file()


def encoder_from_hf(folder: str | os.PathLike) -> SSLEncoder:
    """Load a transformers HubertModel / WavLMModel / Wav2Vec2Model folder (or a task model's encoder)."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder}: not a Hugging Face model folder (no config.json)")
    try:
        hf_cfg = json.loads(config_file.read_text())
        cfg = config_from_hf(hf_cfg)
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{config_file}: not a usable transformers config ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise ValueError(f"{config_file}: {e}") from None
    preprocessor = folder / "preprocessor_config.json"
    if preprocessor.is_file():  # the feature extractor's do_normalize: the model expects normalised input
        cfg.normalize_waveform = bool(json.loads(preprocessor.read_text()).get("do_normalize", False))
    encoder = build_encoder(cfg)
    state = state_dict_from_hf(_read_weights(folder), cfg, source=str(folder))
    if "mask_embedding" not in state:
        state["mask_embedding"] = encoder.mask_embedding.detach().clone()
    return load_strict(encoder, state, f"{folder} (its config.json and weights disagree)")


def encoder_to_hf(encoder: SSLEncoder, folder: str | os.PathLike) -> Path:
    """Write ``config.json`` and ``model.safetensors`` that transformers' AutoModel loads."""
    from safetensors.torch import save_file

    from speechssl.io import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state_dict_to_hf(encoder), str(tmp), metadata={"format": "pt"})
    atomic_write_text(folder / "config.json", json.dumps(config_to_hf(encoder.config), indent=2) + "\n")
    preprocessor = {  # what transformers' Wav2Vec2FeatureExtractor needs to prepare this model's input
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": 16000,
        "padding_value": 0.0,
        "padding_side": "right",
        "do_normalize": encoder.config.normalize_waveform,
        "return_attention_mask": encoder.config.extractor_mode == "layer_norm",
    }
    atomic_write_text(folder / "preprocessor_config.json", json.dumps(preprocessor, indent=2) + "\n")
    return folder
