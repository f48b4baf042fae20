"""CTC ASR on an encoder, in three modes (``AsrEncoderConfig.mode``):

* ``frozen``: the encoder is frozen (and runs without autograd, in eval mode); an interface over
  all its hidden states feeds a small head, SUPERB's ASR setup (weighted sum + 2-layer BiLSTM).
* ``adapters``: bottleneck adapters and/or LoRA (:mod:`speechssl.adapters`) inside the frozen
  encoder train together with the interface and the head.
* ``finetune``: the whole encoder trains except its conv feature extractor (fairseq's wav2vec 2.0
  / HuBERT fine-tuning, ``feature_grad_mult 0``), optionally after ``freeze_steps`` head-only steps.

:class:`CTCModel` returns per-frame logits over the vocabulary (blank at 0) and frame lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from speechssl.downstream.upstream import (
    DownstreamModel,
    UpstreamConfig,
    build_interface_for,
    interface_output_size,
    setup_upstream,
)
from speechssl.interfaces import INTERFACES

HEADS = ("lstm", "linear")


@dataclass
class AsrEncoderConfig(UpstreamConfig):
    """The upstream of an ASR model (:class:`~speechssl.downstream.upstream.UpstreamConfig`)."""

    adapter_name: str = "asr"  # the adapter's name in the encoder's bank and in adapter.safetensors


@dataclass
class HeadConfig:
    interface: str = "weighted_sum"  # "weighted_sum" (SUPERB), "conv" or "last" (speechssl.interfaces)
    interface_layer_norm: bool = False  # layer-norm each hidden state before the interface combines them
    kind: str = "lstm"  # "lstm" (bidirectional, SUPERB's ASR head) or "linear" (a projection, fairseq fine-tuning)
    hidden_size: int = 1024  # LSTM units per direction
    num_layers: int = 2  # LSTM layers
    dropout: float = 0.2  # before each LSTM layer's output and before the projection

    def __post_init__(self):
        if self.interface not in INTERFACES:
            raise ValueError(f"head.interface must be one of {', '.join(INTERFACES)}, found {self.interface!r}")
        if self.kind not in HEADS:
            raise ValueError(f"head.kind must be one of {', '.join(HEADS)}, found {self.kind!r}")
        if self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError("head.hidden_size and head.num_layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head.dropout must be within [0, 1), found {self.dropout}")


class CTCHead(nn.Module):
    """Frames ``(B, T, C)`` -> logits ``(B, T, vocab_size)``: a bidirectional LSTM stack (padding
    never reaches valid frames: the sequences are packed) or nothing, then dropout and a projection."""

    def __init__(self, in_dim: int, vocab_size: int, kind: str = "lstm", hidden_size: int = 1024, num_layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.kind = kind
        self.rnn: nn.LSTM | None = None
        out_dim = in_dim
        if kind == "lstm":
            self.rnn = nn.LSTM(
                in_dim, hidden_size, num_layers, batch_first=True, bidirectional=True, dropout=dropout if num_layers > 1 else 0.0
            )
            out_dim = 2 * hidden_size
        elif kind != "linear":
            raise ValueError(f"unknown head kind {kind!r}; expected one of {', '.join(HEADS)}")
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(out_dim, vocab_size)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:  # x: (B, T, C), lengths: (B,)
        if self.rnn is not None:
            T = x.shape[1]
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            y, _ = self.rnn(packed)
            x, _ = pad_packed_sequence(y, batch_first=True, total_length=T)  # (B, T, 2H), zeros past each length
        return self.proj(self.dropout(x))  # (B, T, V)


#: Encoder -> interface -> :class:`CTCHead`; ``forward(wavs, wav_lens)`` returns ``(logits (B, T, V), lengths (B,))``.
CTCModel = DownstreamModel


def build_ctc_model(encoder: nn.Module, enc_cfg: AsrEncoderConfig, head_cfg: HeadConfig, vocab_size: int) -> CTCModel:
    """Set up ``encoder`` for ``enc_cfg.mode`` (the adapter added, unless the encoder already has
    one of that name, and parameters frozen) and put an interface and a head on it."""
    setup_upstream(encoder, enc_cfg)
    interface = build_interface_for(encoder, head_cfg.interface, head_cfg.interface_layer_norm)
    head = CTCHead(interface_output_size(interface, encoder), vocab_size, head_cfg.kind, head_cfg.hidden_size, head_cfg.num_layers, head_cfg.dropout)
    return CTCModel(encoder, interface, head, enc_cfg.mode, enc_cfg.normalize)
