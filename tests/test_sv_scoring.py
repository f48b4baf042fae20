"""Speaker verification scoring: trial lists, cosine / AS-norm scores, EER, minDCF, DET plot, score files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from speechssl.downstream.sv import scoring
from speechssl.downstream.sv.scoring import (
    Trial,
    as_norm,
    compute_eer,
    compute_min_dcf,
    cosine_scores,
    error_curve,
    plot_det,
    read_scores,
    read_trials,
    sv_metrics,
    write_scores,
)

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _gaussian_trials(seed: int, targets: int, nontargets: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(1.0, 1.0, targets), rng.normal(0.0, 1.0, nontargets)])
    if decimals is not None:  # coarse scores: many ties, within and across the classes
        scores = np.round(scores, decimals)
    labels = np.concatenate([np.ones(targets, dtype=int), np.zeros(nontargets, dtype=int)])
    order = rng.permutation(scores.size)
    return scores[order], labels[order]


def _sklearn_eer(scores: np.ndarray, labels: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return brentq(lambda x: 1.0 - x - np.interp(x, fpr, tpr), 0.0, 1.0)


# The reference reads the ROC curve (fpr, tpr) as straight segments between scikit-learn's points and
# finds x with 1 - x = tpr(x); compute_eer reads the same points as (fpr, fnr = 1 - tpr) segments and
# finds fnr = fpr. Both are the same polyline, so they agree on every segment kind:
# - a run of target scores is a vertical ROC segment (fpr constant): the reference's f(x) jumps across
#   0 at that fpr (np.interp is ambiguous at a repeated x, but brentq only needs the sign change) and
#   compute_eer returns that same fpr;
# - tied target and non-target scores are ONE roc_curve point (scikit-learn groups equal scores), so
#   the segment to it is diagonal in both, and both interpolate linearly along it. Ties are therefore no
#   definitional difference here (they would be for a step-function EER that sorts tied trials in some
#   order), and the tie-heavy sets below are a meaningful comparison;
# - roc_curve's default drop_intermediate=True only drops points inside straight runs, which leaves
#   the polyline unchanged.
@pytest.mark.parametrize(
    "seed,targets,nontargets,decimals",
    [
        (0, 300, 900, None),  # overlapping Gaussians
        (1, 1000, 1000, None),
        (2, 50, 2000, None),  # few targets, imbalanced
        (3, 400, 400, 1),  # heavy ties across the classes
        (4, 100, 300, 0),  # a handful of distinct scores only
        (5, 3, 4, None),  # few trials
        (6, 2, 1, None),
        (7, 5, 5, 0),
    ],
)
def test_eer_matches_sklearn_roc_eer(seed, targets, nontargets, decimals):
    scores, labels = _gaussian_trials(seed, targets, nontargets, decimals)
    eer, threshold = compute_eer(scores, labels)
    assert eer == pytest.approx(_sklearn_eer(scores, labels), abs=1e-6)
    assert 0.0 <= eer <= 1.0 and math.isfinite(threshold)
    assert scores.min() <= threshold <= np.nextafter(scores.max(), np.inf)


def test_eer_perfect_separation_and_perfect_reversal():
    assert compute_eer([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0]) == (0.0, 0.8)  # accept >= 0.8: no error
    eer, threshold = compute_eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert eer == 1.0 and math.isfinite(threshold)


def test_eer_and_min_dcf_hand_case():
    # descending: 4 T, 3 T, 2 N, 1 T, 0 N, -1 N. (fpr, fnr) at each threshold (accept score >= thr):
    # reject all (0, 1); 4: (0, 2/3); 3: (0, 1/3); 2: (1/3, 1/3); 1: (1/3, 0); 0: (2/3, 0); -1: (1, 0).
    # fnr - fpr reaches exactly 0 at threshold 2, so the EER is 1/3 there.
    scores = [4, 3, 2, 1, 0, -1]
    labels = [1, 1, 0, 1, 0, 0]
    eer, threshold = compute_eer(scores, labels)
    assert eer == pytest.approx(1 / 3) and threshold == 2.0
    # p_target 0.01: cost / 0.01 = fnr + 99 fpr, smallest at threshold 3 (fnr 1/3, fpr 0)
    dcf, threshold = compute_min_dcf(scores, labels, p_target=0.01)
    assert dcf == pytest.approx(1 / 3) and threshold == 3.0
    # p_target 0.5: cost / 0.5 = fnr + fpr = 1/3 at thresholds 3 and 1; the higher threshold wins a tie
    dcf, threshold = compute_min_dcf(scores, labels, p_target=0.5)
    assert dcf == pytest.approx(1 / 3) and threshold == 3.0
    # a cost of 10 for a miss at p_target 0.5: min(10 fnr + fpr) / 1, best accepting >= 1: fpr 1/3
    dcf, threshold = compute_min_dcf(scores, labels, p_target=0.5, c_miss=10.0)
    assert dcf == pytest.approx(1 / 3) and threshold == 1.0


def test_eer_hand_case_interpolated_on_a_tie():
    # 2 T, then 1 T tied with 1 N, then 0 N: points (0, 1), (0, 1/2), (1/2, 0), (1, 0). The crossing is
    # halfway along the diagonal segment from (0, 1/2) at threshold 2 to (1/2, 0) at threshold 1.
    eer, threshold = compute_eer([2, 1, 1, 0], [1, 1, 0, 0])
    assert eer == pytest.approx(0.25) and threshold == pytest.approx(1.5)


def _brute_min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0) -> float:
    targets = [s for s, y in zip(scores, labels) if y == 1]
    nontargets = [s for s, y in zip(scores, labels) if y == 0]
    best = math.inf
    for threshold in sorted(set(scores)) + [math.inf]:  # the lowest accepts all, inf rejects all
        p_miss = sum(s < threshold for s in targets) / len(targets)
        p_fa = sum(s >= threshold for s in nontargets) / len(nontargets)
        best = min(best, c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target))
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


@pytest.mark.parametrize("seed,targets,nontargets,decimals", [(10, 60, 240, None), (11, 80, 80, 1), (12, 5, 40, None), (13, 3, 3, 0)])
@pytest.mark.parametrize("p_target", [0.01, 0.05])
def test_min_dcf_matches_brute_force(seed, targets, nontargets, decimals, p_target):
    scores, labels = _gaussian_trials(seed, targets, nontargets, decimals)
    dcf, threshold = compute_min_dcf(scores, labels, p_target)
    assert dcf == pytest.approx(_brute_min_dcf(scores.tolist(), labels.tolist(), p_target), abs=1e-12)
    assert math.isfinite(threshold)
    # the returned threshold achieves the returned cost
    accept = scores >= threshold
    p_miss = np.mean(~accept[labels == 1])
    p_fa = np.mean(accept[labels == 0])
    assert (p_miss * p_target + p_fa * (1 - p_target)) / min(p_target, 1 - p_target) == pytest.approx(dcf)


def test_error_curve_endpoints():
    scores, labels = _gaussian_trials(20, 30, 50)
    curve = error_curve(scores, labels)
    assert (curve.fpr[0], curve.fnr[0]) == (0.0, 1.0)
    assert (curve.fpr[-1], curve.fnr[-1]) == (1.0, 0.0)
    assert np.all(np.isfinite(curve.thresholds)) and np.all(np.diff(curve.thresholds) < 0)
    assert curve.thresholds[0] > scores.max() and curve.thresholds[-1] == scores.min()
    assert np.all(np.diff(curve.fpr) >= 0) and np.all(np.diff(curve.fnr) <= 0)


def test_sv_metrics_and_to_dict():
    scores, labels = _gaussian_trials(21, 100, 400)
    m = sv_metrics(scores, labels)
    assert (m.trials, m.targets, m.nontargets) == (500, 100, 400)
    assert (m.eer, m.eer_threshold) == compute_eer(scores, labels)
    assert set(m.min_dcf) == {0.01, 0.05}
    assert m.min_dcf[0.05] == compute_min_dcf(scores, labels, 0.05)[0]
    d = json.loads(json.dumps(m.to_dict()))
    assert d["min_dcf"]["0.01"] == m.min_dcf[0.01] and d["eer"] == m.eer


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0, 0]])
def test_metrics_need_both_classes(labels):
    scores = [0.3, 0.2, 0.1]
    for fn in (compute_eer, sv_metrics, error_curve, lambda s, y: compute_min_dcf(s, y, 0.01)):
        with pytest.raises(ValueError, match="both target and non-target"):
            fn(scores, labels)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="one length"):
        compute_eer([0.1, 0.2], [1, 0, 1])
    with pytest.raises(ValueError, match="labels 1"):
        compute_eer([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        compute_eer([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf([0.1, 0.2], [1, 0], p_target=1.0)


# ------------------------------------------------------------------------------------------ trials


def test_read_trials_cut_ids_and_voxceleb_paths(tmp_path):
    path = tmp_path / "trials.txt"
    path.write_text(
        "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
        "\n"
        "0\tid10270-5r0dWxy17C8-00001   id10300-ize_eiCFEg0-00003\n"
        "1 spk002_es_00002 spk002_es_00007\n"
    )
    assert read_trials(path) == [
        Trial(1, "id10270-x6uYqmx31kE-00001", "id10270-8jEAjG6SegY-00008"),
        Trial(0, "id10270-5r0dWxy17C8-00001", "id10300-ize_eiCFEg0-00003"),
        Trial(1, "spk002_es_00002", "spk002_es_00007"),
    ]


def test_read_trials_one_class_is_allowed(tmp_path):
    path = tmp_path / "trials.txt"
    path.write_text("1 a b\n1 a c\n")
    assert [t.label for t in read_trials(path)] == [1, 1]


@pytest.mark.parametrize(
    "text,match",
    [
        ("1 a b\n\n1 a\n", r"trials\.txt, line 3: expected 3 fields"),
        ("1 a b\n0 a b c\n", r"line 2: expected 3 fields"),
        ("1 a b\n2 a c\n", r"line 2: expected a trial label 1 \(target\) or 0 \(non-target\), found '2'"),
        ("target a b\n", r"line 1: .*found 'target'"),
        ("", "has no trials"),
        ("\n  \n", "has no trials"),
    ],
)
def test_read_trials_errors(tmp_path, text, match):
    path = tmp_path / "trials.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_trials(path)


def test_read_trials_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_trials(tmp_path / "nope.txt")


# ------------------------------------------------------------------------------------------ scores


def _embeddings(seed: int, n: int, dim: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"u{i}": rng.normal(size=dim) for i in range(n)}


def _trials(seed: int, ids: list[str], n: int) -> list[Trial]:
    rng = np.random.default_rng(seed)
    return [Trial(int(rng.integers(2)), *rng.choice(ids, 2, replace=False).tolist()) for _ in range(n)]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_cosine_scores_match_direct_computation():
    emb = _embeddings(30, 12, 8)
    trials = _trials(31, list(emb), 40)
    scores = cosine_scores(emb, trials)
    assert scores.dtype == np.float64 and scores.shape == (40,)
    np.testing.assert_allclose(scores, [_cos(emb[t.enroll], emb[t.test]) for t in trials], rtol=0, atol=1e-12)
    # torch tensors, float32 and (1, D), give the same scores
    as_torch = {k: torch.from_numpy(v).float()[None] for k, v in emb.items()}
    np.testing.assert_allclose(cosine_scores(as_torch, trials), scores, atol=1e-6)


def test_cosine_scores_missing_ids():
    emb = _embeddings(32, 3, 4)
    trials = [Trial(1, "u0", "u1"), Trial(0, "u0", "x9"), Trial(0, "x8", "u2")]
    with pytest.raises(ValueError, match=r"2 of the 5 utterances .* no embedding, e\.g\. 'x9'"):
        cosine_scores(emb, trials)


def _brute_as_norm(emb, trials, cohort, top_k) -> list[float]:
    def stats(u):
        cohort_scores = sorted((_cos(emb[u], c) for c in cohort), reverse=True)[:top_k]
        return float(np.mean(cohort_scores)), max(float(np.std(cohort_scores)), scoring.EPS)

    out = []
    for t in trials:
        s = _cos(emb[t.enroll], emb[t.test])
        (mu_e, sd_e), (mu_t, sd_t) = stats(t.enroll), stats(t.test)
        out.append(0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t))
    return out


@pytest.mark.parametrize("top_k", [1, 5, 20, 1000])  # 1000 > the cohort: clipped to all 20 rows
def test_as_norm_matches_brute_force(monkeypatch, top_k):
    monkeypatch.setattr(scoring, "_CHUNK", 4)  # several chunks of utterances against the cohort
    emb = _embeddings(40, 15, 6)
    trials = _trials(41, list(emb), 30)
    cohort = np.random.default_rng(42).normal(size=(20, 6)) * 3.0  # unnormalised: as_norm normalises it
    got = as_norm(emb, trials, cohort, top_k=top_k)
    np.testing.assert_allclose(got, _brute_as_norm(emb, trials, cohort, top_k), rtol=1e-9, atol=1e-9)
    if top_k == 1000:
        np.testing.assert_allclose(got, as_norm(emb, trials, cohort, top_k=20), rtol=1e-12)
        np.testing.assert_allclose(got, as_norm(emb, trials, torch.from_numpy(cohort), top_k=1000), rtol=1e-12)


def test_as_norm_bad_cohort():
    emb = _embeddings(43, 3, 4)
    with pytest.raises(ValueError, match=r"cohort of shape \(N >= 1, 4\), found \(5, 3\)"):
        as_norm(emb, [Trial(1, "u0", "u1")], np.ones((5, 3)))


# ------------------------------------------------------------------------------------ plot, files


def test_plot_det_writes_png_atomically(tmp_path):
    curves = {
        "baseline": error_curve(*_gaussian_trials(50, 200, 600)),
        "as-norm": error_curve(*_gaussian_trials(51, 200, 600)),
        "perfect": error_curve([0.9, 0.8, 0.1], [1, 1, 0]),  # EER 0: clipped to the axes
    }
    out = plot_det(curves, tmp_path / "plots" / "det.png", title="test DET")
    assert out == tmp_path / "plots" / "det.png"
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    assert [p.name for p in out.parent.iterdir()] == ["det.png"]  # no temp file left behind
    with pytest.raises(ValueError, match="at least one"):
        plot_det({}, tmp_path / "empty.png")


def test_write_read_scores_round_trip(tmp_path):
    trials = [Trial(1, "id10270-x6uYqmx31kE-00001", "id10270-8jEAjG6SegY-00008"), Trial(0, "a", "b"), Trial(1, "c", "d")]
    scores = np.array([0.1234567890123, -1e-17, 3.0])
    raw = np.array([0.5, -0.25, 1 / 3])
    path = tmp_path / "scores.txt"
    write_scores(path, trials, scores, extra={"cosine": raw})
    lines = path.read_text().splitlines()
    assert lines[0] == "# label enroll test score cosine"
    assert lines[2].split()[:3] == ["0", "a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.txt"]
    got_trials, columns = read_scores(path)
    assert got_trials == trials
    assert list(columns) == ["score", "cosine"]
    np.testing.assert_array_equal(columns["score"], scores)  # exact: floats are written by repr
    np.testing.assert_array_equal(columns["cosine"], raw)


def test_write_read_scores_errors(tmp_path):
    trials = [Trial(1, "a", "b")]
    with pytest.raises(ValueError, match="expected 1 values in column 'score'"):
        write_scores(tmp_path / "s.txt", trials, [0.1, 0.2])
    with pytest.raises(ValueError, match="'label'"):
        write_scores(tmp_path / "s.txt", trials, [0.1], extra={"label": np.zeros(1)})
    path = tmp_path / "bad.txt"
    path.write_text("# label enroll test score\n1 a b 0.5\n1 a b\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 3: expected 4 fields"):
        read_scores(path)
    path.write_text("1 a b 0.5\n")
    with pytest.raises(ValueError, match=r"line 1: expected a header"):
        read_scores(path)
