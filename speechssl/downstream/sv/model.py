"""Speaker embeddings from an upstream: an x-vector TDNN head trained with AAM-softmax.

The head (Snyder et al. 2018, SUPERB's SV setup) runs frame layers over the interface's frames,
1-D convolutions of kernel 5, 3, 3, 1, 1 with dilations 1, 2, 3, 1, 1 (after subtracting the
utterance's mean frame, ``mean_norm``, as x-vectors take mean-normalised features) (``channels`` wide, the last
``stats_channels``), pools them (statistics pooling, or ECAPA's attentive statistics pooling with
``pooling: attentive``) and projects to the embedding. Each frame layer is ReLU then LayerNorm over
channels rather than BatchNorm: the normalisation then never mixes utterances or padding, and frames
past an item's length are zeroed before each convolution, so a padded batch gives each item the
embedding it gets alone.

:class:`AAMSoftmax` (additive angular margin, ArcFace; Deng et al. 2019) is the training loss:
``s * cos(theta_y + m)`` for the speaker's own class, ``s * cos(theta_j)`` for the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechssl.downstream.pooling import build_pooling
from speechssl.downstream.upstream import DownstreamModel, UpstreamConfig, build_interface_for, interface_output_size, setup_upstream
from speechssl.interfaces import INTERFACES
from speechssl.models.components import length_mask

#: (kernel size, dilation) of the x-vector's frame layers
XVECTOR_LAYERS = ((5, 1), (3, 2), (3, 3), (1, 1), (1, 1))


@dataclass
class SvUpstreamConfig(UpstreamConfig):
    adapter_name: str = "sv"  # the adapter's name in the encoder's bank and in adapter.safetensors


@dataclass
class SvHeadConfig:
    interface: str = "weighted_sum"  # "weighted_sum" (SUPERB), "conv" or "last" (speechssl.interfaces)
    interface_layer_norm: bool = False  # layer-norm each hidden state before the interface combines them
    channels: int = 512  # width of the first four frame layers
    stats_channels: int = 1500  # width of the last frame layer (the statistics' input)
    pooling: str = "stats"  # "stats" (x-vector) or "attentive" (ECAPA's attentive statistics pooling)
    embedding_dim: int = 512  # the speaker embedding
    mean_norm: bool = True  # subtract each utterance's mean frame first (cepstral mean normalisation of the interface's output)
    margin: float = 0.2  # AAM-softmax additive angular margin (radians)
    scale: float = 30.0  # AAM-softmax scale

    def __post_init__(self):
        if self.interface not in INTERFACES:
            raise ValueError(f"head.interface must be one of {', '.join(INTERFACES)}, found {self.interface!r}")
        if self.pooling not in ("stats", "attentive"):
            raise ValueError(f"head.pooling must be stats or attentive, found {self.pooling!r}")
        if min(self.channels, self.stats_channels, self.embedding_dim) < 1:
            raise ValueError("head.channels, head.stats_channels and head.embedding_dim must be >= 1")
        if not 0.0 <= self.margin < math.pi / 2 or self.scale <= 0:
            raise ValueError(f"need 0 <= head.margin < pi/2 and head.scale > 0, found {self.margin} and {self.scale}")


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax over ``num_classes`` speakers; ``forward(emb, labels)``
    returns ``(loss, cosine logits (B, K))``."""

    def __init__(self, dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.xavier_normal_(self.weight)
        self.margin, self.scale = margin, scale

    def forward(self, emb: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        cos = F.linear(F.normalize(emb.float(), dim=-1), F.normalize(self.weight.float(), dim=-1))  # (B, K)
        sin = (1.0 - cos.square()).clamp(min=1e-7).sqrt()
        cos_m = cos * math.cos(self.margin) - sin * math.sin(self.margin)  # cos(theta + m)
        # past theta = pi - m, cos(theta + m) would rise again: keep the target logit monotonic
        cos_m = torch.where(cos > math.cos(math.pi - self.margin), cos_m, cos - math.sin(math.pi - self.margin) * self.margin)
        target = F.one_hot(labels, cos.shape[1]).bool()
        logits = self.scale * torch.where(target, cos_m, cos)
        return F.cross_entropy(logits, labels), cos


class FrameLayer(nn.Module):
    """A dilated 1-D convolution over valid frames (padding zeroed first), ReLU, LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:  # x: (B, T, C), valid: (B, T, 1)
        x = self.conv((x * valid).transpose(1, 2)).transpose(1, 2)  # (B, C, T) for the conv -> (B, T, C')
        return self.norm(F.relu(x))


class XVectorHead(nn.Module):
    """Frames ``(B, T, C)`` with lengths -> speaker embeddings ``(B, embedding_dim)``; ``classifier``
    is the AAM-softmax used in training."""

    def __init__(self, in_dim: int, num_classes: int, cfg: SvHeadConfig):
        super().__init__()
        widths = [cfg.channels] * (len(XVECTOR_LAYERS) - 1) + [cfg.stats_channels]
        dims = [in_dim] + widths
        self.frames = nn.ModuleList(FrameLayer(dims[i], dims[i + 1], k, d) for i, (k, d) in enumerate(XVECTOR_LAYERS))
        self.pooling = build_pooling(cfg.pooling, cfg.stats_channels)
        self.embedding = nn.Linear(self.pooling.output_size, cfg.embedding_dim)
        self.classifier = AAMSoftmax(cfg.embedding_dim, num_classes, cfg.margin, cfg.scale)
        self.mean_norm = cfg.mean_norm

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        valid = length_mask(lengths, x.shape[1])[..., None].to(x.dtype)  # (B, T, 1)
        if self.mean_norm:
            x = x - (x * valid).sum(1, keepdim=True) / lengths.to(x.dtype)[:, None, None]
        for layer in self.frames:
            x = layer(x, valid)
        return self.embedding(self.pooling(x, lengths))  # (B, E)


def build_sv_model(encoder: nn.Module, enc_cfg: UpstreamConfig, head_cfg: SvHeadConfig, num_classes: int) -> DownstreamModel:
    """Set up ``encoder`` for its mode and put an interface and an x-vector head on it."""
    setup_upstream(encoder, enc_cfg)
    interface = build_interface_for(encoder, head_cfg.interface, head_cfg.interface_layer_norm)
    head = XVectorHead(interface_output_size(interface, encoder), num_classes, head_cfg)
    return DownstreamModel(encoder, interface, head, enc_cfg.mode, enc_cfg.normalize)
