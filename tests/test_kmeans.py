"""k-means pseudo-labels: the streamed frame sample, faiss fit quality, the safe model file, labelling
every split with one model, fairseq export with a checked dictionary, refusing foreign features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechssl.checkpoint import save_encoder
from speechssl.cli.main import main
from speechssl.data.fairseq import read_km
from speechssl.data.manifest import load_cuts
from speechssl.features.mfcc import mfcc_spec
from speechssl.features.spec import FeatureSpec
from speechssl.labels.assign import check_km_dict, label_corpus
from speechssl.labels.kmeans import FrameReservoir, KMeansConfig, KMeansModel, fit_kmeans, sample_frames
from speechssl.labels.store import read_label_dir
from speechssl.models import build_encoder, preset

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases


def _blobs(n: int, d: int, k: int, seed: int = 0, spread: float = 0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)).astype(np.float32) * 3
    which = rng.integers(0, k, n)
    return (centres[which] + spread * rng.normal(size=(n, d))).astype(np.float32), centres, which


class _ListSource:
    """A FrameSource over in-memory utterances."""

    def __init__(self, utts: dict[str, np.ndarray], spec: FeatureSpec, manifest: str = "mem", fail_after: int | None = None):
        self.utts, self.spec, self.manifest, self.skipped, self.fail_after = utts, spec, manifest, [], fail_after

    def estimated_frames(self) -> int:
        return sum(len(x) for x in self.utts.values())

    def __iter__(self):
        for i, (k, v) in enumerate(self.utts.items()):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("worker died")
            yield k, torch.from_numpy(v)


def test_reservoir_keeps_everything_below_capacity_and_respects_it():
    r = FrameReservoir(10, 1, seed=0)
    r.add(np.arange(4, dtype=np.float32)[:, None])
    r.add(np.arange(4, 7, dtype=np.float32)[:, None])
    np.testing.assert_array_equal(r.sample()[:, 0], np.arange(7))
    r.add(np.arange(7, 100, dtype=np.float32)[:, None])
    assert r.sample().shape == (10, 1) and r.seen == 100 and len(set(r.sample()[:, 0])) == 10


def test_reservoir_sample_is_uniform():
    # every frame of a 200-frame stream (given in uneven utterances) is kept with probability 20/200
    n, cap, trials = 200, 20, 3000
    hits = np.zeros(n)
    cuts = np.cumsum([0, 7, 30, 1, 50, 12, 100])
    for seed in range(trials):
        r = FrameReservoir(cap, 1, seed=seed)
        frames = np.arange(n, dtype=np.float32)[:, None]
        for a, b in zip(cuts[:-1], cuts[1:]):
            r.add(frames[a:b])
        hits[r.sample()[:, 0].astype(int)] += 1
    p = hits / trials
    assert abs(p.mean() - cap / n) < 1e-9  # exactly cap frames each time
    # binomial std of each frame's rate is sqrt(0.1 * 0.9 / 3000) = 0.0055: 5 sigma bounds
    assert np.all(np.abs(p - 0.1) < 0.0275), (p.min(), p.max())
    first, last = p[:100].mean(), p[100:].mean()  # no bias to the start or the end of the stream
    assert abs(first - last) < 0.01


def test_sample_frames_percent_and_cap():
    x, _, _ = _blobs(5000, 4, 5)
    utts = {f"u{i}": x[i * 100 : (i + 1) * 100] for i in range(50)}
    spec = FeatureSpec(kind="mfcc", dim=4, frame_rate=100.0)
    sample, seen = sample_frames(_ListSource(utts, spec), KMeansConfig(clusters=5, max_frames=1000, percent=10))
    assert seen == 5000 and sample.shape == (500, 4)
    sample, _ = sample_frames(_ListSource(utts, spec), KMeansConfig(clusters=5, max_frames=300, percent=10))
    assert sample.shape == (300, 4)
    again, _ = sample_frames(_ListSource(utts, spec), KMeansConfig(clusters=5, max_frames=300, percent=10))
    np.testing.assert_array_equal(sample, again)  # seeded


def test_fit_recovers_planted_clusters_and_matches_sklearn_quality():
    from sklearn.cluster import KMeans

    x, centres, which = _blobs(20000, 8, 25, seed=1)
    spec = FeatureSpec(kind="mfcc", dim=8, frame_rate=100.0)
    model = fit_kmeans(x, spec, KMeansConfig(clusters=25, seed=0))
    ours = model.inertia(torch.from_numpy(x))
    ref = KMeans(25, init="k-means++", n_init=3, random_state=0).fit(x)
    assert ours <= 1.01 * ref.inertia_, (ours, ref.inertia_)
    # every planted centre has a centroid next to it
    d = ((centres[:, None, :] - model.centroids.numpy()[None]) ** 2).sum(-1).min(1)
    assert np.all(d < 0.05), d
    from sklearn.metrics import normalized_mutual_info_score

    assert normalized_mutual_info_score(which, model.assign(torch.from_numpy(x)).numpy()) > 0.99
    again = fit_kmeans(x, spec, KMeansConfig(clusters=25, seed=0))
    torch.testing.assert_close(again.centroids, model.centroids)  # deterministic under a seed


def test_assign_equals_brute_force_and_inertia():
    x, _, _ = _blobs(3000, 5, 7, seed=2, spread=1.0)
    model = fit_kmeans(x, FeatureSpec(kind="mfcc", dim=5, frame_rate=100.0), KMeansConfig(clusters=7))
    c = model.centroids.numpy().astype(np.float64)
    d = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(model.assign(torch.from_numpy(x), chunk=1000).numpy(), d.argmin(1))
    assert model.inertia(torch.from_numpy(x)) == pytest.approx(d.min(1).sum(), rel=1e-5)
    with pytest.raises(ValueError, match=r"expected frames of shape \(N, 5\)"):
        model.assign(torch.zeros(3, 4))


def test_model_file_is_safe_small_and_round_trips(tmp_path):
    x, _, _ = _blobs(2000, 39, 10)
    model = fit_kmeans(x, mfcc_spec(), KMeansConfig(clusters=10, seed=3))
    path = model.save(tmp_path / "km.safetensors")
    back = KMeansModel.load(path)
    torch.testing.assert_close(back.centroids, model.centroids)
    assert back.spec == mfcc_spec() and back.model_id == model.model_id and back.config().seed == 3
    assert path.stat().st_size < 10 * 39 * 4 + 4096
    assert path.read_bytes()[:8] != b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46"  # not a torch pickle
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.safetensors"):
        KMeansModel.load(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        KMeansModel.load(tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="only 5 frames to fit 10 clusters"):
        fit_kmeans(x[:5], mfcc_spec(), KMeansConfig(clusters=10))


def test_features_of_another_layer_or_encoder_are_refused():
    layer6 = FeatureSpec(kind="layer", dim=4, frame_rate=50.0, layer=6, encoder="aaa", encoder_path="a.safetensors")
    model = KMeansModel(torch.zeros(3, 4), layer6)
    model.check_features(FeatureSpec(kind="layer", dim=4, frame_rate=50.0, layer=6, encoder="aaa", encoder_path="moved.pt"), "x")
    with pytest.raises(ValueError, match="layer differs: expected 6, found 9"):
        model.check_features(FeatureSpec(kind="layer", dim=4, frame_rate=50.0, layer=9, encoder="aaa"), "x")
    with pytest.raises(ValueError, match="encoder differs"):
        model.check_features(FeatureSpec(kind="layer", dim=4, frame_rate=50.0, layer=6, encoder="bbb"), "x")
    with pytest.raises(ValueError, match="kind differs"):
        model.check_features(FeatureSpec(kind="mfcc", dim=4, frame_rate=50.0), "x")


def test_label_corpus_one_model_for_all_splits_and_meta_written_last(tmp_path):
    spec = FeatureSpec(kind="mfcc", dim=3, frame_rate=100.0)
    x, _, _ = _blobs(600, 3, 4)
    utts = {"train": {f"t{i}": x[i * 50 : (i + 1) * 50] for i in range(8)}, "dev": {f"d{i}": x[400 + i * 50 : 450 + i * 50] for i in range(4)}}
    m1 = fit_kmeans(x, spec, KMeansConfig(clusters=4, seed=0))
    info = label_corpus(m1, {s: _ListSource(u, spec) for s, u in utts.items()}, tmp_path / "lab", model_path="m1")
    back = read_label_dir(tmp_path / "lab")
    assert back.splits["train"].cuts == 8 and back.splits["dev"].frames == 200 and back.kmeans_id == info.kmeans_id
    np.testing.assert_array_equal(back.read("dev")["d1"], m1.assign(torch.from_numpy(utts["dev"]["d1"])).numpy())
    # another model may not add a split to this folder
    m2 = fit_kmeans(x, spec, KMeansConfig(clusters=4, seed=1, init="random"))
    assert m2.model_id != m1.model_id
    with pytest.raises(ValueError, match="another k-means model"):
        label_corpus(m2, {"test": _ListSource(utts["dev"], spec)}, tmp_path / "lab")
    # a labelling that dies half way leaves no labels.json: the folder does not look complete
    with pytest.raises(RuntimeError):
        label_corpus(m1, {"dev": _ListSource(utts["dev"], spec, fail_after=2)}, tmp_path / "lab")
    with pytest.raises(FileNotFoundError, match="labels.json"):
        read_label_dir(tmp_path / "lab")
    assert not list((tmp_path / "lab").glob(".*partial*"))
    # features of the wrong kind are refused before anything is written
    other = FeatureSpec(kind="layer", dim=3, frame_rate=50.0, layer=1, encoder="e")
    with pytest.raises(ValueError, match="fitted on MFCC"):
        label_corpus(m1, {"dev": _ListSource(utts["dev"], other)}, tmp_path / "lab2")
    assert not (tmp_path / "lab2").exists()


def test_check_km_dict(tmp_path):
    (tmp_path / "a.km").write_text("0 1 2\n2 2\n")
    (tmp_path / "dict.km.txt").write_text("0 5\n1 0\n2 9\n")
    check_km_dict(tmp_path / "dict.km.txt", 3, [tmp_path / "a.km"])
    (tmp_path / "d2.txt").write_text("0 5\n2 9\n")
    with pytest.raises(ValueError, match="missing e.g. 1"):
        check_km_dict(tmp_path / "d2.txt", 3)
    (tmp_path / "b.km").write_text("0 1 3\n")
    with pytest.raises(ValueError, match="b.km:1: unit 3 is not in"):
        check_km_dict(tmp_path / "dict.km.txt", 3, [tmp_path / "b.km"])


def test_cli_fit_and_label_mfcc_streamed_with_fairseq_export(mini_corpus, tmp_path, capsys):
    km = tmp_path / "km.safetensors"
    assert main(["kmeans", "fit", "--kind", "mfcc", "-k", "20", str(mini_corpus), str(km), "-q"]) == 0
    out = capsys.readouterr().out
    assert "sampled" in out and "k=20" in out
    model = KMeansModel.load(km)
    assert model.spec.kind == "mfcc" and model.num_clusters == 20 and model.info["manifest"].endswith("cuts_train.jsonl.gz")
    assert main(["kmeans", "label", "--model", str(km), str(mini_corpus), str(tmp_path / "lab"), "--fairseq", "-q"]) == 0
    info = read_label_dir(tmp_path / "lab")
    assert list(info.splits) == ["train", "dev", "test"] and info.frame_rate == 100.0
    for split in info.splits:
        cuts = load_cuts(mini_corpus / f"cuts_{split}.jsonl.gz")
        labels = info.read(split)
        km_lines = read_km(tmp_path / "lab" / f"{split}.km")
        assert len(km_lines) == len(cuts)
        for cut, line in zip(cuts, km_lines):  # .km follows the manifest order
            np.testing.assert_array_equal(line, labels[cut.id])
            assert len(line) == 1 + (cut.num_samples - 400) // 160
    dict_lines = (tmp_path / "lab" / "dict.km.txt").read_text().splitlines()
    assert [line.split()[0] for line in dict_lines] == [str(u) for u in range(20)]
    assert sum(int(line.split()[1]) for line in dict_lines) == info.splits["train"].frames


def test_cli_layer_features_from_a_dump_and_a_moved_or_different_encoder(mini_corpus, tmp_path, capsys):
    torch.manual_seed(0)
    enc = build_encoder(preset("tiny_hubert"))
    save_encoder(enc, tmp_path / "enc.safetensors")
    dev = str(mini_corpus / "cuts_dev.jsonl.gz")
    feats = tmp_path / "feats"
    assert main(["features", "--encoder", str(tmp_path / "enc.safetensors"), "--layer", "2", dev, str(feats), "-q"]) == 0
    km = tmp_path / "km.safetensors"
    assert main(["kmeans", "fit", "-k", "8", "--split", "dev", str(feats), str(km), "-q"]) == 0
    model = KMeansModel.load(km)
    assert model.spec.kind == "layer" and model.spec.layer == 2 and model.spec.dim == 32
    # labels from the dump equal labels streamed from the audio (the model finds its encoder itself)
    assert main(["kmeans", "label", "--model", str(km), str(feats), str(tmp_path / "a"), "-q"]) == 0
    assert main(["kmeans", "label", "--model", str(km), dev, str(tmp_path / "b"), "-q"]) == 0
    a, b = read_label_dir(tmp_path / "a").read("dev"), read_label_dir(tmp_path / "b").read("dev")
    assert a.keys() == b.keys()
    agree = np.mean(np.concatenate([a[k] == b[k] for k in a]))
    assert agree > 0.999, agree
    # the encoder moved: --encoder finds it; other weights are refused with both identities named
    (tmp_path / "enc.safetensors").rename(tmp_path / "moved.safetensors")
    assert main(["kmeans", "label", "--model", str(km), dev, str(tmp_path / "c"), "-q"]) == 1
    assert "pass --encoder" in capsys.readouterr().err
    assert main(["kmeans", "label", "--model", str(km), "--encoder", str(tmp_path / "moved.safetensors"), dev, str(tmp_path / "c"), "-q"]) == 0
    torch.manual_seed(1)
    save_encoder(build_encoder(preset("tiny_hubert")), tmp_path / "other.safetensors")
    assert main(["kmeans", "label", "--model", str(km), "--encoder", str(tmp_path / "other.safetensors"), dev, str(tmp_path / "d"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "encoder differs" in err and "fitted on layer 2" in err
    # MFCC features may not be labelled with this model either
    assert main(["features", "--kind", "mfcc", dev, str(tmp_path / "mfcc"), "-q"]) == 0
    assert main(["kmeans", "label", "--model", str(km), str(tmp_path / "mfcc"), str(tmp_path / "e"), "-q"]) == 1
    assert "kind differs" in capsys.readouterr().err
    meta = json.loads((tmp_path / "a" / "labels.json").read_text())
    assert meta["feature"]["layer"] == 2 and meta["frame_rate"] == 50.0


@pytest.mark.gpu
def test_gpu_assign_equals_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    x, _, _ = _blobs(5000, 16, 10, seed=4, spread=0.5)
    model = fit_kmeans(x, FeatureSpec(kind="mfcc", dim=16, frame_rate=100.0), KMeansConfig(clusters=10))
    cpu = model.assign(torch.from_numpy(x))
    gpu = model.assign(torch.from_numpy(x).cuda())
    assert gpu.device.type == "cuda" and (gpu.cpu() == cpu).float().mean() > 0.999


def test_a_model_with_a_nonfinite_centroid_is_refused(mini_corpus, tmp_path, capsys):
    """One NaN centroid would label every frame with that unit into a complete-looking folder."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    x, _, _ = _blobs(2000, 39, 10)
    model = fit_kmeans(x, mfcc_spec(), KMeansConfig(clusters=10, seed=3))
    good = model.save(tmp_path / "good.safetensors")
    with safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
    centroids = model.centroids.clone()
    centroids[7, 3] = float("nan")
    save_file({"centroids": centroids}, str(tmp_path / "nan.safetensors"), metadata=meta)  # written around save()'s check
    with pytest.raises(ValueError, match=r"nan.safetensors: refused: 1 of 10 centroids hold NaN or infinite values \(units 7\)"):
        KMeansModel.load(tmp_path / "nan.safetensors")
    assert main(["kmeans", "label", "--model", str(tmp_path / "nan.safetensors"), str(mini_corpus), str(tmp_path / "lab"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "centroids hold NaN" in err
    assert not (tmp_path / "lab" / "labels.json").exists()
    with pytest.raises(ValueError, match="bad.safetensors: k-means model: refused"):
        KMeansModel(centroids, mfcc_spec(), {}).save(tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


@pytest.fixture
def corpus_with_a_nonsignal(mini_corpus, tmp_path):
    """The dev split, one cut's audio replaced by float samples near 1e30: it decodes, and its
    MFCC is NaN."""
    import gzip

    import soundfile as sf

    lines = gzip.open(mini_corpus / "cuts_dev.jsonl.gz", "rt").read().splitlines()
    cut = json.loads(lines[3])
    n = cut["recording"]["num_samples"]
    wav = tmp_path / "huge.wav"
    sf.write(wav, np.where(np.arange(n) % 2, 1e30, -1e30).astype(np.float32), 16000, subtype="FLOAT")
    cut["recording"]["sources"] = [{"type": "file", "channels": [0], "source": str(wav)}]
    data = tmp_path / "data"
    data.mkdir()
    with gzip.open(data / "cuts_dev.jsonl.gz", "wt") as f:
        f.write("\n".join([*lines[:3], json.dumps(cut), *lines[4:]]) + "\n")
    return data, cut["id"], len(lines)


def test_nonfinite_features_are_reported_and_skipped_or_fail_when_strict(corpus_with_a_nonsignal, tmp_path, capsys):
    data, bad_id, n = corpus_with_a_nonsignal
    km = tmp_path / "km.safetensors"
    assert main(["kmeans", "fit", "--kind", "mfcc", "-k", "8", "--split", "dev", str(data), str(km), "-q"]) == 0
    assert torch.isfinite(KMeansModel.load(km).centroids).all()
    assert main(["kmeans", "label", "--model", str(km), str(data), str(tmp_path / "lab"), "-q"]) == 0
    info = read_label_dir(tmp_path / "lab")
    labels = info.read("dev")
    assert bad_id not in labels and len(labels) == n - 1 and info.splits["dev"].skipped == 1
    skipped = (tmp_path / "lab" / "dev.skipped.tsv").read_text()
    assert skipped.startswith(f"{bad_id}\t") and "NaN or infinite" in skipped
    capsys.readouterr()
    assert main(["kmeans", "label", "--model", str(km), str(data), str(tmp_path / "lab2"), "--strict", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cut {bad_id}: MFCC" in err and "NaN or infinite" in err
    assert main(["features", "--kind", "mfcc", str(data), str(tmp_path / "feats"), "-q"]) == 0
    meta = json.loads((tmp_path / "feats" / "dev" / "shard-1-of-1.json").read_text())
    assert meta["cuts"] == n - 1 and meta["skipped"] == 1
