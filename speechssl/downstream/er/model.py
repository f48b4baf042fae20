"""Utterance classification (emotion recognition) on an upstream: the interface's frames are
projected, pooled over the utterance (mean, or attentive statistics pooling) and classified by an
MLP. SUPERB's ER head is the ``mean`` pooling of a 256-dim projection and a linear layer
(``hidden_layers: 0``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from speechssl.downstream.pooling import POOLINGS, build_pooling
from speechssl.downstream.upstream import DownstreamModel, UpstreamConfig, build_interface_for, interface_output_size, setup_upstream
from speechssl.interfaces import INTERFACES


@dataclass
class ErUpstreamConfig(UpstreamConfig):
    adapter_name: str = "er"  # the adapter's name in the encoder's bank and in adapter.safetensors


@dataclass
class ErHeadConfig:
    interface: str = "weighted_sum"  # "weighted_sum" (SUPERB), "conv" or "last" (speechssl.interfaces)
    interface_layer_norm: bool = False  # layer-norm each hidden state before the interface combines them
    projection_dim: int = 256  # frames are projected to this width before pooling
    pooling: str = "mean"  # "mean", "stats" (mean + std) or "attentive" (attentive statistics pooling)
    hidden_size: int = 256  # width of the MLP's hidden layers
    hidden_layers: int = 1  # MLP hidden layers after pooling (0: a linear classifier)
    dropout: float = 0.2  # before each MLP layer

    def __post_init__(self):
        if self.interface not in INTERFACES:
            raise ValueError(f"head.interface must be one of {', '.join(INTERFACES)}, found {self.interface!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"head.pooling must be one of {', '.join(POOLINGS)}, found {self.pooling!r}")
        if self.projection_dim < 1 or self.hidden_size < 1 or self.hidden_layers < 0:
            raise ValueError("head.projection_dim and head.hidden_size must be >= 1, head.hidden_layers >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head.dropout must be within [0, 1), found {self.dropout}")


class UtteranceClassifier(nn.Module):
    """Frames ``(B, T, C)`` with lengths -> class logits ``(B, num_classes)``."""

    def __init__(self, in_dim: int, num_classes: int, cfg: ErHeadConfig):
        super().__init__()
        self.projection = nn.Linear(in_dim, cfg.projection_dim)
        self.pooling = build_pooling(cfg.pooling, cfg.projection_dim)
        layers: list[nn.Module] = []
        dim = self.pooling.output_size
        for _ in range(cfg.hidden_layers):
            layers += [nn.Dropout(cfg.dropout), nn.Linear(dim, cfg.hidden_size), nn.ReLU()]
            dim = cfg.hidden_size
        layers += [nn.Dropout(cfg.dropout), nn.Linear(dim, num_classes)]
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.mlp(self.pooling(self.projection(x), lengths))  # (B, K)


def build_er_model(encoder: nn.Module, enc_cfg: UpstreamConfig, head_cfg: ErHeadConfig, num_classes: int) -> DownstreamModel:
    """Set up ``encoder`` for its mode and put an interface and a pooling classifier on it."""
    setup_upstream(encoder, enc_cfg)
    interface = build_interface_for(encoder, head_cfg.interface, head_cfg.interface_layer_norm)
    head = UtteranceClassifier(interface_output_size(interface, encoder), num_classes, head_cfg)
    return DownstreamModel(encoder, interface, head, enc_cfg.mode, enc_cfg.normalize)
