"""Encoders: components, the HuBERT/WavLM/wav2vec 2.0 encoder, presets."""

from speechssl.models.encoder import EncoderConfig, EncoderOutput, SSLEncoder, build_encoder
from speechssl.models.presets import PRESETS, preset

__all__ = ["EncoderConfig", "EncoderOutput", "SSLEncoder", "build_encoder", "PRESETS", "preset"]
