"""fairseq checkpoints of HuBERT, wav2vec 2.0 and WavLM -> speechssl encoders.

Reading is safe by default. fairseq checkpoints are Python pickles, and unpickling a file can run
arbitrary code; :func:`read_fairseq_checkpoint` reads them with torch's weights-only unpickler,
which builds nothing but containers, tensors and the classes allowed explicitly: the ones real
checkpoints hold (:data:`ALLOWED_GLOBALS`: ``argparse.Namespace`` for pre-hydra configs, numpy arrays,
scalars and dtypes in RNG states and meters). A file asking for any other global (``os.system``,
``builtins.exec``, a class of fairseq's) is refused with its path and the global, and nothing in it
runs. Only ``allow_pickle=True`` (``--allow-pickle``) unpickles fully, with a warning: for a
trusted file that holds more.

Layouts read:

* fairseq (hydra era): ``ckpt["cfg"]["model"]`` is the model config (``_name`` ``"hubert"`` or
  ``"wav2vec2"``), ``ckpt["model"]`` the state dict with fairseq's names. Fine-tuned CTC models
  (``_name`` ``"hubert_ctc"`` / ``"wav2vec_ctc"``) hold the pretrained model's config in
  ``w2v_args`` and its weights under ``w2v_encoder.w2v_model.``; the fine-tuning config's dropouts
  override the pretrained ones, as fairseq does when it builds the model.
* fairseq before hydra: the same with ``ckpt["args"]`` (an ``argparse.Namespace``) for the config.
* WavLM (microsoft/unilm): ``ckpt["cfg"]`` is the flat ``WavLMConfig`` dict; the gate is
  ``self_attn.grep_linear`` / ``grep_a`` and the relative position embedding sits in layer 0 as
  ``self_attn.relative_attention_bias``.

Config fields a checkpoint leaves out take the defaults of fairseq's ``Wav2Vec2Config`` /
``HubertConfig`` (or unilm's ``WavLMConfig``), as the original code fills them. Pretraining-only
weights (HuBERT's ``label_embs_concat`` and ``final_proj``, wav2vec 2.0's ``quantizer``,
``project_q``, ...) and the CTC output layer (``w2v_encoder.proj``) are dropped by name; any other
weight that has no place in the encoder, or any missing one, is an error that lists them.

fairseq leaves out ``post_extract_proj`` when the conv width equals the transformer width; the
converted encoder then gets an identity projection. Models trained on normalised waveforms (task
``normalize=True``, the layer-norm-front-end Large models) expect inputs normalised to zero mean and
unit variance per utterance; a warning says so, and the caller normalises.
"""

from __future__ import annotations

import logging
import os
import re
from argparse import Namespace
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from speechssl.convert._common import Naming, load_strict, name_pairs, pop_weight_norm, rename_strict, safe_torch_load
from speechssl.models.encoder import EncoderConfig, SSLEncoder, build_encoder

log = logging.getLogger(__name__)

_STANDARD_CONV = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
# Defaults of fairseq's Wav2Vec2Config / HubertConfig and unilm's WavLMConfig for the fields read here.
_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default",
    "conv_feature_layers": _STANDARD_CONV,
    "conv_bias": False,
    "encoder_embed_dim": 768,
    "encoder_layers": 12,
    "encoder_attention_heads": 12,
    "encoder_ffn_embed_dim": 3072,
    "activation_fn": "gelu",
    "layer_norm_first": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "dropout_input": 0.0,
    "encoder_layerdrop": 0.0,
    "relative_position_embedding": False,
    "num_buckets": 320,
    "max_distance": 1280,
    "gru_rel_pos": False,
}
# the fine-tuning config's field -> the pretrained config's field it overrides (fairseq's Wav2VecEncoder)
_FINETUNE_OVERRIDES = {
    "dropout": "dropout",
    "attention_dropout": "attention_dropout",
    "activation_dropout": "activation_dropout",
    "dropout_input": "dropout_input",
    "layerdrop": "encoder_layerdrop",
}
_FINETUNED_NAMES = ("hubert_ctc", "wav2vec_ctc")
_PRETRAINED_NAMES = ("hubert", "wav2vec2")
_FINETUNED_PREFIX = "w2v_encoder.w2v_model."
# weights of the pretraining objective (HuBERT: label embeddings + projection; wav2vec 2.0:
# quantizer, its projections, the target GLU) and the CTC output layer of fine-tuned models
_PRETRAINING_ONLY = r"(label_embs(_concat)?|final_proj\.|quantizer\.|input_quantizer\.|project_q\.|project_inp\.|target_glu\.)"
_CTC_HEAD = r"w2v_encoder\.proj\."
_MAX_CONV_LAYERS = 1000


