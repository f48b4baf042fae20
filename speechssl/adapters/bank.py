"""Adapter banks: several named adapters (say, one per language) on one encoder, one active at a time.

An adapter is a set of bottleneck adapters (:mod:`speechssl.adapters.bottleneck`) and/or LoRA pairs
(:mod:`speechssl.adapters.lora`) on chosen transformer layers, described by an
:class:`AdapterConfig`. Adding one changes neither the model code nor the base model's state-dict
keys: its parameters appear under ``encoder.layers.<i>.adapters.<name>.`` and
``<linear>.lora.<name>.``.

    >>> add_adapter(encoder, "fr", AdapterConfig(bottleneck="houlsby", lora_targets=("q", "v")))  # doctest: +SKIP
    >>> with use_adapter(encoder, None):  # the base model for this call  # doctest: +SKIP
    ...     base = encoder.extract_features(wavs, lens)

:func:`merge_adapter` folds the active adapter's LoRA into the base weights for inference (the
bottleneck adapters stay as they are); while merged, switching adapters is refused.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn

from speechssl.adapters.bottleneck import PLACEMENTS, LayerAdapters, SublayerAdapters, attach, detach
from speechssl.adapters.lora import LoRALinear

#: LoRA target names -> (sublayer, linear) attribute names on a TransformerLayer
LORA_TARGETS: dict[str, tuple[str, str]] = {
    "q": ("attention", "q_proj"),
    "k": ("attention", "k_proj"),
    "v": ("attention", "v_proj"),
    "out": ("attention", "out_proj"),
    "fc1": ("feed_forward", "fc1"),
    "fc2": ("feed_forward", "fc2"),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
# names a ModuleDict key cannot take (nn.Module.add_module refuses existing attributes)
_RESERVED = set(dir(LayerAdapters)) | {"training", "active"}


@dataclass
class AdapterConfig:
    """One named adapter: bottleneck adapters and/or LoRA pairs on the selected layers.

    ``layers``: "all", "top:k" (the top k transformer layers) or a tuple of layer indices (0-based).
    """

    bottleneck: str | None = None  # "houlsby" (after attention and feed-forward) | "pfeiffer" (after feed-forward) | None
    bottleneck_dim: int = 64
    lora_targets: tuple[str, ...] = ()  # among "q", "k", "v", "out", "fc1", "fc2"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    layers: str | tuple[int, ...] = "all"
    dropout: float = 0.0  # in the bottleneck adapters, after the activation

    def __post_init__(self):
        if self.bottleneck is not None and self.bottleneck not in PLACEMENTS:
            raise ValueError(f"bottleneck must be one of {list(PLACEMENTS)} or None, found {self.bottleneck!r}")
        if isinstance(self.lora_targets, str):
            raise ValueError(f"lora_targets must be a sequence of names like ('q', 'v'), found the string {self.lora_targets!r}")
        self.lora_targets = tuple(self.lora_targets)
        unknown = [t for t in self.lora_targets if t not in LORA_TARGETS]
        if unknown:
            raise ValueError(f"unknown lora_targets {unknown}; valid: {', '.join(LORA_TARGETS)}")
        if len(set(self.lora_targets)) != len(self.lora_targets):
            raise ValueError(f"lora_targets has duplicates: {list(self.lora_targets)}")
        if self.bottleneck is None and not self.lora_targets:
            raise ValueError("an adapter needs a bottleneck ('houlsby' or 'pfeiffer') or lora_targets, found neither")
        for key in ("bottleneck_dim", "lora_rank"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, found {value!r}")
        if not self.lora_alpha > 0:
            raise ValueError(f"lora_alpha must be positive, found {self.lora_alpha!r}")
        for key in ("dropout", "lora_dropout"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{key} must be within [0, 1), found {value!r}")
        if isinstance(self.layers, str):
            if self.layers != "all" and not re.fullmatch(r"top:[1-9][0-9]*", self.layers):
                raise ValueError(f"layers must be 'all', 'top:k' (k >= 1) or a list of layer indices, found {self.layers!r}")
        else:
            layers = tuple(self.layers)
            if not layers or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers):
                raise ValueError(f"layers as a list must hold layer indices >= 0, found {list(layers)}")
            if len(set(layers)) != len(layers):
                raise ValueError(f"layers has duplicates: {list(layers)}")
            self.layers = tuple(sorted(layers))

    def resolve_layers(self, num_layers: int) -> tuple[int, ...]:
        """The selected layer indices for an encoder of ``num_layers`` layers."""
        if self.layers == "all":
            return tuple(range(num_layers))
        if isinstance(self.layers, str):
            k = int(self.layers.split(":")[1])
            if k > num_layers:
                raise ValueError(f"layers='{self.layers}' but the encoder has {num_layers} layers")
            return tuple(range(num_layers - k, num_layers))
        bad = [i for i in self.layers if i >= num_layers]
        if bad:
            raise ValueError(f"layer indices {bad} are out of range for an encoder of {num_layers} layers (0..{num_layers - 1})")
        return tuple(self.layers)


@dataclass
class _BankState:
    """What the bank keeps on the encoder (as ``encoder._speechssl_adapters``, a plain attribute)."""

    configs: dict[str, AdapterConfig] = field(default_factory=dict)
    layers: dict[str, tuple[int, ...]] = field(default_factory=dict)  # resolved per adapter
    active: str | None = None
    merged: str | None = None  # the adapter whose LoRA is folded into the base weights


_STATE = "_speechssl_adapters"


def transformer_layers(encoder: nn.Module) -> nn.ModuleList:
    """The transformer layers of an :class:`~speechssl.models.SSLEncoder` (``encoder.encoder.layers``)."""
    layers = getattr(getattr(encoder, "encoder", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"expected an SSLEncoder (with .encoder.layers), found {type(encoder).__name__}")
    return layers


def _state(encoder: nn.Module, create: bool = False) -> _BankState:
    state = encoder.__dict__.get(_STATE)
    if state is None:
        state = _BankState()
        if create:
            object.__setattr__(encoder, _STATE, state)
    return state


def _unknown(state: _BankState, name: str) -> ValueError:
    known = ", ".join(state.configs) or "none"
    return ValueError(f"no adapter named '{name}' on this encoder; adapters: {known}")


def add_adapter(
    encoder: nn.Module,
    name: str,
    cfg: AdapterConfig,
    *,
    activate: bool = True,
    generator: torch.Generator | None = None,
) -> None:
    """Add adapter ``name`` to ``encoder`` (on the device and dtype of its weights); with
    ``activate`` it becomes the active one. New parameters are trainable; an initialised adapter
    leaves the encoder's outputs exactly unchanged. ``generator`` seeds the random initialisation."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED:
        raise ValueError(
            f"adapter names are letters, digits, '_' and '-' (not starting with '_' or '-', not a reserved "
            f"attribute name), found {name!r}"
        )
    if not isinstance(cfg, AdapterConfig):
        raise ValueError(f"expected an AdapterConfig, found {type(cfg).__name__}")
    layers = transformer_layers(encoder)
    state = _state(encoder)
    if name in state.configs:
        raise ValueError(f"the encoder already has an adapter named '{name}'; remove_adapter() it first")
    if activate and state.merged is not None:
        raise ValueError(f"adapter '{state.merged}' is merged; unmerge_adapter() before activating '{name}'")
    selected = cfg.resolve_layers(len(layers))
    for i in selected:
        layer = layers[i]
        ref = layer.attention.out_proj.weight  # adapters take the device and dtype of the layer's weights
        if cfg.bottleneck is not None:
            dim = layer.attention.out_proj.out_features
            adapters = SublayerAdapters(dim, cfg.bottleneck_dim, cfg.bottleneck, cfg.dropout)
            for block in adapters.children():
                block.reset_parameters(generator)
            attach(layer).add_module(name, adapters.to(device=ref.device, dtype=ref.dtype))
        for target in cfg.lora_targets:
            sub_name, lin_name = LORA_TARGETS[target]
            sub = getattr(layer, sub_name)
            linear = getattr(sub, lin_name)
            if not isinstance(linear, LoRALinear):
                linear = LoRALinear.from_linear(linear)
                setattr(sub, lin_name, linear)
            linear.add_pair(name, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, generator)
    state = _state(encoder, create=True)
    state.configs[name] = cfg
    state.layers[name] = selected
    _set_active_everywhere(encoder, state.active)  # new banks and LoRA layers learn the current one
    if activate:
        set_active_adapter(encoder, name)


