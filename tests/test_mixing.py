"""WavLM utterance mixing: disabled mixing, realised SNR, overlay placement and length, padding,
seeds, input left alone, silent items, dtypes, and noise overlays from a NoiseSource."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import CutSet, Recording, RecordingSet

from speechssl.data.audio import AudioError
from speechssl.data.manifest import save_cuts
from speechssl.pretrain.mixing import NOISE, MixingConfig, NoiseSource, mix_utterances, plan_mixing


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(lengths: list[int], seed: int = 0, scales: list[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded random waveforms ``(B, max(lengths))`` and their lengths."""
    g = gen(seed)
    lens = torch.tensor(lengths)
    wavs = torch.randn(len(lengths), max(lengths), generator=g) * 0.1
    if scales is not None:
        wavs = wavs * torch.tensor(scales)[:, None]
    wavs[torch.arange(wavs.shape[1])[None, :] >= lens[:, None]] = 0.0
    return wavs, lens


def energy(x: torch.Tensor) -> float:
    return x.double().square().mean().item()


def test_prob_zero_returns_the_input_unchanged():
    wavs, lens = batch([16000, 9000, 12000])
    out, mixed = mix_utterances(wavs, lens, MixingConfig(prob=0.0), gen(0))
    assert torch.equal(out, wavs) and out is not wavs
    assert mixed.dtype == torch.bool and not mixed.any()


def test_every_item_mixed_at_the_drawn_snr_inside_its_valid_part():
    cfg = MixingConfig(prob=1.0, max_fraction=0.5, snr_min=-5.0, snr_max=5.0)
    lengths = [16000, 9000, 12000, 4000, 15000]
    # very different loudness per item: the scaling, not the data, sets the ratio
    wavs, lens = batch(lengths, seed=1, scales=[1.0, 0.01, 3.0, 0.3, 1.0])
    original = wavs.clone()
    plan = plan_mixing(lens, cfg, gen(5))
    out, mixed = mix_utterances(wavs, lens, cfg, gen(5))
    assert torch.equal(wavs, original)  # input not modified
    assert mixed.all() and plan.mixed.all()
    assert not torch.equal(out, wavs)
    diff = out - wavs  # (B, S) the scaled overlay
    for i, length in enumerate(lengths):
        j, start, n, src = int(plan.source[i]), int(plan.dst_start[i]), int(plan.length[i]), int(plan.src_start[i])
        assert j != i and 0 <= j < len(lengths)
        assert 1 <= n <= math.floor(cfg.max_fraction * length)
        assert 0 <= start and start + n <= length
        assert 0 <= src and src + n <= lengths[j]  # from the other item's valid samples
        assert not diff[i, :start].any() and not diff[i, start + n :].any()
        overlay = diff[i, start : start + n]
        # the overlay is the source segment, scaled
        segment = wavs[j, src : src + n]
        scale = (overlay @ segment / (segment @ segment)).item()
        torch.testing.assert_close(overlay, scale * segment, atol=1e-6, rtol=1e-4)
        realised = 10 * math.log10(energy(wavs[i, :length]) / energy(overlay))
        assert abs(realised - plan.snr_db[i].item()) < 0.01
        assert cfg.snr_min <= plan.snr_db[i].item() <= cfg.snr_max


def test_padding_stays_zero_and_lengths_are_bounded():
    cfg = MixingConfig(prob=1.0, max_fraction=0.3)
    lengths = [16000, 3000, 800, 11000]
    wavs, lens = batch(lengths, seed=2)
    for seed in range(10):
        out, _ = mix_utterances(wavs, lens, cfg, gen(seed))
        pad = torch.arange(wavs.shape[1])[None, :] >= lens[:, None]
        assert not out[pad].any()
        plan = plan_mixing(lens, cfg, gen(seed))
        assert (plan.length <= torch.floor(cfg.max_fraction * lens)).all()
        assert (plan.length >= 1).all()


def test_plan_statistics_follow_the_config():
    cfg = MixingConfig(prob=0.2, max_fraction=0.5, snr_min=-2.0, snr_max=8.0)
    lens = torch.full((20000,), 1000)
    plan = plan_mixing(lens, cfg, gen(3))
    rate = plan.mixed.double().mean().item()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 20000)
    n = plan.length[plan.mixed].double()
    assert n.min() == 1 and n.max() == 500
    assert abs(n.mean().item() - 250.5) < 4 * n.std().item() / math.sqrt(len(n))
    snr = plan.snr_db[plan.mixed]
    assert abs(snr.mean().item() - 3.0) < 4 * snr.std().item() / math.sqrt(len(snr))
    assert not (plan.length[~plan.mixed]).any()


