"""What the converters share: one naming table per foreign format, renaming a state dict to ours strictly
(every key used, ignored by an explicit pattern, or an error), the forms a weight-normalised
positional conv is stored in, a load that reports mismatches as ``ValueError``, and the one way
a converter reads a ``torch.save`` file: :func:`safe_torch_load`, which never runs what it reads."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from speechssl.models.encoder import EncoderConfig, SSLEncoder

# the positional conv's weight norm, as (magnitude, direction) key suffixes: the old
# torch.nn.utils.weight_norm hook, then torch.nn.utils.parametrizations.weight_norm
WEIGHT_NORM_FORMS = (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"))


def format_keys(keys: Iterable[str], limit: int = 12) -> str:
    keys = list(keys)
    if not keys:
        return "none"
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def pop_weight_norm(state: dict[str, Tensor], prefix: str) -> tuple[Tensor, Tensor] | None:
    """Pop the positional conv weight under ``prefix`` (``"...conv."``) as ``(g, v)`` with
    ``g * v / ||v||`` the weight, the norm over all dims but the kernel dim (weight norm ``dim=2``).

    Reads either weight-norm form, or a plain ``weight`` (weight norm removed), which is the same
    function with ``v = weight`` and ``g = ||weight||``. None when no form is there.
    """
    for g_name, v_name in WEIGHT_NORM_FORMS:
        if prefix + g_name in state and prefix + v_name in state:
            return state.pop(prefix + g_name), state.pop(prefix + v_name)
    if prefix + "weight" in state:
        weight = state.pop(prefix + "weight")
        return weight.norm(dim=(0, 1), keepdim=True), weight
    return None


def rename_strict(
    state: Mapping[str, Tensor],
    pairs: Iterable[tuple[str, str]],
    *,
    source: str,
    ignore: re.Pattern[str] | None = None,
) -> dict[str, Tensor]:
    """Rename ``state`` (foreign names) to ours through ``pairs`` of ``(ours, theirs)`` names.

    Keys matching ``ignore`` are dropped (pretraining heads and the like, named explicitly by the
    caller). A pair whose foreign key is absent, or a key no pair or pattern claims, raises a
    ``ValueError`` that names ``source`` and lists the keys.
    """
    left = dict(state)
    out: dict[str, Tensor] = {}
    missing = []
    for ours, theirs in pairs:
        if theirs in left:
            out[ours] = left.pop(theirs)
        else:
            missing.append(theirs)
    unexpected = [k for k in left if ignore is None or not ignore.search(k)]
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not match the architecture "
            f"(missing: {format_keys(missing)}; unexpected: {format_keys(unexpected)})"
        )
    return out


def load_strict(encoder: SSLEncoder, state: Mapping[str, Tensor], source: str) -> SSLEncoder:
    """``encoder.load_state_dict(state, strict=True)`` with missing, unexpected and wrongly shaped
    tensors reported together as one ``ValueError`` naming ``source``. Returns the encoder in eval mode."""
    own = encoder.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f"{source}: weights do not match the architecture (missing: {format_keys(missing)}; "
            f"unexpected: {format_keys(unexpected)}; wrong shape: {format_keys(shapes)})"
        )
    encoder.load_state_dict(dict(state), strict=True)
    return encoder.eval()


@dataclass(frozen=True)
class Naming:
    """Where a foreign format keeps each encoder parameter: templates with ``{i}`` (conv or layer
    index), ``{p}`` (``weight``/``bias``) and ``{proj}`` (``q_proj``, ``k_proj``, ``v_proj``,
    ``out_proj``). Layer templates are relative to ``layer``. ``None``: the format has no such
    parameter. The positional conv's weight pair is read separately (:func:`pop_weight_norm`)."""

    conv: str
    first_conv_norm: str  # the per-channel norm after conv 0 (group-norm front end)
    conv_norm: str  # the LayerNorm after every conv (layer-norm front end)
    feature_norm: str
    projection: str
    encoder_norm: str
    mask_embedding: str | None
    pos_conv_bias: str
    relative_bias: str  # WavLM, kept in layer 0
    layer: str
    attention: str
    attention_norm: str
    fc1: str
    fc2: str
    ffn_norm: str
    gate_proj: str  # WavLM's gru_rel_pos linear
    gate_const: str

    def with_prefix(self, prefix: str) -> "Naming":
        fields = {k: (prefix + v if isinstance(v, str) and k not in _LAYER_RELATIVE else v) for k, v in self.__dict__.items()}
        return replace(self, **fields)


_LAYER_RELATIVE = {"attention", "attention_norm", "fc1", "fc2", "ffn_norm", "gate_proj", "gate_const"}


