"""What a downstream task runs on (its "upstream"), and the model that puts a head on it.

:class:`UpstreamConfig` picks the upstream:

* ``kind: encoder``: a speech encoder from ``path`` (speechssl checkpoint, Hugging Face folder, or
  a fairseq checkpoint, read safely; ``allow_pickle`` unpickles it fully); ``init: random`` keeps its architecture but draws new
  weights from the run's seed (the baseline that shows what pretraining bought);
* ``kind: mfcc`` / ``kind: fbank``: Kaldi-compatible MFCC (13 cepstra + deltas + delta-deltas, 39
  dimensions) or 80 log-mel filterbanks, at 100 frames per second, as Kaldi computes them (no
  normalisation: a head that wants cepstral mean normalisation does it, as the x-vector head does;
  :class:`FeatureUpstream`, no weights).

and how the encoder trains (``mode``): ``frozen`` (it runs without autograd, in eval mode),
``adapters`` (bottleneck adapters and/or LoRA inside the frozen encoder) or ``finetune`` (all of it
but the conv front end, optionally after ``freeze_steps`` head-only steps).

With ``normalize``, every hidden state (or the features) is standardised per channel by fixed
statistics of training utterances (:class:`HiddenStateNorm`, measured before training).

:class:`DownstreamModel` is upstream -> (normalisation) -> interface over all hidden states -> head;
the head takes frames ``(B, T, C)`` with their lengths and returns what the task needs (CTC logits,
a speaker embedding, class logits).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn

from speechssl.adapters.bank import AdapterConfig, add_adapter, list_adapters, set_active_adapter
from speechssl.adapters.freeze import freeze

KINDS = ("encoder", "mfcc", "fbank")
INITS = ("pretrained", "random")
MODES = ("frozen", "adapters", "finetune")
FBANK_BINS = 80
RANDOM_INIT_STREAM = 7  # a random init draws from (run.seed, 7), apart from the head's (run.seed) stream


@dataclass
class UpstreamConfig:
    kind: str = "encoder"  # "encoder", or the features "mfcc" (39-dim) / "fbank" (80 log-mel) as a baseline without an encoder
    path: Optional[str] = None  # the encoder: a speechssl checkpoint, a Hugging Face folder, or a fairseq .pt
    init: str = "pretrained"  # "pretrained" (the weights in path) or "random" (path's architecture, weights drawn from run.seed)
    mode: str = "frozen"  # "frozen", "adapters" or "finetune" (see speechssl.downstream.upstream)
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(bottleneck="houlsby", bottleneck_dim=64))  # mode adapters
    adapter_name: str = "task"  # the adapter's name in the encoder's bank and in adapter.safetensors
    lr: Optional[float] = None  # learning rate of the encoder's trainable parameters (adapters, or the encoder when fine-tuning); null: optim.lr
    freeze_steps: int = 0  # finetune: the encoder stays frozen for the first N steps (fairseq freeze_finetune_updates)
    allow_pickle: bool = False  # unpickle a fairseq checkpoint fully, running what it holds (only files you trust)
    normalize: bool = False  # standardise each hidden state's channels by their mean and std over training utterances, measured once before training
    normalize_utterances: int = 500  # how many training utterances (the first ones in manifest order) those statistics come from

    def __post_init__(self):
        if self.normalize_utterances < 1:
            raise ValueError(f"encoder.normalize_utterances must be >= 1, found {self.normalize_utterances}")
        for key, value, valid in (("kind", self.kind, KINDS), ("init", self.init, INITS), ("mode", self.mode, MODES)):
            if value not in valid:
                raise ValueError(f"encoder.{key} must be one of {', '.join(valid)}, found {value!r}")
        if self.kind != "encoder" and self.mode != "frozen":
            raise ValueError(f"encoder.kind {self.kind!r} has no weights to adapt or fine-tune: encoder.mode must be frozen, found {self.mode!r}")
        if self.freeze_steps < 0:
            raise ValueError(f"encoder.freeze_steps must be >= 0, found {self.freeze_steps}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"encoder.lr must be > 0, found {self.lr}")

    @property
    def describe(self) -> str:
        """A short name of the upstream for tables: ``fbank``, ``mfcc``, ``random``, ``pretrained``."""
        return self.kind if self.kind != "encoder" else self.init


@dataclass
class FeatureOutput:
    hidden_states: list[Tensor]  # one tensor (B, T, C)
    lengths: Tensor  # (B,) frames


class FeatureUpstream(nn.Module):
    """MFCC or log-mel filterbank features behind the encoder contract: ``extract_features(wavs,
    wav_lens)`` gives ``hidden_states`` = [features (B, T, C)] and ``lengths``; ``num_layers`` 0.

    Each item is computed on its own valid samples (Kaldi's ``snip_edges``: whole 25 ms windows every
    10 ms); frames past an item's length are zero.
    """

    def __init__(self, kind: str):
        super().__init__()
        if kind not in ("mfcc", "fbank"):
            raise ValueError(f"feature kind must be mfcc or fbank, found {kind!r}")
        self.kind = kind
        self.num_layers = 0
        self.hidden_size = 39 if kind == "mfcc" else FBANK_BINS
        self.downsample_rate = 160

    def output_lengths(self, wav_lens: Tensor) -> Tensor:
        # 400-sample windows every 160 samples (snip_edges)
        return torch.clamp((wav_lens - 400) // 160 + 1, min=0)

    def _one(self, wav: Tensor) -> Tensor:
        from speechssl.deps import torchaudio_module
        from speechssl.features.mfcc import mfcc_39

        fbank = torchaudio_module("compliance.kaldi").fbank

        if self.kind == "mfcc":
            feats = mfcc_39(wav)  # (T, 39)
        else:
            feats = fbank(wav[None].float() * 32768, num_mel_bins=FBANK_BINS, sample_frequency=16000, dither=0.0)  # (T, 80)
        return feats

    @torch.no_grad()
    def extract_features(self, wavs: Tensor, wav_lens: Optional[Tensor] = None) -> FeatureOutput:
        if wavs.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), found {tuple(wavs.shape)}")
        if wav_lens is None:
            wav_lens = torch.full((wavs.shape[0],), wavs.shape[1], dtype=torch.long)
        lens = wav_lens.tolist()
        if min(lens) < 400:
            raise ValueError(f"an input of {min(lens)} samples is shorter than one 25 ms window: it gives no frames")
        feats = [self._one(wavs[i, :n].float().cpu()) for i, n in enumerate(lens)]
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        out = wavs.new_zeros((len(feats), int(lengths.max()), self.hidden_size), dtype=torch.float32)  # (B, T, C)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f.to(out.device)
        return FeatureOutput([out], lengths.to(wavs.device))


def load_upstream(cfg: UpstreamConfig, seed: int = 0) -> nn.Module:
    """The upstream module of ``cfg`` (see the module doc); a random ``init`` is drawn from ``seed``."""
    if cfg.kind != "encoder":
        return FeatureUpstream(cfg.kind)
    if not cfg.path:
        raise ValueError("encoder.path is not set: give the encoder to train on (--encoder PATH), or encoder.kind=mfcc|fbank")
    from speechssl import load_encoder

    encoder = load_encoder(cfg.path, allow_pickle=cfg.allow_pickle)
    if cfg.init == "random":
        from speechssl.models.encoder import build_encoder
        from speechssl.pretrain.trainer import derived_seed

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(seed, RANDOM_INIT_STREAM))
            encoder = build_encoder(encoder.config).eval()
    return encoder


def upstream_fingerprint(upstream: nn.Module) -> str:
    """Which upstream a model was trained on: the encoder's weight fingerprint, or the feature kind."""
    if isinstance(upstream, FeatureUpstream):
        return f"features:{upstream.kind}:kaldi"
    from speechssl.features.layer import encoder_fingerprint

    return encoder_fingerprint(upstream)


