"""Parameter-efficient tuning of an :class:`~speechssl.models.SSLEncoder` without changing its code
or its state-dict keys: bottleneck adapters (Houlsby / Pfeiffer placement), LoRA, banks of named
adapters with one active at a time, freezing policies and adapter-only checkpoints.

    >>> from speechssl.adapters import AdapterConfig, add_adapter, freeze, save_adapter
    >>> add_adapter(encoder, "fr", AdapterConfig(bottleneck="houlsby", bottleneck_dim=32))  # doctest: +SKIP
    >>> print(freeze(encoder, "frozen"))  # doctest: +SKIP
    trainable 1.2M of 95.4M parameters (1.26%)
    >>> save_adapter(encoder, "fr", "exp/fr.safetensors")  # doctest: +SKIP
"""

from speechssl.adapters.bank import (
    LORA_TARGETS,
    AdapterConfig,
    active_adapter,
    adapter_parameters,
    add_adapter,
    base_state_dict,
    list_adapters,
    merge_adapter,
    merged_adapter,
    remove_adapter,
    set_active_adapter,
    unmerge_adapter,
    use_adapter,
)
from speechssl.adapters.bottleneck import PLACEMENTS, BottleneckAdapter
from speechssl.adapters.freeze import POLICIES, TrainableReport, freeze, trainable_report
from speechssl.adapters.lora import LoRALinear, LoRAPair
from speechssl.adapters.store import base_fingerprint, load_adapter, read_adapter_metadata, save_adapter

__all__ = [
    "AdapterConfig",
    "BottleneckAdapter",
    "LORA_TARGETS",
    "LoRALinear",
    "LoRAPair",
    "PLACEMENTS",
    "POLICIES",
    "TrainableReport",
    "active_adapter",
    "adapter_parameters",
    "add_adapter",
    "base_fingerprint",
    "base_state_dict",
    "freeze",
    "list_adapters",
    "load_adapter",
    "merge_adapter",
    "merged_adapter",
    "read_adapter_metadata",
    "remove_adapter",
    "save_adapter",
    "set_active_adapter",
    "trainable_report",
    "unmerge_adapter",
    "use_adapter",
]
