"""Adapter-only checkpoints: one adapter's parameters in a ``.safetensors`` file (kilobytes to a few
megabytes), with its :class:`AdapterConfig`, its name and the fingerprint of the base encoder it was
trained on in the metadata. Loading onto another base encoder is refused.

Tensor keys are independent of the adapter's name and of where the encoder sits in a bigger model:
``layers.<i>.<sublayer>.<down|up>.<weight|bias>`` for bottleneck adapters and
``layers.<i>.<target>.<A|B>`` for LoRA pairs (``target`` as in ``AdapterConfig.lora_targets``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from speechssl.adapters.bank import (
    LORA_TARGETS,
    AdapterConfig,
    add_adapter,
    base_state_dict,
    list_adapters,
    merged_adapter,
    remove_adapter,
    set_active_adapter,
    transformer_layers,
)
from speechssl.adapters.bottleneck import LayerAdapters
from speechssl.adapters.lora import LoRALinear

FORMAT = "speechssl-adapter"
FORMAT_VERSION = 1


def base_fingerprint(encoder: nn.Module) -> str:
    """sha256 over the base encoder's weights: :func:`~speechssl.features.layer.encoder_fingerprint`'s
    digest (names, dtypes, shapes and values, in name order) over :func:`base_state_dict`, i.e.
    without adapter and LoRA parameters and with merged LoRA taken out. For an encoder without
    adapters it equals ``encoder_fingerprint(encoder)``."""
    from speechssl.features.layer import state_dict_fingerprint

    return state_dict_fingerprint(base_state_dict(encoder))


def _adapter_params(encoder: nn.Module, name: str) -> dict[str, nn.Parameter]:
    """Adapter ``name``'s parameters under the checkpoint's name-independent keys."""
    cfg = list_adapters(encoder)[name]
    layers = transformer_layers(encoder)
    out: dict[str, nn.Parameter] = {}
    for i, layer in enumerate(layers):
        bank = layer._modules.get("adapters")
        if isinstance(bank, LayerAdapters) and name in bank:
            for pname, p in bank[name].named_parameters():
                out[f"layers.{i}.{pname}"] = p
        for target in cfg.lora_targets:
            sub_name, lin_name = LORA_TARGETS[target]
            linear = getattr(getattr(layer, sub_name), lin_name)
            if isinstance(linear, LoRALinear) and name in linear.lora:
                for pname, p in linear.lora[name].named_parameters():
                    out[f"layers.{i}.{target}.{pname}"] = p
    return out


def save_adapter(encoder: nn.Module, name: str, path: str | os.PathLike) -> Path:
    """Write adapter ``name`` of ``encoder`` to ``path`` (``.safetensors``) atomically."""
    from safetensors.torch import save_file

    from speechssl.config import to_dict
    from speechssl.io import atomic_path

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: adapter checkpoints are .safetensors files")
    adapters = list_adapters(encoder)
    if name not in adapters:
        raise ValueError(f"no adapter named '{name}' on this encoder; adapters: {', '.join(adapters) or 'none'}")
    layers = transformer_layers(encoder)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "name": name,
        "config": json.dumps(to_dict(adapters[name])),
        "base_fingerprint": base_fingerprint(encoder),
        "hidden_size": str(layers[0].attention.out_proj.out_features),
        "num_layers": str(len(layers)),
    }
    state = {k: p.detach().cpu().contiguous() for k, p in _adapter_params(encoder, name).items()}
    from speechssl.nonfinite import check_finite

    check_finite(state, f"{path}: adapter '{name}'")
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def read_adapter_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of an adapter checkpoint (format, name, config, base fingerprint, sizes)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: adapter checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for a bad header
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a speechssl adapter checkpoint (metadata format={meta.get('format')!r})")
    version = int(meta.get("format_version", "0"))
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: adapter format version {version} is newer than this speechssl reads ({FORMAT_VERSION})")
    return meta


def load_adapter(
    encoder: nn.Module,
    path: str | os.PathLike,
    name: str | None = None,
    *,
    activate: bool = True,
    check_base: bool = True,
) -> str:
    """Add the adapter stored at ``path`` to ``encoder`` (under ``name``, default: the stored name)
    and load its weights; returns the name. A checkpoint trained on another base encoder (another
    fingerprint) is refused unless ``check_base=False``."""
    from safetensors.torch import load_file

    from speechssl.config import ConfigError, from_dict

    path = Path(path)
    meta = read_adapter_metadata(path)
    try:
        cfg = from_dict(AdapterConfig, json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError, ConfigError) as e:
        raise ValueError(f"{path}: bad adapter config in the checkpoint metadata ({e})") from None
    layers = transformer_layers(encoder)
    found = (int(meta.get("hidden_size", -1)), int(meta.get("num_layers", -1)))
    expected = (layers[0].attention.out_proj.out_features, len(layers))
    if found != expected:
        raise ValueError(
            f"{path}: adapter for an encoder of width {found[0]} with {found[1]} layers, "
            f"this encoder has width {expected[0]} and {expected[1]} layers"
        )
    if check_base:
        stored, actual = meta.get("base_fingerprint", ""), base_fingerprint(encoder)
        if stored != actual:
            raise ValueError(
                f"{path}: adapter trained on base encoder {stored[:12]}, this encoder is {actual[:12]} "
                "(a different base model; pass check_base=False to load it anyway)"
            )
    name = meta["name"] if name is None else name
    if activate and merged_adapter(encoder) is not None:
        raise ValueError(f"adapter '{merged_adapter(encoder)}' is merged; unmerge_adapter() before loading and activating '{name}'")
    add_adapter(encoder, name, cfg, activate=False)
    try:
        params = _adapter_params(encoder, name)
        state: dict[str, Tensor] = load_file(str(path))
        missing, unexpected = sorted(params.keys() - state.keys()), sorted(state.keys() - params.keys())
        if missing or unexpected:
            raise ValueError(f"{path}: tensors do not match the stored config (missing {missing[:5]}, unexpected {unexpected[:5]})")
        with torch.no_grad():
            for key, p in params.items():
                if state[key].shape != p.shape:
                    raise ValueError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(p.shape)}")
                p.copy_(state[key])
    except BaseException:
        remove_adapter(encoder, name)
        raise
    if activate:
        set_active_adapter(encoder, name)
    return name
