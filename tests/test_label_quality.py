"""Label quality: phone purity, cluster purity, PNMI and unit usage, and `speechssl label-quality`."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet, SupervisionSegment
from lhotse.supervision import AlignmentItem
from lhotse.testing.dummies import dummy_cut
from lhotse.utils import fastcopy

from speechssl.cli import label_quality as cli
from speechssl.data.manifest import cuts_path, load_cuts, save_cuts
from speechssl.data.mini.alignment import frame_phone_labels
from speechssl.features.spec import FeatureSpec
from speechssl.labels.files import write_labels
from speechssl.labels.quality import NoPhoneAlignments, label_quality, quality_from_counts, unit_usage
from speechssl.labels.store import LabelDir, SplitInfo, write_label_dir_meta

RATE = 50.0  # labels per second


# ---------------------------------------------------------------------------------------------
# helpers: label folders built from the mini corpus's own alignments


def phone_frames(cuts, rate: float = RATE) -> dict[str, list[str]]:
    """cut id -> one phone per frame (as many frames as a 1/rate frame grid fits in the cut)."""
    return {cut.id: frame_phone_labels(cut, 1.0 / rate, int(math.floor(cut.duration * rate))) for cut in cuts}


@pytest.fixture(scope="module")
def dev(mini_corpus):
    """(dev cuts, cut id -> frame phones, phone -> id over the dev split)."""
    cuts = load_cuts(cuts_path(mini_corpus, "dev"))
    frames = phone_frames(cuts)
    inventory = sorted({p for seq in frames.values() for p in seq})
    return cuts, frames, {p: i for i, p in enumerate(inventory)}


def phone_ids(frames: dict[str, list[str]], index: dict[str, int]) -> dict[str, np.ndarray]:
    return {cid: np.array([index[p] for p in seq], dtype=np.int64) for cid, seq in frames.items()}


def make_label_dir(path: Path, splits: dict[str, tuple[Path, dict[str, np.ndarray]]], num_units: int) -> Path:
    """A label folder with ``<split>.labels`` and ``labels.json`` (split -> (manifest, labels))."""
    path.mkdir(parents=True, exist_ok=True)
    infos = {}
    for split, (manifest, labels) in splits.items():
        write_labels(path / f"{split}.labels", labels)
        infos[split] = SplitInfo(manifest=str(manifest), cuts=len(labels), frames=int(sum(len(v) for v in labels.values())))
    write_label_dir_meta(
        LabelDir(
            path=path,
            num_units=num_units,
            frame_rate=RATE,
            feature=FeatureSpec(kind="mfcc", dim=39, frame_rate=RATE),
            kmeans="km.npy",
            kmeans_id="0" * 64,
            splits=infos,
        )
    )
    return path


def reference_metrics(frames: dict[str, list[str]], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Purities and PNMI straight from the definitions, with a Counter over (phone, unit) pairs and
    no scikit-learn: P(p,u) = n(p,u)/N, MI = sum P(p,u) log2(P(p,u) / (P(p) P(u)))."""
    pairs = Counter((p, int(u)) for cid in labels for p, u in zip(frames[cid], labels[cid]))
    n = sum(pairs.values())
    p_phone, p_unit = Counter(), Counter()
    for (p, u), c in pairs.items():
        p_phone[p] += c / n
        p_unit[u] += c / n
    mi = sum(c / n * math.log2((c / n) / (p_phone[p] * p_unit[u])) for (p, u), c in pairs.items())
    h_phone = -sum(q * math.log2(q) for q in p_phone.values())
    best_phone_per_unit = {u: max(c for (p2, u2), c in pairs.items() if u2 == u) for u in p_unit}
    best_unit_per_phone = {p: max(c for (p2, u2), c in pairs.items() if p2 == p) for p in p_phone}
    return {
        "frames": n,
        "phone_purity": sum(best_phone_per_unit.values()) / n,
        "cluster_purity": sum(best_unit_per_phone.values()) / n,
        "pnmi": mi / h_phone,
        "mutual_info_bits": mi,
        "phone_entropy_bits": h_phone,
    }