# ------------------------------------------------------------------------- conv_feature_layers
_TOKEN = re.compile(r"\s*(?:(\d+)|([\[\](),+*]))")


class _ConvSpecParser:
    """Recursive descent over fairseq's ``conv_feature_layers`` list expressions, e.g.
    ``[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2``. Grammar::

        expr   := term ("+" term)*
        term   := INT "*" factor ("*" INT)* | factor ("*" INT)*
        factor := "[" [tuple ("," tuple)* [","]] "]" | "(" expr ")"
        tuple  := "(" INT "," INT "," INT [","] ")"
    """

    def __init__(self, spec: str):
        self.spec = spec
        self.tokens: list[int | str] = []
        pos = 0
        while spec[pos:].strip():
            m = _TOKEN.match(spec, pos)
            if m is None:
                at = pos + len(spec[pos:]) - len(spec[pos:].lstrip())
                self.fail(f"unexpected character {spec[at]!r} at position {at}")
            self.tokens.append(int(m.group(1)) if m.group(1) is not None else m.group(2))
            pos = m.end()
        self.i = 0

    def fail(self, why: str):
        raise ValueError(
            f"conv_feature_layers {self.spec!r} is not a list expression like {_STANDARD_CONV!r}: {why}"
        )

    def peek(self) -> int | str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str) -> None:
        if self.peek() != expected:
            self.fail(f"expected {expected!r}, found {self.describe()}")
        self.i += 1

    def take_int(self) -> int:
        tok = self.peek()
        if not isinstance(tok, int):
            self.fail(f"expected an integer, found {self.describe()}")
        self.i += 1
        return tok

    def describe(self) -> str:
        tok = self.peek()
        return "the end" if tok is None else repr(tok)

    def repeat(self, items: list, times: int) -> list:
        if len(items) * times > _MAX_CONV_LAYERS:
            self.fail(f"more than {_MAX_CONV_LAYERS} layers")
        return items * times

    def parse(self) -> list[tuple[int, int, int]]:
        items = self.expr()
        if self.peek() is not None:
            self.fail(f"unexpected {self.describe()} after the expression")
        if not items:
            self.fail("no layers")
        return items

    def expr(self) -> list:
        items = self.term()
        while self.peek() == "+":
            self.i += 1
            items = items + self.term()
            if len(items) > _MAX_CONV_LAYERS:
                self.fail(f"more than {_MAX_CONV_LAYERS} layers")
        return items

    def term(self) -> list:
        if isinstance(self.peek(), int):
            times = self.take_int()
            self.take("*")
            items = self.repeat(self.factor(), times)
        else:
            items = self.factor()
        while self.peek() == "*":
            self.i += 1
            items = self.repeat(items, self.take_int())
        return items

    def factor(self) -> list:
        if self.peek() == "(":
            self.i += 1
            items = self.expr()
            self.take(")")
            return items
        self.take("[")
        items = []
        while self.peek() != "]":
            items.append(self.layer())
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                self.fail(f"expected ',' or ']', found {self.describe()}")
        self.take("]")
        return items

    def layer(self) -> tuple[int, int, int]:
        self.take("(")
        channels = self.take_int()
        self.take(",")
        kernel = self.take_int()
        self.take(",")
        stride = self.take_int()
        if self.peek() == ",":
            self.i += 1
        self.take(")")
        if min(channels, kernel, stride) < 1:
            self.fail(f"layer {(channels, kernel, stride)} has a zero size")
        return channels, kernel, stride


def parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq's ``conv_feature_layers`` string -> ``[(channels, kernel, stride), ...]``, without eval:
    lists of 3-tuples of integers joined by ``+`` and repeated by ``* n``. Anything else raises ValueError."""
    if not isinstance(spec, str):
        raise ValueError(f"conv_feature_layers must be a string, found {type(spec).__name__}")
    return _ConvSpecParser(spec).parse()


# -------------------------------------------------------------------------------------- config
def _as_dict(obj: Any) -> dict[str, Any] | None:
    """A plain dict from a config stored as a dict, an ``argparse.Namespace`` or an omegaconf DictConfig."""
    if obj is None:
        return None
    if isinstance(obj, Namespace):
        return dict(vars(obj))
    if isinstance(obj, Mapping) or hasattr(obj, "items"):
        return {str(k): v for k, v in obj.items()}
    raise ValueError(f"expected a config dict, found {type(obj).__name__}")


def _model_config(ckpt: Mapping[str, Any]) -> tuple[dict[str, Any], str, str, bool]:
    """(pretrained model config, family, weight prefix, normalize) from a checkpoint's config."""
    root, args = _as_dict(ckpt.get("cfg")), _as_dict(ckpt.get("args"))
    if root is not None and root.get("model") is not None:
        model, task = _as_dict(root["model"]), _as_dict(root.get("task")) or {}
    elif root is not None and any(k in root for k in ("encoder_embed_dim", "encoder_layers", "conv_feature_layers")):
        return dict(root), "wavlm", "", bool(root.get("normalize", False))  # unilm's flat WavLMConfig
    elif args is not None:
        model, task = args, args
    else:
        raise ValueError("no model config: expected cfg['model'] (fairseq), a flat cfg (WavLM) or args (old fairseq)")
    name = model.get("_name") or model.get("arch")
    normalize = bool(task.get("normalize", False))
    prefix = ""
    if name in _FINETUNED_NAMES or model.get("w2v_args") is not None:
        w2v_args = _as_dict(model.get("w2v_args"))
        if w2v_args is None:
            raise ValueError(f"fine-tuned model {name!r} without w2v_args (the pretrained model's config)")
        if w2v_args.get("model") is not None:  # hydra: a whole config
            inner, inner_task = _as_dict(w2v_args["model"]), _as_dict(w2v_args.get("task")) or {}
        else:  # before hydra: a flat Namespace
            inner, inner_task = w2v_args, w2v_args
        for theirs, field in _FINETUNE_OVERRIDES.items():
            if model.get(theirs) is not None:
                inner[field] = model[theirs]
        normalize = normalize or bool(inner_task.get("normalize", False))
        model, name, prefix = inner, inner.get("_name") or inner.get("arch"), _FINETUNED_PREFIX
    if name not in _PRETRAINED_NAMES:
        valid = ", ".join(_PRETRAINED_NAMES + _FINETUNED_NAMES) + " (and WavLM's flat cfg)"
        raise ValueError(f"model {name!r} is not one speechssl converts; valid: {valid}")
    return model, name, prefix, normalize


