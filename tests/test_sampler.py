"""The bucketing sampler: duration bound, bucketing, seeds, rank sharding, resume."""

from __future__ import annotations

import numpy as np
import pytest
from lhotse import CutSet
from lhotse.testing.dummies import dummy_cut

from speechssl.config import ConfigError, apply_overrides
from speechssl.data.sampler import SamplerConfig, make_sampler

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases


@pytest.fixture(scope="module")
def cuts() -> CutSet:
    rng = np.random.default_rng(0)
    durations = rng.uniform(1.0, 12.0, size=300).round(2)
    return CutSet.from_cuts(dummy_cut(i, duration=float(d)) for i, d in enumerate(durations))


def batches(sampler) -> list[list[str]]:
    return [[c.id for c in b] for b in sampler]


def test_batches_respect_max_duration_and_cover_everything(cuts):
    sampler = make_sampler(cuts, SamplerConfig(max_duration=40.0, num_buckets=6, seed=1))
    seen = []
    for batch in sampler:
        assert sum(c.duration for c in batch) <= 40.0
        seen += [c.id for c in batch]
    assert sorted(seen) == sorted(cuts.ids)


def test_buckets_group_similar_lengths(cuts):
    durations = {c.id: c.duration for c in cuts}
    sampler = make_sampler(cuts, SamplerConfig(max_duration=60.0, num_buckets=8, seed=0))
    spreads = [np.ptp([durations[i] for i in b]) for b in batches(sampler) if len(b) > 1]
    # random batches of 1-12 s cuts spread over ~9 s; bucketed ones stay within about one bucket
    assert np.median(spreads) < 2.5


def test_seed_determinism_and_epochs(cuts):
    cfg = SamplerConfig(max_duration=30.0, seed=7)
    a, b = make_sampler(cuts, cfg), make_sampler(cuts, cfg)
    assert batches(a) == batches(b)
    c = make_sampler(cuts, apply_overrides(cfg, ["seed=8"]))
    assert batches(c) != batches(a)
    a.set_epoch(1)
    assert batches(a) != batches(b)


def test_ranks_get_disjoint_shards(cuts):
    cfg = SamplerConfig(max_duration=30.0, seed=3)
    shards = [set(i for b in batches(make_sampler(cuts, cfg, world_size=2, rank=r)) for i in b) for r in (0, 1)]
    assert not shards[0] & shards[1]
    assert len(shards[0] | shards[1]) >= len(cuts) * 0.9  # the tail may be dropped to keep ranks in step


def test_resume_equals_uninterrupted(cuts):
    cfg = SamplerConfig(max_duration=30.0, seed=5)
    full = make_sampler(cuts, cfg)
    full.set_epoch(2)
    expected = batches(full)

    first = make_sampler(cuts, cfg)
    first.set_epoch(2)
    it = iter(first)
    done = [[c.id for c in next(it)] for _ in range(7)]
    state = first.state_dict()

    resumed = make_sampler(cuts, cfg)
    resumed.load_state_dict(state)
    assert done + batches(resumed) == expected


def test_bad_config():
    with pytest.raises(ConfigError, match="max_duration must be > 0"):
        apply_overrides(SamplerConfig(), ["max_duration=0"])
