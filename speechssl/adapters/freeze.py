"""Freezing policies for an encoder with adapters, and a report of what trains.

Policies (``freeze(encoder, policy)``); adapter and LoRA parameters always stay trainable:

* ``"frozen"``: the whole base encoder is frozen; only adapters train.
* ``"frozen_feature_encoder"``: the conv feature extractor is frozen; everything else trains
  (transformers' ``freeze_feature_encoder()``).
* ``"top:k"``: only the top k transformer layers train (and, for pre-LN encoders, the final
  LayerNorm, which follows them; a post-LN encoder's LayerNorm sits before the first layer).
* ``"none"``: everything trains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

from speechssl.adapters.bank import iter_adapter_parameters, transformer_layers

POLICIES = ("frozen", "frozen_feature_encoder", "top:k", "none")


@dataclass
class TrainableReport:
    trainable: int
    total: int
    fraction: float
    by_group: dict[str, tuple[int, int]] = field(default_factory=dict)  # group -> (trainable, total)

    def __str__(self) -> str:
        return f"trainable {_count(self.trainable)} of {_count(self.total)} parameters ({100 * self.fraction:.2f}%)"


def _count(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}K"
    return str(n)


def freeze(encoder: nn.Module, policy: str) -> TrainableReport:
    """Set ``requires_grad`` on the encoder's base parameters by ``policy`` (see the module doc);
    adapter parameters are set trainable. Returns the resulting :func:`trainable_report`."""
    layers = transformer_layers(encoder)
    top = None
    if isinstance(policy, str) and policy.startswith("top:"):
        if not re.fullmatch(r"top:[0-9]+", policy) or not 1 <= int(policy[4:]) <= len(layers):
            raise ValueError(f"policy {policy!r}: k must be within 1..{len(layers)} for this encoder")
        top = int(policy[4:])
    elif policy not in ("frozen", "frozen_feature_encoder", "none"):
        raise ValueError(f"unknown freezing policy {policy!r}; valid: {', '.join(POLICIES)}")

    adapter_ids = {id(p) for _, _, p in iter_adapter_parameters(encoder)}
    if policy == "none":
        trainable_ids = None  # everything
    elif policy == "frozen":
        trainable_ids = set()
    elif policy == "frozen_feature_encoder":
        frozen = {id(p) for p in encoder.feature_extractor.parameters()}
        trainable_ids = {id(p) for p in encoder.parameters() if id(p) not in frozen}
    else:
        modules = list(layers[len(layers) - top :])
        final_norm = getattr(encoder.encoder, "layer_norm", None)
        if getattr(encoder.encoder, "pre_norm", False) and final_norm is not None:
            modules.append(final_norm)
        trainable_ids = {id(p) for m in modules for p in m.parameters()}
    for p in encoder.parameters():
        p.requires_grad_(trainable_ids is None or id(p) in trainable_ids or id(p) in adapter_ids)
    return trainable_report(encoder)


def trainable_report(module: nn.Module) -> TrainableReport:
    """Trainable and total parameter counts, overall and by group: ``adapter:<name>`` for adapter
    parameters, the top-level submodule's name (``feature_extractor``, ``encoder``, ...) otherwise."""
    owner = {id(p): f"adapter:{key}" for key, _, p in iter_adapter_parameters(module)}
    by_group: dict[str, tuple[int, int]] = {}
    trainable = total = 0
    for name, p in module.named_parameters():
        group = owner.get(id(p), name.split(".", 1)[0])
        n = p.numel()
        t, a = by_group.get(group, (0, 0))
        by_group[group] = (t + n * p.requires_grad, a + n)
        total += n
        trainable += n * p.requires_grad
    return TrainableReport(trainable, total, trainable / total if total else 0.0, by_group)