def noisy_labels(ids: dict[str, np.ndarray], num_units: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Phone ids mixed with noise: 60% of frames keep a unit tied to their phone, the rest are random."""
    rng = np.random.default_rng(seed)
    out = {}
    for cid, seq in ids.items():
        noise = rng.integers(0, num_units, size=len(seq))
        out[cid] = np.where(rng.random(len(seq)) < 0.6, (seq * 7) % num_units, noise).astype(np.int64)
    return out


# ---------------------------------------------------------------------------------------------
# the metrics


def test_labels_equal_to_phone_ids_are_perfect(dev):
    cuts, frames, index = dev
    labels = phone_ids(frames, index)
    q = label_quality(labels, cuts, frame_rate=RATE, num_units=len(index) + 5)
    assert q.phone_purity == pytest.approx(1.0) and q.cluster_purity == pytest.approx(1.0)
    assert q.pnmi == pytest.approx(1.0)
    assert q.num_phones == len(index) and q.used_units == len(index)
    assert q.frames == sum(len(v) for v in labels.values()) and q.cuts == len(cuts)
    assert q.labels_without_alignment == 0 and q.alignment_without_labels == 0
    # the unit distribution is the phone distribution, and k > used units
    assert q.entropy_bits == pytest.approx(q.phone_entropy_bits) and q.used_fraction < 1


def test_a_constant_label_carries_no_phone_information(dev):
    cuts, frames, index = dev
    labels = {cid: np.full(len(seq), 3, dtype=np.int64) for cid, seq in frames.items()}
    q = label_quality(labels, cuts, frame_rate=RATE, num_units=10)
    assert q.pnmi == pytest.approx(0.0, abs=1e-12) and q.mutual_info_bits == pytest.approx(0.0, abs=1e-12)
    assert q.used_units == 1 and q.used_fraction == pytest.approx(0.1) and q.entropy_bits == 0.0
    assert q.max_entropy_bits == pytest.approx(math.log2(10))
    # one unit holds every phone: each phone's frames all go to it; the unit's purity is the top phone's share
    top = Counter(p for seq in frames.values() for p in seq).most_common(1)[0][1]
    assert q.cluster_purity == pytest.approx(1.0)
    assert q.phone_purity == pytest.approx(top / q.frames) and q.phone_purity < 0.5


def test_renaming_units_changes_nothing(dev):
    cuts, frames, index = dev
    k = 50
    labels = noisy_labels(phone_ids(frames, index), k)
    perm = np.random.default_rng(1).permutation(k)
    assert (perm != np.arange(k)).any()
    a = label_quality(labels, cuts, frame_rate=RATE, num_units=k).as_dict()
    b = label_quality({cid: perm[u] for cid, u in labels.items()}, cuts, frame_rate=RATE, num_units=k).as_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-12), key
    assert 0.05 < a["pnmi"] < 0.95  # neither trivial case


def test_metrics_match_the_definitions_computed_by_hand(dev):
    cuts, frames, index = dev
    k = 40
    labels = noisy_labels(phone_ids(frames, index), k, seed=3)
    q = label_quality(labels, cuts, frame_rate=RATE, num_units=k)
    ref = reference_metrics(frames, labels)
    assert q.frames == ref["frames"]
    for key in ("phone_purity", "cluster_purity", "pnmi", "mutual_info_bits", "phone_entropy_bits"):
        assert getattr(q, key) == pytest.approx(ref[key], rel=1e-9), key


def test_merged_phones_lower_phone_purity_only(dev):
    cuts, frames, index = dev
    labels = {cid: seq // 2 for cid, seq in phone_ids(frames, index).items()}  # two phones per unit
    q = label_quality(labels, cuts, frame_rate=RATE, num_units=len(index))
    assert q.cluster_purity == pytest.approx(1.0)  # no phone is split over units
    assert q.phone_purity < 0.99 and q.pnmi < 0.99
    assert q.used_units == len({u for seq in labels.values() for u in seq.tolist()})
    ref = reference_metrics(frames, labels)
    assert q.phone_purity == pytest.approx(ref["phone_purity"]) and q.pnmi == pytest.approx(ref["pnmi"])


def aligned_cut(i: int, phones: list[tuple[str, float, float]], duration: float):
    cut = dummy_cut(i, duration=duration)
    items = [AlignmentItem(symbol=s, start=a, duration=b - a) for s, a, b in phones]
    cut.supervisions = [SupervisionSegment(f"sup{i}", cut.recording_id, 0.0, duration, alignment={"phone": items})]
    return cut


def test_small_contingency_worked_out_by_hand():
    # 10 frames at 10 frames/s; phone a covers frames 0-3, b frames 4-6, c frames 7-9
    cut = aligned_cut(0, [("a", 0.0, 0.4), ("b", 0.4, 0.7), ("c", 0.7, 1.0)], 1.0)
    units = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    # counts (rows a, b, c; columns units 0, 1): a [4, 0], b [1, 2], c [0, 3]
    q = label_quality({cut.id: units}, [cut], frame_rate=10.0, num_units=4)
    assert q.frames == 10 and q.num_phones == 3 and q.cuts == 1
    assert q.phone_purity == pytest.approx((4 + 3) / 10)  # unit 0: a has 4 of 5; unit 1: c has 3 of 5
    assert q.cluster_purity == pytest.approx((4 + 2 + 3) / 10)  # a -> 0 (4), b -> 1 (2), c -> 1 (3)
    # P(a,0)=.4, P(b,0)=.1, P(b,1)=.2, P(c,1)=.3; P(a)=.4, P(b)=P(c)=.3; P(0)=P(1)=.5
    # MI = .4*log2(2) + .1*log2(2/3) + .2*log2(4/3) + .3*log2(2) = 1.2 - .3*log2(3)
    mi = 1.2 - 0.3 * math.log2(3)
    h_phone = -(0.4 * math.log2(0.4) + 0.6 * math.log2(0.3))
    assert q.mutual_info_bits == pytest.approx(mi) and q.phone_entropy_bits == pytest.approx(h_phone)
    assert q.pnmi == pytest.approx(mi / h_phone) and q.pnmi == pytest.approx(0.461193, abs=1e-6)
    assert q.used_units == 2 and q.used_fraction == 0.5 and q.entropy_bits == pytest.approx(1.0)
    assert q.max_entropy_bits == pytest.approx(2.0)
    # the same from the count matrix directly (unit columns 2 and 3 unused)
    direct = quality_from_counts(np.array([[4, 0, 0, 0], [1, 2, 0, 0], [0, 3, 0, 0]]))
    assert direct.pnmi == pytest.approx(q.pnmi) and direct.phone_purity == pytest.approx(q.phone_purity)


def test_frames_beyond_the_alignment_are_silence_and_a_single_phone_has_no_pnmi():
    cut = aligned_cut(0, [("a", 0.0, 0.5)], 0.5)
    q = label_quality({cut.id: np.array([0, 0, 0, 0, 0, 1, 1])}, [cut], frame_rate=10.0, num_units=2)
    assert q.num_phones == 2 and q.pnmi == pytest.approx(1.0)  # frames 5, 6 are "sil" and unit 1
    single = label_quality({cut.id: np.array([0, 1, 0, 1, 1])}, [cut], frame_rate=10.0, num_units=2)
    assert single.num_phones == 1 and single.pnmi is None and single.phone_entropy_bits == 0.0
    # every unit is pure (one phone); the phone's best unit (1) holds 3 of its 5 frames
    assert single.phone_purity == pytest.approx(1.0) and single.cluster_purity == pytest.approx(0.6)


def test_cuts_missing_on_either_side_are_counted(dev):
    cuts, frames, index = dev
    labels = phone_ids(frames, index)
    ids = list(labels)
    partial = {cid: labels[cid] for cid in ids[1:]}  # the first aligned cut has no labels
    partial["not-in-manifest"] = np.array([0, 1, 2])
    q = label_quality(partial, cuts, frame_rate=RATE, num_units=len(index))
    assert q.labels_without_alignment == 1 and q.alignment_without_labels == 1 and q.cuts == len(ids) - 1
    assert q.pnmi == pytest.approx(1.0)
    with pytest.raises(ValueError, match="share no id"):
        label_quality({"x": np.array([0])}, cuts, frame_rate=RATE, num_units=2)
    with pytest.raises(ValueError, match=rf"cut {ids[0]}: unit 7 is outside 0..6"):
        label_quality({ids[0]: np.array([0, 7])}, cuts, frame_rate=RATE, num_units=7)


def test_no_alignments_leaves_usage_and_entropy():
    cut = dummy_cut(0, duration=1.0)  # a supervision without an alignment
    with pytest.raises(NoPhoneAlignments):
        label_quality({cut.id: np.array([0, 1])}, [cut], frame_rate=RATE, num_units=4)
    q = unit_usage({"a": np.array([0, 0, 1, 1]), "b": np.array([2, 3, 2, 3])}, num_units=8)
    assert q.frames == 8 and q.used_units == 4 and q.used_fraction == 0.5 and q.cuts == 2
    assert q.entropy_bits == pytest.approx(2.0) and q.max_entropy_bits == pytest.approx(3.0)
    assert q.pnmi is None and q.phone_purity is None and not q.has_phones
    assert json.loads(json.dumps(q.as_dict()))["pnmi"] is None


# ---------------------------------------------------------------------------------------------
# the CLI


@pytest.fixture(scope="module")
def label_dirs(mini_corpus, tmp_path_factory):
    """Two label folders over train and dev: perfect labels (units = phone ids) and merged phones."""
    root = tmp_path_factory.mktemp("labels")
    splits = {split: load_cuts(cuts_path(mini_corpus, split)) for split in ("train", "dev")}
    frames = {split: phone_frames(cuts) for split, cuts in splits.items()}
    inventory = sorted({p for fr in frames.values() for seq in fr.values() for p in seq})
    index = {p: i for i, p in enumerate(inventory)}
    k = len(index)
    perfect = make_label_dir(
        root / "perfect", {s: (cuts_path(mini_corpus, s), phone_ids(frames[s], index)) for s in splits}, k
    )
    merged = make_label_dir(
        root / "merged",
        {s: (cuts_path(mini_corpus, s), {c: u // 2 for c, u in phone_ids(frames[s], index).items()}) for s in splits},
        k,
    )
    return perfect, merged


def test_cli_prints_a_table(label_dirs, capsys):
    perfect, merged = label_dirs
    assert cli.main([str(perfect), str(merged)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].split()[:2] == ["labels", "split"] and "PNMI" in lines[0]
    compare = [line for line in lines if line.startswith("PNMI ")]
    lines = [line for line in lines if not line.startswith("PNMI ")]
    assert len(lines) == 1 + 4  # two folders x train, dev
    rows = [line.split() for line in lines[1:]]
    expected = [(str(perfect), "train"), (str(perfect), "dev"), (str(merged), "train"), (str(merged), "dev")]
    assert [(r[0], r[1]) for r in rows] == expected
    assert rows[0][-3:] == ["1.000", "1.000", "1.000"]  # phone purity, cluster purity, PNMI
    assert rows[2][-2] == "1.000" and float(rows[2][-1]) < 0.99
    assert len({len(line) for line in lines}) == 1  # aligned columns, the last one right-justified
    assert "cut" in captured.err  # the progress bar goes to stderr
    # the second folder's PNMI against the first's, per split
    assert [line.split()[1] for line in compare] == ["train:", "dev:"]
    assert all(line.endswith("lower)") and f"{float(rows[2][-1]):.3f} vs" in compare[0] for line in compare)


def test_cli_json_for_one_split(label_dirs, mini_corpus, capsys):
    perfect, _ = label_dirs
    assert cli.main([str(perfect), "--split", "dev", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert list(got) == [str(perfect)] and list(got[str(perfect)]) == ["dev"]
    d = got[str(perfect)]["dev"]
    for key in ("frames", "num_phones", "num_units", "used_units", "used_fraction", "entropy_bits", "max_entropy_bits",
                "phone_purity", "cluster_purity", "pnmi", "labels_without_alignment", "alignment_without_labels"):
        assert key in d, key
    assert d["pnmi"] == pytest.approx(1.0) and d["labels_without_alignment"] == 0
    assert d["cuts"] == len(load_cuts(cuts_path(mini_corpus, "dev")))
    # --cuts: a corpus folder picks the split's manifest; one manifest file needs --split when several splits are selected
    assert cli.main([str(perfect), "--split", "dev", "--cuts", str(mini_corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == got
    assert cli.main([str(perfect), "--cuts", str(cuts_path(mini_corpus, "dev"))]) == 1
    assert "choose the split it holds with --split" in capsys.readouterr().err


def test_cli_missing_label_folder_is_one_line_error(tmp_path, label_dirs, capsys):
    missing = tmp_path / "no_such_labels"
    assert cli.main([str(label_dirs[0]), str(missing)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("speechssl label-quality: error:") and str(missing) in err[0]
    assert captured.out == ""
    assert cli.main([str(label_dirs[0]), "--split", "eval"]) == 1
    assert "no labels for split 'eval'" in capsys.readouterr().err


def test_cli_without_alignments_reports_usage_only(mini_corpus, tmp_path, capsys):
    cuts = load_cuts(cuts_path(mini_corpus, "dev"))
    bare = CutSet.from_cuts(cut.map_supervisions(lambda s: fastcopy(s, alignment=None)) for cut in cuts)
    manifest = save_cuts(bare, tmp_path / "cuts_dev.jsonl.gz")
    labels = {cut.id: np.arange(int(cut.duration * RATE), dtype=np.int64) % 5 for cut in cuts}
    folder = make_label_dir(tmp_path / "bare_km8", {"dev": (manifest, labels)}, num_units=8)
    assert cli.main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "need phone alignments" in out
    row = out.splitlines()[1].split()
    assert row[3] == "5/8" and row[-3:] == ["-", "-", "-"]
    assert cli.main([str(folder), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)[str(folder)]["dev"]
    assert d["used_units"] == 5 and d["pnmi"] is None and d["phone_purity"] is None
    assert d["entropy_bits"] == pytest.approx(unit_usage(labels, 8).entropy_bits) and d["entropy_bits"] > 2.0
