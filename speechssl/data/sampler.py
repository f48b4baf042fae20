"""Length-bucketed, seedable, resumable batch sampling over a CutSet (lhotse's
``DynamicBucketingSampler``): each batch holds at most ``max_duration`` seconds of audio, cuts of
similar length are batched together, and the stream is sharded across distributed ranks.

Resuming: save ``sampler.state_dict()`` in the checkpoint together with the model; a new sampler
built the same way and given ``load_state_dict(state)`` continues with exactly the batches the
uninterrupted run would have produced.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler


@dataclass
class SamplerConfig:
    """Batching of a training or extraction run."""

    max_duration: float = 200.0  # seconds of audio per batch (on each rank); fairseq's max_tokens / 16000
    num_buckets: int = 10  # length buckets; cuts in a batch come from one bucket
    shuffle: bool = True  # shuffle within buckets and the bucket order (seeded)
    drop_last: bool = False  # drop each bucket's last, partial batch
    seed: int = 0  # shuffling seed; with set_epoch(e) the order changes per epoch
    max_cuts: Optional[int] = None  # optional cap on the number of cuts per batch
    buffer_size: int = 20000  # cuts held in memory to fill the buckets (lazy manifests)

    def __post_init__(self):
        if self.max_duration <= 0:
            raise ValueError(f"max_duration must be > 0 seconds, found {self.max_duration}")
        if self.num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, found {self.num_buckets}")


def make_sampler(
    cuts: CutSet,
    cfg: SamplerConfig,
    *,
    world_size: int | None = None,
    rank: int | None = None,
) -> DynamicBucketingSampler | SimpleCutSampler:
    """A bucketing sampler for ``cuts`` (a plain one where only one bucket fits). ``world_size``/``rank`` default to torch.distributed's
    when it is initialised, else a single process."""
    with warnings.catch_warnings():
        # lhotse warns that an in-memory CutSet gains nothing from dynamic bucketing; it is still correct
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        return _dynamic_sampler(cuts, cfg, world_size, rank)


def _dynamic_sampler(cuts: CutSet, cfg: SamplerConfig, world_size: int | None, rank: int | None):
    num_buckets = cfg.num_buckets
    if not cuts.is_lazy:  # a small in-memory set cannot fill more buckets than it has cuts
        num_buckets = max(1, min(num_buckets, len(cuts)))
    if num_buckets == 1:  # lhotse's bucketing needs two buckets; one bucket is plain sampling
        return SimpleCutSampler(
            cuts, max_duration=cfg.max_duration, max_cuts=cfg.max_cuts, shuffle=cfg.shuffle, drop_last=cfg.drop_last,
            seed=cfg.seed, world_size=world_size, rank=rank,
        )
    return DynamicBucketingSampler(
        cuts,
        max_duration=cfg.max_duration,
        max_cuts=cfg.max_cuts,
        num_buckets=num_buckets,
        shuffle=cfg.shuffle,
        drop_last=cfg.drop_last,
        seed=cfg.seed,
        buffer_size=cfg.buffer_size,
        world_size=world_size,
        rank=rank,
    )


class EpochStream(torch.utils.data.Sampler):
    """The training stream, epoch after epoch, starting at ``epoch`` after its first ``skip`` items
    (on resume only cut metadata is walked over; no audio is read). ``samplers`` are this process's
    virtual ranks (one per accumulation micro-batch), iterated in lockstep: item ``g * A + j`` is
    batch ``g`` of sampler ``j``. Yields ``(epoch, index, cuts)`` so that the dataset, even in a
    worker process, knows the epoch."""

    def __init__(self, samplers: list, epoch: int, skip: int):
        self.samplers, self.epoch, self.skip = samplers, epoch, skip

    def __iter__(self):
        epoch, skip = self.epoch, self.skip
        while True:
            for sampler in self.samplers:
                sampler.set_epoch(epoch)
            index = 0
            for group in zip(*self.samplers):
                for cuts in group:
                    if index >= skip:
                        yield epoch, index, cuts
                    index += 1
            if index == 0:
                raise ValueError("the sampler gave no batch (is max_duration smaller than every cut?)")
            epoch, skip = epoch + 1, 0
