"""HuBERT span masking: mask statistics against independent references, padding, min_masks,
span structure, no-overlap spacing, short items, seeds, config validation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from speechssl.pretrain.masking import MaskingConfig, expected_masked_fraction, span_mask


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def runs(row: np.ndarray) -> list[tuple[int, int]]:
    """``(start, length)`` of each run of True in a 1-D bool array."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.diff(padded)  # +1 where a run starts, -1 one past where it ends
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist()))


def numpy_reference_fraction(cfg: MaskingConfig, length: int, draws: int, seed: int) -> np.ndarray:
    """Masked fraction per draw of a plain numpy re-statement of fairseq's overlapping mode:
    probabilistic rounding of the span count, distinct uniform starts, spans of mask_length."""
    rng = np.random.default_rng(seed)
    fractions = np.empty(draws)
    for k in range(draws):
        n = max(cfg.min_masks, int(cfg.mask_prob * length / cfg.mask_length + rng.random()))
        starts = rng.choice(length - cfg.mask_length + 1, n, replace=False)
        mask = np.zeros(length, dtype=bool)
        for s in starts:
            mask[s : s + cfg.mask_length] = True
        fractions[k] = mask.mean()
    return fractions


def test_masked_fraction_matches_numpy_reference_and_exact_expectation():
    cfg = MaskingConfig(mask_prob=0.8, mask_length=10, min_masks=2)
    length, draws = 500, 4000
    ours = span_mask(torch.full((draws,), length), length, cfg, gen(0)).double().mean(dim=1).numpy()
    ref = numpy_reference_fraction(cfg, length, draws, seed=1)
    se = math.sqrt(ours.var() / draws + ref.var() / draws)
    assert se < 0.001  # the band below is tight
    assert abs(ours.mean() - ref.mean()) < 4 * se
    exact = expected_masked_fraction(cfg, length)
    assert abs(ours.mean() - exact) < 4 * math.sqrt(ours.var() / draws)
    # overlapping spans: far fewer frames than mask_prob, about 1 - exp(-mask_prob) of them
    assert 0.54 < exact < 0.60


def test_expected_fraction_equals_enumeration_of_every_start_set():
    cfg = MaskingConfig(mask_prob=0.5, mask_length=4, min_masks=0)
    length = 15
    count = cfg.mask_prob * length / cfg.mask_length  # 1.875: 1 span w.p. 0.125, 2 spans w.p. 0.875
    total = 0.0
    for n, p in ((1, 1 - (count - 1)), (2, count - 1)):
        subsets = list(itertools.combinations(range(length - cfg.mask_length + 1), n))
        covered = [len({s + i for s in sub for i in range(cfg.mask_length)}) for sub in subsets]
        total += p * np.mean(covered) / length
    assert expected_masked_fraction(cfg, length) == pytest.approx(total, rel=1e-12)


def test_padding_is_never_masked():
    lengths = torch.tensor([500, 37, 3, 0, 250, 10, 9])
    valid = torch.arange(500)[None, :] < lengths[:, None]
    for no_overlap in (False, True):
        cfg = MaskingConfig(no_overlap=no_overlap)
        for seed in range(20):
            mask = span_mask(lengths, 500, cfg, gen(seed))
            assert mask.shape == (7, 500) and mask.dtype == torch.bool and mask.device.type == "cpu"
            assert not (mask & ~valid).any()
            assert mask[0].any() and mask[4].any()


