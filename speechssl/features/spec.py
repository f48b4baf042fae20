"""What a frame feature is: MFCC, or the hidden states of one layer of one encoder.

A :class:`FeatureSpec` travels with everything computed from features (dumped features, k-means
models, label folders), so that a k-means model is never applied to features it was not fitted on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Optional

FeatureKind = Literal["mfcc", "layer"]


@dataclass(frozen=True)
class FeatureSpec:
    kind: FeatureKind  # "mfcc": Kaldi MFCC + deltas + delta-deltas; "layer": one encoder layer's hidden states
    dim: int  # feature dimension (39 for MFCC)
    frame_rate: float  # frames per second (100 for MFCC, 16000 / downsample_rate for an encoder)
    layer: Optional[int] = None  # encoder layer (index into hidden_states: 0 is the first layer's input)
    encoder: Optional[str] = None  # fingerprint of the encoder's weights (sha256 over its state dict)
    encoder_path: Optional[str] = None  # where the encoder was loaded from (informational only)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        known = {k: d.get(k) for k in ("kind", "dim", "frame_rate", "layer", "encoder", "encoder_path")}
        if known["kind"] not in ("mfcc", "layer"):
            raise ValueError(f"unknown feature kind {known['kind']!r}; expected 'mfcc' or 'layer'")
        return cls(**known)

    def describe(self) -> str:
        if self.kind == "mfcc":
            return f"MFCC ({self.dim} dims, {self.frame_rate:g} Hz)"
        return (
            f"layer {self.layer} of encoder {(self.encoder or '?')[:12]} ({self.encoder_path}; "
            f"{self.dim} dims, {self.frame_rate:g} Hz)"
        )

    def mismatch(self, other: "FeatureSpec") -> str | None:
        """Why features of spec ``other`` cannot be used where ``self`` is expected (None if they can).
        The encoder path is informational and not compared: the same weights may live anywhere."""
        for name in ("kind", "dim", "layer", "encoder"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                return f"{name} differs: expected {a!r}, found {b!r}"
        if abs(self.frame_rate - other.frame_rate) > 1e-6:
            return f"frame_rate differs: expected {self.frame_rate!r}, found {other.frame_rate!r}"
        return None
