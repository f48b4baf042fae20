"""Published encoder sizes as functions returning an :class:`EncoderConfig`.

``PRESETS`` is a plain dict next to the builders; an unknown name lists the valid ones.
"""

from __future__ import annotations

from typing import Callable

from speechssl.models.encoder import EncoderConfig

# HuBERT Large/X-Large and WavLM Large have no conv bias; wav2vec 2.0 Large LV-60 has one. All expect
# waveforms normalised to zero mean and unit variance (fairseq task.normalize=True).
_LARGE = dict(hidden_size=1024, num_layers=24, num_heads=16, ffn_size=4096, pre_norm=True, extractor_mode="layer_norm", normalize_waveform=True)
_XLARGE = dict(_LARGE, hidden_size=1280, num_layers=48, ffn_size=5120)


def hubert_base(**overrides) -> EncoderConfig:
    """HuBERT Base (95M): 12 post-LN layers of width 768, group-norm front end without conv bias."""
    return EncoderConfig(family="hubert", **overrides)


def hubert_large(**overrides) -> EncoderConfig:
    """HuBERT Large (317M): 24 pre-LN layers of width 1024, layer-norm front end, normalised input."""
    return EncoderConfig(**{"family": "hubert", **_LARGE, **overrides})


def hubert_xlarge(**overrides) -> EncoderConfig:
    """HuBERT X-Large (964M): 48 pre-LN layers of width 1280."""
    return EncoderConfig(**{"family": "hubert", **_XLARGE, **overrides})


def wavlm_base(**overrides) -> EncoderConfig:
    """WavLM Base (95M): HuBERT Base plus gated relative position bias (320 buckets, distance 800)."""
    return EncoderConfig(**{"family": "wavlm", "relative_position_buckets": 320, "relative_position_max_distance": 800, **overrides})


def wavlm_base_plus(**overrides) -> EncoderConfig:
    """WavLM Base+ (95M): the WavLM Base architecture (trained on 94k hours)."""
    return wavlm_base(**overrides)


def wavlm_large(**overrides) -> EncoderConfig:
    """WavLM Large (317M): 24 pre-LN layers of width 1024 with gated relative position bias."""
    return EncoderConfig(**{"family": "wavlm", **_LARGE, "relative_position_buckets": 320, "relative_position_max_distance": 800, **overrides})


def wav2vec2_base(**overrides) -> EncoderConfig:
    """wav2vec 2.0 Base (95M): the HuBERT Base architecture."""
    return EncoderConfig(**{"family": "wav2vec2", **overrides})


def wav2vec2_large_lv60(**overrides) -> EncoderConfig:
    """wav2vec 2.0 Large LV-60 (317M): 24 pre-LN layers, layer-norm front end with conv bias."""
    return EncoderConfig(**{"family": "wav2vec2", **_LARGE, "conv_bias": True, **overrides})


def _tiny(family: str, **overrides) -> EncoderConfig:
    """A test-sized encoder: 2 layers of width 32, a 3-layer conv stack of 32 channels (stride 320
    kept, so frame rates match the full models), 4 heads, no dropout."""
    base = dict(
        family=family,
        conv_layers=[(32, 10, 5), (32, 8, 8), (32, 8, 8)],
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        ffn_size=64,
        pos_conv_kernel=16,
        pos_conv_groups=4,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feature_dropout=0.0,
    )
    if family == "wavlm":
        base.update(relative_position_buckets=32, relative_position_max_distance=64)
    return EncoderConfig(**{**base, **overrides})


def tiny_hubert(**overrides) -> EncoderConfig:
    return _tiny("hubert", **overrides)


def tiny_wavlm(**overrides) -> EncoderConfig:
    return _tiny("wavlm", **overrides)


def tiny_wav2vec2(**overrides) -> EncoderConfig:
    return _tiny("wav2vec2", **overrides)


PRESETS: dict[str, Callable[..., EncoderConfig]] = {
    "hubert_base": hubert_base,
    "hubert_large": hubert_large,
    "hubert_xlarge": hubert_xlarge,
    "wavlm_base": wavlm_base,
    "wavlm_base_plus": wavlm_base_plus,
    "wavlm_large": wavlm_large,
    "wav2vec2_base": wav2vec2_base,
    "wav2vec2_large_lv60": wav2vec2_large_lv60,
    "tiny_hubert": tiny_hubert,
    "tiny_wavlm": tiny_wavlm,
    "tiny_wav2vec2": tiny_wav2vec2,
}


def preset(name: str, **overrides) -> EncoderConfig:
    """The config of a named preset; unknown names list the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown encoder preset '{name}'; valid: {', '.join(PRESETS)}")
    return PRESETS[name](**overrides)
