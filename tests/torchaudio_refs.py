"""Reference models for the converter parity tests: tiny, randomly initialised torchaudio
wav2vec 2.0 / WavLM models with every parameter perturbed (norm weights and biases, the weight
norm's magnitude, the gate constants too, so that a wrong mapping cannot pass), a padded batch,
and per-item reference hidden states."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import Tensor

CONV = [(32, 10, 5), (32, 8, 8), (32, 8, 8)]  # stride 320, as the standard stack
STANDARD_KERNELS_CONV = [(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2  # standard kernels/strides, narrow
WAV_LENS = [16000, 11111, 6700]


def tiny_torchaudio(
    kind: str = "wav2vec2",
    *,
    mode: str = "group_norm",
    conv_bias: bool = False,
    pre_norm: bool = False,
    conv: list[tuple[int, int, int]] = CONV,
    width: int = 32,
    heads: int = 4,
    ffn: int = 64,
    layers: int = 2,
    pos_kernel: int = 16,
    pos_groups: int = 4,
    buckets: int = 32,
    max_distance: int = 64,
    aux: int | None = None,
    seed: int = 0,
) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs = dict(
        extractor_mode=mode,
        extractor_conv_layer_config=list(conv),
        extractor_conv_bias=conv_bias,
        encoder_embed_dim=width,
        encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=pos_kernel,
        encoder_pos_conv_groups=pos_groups,
        encoder_num_layers=layers,
        encoder_num_heads=heads,
        encoder_attention_dropout=0.0,
        encoder_ff_interm_features=ffn,
        encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0,
        encoder_layer_norm_first=pre_norm,
        encoder_layer_drop=0.0,
        aux_num_out=aux,
    )
    if kind == "wavlm":
        model = torchaudio.models.wavlm_model(**kwargs, encoder_num_buckets=buckets, encoder_max_distance=max_distance)
    elif kind == "wav2vec2":
        model = torchaudio.models.wav2vec2_model(**kwargs)
    else:
        raise ValueError(kind)
    perturb(model, seed)
    return model.eval()


def perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Scale every parameter by 1 +- 20% and shift it by ~0.05, elementwise."""
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 0.2 * torch.randn(p.shape, generator=gen)).add_(0.05 * torch.randn(p.shape, generator=gen))


def padded_batch(lens: list[int] = WAV_LENS, seed: int = 0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    wavs = torch.zeros(len(lens), max(lens))
    for i, n in enumerate(lens):
        wavs[i, :n] = torch.randn(n, generator=gen)
    return wavs, torch.tensor(lens)


@dataclass
class Reference:
    states: list[Tensor]  # num_layers + 1 tensors (T, C): the first layer's input, then every layer's output
    final: Tensor  # (T, C) torchaudio's encoder output (pre-LN: after the final LayerNorm)


@torch.no_grad()
def torchaudio_reference(model: torch.nn.Module, wav: Tensor) -> Reference:
    """One unpadded waveform (S,) through torchaudio: the transformer's input (its _preprocess) and
    ``extract_features`` (the layers' outputs), and ``encoder(...)``."""
    core = model.wav2vec2 if hasattr(model, "wav2vec2") else model
    feats, _ = core.feature_extractor(wav[None], None)
    x, _ = core.encoder._preprocess(feats, None)
    first = core.encoder.transformer._preprocess(x)
    layers, _ = core.extract_features(wav[None])
    final = core.encoder(feats)
    return Reference([first[0]] + [h[0] for h in layers], final[0])


def assert_matches(out, refs: list[Reference], atol: float = 1e-4) -> None:
    """Our padded-batch output against per-item references, on the valid frames of each item."""
    assert len(out.hidden_states) == len(refs[0].states)
    for b, ref in enumerate(refs):
        frames = ref.states[0].shape[0]
        assert int(out.lengths[b]) == frames
        for i, (ours, theirs) in enumerate(zip(out.hidden_states, ref.states)):
            torch.testing.assert_close(ours[b, :frames], theirs, atol=atol, rtol=0, msg=lambda m: f"item {b}, state {i}: {m}")
        torch.testing.assert_close(out.last_hidden_state[b, :frames], ref.final, atol=atol, rtol=0)
