"""Unit BPE: run-length de-duplication, the unit <-> character mapping, and sentencepiece BPE over units."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechssl.tokens.bpe import MAX_UNITS, UNIT_BASE, UnitBPE, dedup, text_to_units, units_to_text

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases

NUM_UNITS = 50


def dedup_reference(units: list[int]) -> tuple[list[int], list[int]]:
    """Plain Python run-length encoding."""
    out: list[int] = []
    durations: list[int] = []
    for u in units:
        if out and out[-1] == u:
            durations[-1] += 1
        else:
            out.append(u)
            durations.append(1)
    return out, durations


def structured_sequences(n: int, seed: int, *, units: int = NUM_UNITS) -> list[np.ndarray]:
    """Sequences built from a few recurring unit n-grams (what BPE should find), each unit repeated
    1-3 frames as units are at 50 Hz. Every unit 0..units-1 occurs in some n-gram."""
    rng = np.random.default_rng(0)  # the n-gram inventory is fixed; `seed` draws the sequences
    perm = rng.permutation(units)
    grams = [perm[i : i + 3] for i in range(0, units, 3)] + [rng.integers(0, units, rng.integers(2, 6)) for _ in range(20)]
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n):
        x = np.concatenate([grams[g] for g in rng.integers(0, len(grams), rng.integers(5, 30))])
        seqs.append(np.repeat(x, rng.integers(1, 4, x.size)))
    return seqs


@pytest.fixture(scope="module")
def train_seqs() -> list[np.ndarray]:
    return structured_sequences(300, seed=1)


@pytest.fixture(scope="module")
def bpe(tmp_path_factory, train_seqs) -> UnitBPE:
    return UnitBPE.train(train_seqs, 200, tmp_path_factory.mktemp("bpe") / "km50_bpe200")


# ---------------------------------------------------------------------------------------------
# dedup


@pytest.mark.parametrize(
    "units, expected, durations",
    [
        ([], [], []),
        ([7], [7], [1]),
        ([3, 3, 3, 3], [3], [4]),
        ([1, 1, 2, 3, 3, 3, 1], [1, 2, 3, 1], [2, 1, 3, 1]),
        ([0, 1, 0, 1], [0, 1, 0, 1], [1, 1, 1, 1]),
    ],
)
def test_dedup_examples(units, expected, durations):
    u, d = dedup(units)
    assert u.dtype == np.int64 and d.dtype == np.int64
    assert u.tolist() == expected and d.tolist() == durations


def test_dedup_matches_reference_and_inverts():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 4, rng.integers(1, 200))  # few units: many runs
        u, d = dedup(x)
        assert (u.tolist(), d.tolist()) == dedup_reference(x.tolist())
        np.testing.assert_array_equal(np.repeat(u, d), x)


def test_dedup_accepts_tensors_and_refuses_bad_input():
    u, d = dedup(torch.tensor([5, 5, 2], dtype=torch.int32))
    assert u.tolist() == [5, 2] and d.tolist() == [2, 1] and u.dtype == np.int64
    with pytest.raises(ValueError, match="1-D"):
        dedup(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="integer"):
        dedup([1.5, 2.0])


# ---------------------------------------------------------------------------------------------
# units <-> text


def test_units_text_round_trip():
    x = np.array([0, 1, 499, MAX_UNITS - 1, 0])
    text = units_to_text(x)
    assert len(text) == 5 and text[0] == chr(UNIT_BASE) and text[3] == "\u9fff"
    np.testing.assert_array_equal(text_to_units(text), x)
    assert units_to_text([]) == "" and text_to_units("").tolist() == []


def test_units_text_range_errors():
    with pytest.raises(ValueError, match=f"unit id {MAX_UNITS} "):
        units_to_text([1, MAX_UNITS])
    with pytest.raises(ValueError, match="unit id -3 "):
        units_to_text([-3])
    with pytest.raises(ValueError, match="'a'"):
        text_to_units(chr(UNIT_BASE) + "a")


# ---------------------------------------------------------------------------------------------
# UnitBPE


def test_round_trip_on_training_and_unseen_sequences(bpe, train_seqs):
    assert bpe.dedup and bpe.vocab_size == 200
    for x in train_seqs[:50] + structured_sequences(50, seed=2):
        np.testing.assert_array_equal(bpe.decode(bpe.encode(x)), dedup(x)[0])
    batch = structured_sequences(5, seed=3)
    assert bpe.encode_many(batch) == [bpe.encode(x) for x in batch]
    assert bpe.encode([]) == [] and bpe.decode([]).tolist() == []


def test_bpe_merges(bpe, train_seqs):
    x = train_seqs[0]
    pieces = bpe.pieces(x)
    assert any(" " in p for p in pieces)  # pieces of more than one unit
    assert " ".join(pieces) == " ".join(map(str, dedup(x)[0].tolist()))
    encoded = sum(len(bpe.encode(x)) for x in train_seqs)
    assert encoded < 0.6 * sum(len(dedup(x)[0]) for x in train_seqs)


def test_round_trip_without_dedup(tmp_path, train_seqs):
    bpe = UnitBPE.train(train_seqs, 200, tmp_path / "raw", dedup=False)
    assert not bpe.dedup
    for x in train_seqs[:20] + structured_sequences(20, seed=2):
        ids = bpe.encode(x)
        np.testing.assert_array_equal(bpe.decode(ids), x)
        assert len(ids) < len(x)
    assert not UnitBPE.load(tmp_path / "raw.model").dedup


def test_unseen_unit_is_an_error(tmp_path, bpe):
    x = structured_sequences(1, seed=2)[0]
    with pytest.raises(ValueError, match=r"\[77\]"):
        bpe.encode(np.append(x, 77))
    with pytest.raises(ValueError, match="out of range"):
        bpe.encode([MAX_UNITS])
    with pytest.raises(ValueError, match="not a unit piece"):
        bpe.decode([0])  # <unk>
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([bpe.vocab_size])
    # with num_units, a unit missing from the training data still has a piece
    seqs = [x % 40 for x in structured_sequences(100, seed=1)]
    full = UnitBPE.train(seqs, 100, tmp_path / "full", num_units=NUM_UNITS)
    assert full.decode(full.encode([45, 3, 49])).tolist() == [45, 3, 49]
    with pytest.raises(ValueError, match="out of range for num_units=50"):
        UnitBPE.train([[1, 2, 50]], 100, tmp_path / "bad", num_units=NUM_UNITS)


def test_vocab_size_limits(tmp_path, train_seqs):
    with pytest.raises(ValueError, match="at least 51"):
        UnitBPE.train(train_seqs, 40, tmp_path / "small")
    assert UnitBPE.train(train_seqs, 51, tmp_path / "min").vocab_size == 51  # one piece per unit + <unk>
    with pytest.raises(ValueError, match=r"too large for this data: BPE can build at most \d+"):
        UnitBPE.train(train_seqs[:20], 20000, tmp_path / "large")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["min.json", "min.model", "min.vocab"]


def test_files_and_load(tmp_path, train_seqs):
    prefix = tmp_path / "sub" / "bpe"
    bpe = UnitBPE.train(train_seqs, 120, prefix, max_sentences=200)
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["bpe.json", "bpe.model", "bpe.vocab"]
    meta = json.loads((tmp_path / "sub" / "bpe.json").read_text())
    assert meta["dedup"] is True and meta["vocab_size"] == 120 and meta["unit_base"] == 0x4E00
    assert meta["num_units_seen"] == NUM_UNITS and meta["num_sentences_used"] == 200
    assert len((tmp_path / "sub" / "bpe.vocab").read_text().splitlines()) == 120
    loaded = UnitBPE.load(tmp_path / "sub" / "bpe.model")
    test = structured_sequences(20, seed=2)
    assert loaded.encode_many(test) == bpe.encode_many(test)
    assert loaded.pieces(test[0]) == bpe.pieces(test[0])
    with pytest.raises(ValueError, match="dedup=True"):
        UnitBPE.load(tmp_path / "sub" / "bpe.model", dedup=False)
    with pytest.raises(FileNotFoundError):
        UnitBPE.load(tmp_path / "missing.model")


def test_training_is_deterministic(tmp_path, train_seqs):
    models = []
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        UnitBPE.train(train_seqs, 150, tmp_path / name, seed=seed, max_sentences=150, num_threads=1)
        models.append((tmp_path / f"{name}.model").read_bytes())
    assert models[0] == models[1]
    assert models[0] != models[2]  # the seed draws the sample of max_sentences utterances