def remove_adapter(encoder: nn.Module, name: str) -> None:
    """Remove adapter ``name`` (unmerging it first if it is merged). Once no adapter is left on a
    layer, its hooks go and its LoRA layers become plain ``nn.Linear`` again (same Parameters)."""
    state = _state(encoder)
    if name not in state.configs:
        raise _unknown(state, name)
    if state.merged == name:
        unmerge_adapter(encoder)
    layers = transformer_layers(encoder)
    cfg = state.configs[name]
    for i in state.layers[name]:
        layer = layers[i]
        bank = layer._modules.get("adapters")
        if isinstance(bank, LayerAdapters) and name in bank:
            del bank[name]
            if bank.active == name:
                bank.active = None
            detach(layer)
        for target in cfg.lora_targets:
            sub_name, lin_name = LORA_TARGETS[target]
            sub = getattr(layer, sub_name)
            linear = getattr(sub, lin_name)
            if isinstance(linear, LoRALinear) and name in linear.lora:
                linear.remove_pair(name)
                if len(linear.lora) == 0:
                    setattr(sub, lin_name, linear.to_linear())
    del state.configs[name]
    del state.layers[name]
    if state.active == name:
        state.active = None


def list_adapters(encoder: nn.Module) -> dict[str, AdapterConfig]:
    """The encoder's adapters, name -> config, in the order they were added."""
    return dict(_state(encoder).configs)