def config_from_fairseq(model: Mapping[str, Any], family: str) -> EncoderConfig:
    """Our EncoderConfig from a fairseq model config dict (``cfg["model"]``, or WavLM's flat cfg)."""

    def get(key: str) -> Any:
        value = model.get(key)
        return _DEFAULTS[key] if value is None else value

    unsupported = []
    if get("activation_fn") != "gelu":
        unsupported.append(f"activation_fn={get('activation_fn')!r} (only 'gelu')")
    if model.get("layer_type") not in (None, "transformer"):
        unsupported.append(f"layer_type={model['layer_type']!r} (only 'transformer')")
    if int(model.get("pos_conv_depth") or 1) != 1:
        unsupported.append(f"pos_conv_depth={model['pos_conv_depth']} (only 1)")
    if model.get("conv_pos_batch_norm"):
        unsupported.append("conv_pos_batch_norm=True")
    if model.get("quantize_input"):
        unsupported.append("quantize_input=True")
    mode = get("extractor_mode")
    if mode not in ("default", "layer_norm"):
        unsupported.append(f"extractor_mode={mode!r} (only 'default' or 'layer_norm')")
    if unsupported:
        raise ValueError(f"unsupported {family} architecture: {'; '.join(unsupported)}")
    relative = family == "wavlm" and bool(get("relative_position_embedding"))
    return EncoderConfig(
        family=family,
        conv_layers=parse_conv_layers(get("conv_feature_layers")),
        extractor_mode="group_norm" if mode == "default" else "layer_norm",
        conv_bias=bool(get("conv_bias")),
        feature_proj_layer_norm=True,
        hidden_size=int(get("encoder_embed_dim")),
        num_layers=int(get("encoder_layers")),
        num_heads=int(get("encoder_attention_heads")),
        ffn_size=int(get("encoder_ffn_embed_dim")),
        pre_norm=bool(get("layer_norm_first")),
        pos_conv_kernel=int(get("conv_pos")),
        pos_conv_groups=int(get("conv_pos_groups")),
        relative_position_buckets=int(get("num_buckets")) if relative else 0,
        relative_position_max_distance=int(get("max_distance")),
        gated_relative_position=bool(get("gru_rel_pos")),
        dropout=float(get("dropout")),
        attention_dropout=float(get("attention_dropout")),
        activation_dropout=float(get("activation_dropout")),
        feature_dropout=float(get("dropout_input")),
        layer_drop=float(get("encoder_layerdrop")),
    )


# --------------------------------------------------------------------------------------- weights
FAIRSEQ_NAMES = Naming(
    conv="feature_extractor.conv_layers.{i}.0.{p}",  # Sequential(conv, dropout, norm, gelu)
    first_conv_norm="feature_extractor.conv_layers.{i}.2.{p}",  # Fp32GroupNorm
    conv_norm="feature_extractor.conv_layers.{i}.2.1.{p}",  # Sequential(TransposeLast, Fp32LayerNorm, TransposeLast)
    feature_norm="layer_norm.{p}",
    projection="post_extract_proj.{p}",
    encoder_norm="encoder.layer_norm.{p}",
    mask_embedding="mask_emb",
    pos_conv_bias="encoder.pos_conv.0.bias",
    relative_bias="encoder.layers.0.self_attn.relative_attention_bias.weight",
    layer="encoder.layers.{i}.",
    attention="self_attn.{proj}.{p}",
    attention_norm="self_attn_layer_norm.{p}",
    fc1="fc1.{p}",
    fc2="fc2.{p}",
    ffn_norm="final_layer_norm.{p}",
    gate_proj="self_attn.grep_linear.{p}",
    gate_const="self_attn.grep_a",
)


def _name_pairs(cfg: EncoderConfig, prefix: str, projection: bool) -> list[tuple[str, str]]:
    """(ours, fairseq's) parameter names, without the positional conv's weight pair."""
    return name_pairs(cfg, FAIRSEQ_NAMES.with_prefix(prefix), projection=projection)


def _ignored(cfg: EncoderConfig, prefix: str) -> re.Pattern[str]:
    patterns = [f"^{re.escape(prefix)}{_PRETRAINING_ONLY}", f"^{_CTC_HEAD}"]
    if cfg.family == "wavlm" and not cfg.relative_position_buckets:
        # gru_rel_pos without relative_position_embedding: the gate exists but has no bias to scale
        patterns.append(rf"^{re.escape(prefix)}encoder\.layers\.\d+\.self_attn\.grep_(linear\.(weight|bias)|a)$")
    return re.compile("|".join(patterns))