def name_pairs(cfg: EncoderConfig, names: Naming, *, projection: bool = True) -> list[tuple[str, str]]:
    """(ours, theirs) names of every parameter of an encoder with config ``cfg``, except the
    positional conv's weight pair (and the mask embedding where ``names`` has none).
    ``projection=False``: the format has no feature projection (fairseq when widths agree)."""
    pairs = []
    both = ("weight", "bias")
    for i in range(len(cfg.conv_layers)):
        ours = f"feature_extractor.layers.{i}."
        pairs.append((ours + "conv.weight", names.conv.format(i=i, p="weight")))
        if cfg.conv_bias:
            pairs.append((ours + "conv.bias", names.conv.format(i=i, p="bias")))
        norm = names.conv_norm if cfg.extractor_mode == "layer_norm" else (names.first_conv_norm if i == 0 else None)
        pairs += [(ours + f"norm.{p}", norm.format(i=i, p=p)) for p in both] if norm else []
    for p in both:
        if cfg.feature_proj_layer_norm:
            pairs.append((f"feature_projection.layer_norm.{p}", names.feature_norm.format(p=p)))
        if projection:
            pairs.append((f"feature_projection.projection.{p}", names.projection.format(p=p)))
        pairs.append((f"encoder.layer_norm.{p}", names.encoder_norm.format(p=p)))
    if names.mask_embedding is not None:
        pairs.append(("mask_embedding", names.mask_embedding))
    pairs.append(("encoder.pos_conv.bias", names.pos_conv_bias))
    gated = cfg.relative_position_buckets > 0 and cfg.gated_relative_position
    if cfg.relative_position_buckets:
        pairs.append(("encoder.relative_position.embedding.weight", names.relative_bias))
    for i in range(cfg.num_layers):
        ours, theirs = f"encoder.layers.{i}.", names.layer.format(i=i)
        for p in both:
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                pairs.append((f"{ours}attention.{proj}.{p}", theirs + names.attention.format(proj=proj, p=p)))
            pairs.append((f"{ours}attention_norm.{p}", theirs + names.attention_norm.format(p=p)))
            pairs.append((f"{ours}feed_forward.fc1.{p}", theirs + names.fc1.format(p=p)))
            pairs.append((f"{ours}feed_forward.fc2.{p}", theirs + names.fc2.format(p=p)))
            pairs.append((f"{ours}ffn_norm.{p}", theirs + names.ffn_norm.format(p=p)))
            if gated:
                pairs.append((f"{ours}attention.gate_proj.{p}", theirs + names.gate_proj.format(p=p)))
        if gated:
            pairs.append((f"{ours}attention.gate_const", theirs + names.gate_const))
    return pairs


def _refused_globals(path: Path, allowed: Sequence[Callable | tuple[Callable, str]]) -> list[str]:
    """The globals ``path``'s pickle asks for beyond torch's weights-only set and ``allowed``, read
    from its opcodes (nothing is run). Empty when they cannot be listed (a pre-zip legacy file)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy (non-zip) files: the unpickler's own error names the global instead
        return []
    names = {g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}" for g in allowed}
    return sorted(g for g in found if g not in names)


def _refusal(path: Path, what: str, refused: list[str], hint: str) -> str:
    asked = ", ".join(refused) if refused else "an object outside the allowlist"
    return (
        f"{path}: refused: the file asks to unpickle {asked}, which {what} does not hold and which could run "
        f"code; nothing in it was run{'. ' + hint if hint else ''}"
    )


def safe_torch_load(
    path: str | os.PathLike,
    allowed: Sequence[Callable | tuple[Callable, str]] = (),
    *,
    what: str = "a checkpoint",
    hint: str = "",
) -> Any:
    """``torch.load(path, weights_only=True)`` with ``allowed`` globals added (a callable, or
    ``(callable, "module.name")`` for a name the pickle uses): containers, tensors and those only.
    A file asking for any other global raises ``ValueError`` naming ``path`` and the globals, before
    anything of it is built; ``what`` says what the file should have been, ``hint`` what to do."""
    path = Path(path)
    refused = _refused_globals(path, allowed)
    if refused:  # said from the opcodes alone, before the unpickler starts
        raise ValueError(_refusal(path, what, refused, hint))
    try:
        with torch.serialization.safe_globals(list(allowed)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # a plain pickle: refused below
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w.]+)", str(e))
        if m:  # a legacy file asking for a global: the unpickler stopped at it
            raise ValueError(_refusal(path, what, [m.group(1)], hint)) from None
        raise ValueError(f"{path}: not a readable PyTorch file (the weights-only unpickler stopped: {_reason(e)}); expected {what}") from None
    except Exception as e:  # truncated files, files that are not torch.save output
        raise ValueError(f"{path}: not a readable PyTorch file ({type(e).__name__}: {e}); expected {what}") from None


def _reason(error: Exception) -> str:
    """The unpickler's own reason, without torch's paragraphs of advice around it."""
    text = str(error)
    tail = text.split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in tail.splitlines() if line.strip() and not line.startswith("Check the documentation")]
    return lines[0] if lines else text.splitlines()[0]