def test_overlay_is_cut_to_a_shorter_source():
    cfg = MixingConfig(prob=1.0, max_fraction=1.0)
    lens = torch.tensor([10000, 50])
    for seed in range(20):
        plan = plan_mixing(lens, cfg, gen(seed))
        assert plan.source[0] == 1 and plan.length[0] <= 50
        assert plan.src_start[0] + plan.length[0] <= 50


def test_seed_determinism():
    cfg = MixingConfig(prob=0.5)
    wavs, lens = batch([16000, 9000, 12000, 4000, 15000, 7000], seed=4)
    a, ma = mix_utterances(wavs, lens, cfg, gen(11))
    b, mb = mix_utterances(wavs, lens, cfg, gen(11))
    c, _ = mix_utterances(wavs, lens, cfg, gen(12))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.equal(a, c)


def test_single_item_without_noise_stays_clean_and_silence_is_skipped():
    wavs, lens = batch([8000])
    out, mixed = mix_utterances(wavs, lens, MixingConfig(prob=1.0), gen(0))
    assert torch.equal(out, wavs) and not mixed.any()
    # a silent primary has no SNR; a silent source segment has nothing to scale
    wavs, lens = batch([8000, 6000], seed=5)
    wavs[0] = 0.0
    out, mixed = mix_utterances(wavs, lens, MixingConfig(prob=1.0), gen(0))
    assert torch.equal(out, wavs) and not mixed.any() and torch.isfinite(out).all()


def test_empty_items_are_never_sources_or_mixed():
    wavs, lens = batch([8000, 6000, 1], seed=6)
    lens[2] = 0
    wavs[2] = 0.0
    for seed in range(20):
        plan = plan_mixing(lens, MixingConfig(prob=1.0), gen(seed))
        assert not plan.mixed[2] and (plan.source[:2] != 2).all()
        out, _ = mix_utterances(wavs, lens, MixingConfig(prob=1.0), gen(seed))
        assert not out[2].any()


def test_bfloat16_and_float64_keep_their_dtype():
    wavs, lens = batch([4000, 3000, 2000], seed=7)
    cfg = MixingConfig(prob=1.0)
    plan = plan_mixing(lens, cfg, gen(1))
    for dtype in (torch.bfloat16, torch.float64):
        x = wavs.to(dtype)
        out, mixed = mix_utterances(x, lens, cfg, gen(1))
        assert out.dtype == dtype and mixed.all()
        for i in range(3):  # outside the overlay the samples are untouched
            start, n = int(plan.dst_start[i]), int(plan.length[i])
            assert torch.equal(out[i, :start], x[i, :start]) and torch.equal(out[i, start + n :], x[i, start + n :])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prob": 1.5}, "prob"),
        ({"prob": -0.1}, "prob"),
        ({"max_fraction": 0.0}, "max_fraction"),
        ({"max_fraction": 1.2}, "max_fraction"),
        ({"snr_min": 6.0, "snr_max": 5.0}, "snr_min"),
        ({"snr_max": float("inf")}, "snr_max"),
        ({"noise_prob": 2.0}, "noise_prob"),
    ],
)
def test_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MixingConfig(**kwargs)


def test_bad_calls_are_rejected():
    wavs, lens = batch([4000, 3000])
    with pytest.raises(ValueError, match="NoiseSource"):
        mix_utterances(wavs, lens, MixingConfig(prob=0.5, noise_prob=0.5), gen(0))
    with pytest.raises(ValueError, match="lengths must have shape"):
        mix_utterances(wavs, lens[:1], MixingConfig(prob=0.5), gen(0))
    with pytest.raises(ValueError, match="lengths must lie"):
        mix_utterances(wavs, torch.tensor([4001, 3000]), MixingConfig(prob=0.5), gen(0))


# --- noise -------------------------------------------------------------------------------------


