"""Labelling a corpus with a k-means model: streamed, every split by the same model, written as a
label folder (:mod:`speechssl.labels.store`), optionally exported as fairseq ``.km`` files with a
``dict.km.txt`` that is checked to list every unit."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from speechssl.data.fairseq import read_km, write_km
from speechssl.data.manifest import load_cuts
from speechssl.io import atomic_path, atomic_write_text, escape_tsv
from speechssl.labels.kmeans import KMeansModel
from speechssl.labels.store import META, LabelDir, SplitInfo, read_label_dir, write_label_dir_meta

log = logging.getLogger(__name__)

FAIRSEQ_DICT = "dict.km.txt"


def label_corpus(model: KMeansModel, sources: Mapping[str, object], out_dir: str | os.PathLike, *, model_path: str = "") -> LabelDir:
    """Label every split of ``sources`` (split -> FrameSource) into ``out_dir``.

    A folder already labelled by another k-means model is refused: all splits of a label folder come
    from one model (train and valid labels must agree). Splits labelled before by the same model are
    kept; the ones given here are (re)written. ``labels.json`` is updated last.
    """
    out_dir = Path(out_dir)
    for split, src in sources.items():
        model.check_features(src.spec, f"split '{split}' ({src.manifest})")
    existing = None
    if (out_dir / META).is_file():
        existing = read_label_dir(out_dir)
        if existing.kmeans_id != model.model_id:
            raise ValueError(
                f"{out_dir}: already holds labels from another k-means model ({existing.kmeans}); all splits of a "
                f"label folder must come from one model: label into a new folder, or delete this one"
            )
    info = LabelDir(
        path=out_dir,
        num_units=model.num_clusters,
        frame_rate=model.spec.frame_rate,
        feature=model.spec,
        kmeans=str(model_path),
        kmeans_id=model.model_id,
        splits=dict(existing.splits) if existing else {},
    )
    (out_dir / META).unlink(missing_ok=True)  # the folder is incomplete until every split is written
    for split, src in sources.items():
        frames = cuts = 0
        with atomic_path(info.labels_path(split)) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for cut_id, units in _assign_grouped(model, src):
                f.write(f"{cut_id} {' '.join(map(str, units.tolist()))}\n" if units.size else f"{cut_id}\n")
                frames += units.size
                cuts += 1
        skipped_path = out_dir / f"{split}.skipped.tsv"
        if src.skipped:
            with atomic_path(skipped_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
                f.writelines(f"{escape_tsv(s.cut_id)}\t{escape_tsv(s.reason)}\n" for s in src.skipped)
            log.warning("%s: %d unreadable cuts were skipped (listed in %s)", split, len(src.skipped), skipped_path)
        else:
            skipped_path.unlink(missing_ok=True)
        info.splits[split] = SplitInfo(manifest=str(Path(src.manifest).resolve()), cuts=cuts, frames=frames, skipped=len(src.skipped))
        log.info("%s: %d cuts, %d frames labelled", split, cuts, frames)
    write_label_dir_meta(info)
    return info


def _assign_grouped(model: KMeansModel, source, group_frames: int = 32768):
    """Nearest centroids for each utterance of ``source``, one matmul per group of utterances
    (a single utterance is too small a matrix to keep a CPU or GPU busy)."""
    ids, feats, pending = [], [], 0

    def flush():
        units = model.assign(torch.cat(feats)).cpu().numpy()
        offsets = np.cumsum([0] + [x.shape[0] for x in feats])
        out = [(cut_id, units[a:b]) for cut_id, a, b in zip(ids, offsets[:-1], offsets[1:])]
        ids.clear(), feats.clear()
        return out

    for cut_id, x in source:
        ids.append(cut_id)
        feats.append(x)
        pending += x.shape[0]
        if pending >= group_frames:
            yield from flush()
            pending = 0
    if ids:
        yield from flush()


def unit_counts(labels: Mapping[str, np.ndarray], num_units: int) -> np.ndarray:
    counts = np.zeros(num_units, dtype=np.int64)
    for units in labels.values():
        counts += np.bincount(units, minlength=num_units)[:num_units]
    return counts


def export_fairseq_km(label_dir: LabelDir, out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write ``<split>.km`` (in the order of the split's manifest, as fairseq's ``.tsv`` lists it)
    for every split, and ``dict.km.txt`` (every unit 0..k-1 with its frame count in train, or in
    all splits when there is no train split), then check the dictionary against the ``.km`` files."""
    out_dir = Path(out_dir or label_dir.path)
    written: dict[str, Path] = {}
    counts = np.zeros(label_dir.num_units, dtype=np.int64)
    for split, split_info in label_dir.splits.items():
        labels = label_dir.read(split)
        order = [cut.id for cut in load_cuts(split_info.manifest, lazy=True)]
        missing = [cut_id for cut_id in order if cut_id not in labels]
        if missing:
            raise ValueError(
                f"{label_dir.path}: {len(missing)} cuts of {split_info.manifest} have no labels (e.g. '{missing[0]}', "
                f"unreadable audio); fairseq needs one line per manifest entry: drop them from the manifest with "
                f"'speechssl validate' and label again"
            )
        written[split] = write_km(out_dir / f"{split}.km", (labels[cut_id] for cut_id in order))
        if split == "train" or "train" not in label_dir.splits:
            counts += unit_counts(labels, label_dir.num_units)
    dict_path = out_dir / FAIRSEQ_DICT
    atomic_write_text(dict_path, "".join(f"{u} {int(c)}\n" for u, c in enumerate(counts)))
    check_km_dict(dict_path, label_dir.num_units, list(written.values()))
    written["dict"] = dict_path
    return written


def check_km_dict(dict_path: str | os.PathLike, num_units: int, km_paths: list[Path] = ()) -> None:
    """A fairseq unit dictionary must list each unit 0..k-1 once, in order (fairseq maps symbols to
    indices by line), and every unit in the ``.km`` files must be in it."""
    dict_path = Path(dict_path)
    symbols = []
    for lineno, line in enumerate(dict_path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{dict_path}:{lineno}: expected '<unit> <count>', found '{line}'")
        symbols.append(parts[0])
    expected = [str(u) for u in range(num_units)]
    if symbols != expected:
        missing = sorted(set(expected) - set(symbols), key=int)[:5]
        raise ValueError(
            f"{dict_path}: must list units 0..{num_units - 1} once each, in order; found {len(symbols)} entries"
            + (f" (missing e.g. {', '.join(missing)})" if missing else "")
        )
    for km in km_paths:
        for lineno, seq in enumerate(read_km(km), 1):
            if seq.size and (seq.min() < 0 or seq.max() >= num_units):
                raise ValueError(f"{km}:{lineno}: unit {int(seq.max() if seq.max() >= num_units else seq.min())} is not in {dict_path}")