def setup_upstream(encoder: nn.Module, cfg: UpstreamConfig) -> None:
    """Set up ``encoder`` for ``cfg.mode``: the adapter added (or, if the encoder already has one of
    that name, activated) and the right parameters frozen."""
    if isinstance(encoder, FeatureUpstream):
        return
    if cfg.mode == "adapters":
        if cfg.adapter_name in list_adapters(encoder):  # loaded with its trained weights
            set_active_adapter(encoder, cfg.adapter_name)
        else:
            add_adapter(encoder, cfg.adapter_name, cfg.adapter)
        freeze(encoder, "frozen")
    elif cfg.mode == "frozen":
        freeze(encoder, "frozen")
    else:
        freeze(encoder, "frozen_feature_encoder")


def build_interface_for(encoder: nn.Module, name: str, layer_norm: bool = False) -> nn.Module:
    """An interface over all of ``encoder``'s hidden states (``name`` from speechssl.interfaces)."""
    from speechssl.interfaces import build_interface

    kwargs = {} if name == "last" else {"layer_norm": layer_norm}
    return build_interface(name, encoder.num_layers + 1, encoder.hidden_size, **kwargs)


def interface_output_size(interface: nn.Module, encoder: nn.Module) -> int:
    return getattr(interface, "output_size", encoder.hidden_size)