def test_lengths_on_other_dtypes_are_accepted_and_wrong_lengths_rejected():
    cfg = MaskingConfig()
    a = span_mask(torch.tensor([40, 20], dtype=torch.int32), 40, cfg, gen(3))
    b = span_mask(torch.tensor([40, 20]), 40, cfg, gen(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="max_len=40"):
        span_mask(torch.tensor([41]), 40, cfg, gen(0))
    with pytest.raises(ValueError, match=r"found min -1"):
        span_mask(torch.tensor([-1, 3]), 40, cfg, gen(0))
    with pytest.raises(ValueError, match="1-D"):
        span_mask(torch.tensor([[4]]), 40, cfg, gen(0))
    with pytest.raises(ValueError, match="integers"):
        span_mask(torch.tensor([4.0]), 40, cfg, gen(0))


def test_min_masks_is_honoured():
    lengths = torch.full((200,), 100)
    # no_overlap: exactly min_masks separate spans when mask_prob asks for none
    cfg = MaskingConfig(mask_prob=0.0, mask_length=5, min_masks=3, no_overlap=True)
    mask = span_mask(lengths, 100, cfg, gen(0)).numpy()
    for row in mask:
        assert [n for _, n in runs(row)] == [5, 5, 5]
    # overlapping: between one span (all overlap) and three spans of frames, and three on average
    cfg = MaskingConfig(mask_prob=0.0, mask_length=5, min_masks=3)
    counts = span_mask(lengths, 100, cfg, gen(1)).sum(dim=1)
    assert counts.min() >= 5 and counts.max() <= 15
    assert counts.double().mean() > 13.5  # overlaps of 3 starts among 96 are rare
    # nothing at all when neither asks for a span
    cfg = MaskingConfig(mask_prob=0.0, min_masks=0)
    assert not span_mask(lengths, 100, cfg, gen(2)).any()


def test_same_seed_same_mask_different_seed_different_mask():
    lengths = torch.tensor([500, 320, 77])
    for no_overlap in (False, True):
        cfg = MaskingConfig(no_overlap=no_overlap)
        a = span_mask(lengths, 500, cfg, gen(7))
        b = span_mask(lengths, 500, cfg, gen(7))
        c = span_mask(lengths, 500, cfg, gen(8))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_overlapping_runs_are_unions_of_whole_spans():
    cfg = MaskingConfig(mask_prob=0.8, mask_length=10)
    lengths = torch.tensor([500, 300, 123, 10, 11])
    mask = span_mask(lengths, 500, cfg, gen(4)).numpy()
    for row, length in zip(mask, lengths.tolist()):
        found = runs(row)
        assert found
        assert all(n >= cfg.mask_length for _, n in found)
        assert all(s + n <= length for s, n in found)


@pytest.mark.parametrize("min_space", [0, 1, 3])
def test_no_overlap_spans_keep_their_spacing(min_space):
    cfg = MaskingConfig(mask_prob=0.8, mask_length=10, no_overlap=True, min_space=min_space)
    mask = span_mask(torch.full((64,), 500), 500, cfg, gen(min_space)).numpy()
    for row in mask:
        found = runs(row)
        if min_space == 0:  # spans may touch: runs are whole numbers of spans
            assert all(n % cfg.mask_length == 0 for _, n in found)
        else:
            assert all(n == cfg.mask_length for _, n in found)
            gaps = [s2 - (s1 + n1) for (s1, n1), (s2, _) in zip(found, found[1:])]
            assert min(gaps) >= min_space


def test_no_overlap_placement_matches_exact_sequential_reference():
    # two spans of 10 in 30 frames, 1 frame apart: the first start is uniform over 21 positions, the
    # second uniform over the starts left free (none when the first lands at 10)
    length, span, space = 30, 10, 1
    cfg = MaskingConfig(mask_prob=0.0, mask_length=span, min_masks=2, no_overlap=True, min_space=space)
    exact = np.zeros(length)
    firsts = range(length - span + 1)
    for a in firsts:
        free = [b for b in range(length - span + 1) if b + span + space <= a or b >= a + span + space]
        exact[a : a + span] += 1 / len(firsts)
        for b in free:
            exact[b : b + span] += 1 / len(firsts) / len(free)
    draws = 20000
    freq = span_mask(torch.full((draws,), length), length, cfg, gen(9)).double().mean(dim=0).numpy()
    assert np.abs(freq - exact).max() < 5 * math.sqrt(0.25 / draws)


def test_no_overlap_coverage_is_mask_prob_when_spans_fit():
    # 0.25 * 500 / 10 = 12.5 spans: 12 or 13 of 10 frames, always room for them with min_space 1
    cfg = MaskingConfig(mask_prob=0.25, mask_length=10, no_overlap=True, min_space=1)
    mask = span_mask(torch.full((2000,), 500), 500, cfg, gen(5))
    spans = mask.sum(dim=1) // cfg.mask_length
    assert set(spans.tolist()) == {12, 13}
    fraction = mask.double().mean(dim=1)
    assert abs(fraction.mean().item() - 0.25) < 4 * fraction.std().item() / math.sqrt(2000)


def test_no_overlap_stops_when_no_gap_can_take_a_span():
    # 10 spans of 10 frames with 1 frame between them need 109 frames; 100 can never hold them all
    cfg = MaskingConfig(mask_prob=1.0, mask_length=10, no_overlap=True, min_space=1)
    mask = span_mask(torch.full((200,), 100), 100, cfg, gen(6)).numpy()
    for row in mask:
        found = runs(row)
        assert 1 <= len(found) <= 9 and all(n == 10 for _, n in found)
        # the placement is maximal: no free stretch, min_space from its neighbours, fits a span
        # sentinels: the item's edges need no space around them
        bounds = [(-cfg.min_space, 0)] + found + [(100 + cfg.min_space, 0)]
        for (s1, n1), (s2, _) in zip(bounds, bounds[1:]):
            room = (s2 - cfg.min_space) - (s1 + n1 + cfg.min_space)  # frames a new span could use
            assert room < cfg.mask_length


@pytest.mark.parametrize("no_overlap", [False, True])
def test_short_items_do_not_raise(no_overlap):
    cfg = MaskingConfig(mask_length=10, min_masks=2, no_overlap=no_overlap)
    lengths = torch.tensor([0, 1, 4, 9, 10])
    for seed in range(10):
        mask = span_mask(lengths, 10, cfg, gen(seed))
        assert not mask[0].any()
        for row, length in zip(mask[1:], lengths[1:].tolist()):
            assert not row[length:].any()
            assert row[:length].all()  # min_masks asks for a span; the one that fits is the whole item
    assert span_mask(torch.zeros(0, dtype=torch.long), 0, cfg, gen(0)).shape == (0, 0)
    assert span_mask(torch.tensor([0, 0]), 0, cfg, gen(0)).shape == (2, 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("mask_prob", -0.1), ("mask_prob", 1.5), ("mask_length", 0), ("min_masks", -1), ("min_space", -2)],
)
def test_config_validation_names_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"{field} .*{value}"):
        MaskingConfig(**{field: value})


def test_expected_fraction_edge_cases():
    assert expected_masked_fraction(MaskingConfig(), 0) == 0.0
    assert expected_masked_fraction(MaskingConfig(min_masks=1), 5) == 1.0  # one span, the whole item
    assert expected_masked_fraction(MaskingConfig(mask_prob=0.0, min_masks=0), 100) == 0.0
    with pytest.raises(ValueError, match="overlapping mode"):
        expected_masked_fraction(MaskingConfig(no_overlap=True), 100)


@pytest.mark.gpu
def test_cuda_lengths_give_the_cpu_mask():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    lengths = torch.tensor([500, 120, 7])
    mask = span_mask(lengths.cuda(), 500, MaskingConfig(), gen(0))
    assert mask.device.type == "cpu"
    assert torch.equal(mask, span_mask(lengths, 500, MaskingConfig(), gen(0)))