def _convert(ckpt: Any) -> SSLEncoder:
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"expected a fairseq checkpoint (a dict with 'model' and 'cfg'), found {type(ckpt).__name__}")
    state = ckpt.get("model")
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"expected the weights as a state dict under 'model', found {type(state).__name__}")
    model_cfg, family, prefix, normalize = _model_config(ckpt)
    cfg = config_from_fairseq(model_cfg, family)
    state = dict(state)
    pos = pop_weight_norm(state, f"{prefix}encoder.pos_conv.0.")
    if pos is None:
        raise ValueError(f"no positional conv weight ({prefix}encoder.pos_conv.0.weight_g / weight_v) found")
    conv_dim = cfg.conv_layers[-1][0]
    projection = f"{prefix}post_extract_proj.weight" in state or conv_dim != cfg.hidden_size
    ours = rename_strict(state, _name_pairs(cfg, prefix, projection), source="state dict 'model'", ignore=_ignored(cfg, prefix))
    ours["encoder.pos_conv.weight_g"], ours["encoder.pos_conv.weight_v"] = pos
    if not projection:  # fairseq skips post_extract_proj when the widths agree
        ours["feature_projection.projection.weight"] = torch.eye(cfg.hidden_size)
        ours["feature_projection.projection.bias"] = torch.zeros(cfg.hidden_size)
    cfg.normalize_waveform = normalize
    encoder = load_strict(build_encoder(cfg), ours, "state dict 'model'")
    return encoder


def _numpy_globals() -> list[tuple[Callable, str]]:
    """numpy's picklable pieces, under the module names pickles written by numpy 1.x
    (``numpy.core``) and 2.x (``numpy._core``) use for them."""
    try:
        import numpy as np
    except ImportError:
        return []
    try:
        multiarray = np._core.multiarray
    except AttributeError:  # numpy 1.x
        multiarray = np.core.multiarray
    out: list[tuple[Callable, str]] = []
    for core in ("numpy.core", "numpy._core"):
        out += [(multiarray._reconstruct, f"{core}.multiarray._reconstruct"), (multiarray.scalar, f"{core}.multiarray.scalar")]
    out += [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 names each dtype's class
    for name in dir(dtypes) if dtypes is not None else []:
        cls = getattr(dtypes, name)
        if name.endswith("DType") and isinstance(cls, type) and name != "ObjectDType":  # object arrays hold arbitrary objects
            out.append((cls, f"numpy.dtypes.{name}"))
    return out


def allowed_globals() -> list[Callable | tuple[Callable, str]]:
    """What a fairseq, unilm or fine-tuned checkpoint may ask the unpickler for beyond the
    containers and tensors torch's weights-only unpickler always reads: ``argparse.Namespace``
    (``args`` before hydra) and numpy arrays, scalars and dtypes (RNG states, meters)."""
    return [Namespace, *_numpy_globals()]


def read_fairseq_checkpoint(path: str | os.PathLike, *, allow_pickle: bool = False) -> Any:
    """The contents of a fairseq-layout checkpoint, read with ``torch.load(weights_only=True)`` and
    :func:`allowed_globals`: a file that asks for anything else raises ``ValueError`` naming the
    path and the globals, and nothing in it runs. ``allow_pickle=True`` unpickles fully (only for
    files you trust: unpickling can run code), with a warning."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if not allow_pickle:
        return safe_torch_load(
            path, allowed_globals(), what="a fairseq checkpoint", hint="If you trust the file, read it with --allow-pickle (allow_pickle=True)"
        )
    log.warning("%s: unpickling fully (allow_pickle): code in this file runs; use it only for files you trust", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ImportError, AttributeError) as e:  # a class the pickle names is not importable here
        raise ValueError(f"{path}: unpickling needs a class that is not available here ({e})") from None
    except Exception as e:  # truncated files, non-PyTorch files, unpickling errors
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None


def encoder_from_fairseq(path: str | os.PathLike, *, allow_pickle: bool = False) -> SSLEncoder:
    """An :class:`SSLEncoder` from a fairseq HuBERT / wav2vec 2.0 checkpoint (pretrained or CTC
    fine-tuned) or an official WavLM checkpoint, read safely (:func:`read_fairseq_checkpoint`;
    ``allow_pickle=True`` unpickles fully, for trusted files only).

    Errors a file can cause (an unknown model, a malformed ``conv_feature_layers``, missing or
    unexpected weights, globals outside the allowlist) raise ``ValueError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fairseq checkpoint not found")
    ckpt = read_fairseq_checkpoint(path, allow_pickle=allow_pickle)
    try:
        return _convert(ckpt)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


__all__ = ["encoder_from_fairseq", "read_fairseq_checkpoint", "allowed_globals", "config_from_fairseq", "parse_conv_layers"]