class HiddenStateNorm(nn.Module):
    """Fixed per-layer, per-channel standardisation of hidden states (global CMVN, as Kaldi and
    SpeechBrain normalise network inputs): ``(h_l - mean_l) / std_l``. The statistics are buffers,
    measured on training data by :func:`measure_hidden_state_stats` and saved with the model.

    Features such as log-mel filterbanks sit far from zero, and a randomly initialised encoder's
    hidden states are nearly the same vector in every frame; both train poorly until standardised."""

    def __init__(self, num_states: int, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_states, dim))
        self.register_buffer("std", torch.ones(num_states, dim))

    def forward(self, hidden_states):
        return [(h - m) / s for h, m, s in zip(hidden_states, self.mean.to(hidden_states[0].dtype), self.std.to(hidden_states[0].dtype))]


@torch.no_grad()
def measure_hidden_state_stats(encoder: nn.Module, batches, norm: HiddenStateNorm, device) -> int:
    """Set ``norm``'s statistics from the valid frames of ``batches`` (each with ``wavs`` and
    ``wav_lens``); returns the number of frames measured."""
    from speechssl.models.components import length_mask

    total, sq, frames = None, None, 0
    for batch in batches:
        b = batch.to(device)
        out = encoder.extract_features(b.wavs, b.wav_lens)
        valid = length_mask(out.lengths, out.hidden_states[0].shape[1])[..., None].float()  # (B, T, 1)
        h = torch.stack([x.float() * valid for x in out.hidden_states])  # (L, B, T, C)
        s, q = h.sum((1, 2)).double(), h.square().sum((1, 2)).double()  # (L, C)
        total, sq = (s, q) if total is None else (total + s, sq + q)
        frames += int(valid.sum())
    if not frames:
        raise ValueError("no frames to measure the hidden-state statistics on")
    mean = total / frames
    std = (sq / frames - mean.square()).clamp(min=1e-10).sqrt().clamp(min=1e-5)
    norm.mean.copy_(mean.float())
    norm.std.copy_(std.float())
    return frames


class DownstreamModel(nn.Module):
    """Upstream -> (optional fixed standardisation) -> interface over its hidden states -> head.

    ``forward(wavs, wav_lens)`` returns ``(head output, frame lengths (B,))``. While no encoder
    parameter requires a gradient (frozen mode, or fine-tuning's first ``freeze_steps``), the encoder
    runs under ``torch.no_grad()``; in frozen mode it also stays in eval mode (no dropout).
    """

    def __init__(self, encoder: nn.Module, interface: nn.Module, head: nn.Module, mode: str, normalize: bool = False):
        super().__init__()
        self.encoder, self.interface, self.head, self.mode = encoder, interface, head, mode
        self.norm = HiddenStateNorm(encoder.num_layers + 1, encoder.hidden_size) if normalize else None
        self.encoder_grad = any(p.requires_grad for p in encoder.parameters())

    def train(self, mode: bool = True) -> "DownstreamModel":
        super().train(mode)
        if self.mode == "frozen":
            self.encoder.eval()
        return self

    def forward(self, wavs: Tensor, wav_lens: Optional[Tensor] = None):
        grad = self.encoder_grad and torch.is_grad_enabled()
        with contextlib.nullcontext() if grad else torch.no_grad():
            out = self.encoder.extract_features(wavs, wav_lens)
        states = out.hidden_states if self.norm is None else self.norm(out.hidden_states)
        feats = self.interface(states)  # (B, T, C')
        return self.head(feats, out.lengths), out.lengths