@pytest.fixture()
def noise_files(tmp_path) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    files = []
    for name, seconds in (("a.wav", 0.3), ("b.wav", 0.5)):
        data = (rng.standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
        path = tmp_path / name
        sf.write(path, data, 16000, subtype="FLOAT")
        files.append((str(path), data))
    return files


def noise_cuts(files) -> CutSet:
    recordings = RecordingSet.from_recordings(Recording.from_file(path) for path, _ in files)
    return CutSet.from_manifests(recordings=recordings)


def find_in(haystack: np.ndarray, needle: np.ndarray) -> int | None:
    """Offset where ``needle`` starts in ``haystack`` read cyclically, or None."""
    for off in np.flatnonzero(haystack == needle[0]):
        idx = (off + np.arange(len(needle))) % len(haystack)
        if np.array_equal(haystack[idx], needle):
            return int(off)
    return None


def test_noise_sample_lengths_tiling_and_slices(noise_files):
    source = NoiseSource(noise_cuts(noise_files))
    datas = [d for _, d in noise_files]
    seen, offsets = set(), set()
    for seed in range(12):
        long = source.sample(16000, gen(seed)).numpy()  # 1 s: longer than either file, so tiled
        assert long.shape == (16000,) and long.dtype == np.float32
        which = [k for k, d in enumerate(datas) if find_in(d, long[: len(d)]) is not None]
        assert len(which) == 1
        offsets.add(("long", find_in(datas[which[0]], long[: len(datas[which[0]])])))
        period = len(datas[which[0]])
        assert np.array_equal(long[period:], long[: 16000 - period])  # repeats the file
        seen.add(which[0])
        short = source.sample(1000, gen(100 + seed)).numpy()  # a plain slice of one file
        assert short.shape == (1000,)
        hits = [find_in(d, short) for d in datas]
        assert any(h is not None and h + 1000 <= len(d) for h, d in zip(hits, datas))
        offsets.add(("short", next(h for h in hits if h is not None)))
    assert seen == {0, 1}  # both files get used
    # random offsets, for tiled and for sliced reads
    assert len([o for o in offsets if o[0] == "long"]) > 6 and len([o for o in offsets if o[0] == "short"]) > 6
    a, b = source.sample(3000, gen(1)), source.sample(3000, gen(1))
    assert torch.equal(a, b)


def test_noise_from_manifest(noise_files, tmp_path):
    path = save_cuts(noise_cuts(noise_files), tmp_path / "cuts_noise.jsonl.gz")
    source = NoiseSource.from_manifest(path)
    assert len(source) == 2
    assert source.sample(100, gen(0)).shape == (100,)
    with pytest.raises(ValueError, match="at least one"):
        NoiseSource([])


def test_noise_overlay_on_a_single_utterance(noise_files):
    source = NoiseSource(noise_cuts(noise_files))
    cfg = MixingConfig(prob=1.0, noise_prob=1.0, max_fraction=0.5)
    wavs, lens = batch([12000], seed=8)
    plan = plan_mixing(lens, cfg, gen(2), with_noise=True)
    out, mixed = mix_utterances(wavs, lens, cfg, gen(2), noise=source)
    assert mixed.all() and plan.source[0] == NOISE
    start, n = int(plan.dst_start[0]), int(plan.length[0])
    diff = (out - wavs)[0]
    assert not diff[:start].any() and not diff[start + n :].any()
    overlay = diff[start : start + n].numpy()
    # the overlay is noise read (cyclically) from one of the files, times one scale
    found = []
    for _, d in noise_files:
        for off in range(len(d)):
            segment = d[(off + np.arange(n)) % len(d)]
            scale = overlay @ segment / (segment @ segment)
            if np.allclose(overlay, scale * segment, atol=1e-6, rtol=1e-4):
                found.append(off)
    assert len(found) == 1
    realised = 10 * math.log10(energy(wavs[0, :12000]) / energy(torch.from_numpy(overlay)))
    assert abs(realised - plan.snr_db[0].item()) < 0.01


def test_noise_mixes_only_its_share(noise_files):
    source = NoiseSource(noise_cuts(noise_files))
    cfg = MixingConfig(prob=1.0, noise_prob=0.5)
    lens = torch.full((400,), 2000)
    plan = plan_mixing(lens, cfg, gen(4), with_noise=True)
    share = (plan.source == NOISE).double().mean().item()
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / 400)
    wavs, lens = batch([2000] * 6, seed=9)
    out, mixed = mix_utterances(wavs, lens, cfg, gen(4), noise=source)
    assert mixed.all()


def test_corrupt_noise_file_is_named(noise_files):
    cuts = noise_cuts(noise_files[:1])
    path = noise_files[0][0]
    with open(path, "wb") as f:
        f.write(b"this is not audio" * 100)
    with pytest.raises(AudioError, match="a.wav"):
        NoiseSource(cuts).sample(100, gen(0))


@pytest.mark.gpu
def test_cuda_mixing_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    cfg = MixingConfig(prob=0.7)
    wavs, lens = batch([16000, 9000, 12000, 4000], seed=10)
    out_cpu, mixed_cpu = mix_utterances(wavs, lens, cfg, gen(3))
    out_gpu, mixed_gpu = mix_utterances(wavs.cuda(), lens.cuda(), cfg, gen(3))
    assert out_gpu.device.type == "cuda" and mixed_gpu.device.type == "cuda"
    assert torch.equal(mixed_gpu.cpu(), mixed_cpu)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-6, rtol=1e-5)
