"""How well frame labels (k-means units) match phones: phone purity, cluster purity and PNMI.

The definitions are those of HuBERT (Hsu et al., 2021, section IV-B) and fairseq's
``examples/hubert/measure_teacher_quality.py``. Over all frames compared, ``P(p, u)`` is the joint
distribution of the frame's phone ``p`` (from the forced/synthesis alignment) and its unit ``u``:

- phone purity   = sum_u max_p P(p, u): the average share of a unit's frames taken by its most
  frequent phone (1 when no unit mixes phones; fairseq's "ref pur");
- cluster purity = sum_p max_u P(p, u): the average share of a phone's frames taken by its most
  frequent unit (1 when no phone is split over units; fairseq's "hyp pur");
- PNMI           = I(phone; unit) / H(phone): the fraction of the phone's uncertainty a unit removes
  (fairseq's "MI/H(ref)").

Frames are aligned by index: frame ``t`` of a cut's labels is the phone under the centre of
``[t, t + 1) / frame_rate`` seconds (:func:`speechssl.data.mini.alignment.frame_phone_labels`).
Silence is a phone like any other, as in fairseq. Unit usage and unit entropy need no alignment
(:func:`unit_usage`).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
from sklearn.metrics import mutual_info_score

from speechssl.data.mini.alignment import frame_phone_labels

if TYPE_CHECKING:
    from speechssl.labels.store import LabelDir

logger = logging.getLogger(__name__)


class NoPhoneAlignments(ValueError):
    """None of the cuts carries a phone alignment: only unit usage and entropy can be measured."""


@dataclass
class LabelQuality:
    """Label quality of one split. The phone metrics are None where there were no phone alignments
    (a report from :func:`unit_usage`); usage and entropy are over the frames counted (``frames``)."""

    frames: int  # frames counted (with a phone alignment: frames compared with phones)
    num_units: int  # k: units are 0..k-1
    used_units: int  # distinct units among those frames
    entropy_bits: float  # entropy of the unit distribution, in bits
    cuts: int  # cuts counted
    num_phones: Optional[int] = None  # distinct phones among the frames compared (silence included)
    phone_purity: Optional[float] = None  # sum_u max_p P(p, u)
    cluster_purity: Optional[float] = None  # sum_p max_u P(p, u)
    pnmi: Optional[float] = None  # I(phone; unit) / H(phone); None when there is a single phone
    phone_entropy_bits: Optional[float] = None  # H(phone), in bits
    mutual_info_bits: Optional[float] = None  # I(phone; unit), in bits
    labels_without_alignment: int = 0  # labelled cuts not in the manifest or without a phone alignment
    alignment_without_labels: int = 0  # aligned cuts of the manifest that have no labels

    @property
    def used_fraction(self) -> float:
        return self.used_units / self.num_units

    @property
    def max_entropy_bits(self) -> float:
        """log2 k: the entropy of k equally used units."""
        return math.log2(self.num_units)

    @property
    def has_phones(self) -> bool:
        return self.phone_purity is not None

    def as_dict(self) -> dict:
        return {
            "frames": self.frames,
            "cuts": self.cuts,
            "num_units": self.num_units,
            "used_units": self.used_units,
            "used_fraction": self.used_fraction,
            "entropy_bits": self.entropy_bits,
            "max_entropy_bits": self.max_entropy_bits,
            "num_phones": self.num_phones,
            "phone_purity": self.phone_purity,
            "cluster_purity": self.cluster_purity,
            "pnmi": self.pnmi,
            "phone_entropy_bits": self.phone_entropy_bits,
            "mutual_info_bits": self.mutual_info_bits,
            "labels_without_alignment": self.labels_without_alignment,
            "alignment_without_labels": self.alignment_without_labels,
        }


def _check_units(cut_id: str, units: np.ndarray, num_units: int) -> np.ndarray:
    units = np.asarray(units).reshape(-1)  # (T,)
    if units.size and not np.issubdtype(units.dtype, np.integer):
        raise ValueError(f"cut {cut_id}: expected integer unit labels, found dtype {units.dtype}")
    units = units.astype(np.int64, copy=False)
    if units.size and (units.min() < 0 or units.max() >= num_units):
        bad = units[(units < 0) | (units >= num_units)][0]
        raise ValueError(f"cut {cut_id}: unit {bad} is outside 0..{num_units - 1} (num_units is {num_units})")
    return units


def _entropy_bits(counts: np.ndarray) -> float:
    """Entropy in bits of the distribution proportional to ``counts`` (zeros are ignored)."""
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(max(-(p * np.log2(p)).sum(), 0.0))


def unit_usage(labels: Mapping[str, np.ndarray], num_units: int) -> LabelQuality:
    """Unit usage and entropy of ``labels`` (cut id -> units); no alignment needed."""
    if num_units < 1:
        raise ValueError(f"num_units must be >= 1, got {num_units}")
    counts = np.zeros(num_units, dtype=np.int64)
    for cut_id, units in labels.items():
        counts += np.bincount(_check_units(cut_id, units, num_units), minlength=num_units)
    return LabelQuality(
        frames=int(counts.sum()),
        num_units=num_units,
        used_units=int((counts > 0).sum()),
        entropy_bits=_entropy_bits(counts),
        cuts=len(labels),
    )


def has_phone_alignment(cut) -> bool:
    """Whether one of the cut's supervisions carries a ``"phone"`` alignment tier."""
    return any((sup.alignment or {}).get("phone") for sup in cut.supervisions)


