"""From command-line choices to feature extractors and frame sources."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from speechssl.features.mfcc import MfccExtractor
from speechssl.features.spec import FeatureSpec
from speechssl.features.stream import (
    ComputedFeatures,
    DumpedFeatures,
    feature_dump_splits,
    is_feature_dump,
    open_manifest,
    resolve_device,
    split_manifests,
)

DTYPES = {"float32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_extractor(
    kind: str,
    *,
    encoder: str | os.PathLike | None = None,
    layer: int | None = None,
    device: str = "auto",
    dtype: str = "float32",
    allow_pickle: bool = False,
):
    """``kind="mfcc"``, or ``kind="layer"`` with an encoder path (anything ``load_encoder`` accepts;
    ``allow_pickle=True`` unpickles a fairseq checkpoint fully) and a layer."""
    if kind == "mfcc":
        if encoder is not None or layer is not None:
            raise ValueError("MFCC features take no encoder or layer (use --kind layer with --encoder and --layer)")
        return MfccExtractor(resolve_device(device))
    if kind != "layer":
        raise ValueError(f"unknown feature kind {kind!r}; expected 'mfcc' or 'layer'")
    if encoder is None or layer is None:
        raise ValueError("layer features need an encoder (--encoder PATH) and a layer (--layer L)")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
    from speechssl import load_encoder
    from speechssl.features.layer import LayerExtractor

    model = load_encoder(encoder, allow_pickle=allow_pickle).to(resolve_device(device))
    return LayerExtractor(model, layer, encoder_path=encoder, dtype=DTYPES[dtype])


def extractor_for_spec(
    spec: FeatureSpec, *, encoder: str | os.PathLike | None = None, device: str = "auto", dtype: str = "float32", allow_pickle: bool = False
):
    """The extractor that computes ``spec``'s features (the encoder from ``encoder`` or, by default,
    from where the spec says it was loaded). The caller checks the fingerprint of what it got."""
    if spec.kind == "mfcc":
        return MfccExtractor(resolve_device(device))
    path = encoder or spec.encoder_path
    if path is None:
        raise ValueError("these features came from an encoder whose path was not recorded: pass --encoder")
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: the encoder these features came from is not there any more: pass --encoder")
    return build_extractor("layer", encoder=path, layer=spec.layer, device=device, dtype=dtype, allow_pickle=allow_pickle)


def open_sources(
    data: str | os.PathLike,
    *,
    splits: list[str] | None = None,
    extractor=None,
    shard: tuple[int, int] = (1, 1),
    max_duration: float = 200.0,
    num_workers: int = 0,
    strict: bool = False,
    progress: bool = True,
) -> dict:
    """``data`` as split -> frame source: a feature dump (read back) or a corpus folder / manifest
    (computed with ``extractor``). ``splits`` selects and orders splits; an unknown one is an error."""
    if is_feature_dump(data):
        if shard != (1, 1):
            raise ValueError(f"{data} holds computed features; --shard applies to computing them")
        found = feature_dump_splits(data)
        make = lambda split, path: DumpedFeatures(path, progress=progress)  # noqa: E731
    else:
        if extractor is None:
            raise ValueError(f"{data} is a manifest or corpus folder: say which features to compute")
        found = split_manifests(data)
        make = lambda split, path: ComputedFeatures(  # noqa: E731
            open_manifest(path, shard), extractor, str(path), max_duration=max_duration, num_workers=num_workers, strict=strict, progress=progress
        )
    if splits:
        unknown = [s for s in splits if s not in found]
        if unknown:
            raise ValueError(f"{data}: no split {', '.join(map(repr, unknown))}; it has {', '.join(found)}")
        found = {s: found[s] for s in splits}
    return {split: make(split, path) for split, path in found.items()}