def active_adapter(encoder: nn.Module) -> str | None:
    return _state(encoder).active


def merged_adapter(encoder: nn.Module) -> str | None:
    return _state(encoder).merged


def _set_active_everywhere(encoder: nn.Module, name: str | None) -> None:
    for module in encoder.modules():
        if isinstance(module, LayerAdapters):
            module.active = name
        elif isinstance(module, LoRALinear):
            module.set_active(name)


def set_active_adapter(encoder: nn.Module, name: str | None) -> None:
    """Make ``name`` the active adapter; None runs the base model. Refused while another adapter
    is merged (:func:`unmerge_adapter` first)."""
    state = _state(encoder)
    if name is not None and name not in state.configs:
        raise _unknown(state, name)
    if state.merged is not None and name != state.merged:
        raise ValueError(f"adapter '{state.merged}' is merged into the base weights; unmerge_adapter() before switching to {name!r}")
    _set_active_everywhere(encoder, name)
    if state.configs:
        state.active = name


@contextlib.contextmanager
def use_adapter(encoder: nn.Module, name: str | None) -> Iterator[nn.Module]:
    """Run with adapter ``name`` active (None: the base model); the previous one is restored after.
    Not thread-safe: the active adapter is state of the encoder."""
    previous = active_adapter(encoder)
    set_active_adapter(encoder, name)
    try:
        yield encoder
    finally:
        set_active_adapter(encoder, previous)


def merge_adapter(encoder: nn.Module) -> int:
    """Fold the active adapter's LoRA pairs into the base weights (inference); returns how many
    linear layers were merged (0 for a bottleneck-only adapter, which cannot be merged and keeps
    running through its hooks). The weights before merging are kept, so :func:`unmerge_adapter`
    restores them exactly (while merged, each merged layer holds a second copy of its weight)."""
    state = _state(encoder)
    if state.active is None:
        raise ValueError("no adapter is active; set_active_adapter() the one to merge")
    if state.merged is not None:
        return 0
    count = sum(m.merge() for m in encoder.modules() if isinstance(m, LoRALinear))
    if count:
        state.merged = state.active
    return count


def unmerge_adapter(encoder: nn.Module) -> int:
    """Take the merged LoRA pairs out of the base weights again; returns how many layers changed."""
    state = _state(encoder)
    count = sum(m.unmerge() for m in encoder.modules() if isinstance(m, LoRALinear))
    state.merged = None
    return count


def iter_adapter_parameters(module: nn.Module) -> Iterator[tuple[str, str, nn.Parameter]]:
    """``(adapter name, full parameter name, parameter)`` for every adapter parameter in ``module``."""
    for prefix, m in module.named_modules():
        head = f"{prefix}." if prefix else ""
        if isinstance(m, LayerAdapters):
            groups = m
        elif isinstance(m, LoRALinear):
            groups, head = m.lora, f"{head}lora."
        else:
            continue
        for key, sub in groups.items():
            for pname, p in sub.named_parameters():
                yield key, f"{head}{key}.{pname}", p


def adapter_parameters(module: nn.Module, name: str | None = None) -> dict[str, nn.Parameter]:
    """Parameters of adapter ``name`` (of all adapters when None) by their full names in ``module``."""
    return {full: p for key, full, p in iter_adapter_parameters(module) if name is None or key == name}


def base_state_dict(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's state dict without any adapter or LoRA entries and with merged LoRA taken out
    of the weights: the keys and values of the plain model the adapters sit on."""
    excluded: list[str] = []
    unmerged: dict[str, torch.Tensor] = {}
    for prefix, m in encoder.named_modules():
        head = f"{prefix}." if prefix else ""
        if isinstance(m, LayerAdapters):
            excluded.append(head)
        elif isinstance(m, LoRALinear):
            excluded.append(f"{head}lora.")
            if m.merged_adapter is not None:
                unmerged[f"{head}weight"] = m._base_weight()
    out = {}
    for key, value in encoder.state_dict().items():
        if any(key.startswith(e) for e in excluded):
            continue
        out[key] = unmerged.get(key, value)
    return out
