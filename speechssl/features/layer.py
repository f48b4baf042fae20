"""Hidden states of one encoder layer as frame features (the later HuBERT iterations' k-means input).

The encoder is identified by a fingerprint of its weights, so a k-means model fitted on one
encoder's layer is never used on another's, whatever file format or path the weights came from."""

from __future__ import annotations

from pathlib import Path

import hashlib
import os
from typing import Mapping

import torch
from torch import Tensor

from speechssl.features.spec import FeatureSpec


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """sha256 over the encoder's state dict (names, dtypes, shapes and values, in name order).

    The same weights give the same fingerprint whether they were loaded from a speechssl checkpoint,
    a Hugging Face folder or a fairseq checkpoint."""
    return state_dict_fingerprint(encoder.state_dict())


def state_dict_fingerprint(state: Mapping[str, Tensor]) -> str:
    """sha256 over ``state``'s names, dtypes, shapes and values, in name order."""
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class LayerExtractor:
    """Batched layer-L features: ``(B, S)`` waveforms with lengths -> one ``(T_i, C)`` tensor per item.

    Only the first L transformer layers run. ``dtype=torch.bfloat16`` runs the encoder under autocast
    (GPU); the features come back as float32."""

    def __init__(self, encoder, layer: int, *, encoder_path: str | os.PathLike | None = None, dtype: torch.dtype | None = None):
        if not 0 <= layer <= encoder.num_layers:
            raise ValueError(f"layer must be within 0..{encoder.num_layers} for this encoder, got {layer}")
        self.encoder = encoder.eval()
        self.layer = layer
        self.dtype = dtype
        self.spec = FeatureSpec(
            kind="layer",
            dim=encoder.hidden_size,
            frame_rate=16000.0 / encoder.downsample_rate,
            layer=layer,
            encoder=encoder_fingerprint(encoder),
            encoder_path=str(Path(encoder_path).resolve()) if encoder_path is not None else None,
        )

    @torch.inference_mode()
    def __call__(self, wavs: Tensor, wav_lens: Tensor) -> list[Tensor]:
        device = next(self.encoder.parameters()).device
        wavs, wav_lens = wavs.to(device, non_blocking=True), wav_lens.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None):
            out = self.encoder.extract_features(wavs, wav_lens, output_layer=self.layer)
        feats = out.hidden_states[self.layer].float()  # (B, T, C)
        return [feats[i, : int(n)] for i, n in enumerate(out.lengths.tolist())]
