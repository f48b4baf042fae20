"""The encoder: conv front end -> feature projection -> conv positional embedding -> transformer.

One class covers HuBERT, WavLM and wav2vec 2.0; :class:`EncoderConfig` holds what differs.
``extract_features(wavs, wav_lens)`` returns every layer's hidden states, the same list (for the
same weights) that transformers returns with ``output_hidden_states=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from speechssl.models.components import (
    ConvFeatureExtractor,
    ConvPositionalEmbedding,
    FeatureProjection,
    RelativePositionBias,
    TransformerLayer,
    conv_output_lengths,
    length_mask,
)

#: fairseq's default ``conv_feature_layers``: (channels, kernel, stride); 400-sample receptive field, stride 320
STANDARD_CONV_LAYERS: tuple[tuple[int, int, int], ...] = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2


@dataclass
class EncoderConfig:
    """Architecture of an encoder. Comments name the fairseq option each field matches."""

    family: str = "hubert"  # "hubert" | "wavlm" | "wav2vec2": which checkpoints it converts to and from
    conv_layers: list[tuple[int, int, int]] = field(default_factory=lambda: list(STANDARD_CONV_LAYERS))  # conv_feature_layers
    extractor_mode: str = "group_norm"  # extractor_mode: "group_norm" (fairseq "default") | "layer_norm"
    conv_bias: bool = False  # conv_bias
    feature_proj_layer_norm: bool = True  # LayerNorm on conv features before post_extract_proj
    hidden_size: int = 768  # encoder_embed_dim
    num_layers: int = 12  # encoder_layers
    num_heads: int = 12  # encoder_attention_heads
    ffn_size: int = 3072  # encoder_ffn_embed_dim
    pre_norm: bool = False  # layer_norm_first ("stable layer norm" in transformers)
    pos_conv_kernel: int = 128  # conv_pos
    pos_conv_groups: int = 16  # conv_pos_groups
    relative_position_buckets: int = 0  # WavLM num_buckets (0: no relative position bias)
    relative_position_max_distance: int = 800  # WavLM max_distance
    gated_relative_position: bool = True  # WavLM gru_rel_pos
    layer_norm_eps: float = 1e-5
    dropout: float = 0.1  # dropout
    attention_dropout: float = 0.1  # attention_dropout
    activation_dropout: float = 0.0  # activation_dropout
    feature_dropout: float = 0.0  # dropout_input (after the feature projection)
    layer_drop: float = 0.0  # encoder_layerdrop (training only)
    normalize_waveform: bool = False  # task.normalize: each input to zero mean, unit variance first

    def __post_init__(self):
        if self.family not in ("hubert", "wavlm", "wav2vec2"):
            raise ValueError(f"family must be 'hubert', 'wavlm' or 'wav2vec2', found {self.family!r}")
        if self.extractor_mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"extractor_mode must be 'group_norm' or 'layer_norm', found {self.extractor_mode!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        self.conv_layers = [tuple(int(v) for v in spec) for spec in self.conv_layers]

    @property
    def downsample_rate(self) -> int:
        rate = 1
        for _, _, stride in self.conv_layers:
            rate *= stride
        return rate


@dataclass
class EncoderOutput:
    hidden_states: list[Tensor]  # num_layers + 1 tensors (B, T, C), as transformers lists them
    lengths: Tensor  # (B,) valid frames per item
    last_hidden_state: Tensor  # (B, T, C) the encoder's output: for pre-LN models, after the final LayerNorm


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.layer_drop = cfg.layer_drop
        self.pos_conv = ConvPositionalEmbedding(cfg.hidden_size, cfg.pos_conv_kernel, cfg.pos_conv_groups)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.relative_position = (
            RelativePositionBias(cfg.relative_position_buckets, cfg.relative_position_max_distance, cfg.num_heads)
            if cfg.relative_position_buckets
            else None
        )
        gated = bool(cfg.relative_position_buckets) and cfg.gated_relative_position
        self.layers = nn.ModuleList(
            TransformerLayer(
                cfg.hidden_size,
                cfg.num_heads,
                cfg.ffn_size,
                pre_norm=cfg.pre_norm,
                dropout=cfg.dropout,
                attention_dropout=cfg.attention_dropout,
                activation_dropout=cfg.activation_dropout,
                gated_bias=gated,
                eps=cfg.layer_norm_eps,
            )
            for _ in range(cfg.num_layers)
        )

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, output_layer: int | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """x: (B, T, C). Returns the num_layers + 1 hidden states as transformers (>= 5) lists them,
        the input of the first layer and every layer's output, and the encoder output: for pre-LN
        models the last layer's output after the final LayerNorm (which the list does not hold).

        With ``output_layer=L`` only the first L layers run: L + 1 states, and the output is the
        last of them (no final LayerNorm)."""
        key_padding = None
        if lengths is not None:
            key_padding = ~length_mask(lengths, x.shape[1])  # (B, T), True at padding
            x = x.masked_fill(key_padding[..., None], 0.0)  # the positional conv must see zeros there
        x = x + self.pos_conv(x)
        if not self.pre_norm:
            x = self.layer_norm(x)
        x = self.dropout(x)
        bias = self.relative_position(x.shape[1]) if self.relative_position is not None else None
        states = [x]
        layers = self.layers if output_layer is None else self.layers[:output_layer]
        for layer in layers:
            if self.training and self.layer_drop > 0 and torch.rand(()) < self.layer_drop:
                states.append(x)
                continue
            x = layer(x, key_padding, bias)
            states.append(x)
        if output_layer is not None:
            return states, x
        return states, (self.layer_norm(x) if self.pre_norm else x)


class SSLEncoder(nn.Module):
    """A HuBERT / WavLM / wav2vec 2.0 encoder (the pretrained part, without pretraining heads)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.config = cfg
        self.feature_extractor = ConvFeatureExtractor(cfg.conv_layers, cfg.extractor_mode, cfg.conv_bias)
        conv_dim = cfg.conv_layers[-1][0]
        self.feature_projection = FeatureProjection(
            conv_dim, cfg.hidden_size, cfg.feature_dropout, cfg.feature_proj_layer_norm, cfg.layer_norm_eps
        )
        self.mask_embedding = nn.Parameter(torch.empty(cfg.hidden_size).uniform_())  # replaces masked frames in pretraining
        self.encoder = TransformerEncoder(cfg)

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def downsample_rate(self) -> int:
        return self.config.downsample_rate

    def output_lengths(self, wav_lens: Tensor) -> Tensor:
        """Frames produced for waveforms of ``wav_lens`` samples."""
        return conv_output_lengths(wav_lens, self.config.conv_layers)

    def frontend(self, wavs: Tensor, wav_lens: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Waveforms (B, S) -> projected conv features (B, T, C) and frame lengths (B,)."""
        if wavs.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), found {tuple(wavs.shape)}")
        feats, lengths = self.feature_extractor(wavs, wav_lens)
        if lengths is None:
            lengths = torch.full((wavs.shape[0],), feats.shape[1], dtype=torch.long, device=wavs.device)
        return self.feature_projection(feats), lengths

    def extract_features(
        self, wavs: Tensor, wav_lens: Tensor | None = None, output_layer: int | None = None
    ) -> EncoderOutput:
        """``wavs``: float waveforms (B, S) at 16 kHz; ``wav_lens``: valid samples per item (B,).

        Returns ``hidden_states`` (num_layers + 1 tensors (B, T, C): the first layer's input, then
        each layer's output, as transformers' ``output_hidden_states=True``), ``lengths`` in frames,
        and ``last_hidden_state`` (transformers' ``last_hidden_state``: for pre-LN models the last
        layer after the final LayerNorm). Frames past an item's length hold unspecified values.

        ``output_layer=L`` (0..num_layers) stops after layer L: ``hidden_states`` then holds the
        first L + 1 entries of the full list (the same values) and ``last_hidden_state`` is the last.
        """
        if output_layer is not None and not 0 <= output_layer <= self.num_layers:
            raise ValueError(f"output_layer must be within 0..{self.num_layers}, got {output_layer}")
        if wavs.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), found {tuple(wavs.shape)}")
        if wav_lens is not None:
            wav_lens = wav_lens.to(device=wavs.device, dtype=torch.long)
            if (wav_lens > wavs.shape[1]).any() or (wav_lens < 1).any():
                raise ValueError(f"wav_lens must be within 1..{wavs.shape[1]}, found {wav_lens.tolist()}")
        shortest = int(wav_lens.min()) if wav_lens is not None else wavs.shape[1]
        if int(self.output_lengths(torch.tensor([shortest]))[0]) < 1:
            raise ValueError(
                f"an input of {shortest} samples is shorter than the front end's receptive field: it gives no frames"
            )
        if wav_lens is not None:
            if bool((wav_lens == wavs.shape[1]).all()):
                wav_lens = None  # nothing is padded: skip the masks
        if self.config.normalize_waveform:
            wavs = normalize_waveforms(wavs, wav_lens)
        x, lengths = self.frontend(wavs, wav_lens)
        states, last = self.encoder(x, lengths if wav_lens is not None else None, output_layer)
        return EncoderOutput(states, lengths, last)

    def forward(self, wavs: Tensor, wav_lens: Tensor | None = None) -> EncoderOutput:
        return self.extract_features(wavs, wav_lens)


def normalize_waveforms(wavs: Tensor, wav_lens: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Each item to zero mean and unit variance over its valid samples (fairseq's
    ``F.layer_norm(wav, wav.shape)``, eps 1e-5); padding stays zero."""
    if wav_lens is None:
        return torch.nn.functional.layer_norm(wavs, wavs.shape[-1:], eps=eps)
    mask = length_mask(wav_lens, wavs.shape[1]).to(wavs.dtype)  # (B, S)
    n = wav_lens.to(wavs.dtype)[:, None]  # (B, 1)
    mean = (wavs * mask).sum(1, keepdim=True) / n
    var = ((wavs - mean).square() * mask).sum(1, keepdim=True) / n
    return (wavs - mean) * torch.rsqrt(var + eps) * mask


def build_encoder(cfg: EncoderConfig) -> SSLEncoder:
    return SSLEncoder(cfg)