def quality_from_counts(counts: np.ndarray) -> LabelQuality:
    """The report for a contingency matrix ``counts[phone, unit]`` of frame counts (the columns are
    the k units). Cut counts are left at zero; :func:`label_quality` fills them in."""
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] < 1:
        raise ValueError(f"expected a (phones, units) count matrix, found shape {counts.shape}")
    if (counts < 0).any():
        raise ValueError("frame counts must be >= 0")
    total = counts.sum()
    if total == 0:
        raise ValueError("no frames to compare: the count matrix is all zeros")
    counts = counts[counts.sum(axis=1) > 0]  # (P, K): phones seen
    joint = counts / total  # (P, K): P(phone, unit)
    unit_counts = counts.sum(axis=0)  # (K,)
    phone_counts = counts.sum(axis=1)  # (P,)
    # sklearn's mutual information in nats, from the contingency table (zero rows/columns are fine)
    mi_bits = max(float(mutual_info_score(None, None, contingency=counts)), 0.0) / math.log(2)
    h_phone = _entropy_bits(phone_counts)
    return LabelQuality(
        frames=int(total),
        num_units=counts.shape[1],
        used_units=int((unit_counts > 0).sum()),
        entropy_bits=_entropy_bits(unit_counts),
        cuts=0,
        num_phones=int(counts.shape[0]),
        phone_purity=float(joint.max(axis=0).sum()),
        cluster_purity=float(joint.max(axis=1).sum()),
        pnmi=min(mi_bits / h_phone, 1.0) if h_phone > 0 else None,
        phone_entropy_bits=h_phone,
        mutual_info_bits=mi_bits,
    )


def label_quality(
    labels: Mapping[str, np.ndarray],
    cuts: Iterable,
    *,
    frame_rate: float,
    num_units: int,
) -> LabelQuality:
    """Compare frame labels (cut id -> units, ``frame_rate`` labels per second, units 0..k-1) with
    the phone alignments of ``cuts`` (lhotse cuts; ``supervision.alignment["phone"]``).

    Cuts with labels but no alignment (or absent from ``cuts``) and cuts with an alignment but no
    labels are counted in the report and otherwise skipped. Raises :class:`NoPhoneAlignments` (a
    ValueError) when no cut has a phone alignment, and ValueError when no labelled cut has one.
    """
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    if num_units < 1:
        raise ValueError(f"num_units must be >= 1, got {num_units}")
    frame_shift = 1.0 / frame_rate
    phone_index: dict[str, int] = {}
    counts = np.zeros((0, num_units), dtype=np.int64)  # (P, K), rows added as phones appear
    seen: set[str] = set()  # labelled cuts found with an alignment
    aligned = alignment_without_labels = 0
    for cut in cuts:
        if not has_phone_alignment(cut):
            continue
        aligned += 1
        if cut.id not in labels:
            alignment_without_labels += 1
            continue
        if cut.id in seen:
            raise ValueError(f"cut {cut.id} appears twice in the manifest")
        seen.add(cut.id)
        units = _check_units(cut.id, labels[cut.id], num_units)  # (T,)
        if units.size == 0:
            continue
        phones = frame_phone_labels(cut, frame_shift=frame_shift, num_frames=units.size)  # T symbols
        symbols, inverse = np.unique(np.asarray(phones), return_inverse=True)
        rows = np.array([phone_index.setdefault(str(s), len(phone_index)) for s in symbols], dtype=np.int64)
        if len(phone_index) > counts.shape[0]:
            counts = np.pad(counts, ((0, len(phone_index) - counts.shape[0]), (0, 0)))
        np.add.at(counts, (rows[inverse.reshape(-1)], units), 1)  # counts[phone_t, unit_t] += 1
    if aligned == 0:
        raise NoPhoneAlignments("none of the cuts has a phone alignment (supervision.alignment['phone'])")
    if not seen:
        example = next(iter(labels), None)
        raise ValueError(
            f"no labelled cut has a phone alignment: {len(labels)} labelled cuts (e.g. {example!r}) and "
            f"{aligned} aligned cuts share no id; are the labels and the manifest of the same split?"
        )
    if counts.sum() == 0:
        raise ValueError(f"the {len(seen)} labelled cuts with a phone alignment have no frames")
    report = quality_from_counts(counts)
    report.cuts = len(seen)
    report.labels_without_alignment = len(labels) - len(seen)
    report.alignment_without_labels = alignment_without_labels
    if report.labels_without_alignment or alignment_without_labels:
        logger.info(
            "%d labelled cuts have no phone alignment and %d aligned cuts have no labels; compared %d cuts",
            report.labels_without_alignment,
            alignment_without_labels,
            report.cuts,
        )
    return report


