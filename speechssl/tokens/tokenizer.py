"""Waveforms to discrete units: layer L of an encoder, then the nearest k-means centroid per frame.

>>> tok = Tokenizer.from_files("exp/hubert/encoder.safetensors", "exp/kmeans/l6_km500.safetensors")  # doctest: +SKIP
>>> units = tok(wavs, wav_lens)           # one (T_i,) int64 tensor per item, 50 per second   # doctest: +SKIP

The k-means model records the features it was fitted on (layer and encoder fingerprint), so a model
fitted on another layer or encoder, or on MFCC, is refused.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from speechssl.features.layer import LayerExtractor
from speechssl.labels.kmeans import KMeansModel


class Tokenizer:
    """Discrete units of waveforms: ``tokenizer(wavs, wav_lens)`` -> one ``(T_i,)`` int64 tensor
    per item (on the CPU), ``T_i`` the item's frames at :attr:`frame_rate`.

    Only the first ``layer`` transformer layers run, and the nearest centroid of every frame of the
    batch is one matmul on the encoder's device. An item's units inside a padded batch equal its
    units alone (the encoder's padded-batch contract)."""

    def __init__(
        self,
        encoder: torch.nn.Module,
        kmeans: KMeansModel,
        layer: int | None = None,
        *,
        encoder_path: str | os.PathLike | None = None,
        dtype: torch.dtype | None = None,
    ):
        if kmeans.spec.kind != "layer":
            raise ValueError(
                f"the k-means model was fitted on {kmeans.spec.describe()}: tokens come from an encoder layer "
                "(fit one with 'speechssl kmeans fit --kind layer --encoder E --layer L')"
            )
        layer = kmeans.spec.layer if layer is None else layer
        self.extractor = LayerExtractor(encoder, layer, encoder_path=encoder_path, dtype=dtype)
        where = f"encoder {encoder_path}" if encoder_path is not None else "this encoder"
        kmeans.check_features(self.extractor.spec, f"{where}, layer {layer}")
        self.kmeans = kmeans

    @classmethod
    def from_files(
        cls,
        encoder: str | os.PathLike,
        kmeans: str | os.PathLike,
        layer: int | None = None,
        *,
        device: str = "auto",
        dtype: str = "float32",
        allow_pickle: bool = False,
    ) -> "Tokenizer":
        """An encoder (anything :func:`speechssl.load_encoder` reads; ``allow_pickle=True`` unpickles a
        fairseq checkpoint fully) and a k-means model file; ``layer`` defaults to the model's.
        ``dtype``: ``float32``, ``bf16`` or ``fp16`` (autocast; the units may then differ at near ties)."""
        from speechssl import load_encoder
        from speechssl.features.build import DTYPES
        from speechssl.features.stream import resolve_device

        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        model = KMeansModel.load(kmeans)
        if model.spec.kind != "layer":  # before loading a large encoder for nothing
            raise ValueError(f"{kmeans}: fitted on {model.spec.describe()}; tokens come from an encoder layer")
        enc = load_encoder(encoder, allow_pickle=allow_pickle).to(resolve_device(device))
        return cls(enc, model, layer, encoder_path=encoder, dtype=DTYPES[dtype])

    @property
    def layer(self) -> int:
        return self.extractor.layer

    @property
    def frame_rate(self) -> float:
        """Units per second before de-duplication (50 for a 320x down-sampling encoder)."""
        return self.extractor.spec.frame_rate

    @property
    def num_units(self) -> int:
        return self.kmeans.num_clusters

    @property
    def device(self) -> torch.device:
        return next(self.extractor.encoder.parameters()).device

    def output_lengths(self, wav_lens: Tensor) -> Tensor:
        """Units per item for waveforms of ``wav_lens`` samples."""
        return self.extractor.encoder.output_lengths(wav_lens)

    @torch.inference_mode()
    def __call__(self, wavs: Tensor, wav_lens: Tensor | None = None) -> list[Tensor]:
        """wavs ``(B, S)`` float at 16 kHz, zero-padded; wav_lens ``(B,)`` samples (None: all S).
        Raises ``ValueError`` when an utterance's features are not finite (its units would mean
        nothing); :meth:`encode` says which instead."""
        units, finite = self.encode(wavs, wav_lens)
        bad = [i for i, ok in enumerate(finite) if not ok]
        if bad:
            raise ValueError(f"utterance(s) {bad} of the batch: the encoder's features hold NaN or infinite values")
        return units

    def encode(self, wavs: Tensor, wav_lens: Tensor | None = None) -> tuple[list[Tensor], list[bool]]:
        """The units of each utterance, and whether its features were finite (the units of one
        that was not are meaningless: report and skip it)."""
        if wavs.dim() != 2:
            raise ValueError(f"expected waveforms of shape (B, S), found {tuple(wavs.shape)}")
        if wav_lens is None:
            wav_lens = torch.full((wavs.shape[0],), wavs.shape[1], dtype=torch.long)
        ext = self.extractor
        device = self.device
        wavs, wav_lens = wavs.to(device, non_blocking=True), wav_lens.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=ext.dtype, enabled=ext.dtype is not None):
            out = ext.encoder.extract_features(wavs, wav_lens, output_layer=ext.layer)
        feats = out.hidden_states[ext.layer]  # (B, T, C)
        B, T, C = feats.shape
        units = self.kmeans.distances(feats.reshape(B * T, C)).argmin(1).view(B, T)  # (B*T, K) -> (B, T)
        valid = torch.arange(T, device=feats.device)[None, :] < out.lengths[:, None]
        finite = ~((~torch.isfinite(feats).all(-1)) & valid).any(1)
        units, lengths, finite = units.cpu(), out.lengths.cpu(), finite.cpu()  # one transfer per batch
        return [units[i, :n] for i, n in enumerate(lengths.tolist())], finite.tolist()
