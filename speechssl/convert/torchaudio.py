"""torchaudio's wav2vec 2.0 / HuBERT / WavLM models <-> speechssl encoders.

Import takes a :class:`torchaudio.models.Wav2Vec2Model` (what ``wav2vec2_model``, ``hubert_base``,
``wavlm_model``, ... and the ``torchaudio.pipelines`` bundles build), a
:class:`torchaudio.models.HuBERTPretrainModel`, or the state dict of either (a dict, or a file read
with ``torch.load(weights_only=True)``). Nothing of torchaudio is imported for that: only names,
shapes and, for a model object, a few attributes are read.

What a state dict does not say, and how it is decided (a model object answers all of it):

* conv strides: the standard stack's (fairseq's ``[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2``)
  when the kernels are the standard ones; otherwise pass ``config``.
* attention heads: WavLM stores them in its relative position embedding; for HuBERT / wav2vec 2.0,
  the published models' count for their width (768: 12, 1024: 16, 1280: 16, 1920: 16); otherwise
  pass ``config``.
* pre-LN or post-LN: torchaudio's own factories pair the layer-norm front end with pre-LN layers
  and the group-norm front end with post-LN layers, and so does this inference.
* WavLM's ``max_distance``: 800, the released models' value.
* the family: ``"wavlm"`` with a relative position bias, ``"hubert"`` for a HuBERTPretrainModel,
  ``"wav2vec2"`` otherwise (torchaudio builds HuBERT and wav2vec 2.0 as the same class).
* dropouts: EncoderConfig's defaults.

Given ``config``, it is used as is, and the weights (and a model object's attributes) must match it.
A torchaudio ``Wav2Vec2Model`` has no mask embedding; the converted encoder keeps its freshly
initialised one. The CTC head (``aux``) and HuBERTPretrainModel's ``logit_generator`` are dropped.

Hidden states: torchaudio's ``extract_features(waveforms, lengths)`` returns the outputs of the
``num_layers`` transformer layers (never with the final LayerNorm of a pre-LN encoder), without the
input to the first layer. So ``ours.hidden_states[i + 1]`` equals its ``[i]`` for every ``i``, pre-LN
or post-LN; ``ours.hidden_states[0]`` is the input to the first layer (its
``encoder.transformer._preprocess`` of the projected features), and ``ours.last_hidden_state`` is
what its ``forward`` returns (for pre-LN encoders, the last layer after the final LayerNorm).
On a padded batch torchaudio itself differs from its per-item results where the front end has a
GroupNorm (its statistics include the padding), and its WavLM refuses ``lengths``; ours gives each
item of a padded batch the features torchaudio gives that item alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from speechssl.convert._common import Naming, load_strict, name_pairs, pop_weight_norm, rename_strict, safe_torch_load
from speechssl.models.encoder import STANDARD_CONV_LAYERS, EncoderConfig, SSLEncoder, build_encoder

log = logging.getLogger(__name__)

#: attention heads of the published models, by width (a state dict does not store them)
PUBLISHED_HEADS = {768: 12, 1024: 16, 1280: 16, 1920: 16}
#: WavLM's max_distance in the released models (a state dict does not store it)
DEFAULT_MAX_DISTANCE = 800

_POS_CONV = "encoder.transformer.pos_conv_embed.conv."
_IGNORED = re.compile(r"^(aux|logit_generator)\.")  # CTC head; HuBERT pretraining logits
_HUBERT_PRETRAIN_PREFIX = "wav2vec2."
_HUBERT_PRETRAIN_MASK = "mask_generator.mask_embedding"


@dataclass
class _ModelFacts:
    """What a torchaudio model object says beyond its state dict."""

    strides: list[int]
    num_heads: int
    pre_norm: bool
    extractor_mode: str
    max_distance: int | None
    dropout: float
    attention_dropout: float
    activation_dropout: float
    feature_dropout: float
    layer_drop: float


# ------------------------------------------------------------------------------------------ names
TORCHAUDIO_NAMES = Naming(
    conv="feature_extractor.conv_layers.{i}.conv.{p}",
    first_conv_norm="feature_extractor.conv_layers.{i}.layer_norm.{p}",
    conv_norm="feature_extractor.conv_layers.{i}.layer_norm.{p}",
    feature_norm="encoder.feature_projection.layer_norm.{p}",
    projection="encoder.feature_projection.projection.{p}",
    encoder_norm="encoder.transformer.layer_norm.{p}",
    mask_embedding=None,  # a plain Wav2Vec2Model has none
    pos_conv_bias=_POS_CONV + "bias",
    relative_bias="encoder.transformer.layers.0.attention.rel_attn_embed.weight",
    layer="encoder.transformer.layers.{i}.",
    attention="attention.{proj}.{p}",
    attention_norm="layer_norm.{p}",
    fc1="feed_forward.intermediate_dense.{p}",
    fc2="feed_forward.output_dense.{p}",
    ffn_norm="final_layer_norm.{p}",
    gate_proj="attention.gru_rel_pos_linear.{p}",
    gate_const="attention.gru_rel_pos_const",
)


def _name_pairs(cfg: EncoderConfig) -> list[tuple[str, str]]:
    """(ours, torchaudio's) parameter names, without the positional conv's weight pair and the mask
    embedding. WavLM's fused ``in_proj`` appears split, as ``attention.attention.{q,k,v}_proj``."""
    names = TORCHAUDIO_NAMES
    if cfg.relative_position_buckets:  # WavLM wraps an nn.MultiheadAttention one level down
        names = replace(names, attention="attention.attention.{proj}.{p}")
    return name_pairs(cfg, names)


def _split_in_proj(state: dict[str, Tensor]) -> None:
    """WavLM's ``nn.MultiheadAttention`` packs q, k, v (in that order) along dim 0 of ``in_proj``."""
    for key in [k for k in state if re.search(r"\.attention\.attention\.in_proj_(weight|bias)$", k)]:
        base, param = key.rsplit(".in_proj_", 1)
        q, k, v = state.pop(key).chunk(3, dim=0)  # (3C, ...) -> 3 x (C, ...)
        for name, part in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
            state[f"{base}.{name}.{param}"] = part


def _fuse_in_proj(state: dict[str, Tensor]) -> None:
    for key in [k for k in state if re.search(r"\.attention\.attention\.q_proj\.(weight|bias)$", k)]:
        base, param = key.rsplit(".q_proj.", 1)
        parts = [state.pop(f"{base}.{name}.{param}") for name in ("q_proj", "k_proj", "v_proj")]
        state[f"{base}.in_proj_{param}"] = torch.cat(parts, dim=0)  # 3 x (C, ...) -> (3C, ...)


# --------------------------------------------------------------------------------------- sources
def _read_source(src: Any) -> tuple[dict[str, Tensor], nn.Module | None, str]:
    """(state dict, model object or None, a name for messages)."""
    if isinstance(src, nn.Module):
        if hasattr(src, "normalize_waveform") and isinstance(getattr(src, "model", None), nn.Module):
            # torchaudio.pipelines wraps the Large models to layer-normalise the waveform first; the
            # caller reads src.normalize_waveform into the config
            src = src.model
        return dict(src.state_dict()), src, f"torchaudio {type(src).__name__}"
    if isinstance(src, Mapping):
        return dict(src), None, "torchaudio state dict"
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: torchaudio state dict not found")
        state = safe_torch_load(path, what="a torchaudio state dict")
        if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError(f"{path}: expected a state dict (names to tensors), found {type(state).__name__}")
        return dict(state), None, str(path)
    raise ValueError(
        f"expected a torchaudio Wav2Vec2Model / HuBERTPretrainModel, its state dict or a file path; found {type(src).__name__}"
    )


def _model_facts(model: nn.Module) -> _ModelFacts:
    core = model.wav2vec2 if hasattr(model, "wav2vec2") else model
    try:
        blocks = core.feature_extractor.conv_layers
        transformer = core.encoder.transformer
        layer = transformer.layers[0]
        attn = layer.attention
        first_norm = blocks[0].layer_norm
        layer_norm_mode = len(blocks) > 1 and blocks[1].layer_norm is not None
        return _ModelFacts(
            strides=[int(block.stride) for block in blocks],
            num_heads=int(attn.num_heads),
            pre_norm=bool(layer.layer_norm_first),
            extractor_mode="layer_norm" if layer_norm_mode or isinstance(first_norm, nn.LayerNorm) else "group_norm",
            max_distance=int(attn.max_distance) if getattr(attn, "rel_attn_embed", None) is not None else None,
            dropout=float(transformer.dropout.p),
            attention_dropout=float(attn.dropout),
            activation_dropout=float(layer.feed_forward.intermediate_dropout.p),
            feature_dropout=float(core.encoder.feature_projection.dropout.p),
            layer_drop=float(transformer.layer_drop),
        )
    except (AttributeError, IndexError, TypeError) as e:
        raise ValueError(f"{type(model).__name__} is not a torchaudio Wav2Vec2Model / HuBERTPretrainModel ({e})") from None


def _normalise(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor | None, bool]:
    """Strip the wrapping of HuBERTPretrainModel and of the pipelines' normalising wrapper, split
    WavLM's fused projections: (encoder state, mask embedding or None, was it a HuBERTPretrainModel)."""
    if state and all(k.startswith("model.") for k in state):  # saved from a torchaudio.pipelines wrapper
        state = {k[len("model.") :]: v for k, v in state.items()}
    hubert_pretrain = any(k.startswith(_HUBERT_PRETRAIN_PREFIX) for k in state)
    mask = state.pop(_HUBERT_PRETRAIN_MASK, None)
    if hubert_pretrain:
        state = {(k[len(_HUBERT_PRETRAIN_PREFIX) :] if k.startswith(_HUBERT_PRETRAIN_PREFIX) else k): v for k, v in state.items()}
    _split_in_proj(state)
    return state, mask, hubert_pretrain or mask is not None


# ---------------------------------------------------------------------------------------- config
def _infer_config(
    state: Mapping[str, Tensor], pos_v: Tensor, facts: _ModelFacts | None, hubert: bool, source: str
) -> EncoderConfig:
    conv = sorted(
        int(m.group(1)) for k in state if (m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight", k))
    )
    if not conv or conv != list(range(len(conv))):
        raise ValueError(f"{source}: no conv front end (feature_extractor.conv_layers.<i>.conv.weight) found")
    shapes = [tuple(state[f"feature_extractor.conv_layers.{i}.conv.weight"].shape) for i in conv]  # (out, in, kernel)
    kernels = [s[2] for s in shapes]
    if facts is not None:
        strides = facts.strides
    elif kernels == [k for _, k, _ in STANDARD_CONV_LAYERS]:
        strides = [s for _, _, s in STANDARD_CONV_LAYERS]
    else:
        raise ValueError(
            f"{source}: conv strides are not stored in a state dict and kernels {kernels} are not the standard "
            "stack's; pass config= (an EncoderConfig)"
        )
    if facts is not None:
        mode = facts.extractor_mode
    elif any(f"feature_extractor.conv_layers.{i}.layer_norm.weight" in state for i in conv[1:]):
        mode = "layer_norm"
    else:
        mode = "group_norm"
    try:
        hidden = state["encoder.feature_projection.projection.weight"].shape[0]
        ffn = state["encoder.transformer.layers.0.feed_forward.intermediate_dense.weight"].shape[0]
    except KeyError as e:
        raise ValueError(f"{source}: no {e.args[0]} found; not a torchaudio wav2vec 2.0 state dict") from None
    num_layers = len({m.group(1) for k in state if (m := re.match(r"encoder\.transformer\.layers\.(\d+)\.", k))})
    rel = state.get("encoder.transformer.layers.0.attention.rel_attn_embed.weight")  # (buckets, heads)
    if facts is not None:
        heads = facts.num_heads
    elif rel is not None:
        heads = rel.shape[1]
    elif hidden in PUBLISHED_HEADS:
        heads = PUBLISHED_HEADS[hidden]
    else:
        raise ValueError(
            f"{source}: attention heads are not stored in a state dict and width {hidden} is not a published "
            f"model's ({', '.join(f'{w}: {h}' for w, h in PUBLISHED_HEADS.items())}); pass config= (an EncoderConfig)"
        )
    cfg: dict[str, Any] = dict(
        family="wavlm" if rel is not None else ("hubert" if hubert else "wav2vec2"),
        conv_layers=[(s[0], s[2], stride) for s, stride in zip(shapes, strides)],
        extractor_mode=mode,
        conv_bias="feature_extractor.conv_layers.0.conv.bias" in state,
        hidden_size=hidden,
        num_layers=num_layers,
        num_heads=heads,
        ffn_size=ffn,
        pre_norm=facts.pre_norm if facts is not None else mode == "layer_norm",
        pos_conv_kernel=pos_v.shape[2],
        pos_conv_groups=hidden // pos_v.shape[1],
        relative_position_buckets=rel.shape[0] if rel is not None else 0,
        gated_relative_position="encoder.transformer.layers.0.attention.gru_rel_pos_linear.weight" in state,
    )
    if rel is not None:
        cfg["relative_position_max_distance"] = facts.max_distance if facts is not None and facts.max_distance else DEFAULT_MAX_DISTANCE
    if facts is not None:
        cfg.update(
            dropout=facts.dropout,
            attention_dropout=facts.attention_dropout,
            activation_dropout=facts.activation_dropout,
            feature_dropout=facts.feature_dropout,
            layer_drop=facts.layer_drop,
        )
    try:
        return EncoderConfig(**cfg)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def _check_against_facts(config: EncoderConfig, facts: _ModelFacts, source: str) -> None:
    found = {
        "num_heads": (config.num_heads, facts.num_heads),
        "pre_norm": (config.pre_norm, facts.pre_norm),
        "extractor_mode": (config.extractor_mode, facts.extractor_mode),
        "conv strides": ([s for _, _, s in config.conv_layers], facts.strides),
    }
    if facts.max_distance is not None:
        found["relative_position_max_distance"] = (config.relative_position_max_distance, facts.max_distance)
    wrong = [f"{name}={ours!r} (the model has {theirs!r})" for name, (ours, theirs) in found.items() if ours != theirs]
    if wrong:
        raise ValueError(f"{source}: config does not match the model: {'; '.join(wrong)}")


# ---------------------------------------------------------------------------------------- public
def encoder_from_torchaudio(src: Any, config: EncoderConfig | None = None) -> SSLEncoder:
    """An :class:`SSLEncoder` with the weights of a torchaudio wav2vec 2.0 / HuBERT / WavLM model.

    ``src``: a ``torchaudio.models.Wav2Vec2Model`` or ``HuBERTPretrainModel``, its state dict, or
    the path of a file holding one (read with ``torch.load(weights_only=True)``). ``config``: the
    architecture; inferred when None (see the module docstring for what a bare state dict leaves
    open). Missing, unexpected or wrongly shaped weights raise ``ValueError`` listing them.
    """
    state, model, source = _read_source(src)
    facts = _model_facts(model) if model is not None else None
    state, mask, hubert = _normalise(state)
    pos = pop_weight_norm(state, _POS_CONV)
    if pos is None:
        raise ValueError(f"{source}: no positional conv weight ({_POS_CONV}weight_g/weight_v or parametrizations) found")
    if config is None:
        config = _infer_config(state, pos[1], facts, hubert, source)
    elif facts is not None:
        _check_against_facts(config, facts, source)
    if not config.feature_proj_layer_norm:
        raise ValueError(f"{source}: torchaudio models always have a feature-projection LayerNorm; config says none")
    if getattr(src, "normalize_waveform", False) and isinstance(getattr(src, "model", None), nn.Module):
        config = dataclasses.replace(config, normalize_waveform=True)
    encoder = build_encoder(config)
    ours = rename_strict(state, _name_pairs(config), source=source, ignore=_IGNORED)
    ours["encoder.pos_conv.weight_g"], ours["encoder.pos_conv.weight_v"] = pos
    ours["mask_embedding"] = mask if mask is not None else encoder.mask_embedding.detach().clone()
    return load_strict(encoder, ours, source)


def encoder_to_torchaudio_state_dict(encoder: SSLEncoder) -> dict[str, Tensor]:
    """The state dict of the torchaudio ``Wav2Vec2Model`` with ``encoder``'s weights (positional conv
    in the ``parametrizations`` form of current torchaudio). The mask embedding has no place there."""
    cfg = encoder.config
    if not cfg.feature_proj_layer_norm:
        raise ValueError("torchaudio models always have a feature-projection LayerNorm; this encoder has none")
    if cfg.relative_position_buckets and not cfg.gated_relative_position:
        raise ValueError("torchaudio's WavLM always gates the relative position bias; this encoder does not")
    ours = encoder.state_dict()
    out = {theirs: ours[mine].detach().clone() for mine, theirs in _name_pairs(cfg)}
    out[_POS_CONV + "parametrizations.weight.original0"] = ours["encoder.pos_conv.weight_g"].detach().clone()
    out[_POS_CONV + "parametrizations.weight.original1"] = ours["encoder.pos_conv.weight_v"].detach().clone()
    _fuse_in_proj(out)
    return out


def torchaudio_factory_kwargs(cfg: EncoderConfig) -> dict[str, Any]:
    """Keyword arguments of ``torchaudio.models.wav2vec2_model`` (or ``wavlm_model`` when
    ``cfg.relative_position_buckets``) that build the architecture ``cfg`` describes."""
    kwargs: dict[str, Any] = dict(
        extractor_mode=cfg.extractor_mode,
        extractor_conv_layer_config=[tuple(c) for c in cfg.conv_layers],
        extractor_conv_bias=cfg.conv_bias,
        encoder_embed_dim=cfg.hidden_size,
        encoder_projection_dropout=cfg.feature_dropout,
        encoder_pos_conv_kernel=cfg.pos_conv_kernel,
        encoder_pos_conv_groups=cfg.pos_conv_groups,
        encoder_num_layers=cfg.num_layers,
        encoder_num_heads=cfg.num_heads,
        encoder_attention_dropout=cfg.attention_dropout,
        encoder_ff_interm_features=cfg.ffn_size,
        encoder_ff_interm_dropout=cfg.activation_dropout,
        encoder_dropout=cfg.dropout,
        encoder_layer_norm_first=cfg.pre_norm,
        encoder_layer_drop=cfg.layer_drop,
        aux_num_out=None,
    )
    if cfg.relative_position_buckets:
        kwargs.update(encoder_num_buckets=cfg.relative_position_buckets, encoder_max_distance=cfg.relative_position_max_distance)
    return kwargs


def encoder_to_torchaudio(encoder: SSLEncoder) -> nn.Module:
    """A torchaudio ``Wav2Vec2Model`` (built by ``wav2vec2_model`` / ``wavlm_model``) with ``encoder``'s weights."""
    from speechssl.deps import import_torchaudio

    torchaudio = import_torchaudio()
    cfg = encoder.config
    factory = torchaudio.models.wavlm_model if cfg.relative_position_buckets else torchaudio.models.wav2vec2_model
    model = factory(**torchaudio_factory_kwargs(cfg))
    model.load_state_dict(encoder_to_torchaudio_state_dict(encoder), strict=True)
    return model.eval()


__all__ = [
    "encoder_from_torchaudio",
    "encoder_to_torchaudio_state_dict",
    "encoder_to_torchaudio",
    "torchaudio_factory_kwargs",
    "PUBLISHED_HEADS",
    "DEFAULT_MAX_DISTANCE",
]