def _manifest(info: "LabelDir", split: str, cuts: Path | None, num_splits: int) -> tuple[Path, int | None]:
    """The manifest to compare split ``split`` with, and its number of cuts if known (for the bar)."""
    from speechssl.data.manifest import find_splits

    if cuts is None:
        recorded = info.splits[split]
        path = Path(recorded.manifest)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: cut manifest not found (recorded in {info.path / 'labels.json'} for split '{split}'); "
                "pass --cuts to name where it is now"
            )
        return path, recorded.cuts + recorded.skipped
    if cuts.is_dir():
        found = find_splits(cuts)
        if split not in found:
            raise FileNotFoundError(f"{cuts}: no cuts_{split}.jsonl.gz for split '{split}'; found {', '.join(found)}")
        return found[split], None
    if num_splits > 1:
        raise ValueError(
            f"--cuts {cuts} is one manifest but {num_splits} splits of {info.path} are selected; "
            "choose the split it holds with --split"
        )
    return cuts, None


def split_quality(info: "LabelDir", split: str, cuts: Path | None = None, num_splits: int = 1) -> LabelQuality:
    """The label quality of split ``split`` of the label folder ``info``, against the manifest
    recorded in its labels.json or ``cuts`` (a manifest, or a corpus folder of split manifests);
    usage and entropy only when that manifest has no phone alignments. ``num_splits``: how many
    splits the caller evaluates (one manifest in ``cuts`` can only serve one)."""
    from tqdm import tqdm

    from speechssl.data.manifest import load_cuts

    labels = info.read(split)
    path, total = _manifest(info, split, cuts, num_splits)
    cuts_iter = load_cuts(path, lazy=True)
    bar = tqdm(cuts_iter, total=total, desc=f"{info.path.name}/{split}", unit="cut", file=sys.stderr, leave=False)
    try:
        return label_quality(labels, bar, frame_rate=info.frame_rate, num_units=info.num_units)
    except NoPhoneAlignments:
        return unit_usage(labels, info.num_units)
    finally:
        bar.close()


def _fmt(x: Optional[float], spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def format_quality(rows: Sequence[tuple[str, str, LabelQuality]]) -> str:
    """An aligned table, one row per ``(label folder, split, report)``, then notes on cuts that
    could not be compared and on rows without phone alignments."""
    header = ["labels", "split", "frames", "used/k", "H(unit) bits", "phones", "phone pur", "cluster pur", "PNMI"]
    table = [header]
    notes: list[str] = []
    for name, split, q in rows:
        table.append(
            [
                name,
                split,
                str(q.frames),
                f"{q.used_units}/{q.num_units}",
                f"{q.entropy_bits:.2f}/{q.max_entropy_bits:.2f}",
                "-" if q.num_phones is None else str(q.num_phones),
                _fmt(q.phone_purity),
                _fmt(q.cluster_purity),
                _fmt(q.pnmi),
            ]
        )
        if not q.has_phones:
            notes.append(f"{name} {split}: usage and entropy only; phone purity, cluster purity and PNMI need phone alignments")
        elif q.labels_without_alignment or q.alignment_without_labels:
            notes.append(
                f"{name} {split}: compared {q.cuts} cuts; {q.labels_without_alignment} labelled cuts without "
                f"a phone alignment, {q.alignment_without_labels} aligned cuts without labels"
            )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
        for r in table
    ]
    return "\n".join(lines + notes + compare_pnmi(rows))


def compare_pnmi(rows: Sequence[tuple[str, str, LabelQuality]]) -> list[str]:
    """With several label folders, one line per later folder and split that both have with phone
    alignments: its PNMI against the first folder's (e.g. iteration-2 units against MFCC units)."""
    names = list(dict.fromkeys(name for name, _, _ in rows))
    if len(names) < 2:
        return []
    base = {split: q.pnmi for name, split, q in rows if name == names[0] and q.pnmi is not None}
    out = []
    for name, split, q in rows:
        if name == names[0] or q.pnmi is None or split not in base:
            continue
        diff = q.pnmi - base[split]
        verdict = "higher" if diff > 0 else ("lower" if diff < 0 else "equal")
        out.append(f"PNMI {split}: {name} {q.pnmi:.3f} vs {names[0]} {base[split]:.3f} ({diff:+.3f}, {verdict})")
    return out
