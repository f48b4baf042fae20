"""HuBERTopic topic labels: documents, the LDA, model files, topic folders, analysis and
`speechssl topics`."""

from __future__ import annotations

import json
import math
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from speechssl.cli.main import main as cli_main
from speechssl.data.manifest import cuts_path, load_cuts
from speechssl.data.mini.alignment import frame_phone_labels
from speechssl.features.spec import FeatureSpec
from speechssl.labels import topics as tp
from speechssl.labels.files import read_labels, write_labels
from speechssl.labels.store import LabelDir, SplitInfo, write_label_dir_meta
from speechssl.labels.topics import (
    DocumentConfig,
    TopicConfig,
    TopicModel,
    attribute_score,
    document_matrix,
    fit_label_dir,
    fit_topic_model,
    label_topic_dir,
    read_topic_dir,
    select_ngrams,
    topic_analysis,
)

pytestmark = pytest.mark.deps  # a dependency's behaviour: tools/deps_drift.sh runs these on the newest releases

# ---------------------------------------------------------------------------------------------
# documents


def test_document_matrix_counts_deduplicated_and_raw():
    seqs = [np.array([1, 1, 2, 2, 2, 1, 3]), np.array([], dtype=np.int64), np.array([0, 0, 0])]
    dedup = document_matrix(seqs, 4, DocumentConfig(dedup=True)).toarray()
    # 1 1 2 2 2 1 3 -> 1 2 1 3: unit 1 twice, 2 and 3 once
    assert dedup.tolist() == [[0, 2, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0]]
    raw = document_matrix(seqs, 4, DocumentConfig(dedup=False)).toarray()
    assert raw.tolist() == [[0, 3, 3, 1], [0, 0, 0, 0], [3, 0, 0, 0]]


def test_bigrams_have_ids_k_plus_a_k_plus_b_and_do_not_cross_documents():
    k = 4
    seqs = [np.array([1, 1, 2, 1, 2]), np.array([2, 1, 3])]  # dedup: 1 2 1 2 | 2 1 3
    config = DocumentConfig(ngram=2, min_count=1)
    ngrams = select_ngrams(seqs, k, config)
    # bigrams: (1,2) x2, (2,1) x2, (1,3) x1; the pair (2 | 2) across the documents is not one
    assert ngrams.tolist() == sorted([k + 1 * k + 2, k + 2 * k + 1, k + 1 * k + 3])
    m = document_matrix(seqs, k, config, ngrams).toarray()
    col = {int(raw): k + i for i, raw in enumerate(ngrams)}
    assert m.shape == (2, k + 3)
    assert m[0, :k].tolist() == [0, 2, 2, 0] and m[1, :k].tolist() == [0, 1, 1, 1]
    assert m[0, col[k + 1 * k + 2]] == 2 and m[0, col[k + 2 * k + 1]] == 1
    assert m[1, col[k + 2 * k + 1]] == 1 and m[1, col[k + 1 * k + 3]] == 1 and m[1, col[k + 1 * k + 2]] == 0
    # without de-duplication the repeats form bigrams (1,1)
    raw_config = DocumentConfig(dedup=False, ngram=2, min_count=1)
    assert k + 1 * k + 1 in select_ngrams(seqs, k, raw_config).tolist()


def test_min_count_prunes_rare_ngrams_and_unknown_ngrams_are_dropped():
    k = 5
    seqs = [np.array([0, 1, 0, 1, 0, 1]), np.array([2, 3])]  # (0,1) x3, (1,0) x2, (2,3) x1
    kept = select_ngrams(seqs, k, DocumentConfig(ngram=2, min_count=2))
    assert kept.tolist() == [k + 0 * k + 1, k + 1 * k + 0]
    m = document_matrix(seqs, k, DocumentConfig(ngram=2, min_count=2), kept).toarray()
    assert m.shape == (2, k + 2)  # columns remapped to k, k+1
    assert m[0].tolist() == [3, 3, 0, 0, 0, 3, 2] and m[1].tolist() == [0, 0, 1, 1, 0, 0, 0]
    assert select_ngrams(seqs, k, DocumentConfig(ngram=2, min_count=4)).size == 0


def test_trigrams_and_feature_units_round_trip():
    k = 3
    seqs = [np.array([0, 1, 2, 0, 1, 2])]
    config = DocumentConfig(ngram=3, min_count=2)
    ngrams = select_ngrams(seqs, k, config)
    model = TopicModel.from_components(np.ones((2, k + ngrams.size)), k, config, ngram_ids=ngrams)
    grams = [model.feature_units(c) for c in range(model.num_features)]
    assert grams == [(0,), (1,), (2,), (0, 1), (1, 2), (0, 1, 2)]  # (2,0) and (1,2,0), (2,0,1) occur once


def reference_counts(seqs, k, dedup, ngram, ngram_ids) -> dict[tuple[int, int], int]:
    """The document matrix counted in plain Python: {(document, column): count}."""
    col = {int(raw): k + i for i, raw in enumerate(ngram_ids)}
    out: dict[tuple[int, int], int] = {}
    for d, seq in enumerate(seqs):
        seq = [int(u) for i, u in enumerate(seq) if not dedup or i == 0 or u != seq[i - 1]]
        features = list(seq)
        for n in range(2, ngram + 1):
            for i in range(len(seq) - n + 1):
                raw = sum(k**j for j in range(1, n))  # offset of the n-grams
                digits = 0
                for u in seq[i : i + n]:
                    digits = digits * k + u
                if raw + digits in col:
                    features.append(col[raw + digits])
        for c in features:
            out[d, c] = out.get((d, c), 0) + 1
    return out


@pytest.mark.parametrize(
    "k, dedup, ngram", [(7, True, 1), (7, False, 1), (7, True, 3), (2**16, True, 1), (2**21, False, 1)]
)
def test_document_matrix_matches_plain_counting(k, dedup, ngram):
    # k = 2**16: a bincount block holds 64 documents, so blocks and their boundaries are exercised;
    # k = 2**21 takes the sorting path
    rng = np.random.default_rng(0)
    num_docs = 9 if k < 2**16 else 150
    seqs = [rng.integers(0, 7, size=n) * (k // 8 if k > 7 else 1) for n in rng.integers(0, 30, size=num_docs)]
    config = DocumentConfig(dedup=dedup, ngram=ngram, min_count=2)
    ngrams = select_ngrams(seqs, k, config) if ngram > 1 else np.zeros(0, np.int64)
    if ngram > 1:
        assert ngrams.size > 0
    m = document_matrix(seqs, k, config, ngrams)
    assert m.shape == (num_docs, k + ngrams.size) and m.has_canonical_format  # sorted, no duplicate entries
    m = m.tocoo()
    got = {(int(r), int(c)): int(v) for r, c, v in zip(m.row, m.col, m.data)}
    assert got == reference_counts(seqs, k, dedup, ngram, ngrams)


def test_bad_units_and_configs_are_clear_errors():
    with pytest.raises(ValueError, match="cut 'b' has unit 7, outside 0..4"):
        document_matrix([np.array([1, 2]), np.array([3, 7])], 5, ids=["a", "b"])
    with pytest.raises(ValueError, match="n-gram vocabulary"):
        document_matrix([np.array([1, 2])], 5, DocumentConfig(ngram=2))
    with pytest.raises(ValueError, match="ngram"):
        DocumentConfig(ngram=0)
    with pytest.raises(ValueError, match="num_topics"):
        TopicConfig(num_topics=1)
    with pytest.raises(ValueError, match="max_fit_docs"):
        TopicConfig(max_fit_docs=0)
    with pytest.raises(ValueError, match="all 2 unit sequences are empty"):
        fit_topic_model([np.array([], dtype=np.int64)] * 2, 5, config=TopicConfig(num_topics=2, n_jobs=1))


def test_automatic_passes_visit_a_fixed_number_of_documents():
    auto = TopicConfig()
    assert auto.passes is None and auto.max_fit_docs == tp.AUTO_PASS_DOCS == 40000
    assert [auto.resolved_passes(n) for n in (40, 4000, 15000, 20000, 40000, 10**6)] == [10, 10, 3, 2, 1, 1]
    assert TopicConfig(passes=3).resolved_passes(10**6) == 3


# ---------------------------------------------------------------------------------------------
# the LDA on documents from LDA's generative process


def planted_documents(num_docs: int = 400, seed: int = 0):
    """4 topics with disjoint supports over k=40 units (10 each); every document draws topic
    weights ~ Dirichlet(0.05) (mostly one topic), then 40-120 segments (topic, unit, run of 1-4
    frames). Its true topic is the one most of its segments drew."""
    rng = np.random.default_rng(seed)
    k, num_topics = 40, 4
    topic_units = np.zeros((num_topics, k))
    for t in range(num_topics):
        topic_units[t, t * 10 : (t + 1) * 10] = rng.dirichlet(np.ones(10))
    docs, truth = [], []
    for _ in range(num_docs):
        theta = rng.dirichlet(np.full(num_topics, 0.05))
        z = rng.choice(num_topics, size=int(rng.integers(40, 120)), p=theta)
        units = np.array([rng.choice(k, p=topic_units[t]) for t in z])
        docs.append(np.repeat(units, rng.integers(1, 5, size=units.size)))
        truth.append(int(np.bincount(z, minlength=num_topics).argmax()))  # the topic most segments drew
    return docs, np.array(truth), k


@pytest.fixture(scope="module")
def planted():
    return planted_documents()


@pytest.fixture(scope="module")
def planted_model(planted):
    docs, _, k = planted
    return fit_topic_model(docs, k, config=TopicConfig(num_topics=4, passes=10, batch_size=64, n_jobs=1))


def test_lda_recovers_planted_topics(planted, planted_model):
    docs, truth, _ = planted
    labels, dist = planted_model.label(docs, n_jobs=1)
    assert normalized_mutual_info_score(truth, labels) > 0.9
    assert dist.dtype == np.float32 and dist.shape == (len(docs), 4)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(labels, dist.argmax(axis=1))
    # each fitted topic puts (nearly) all its mass on one planted support
    comp = planted_model.lda.components_ / planted_model.lda.components_.sum(axis=1, keepdims=True)
    per_support = comp.reshape(4, 4, 10).sum(axis=2)  # (fitted topic, planted support)
    assert (per_support.max(axis=1) > 0.95).all() and sorted(per_support.argmax(axis=1)) == [0, 1, 2, 3]
    assert planted_model.info["docs"] == len(docs) and planted_model.info["n_jobs"] == 1


def test_fit_is_deterministic_under_a_seed(planted):
    docs, _, k = planted
    config = TopicConfig(num_topics=4, passes=2, batch_size=64, max_fit_docs=200, n_jobs=1)
    a = fit_topic_model(docs, k, config=config)
    b = fit_topic_model(docs, k, config=config)
    c = fit_topic_model(docs, k, config=TopicConfig(**{**config.as_dict(), "seed": 1}))
    assert np.array_equal(a.lda.components_, b.lda.components_) and a.model_id == b.model_id
    assert not np.allclose(a.lda.components_, c.lda.components_)
    assert a.info["docs"] == 200  # the seeded sample


def test_labels_do_not_depend_on_the_number_of_jobs(planted, planted_model):
    docs, _, _ = planted
    docs = (docs * 2)[:600]  # >= 256 documents per job, so two worker processes do run
    assert np.array_equal(planted_model.transform(docs, n_jobs=1), planted_model.transform(docs, n_jobs=2))


# ---------------------------------------------------------------------------------------------
# model files


def read_safetensors_header(path: Path) -> dict:
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + size])


@pytest.mark.parametrize("ngram", [1, 2])
def test_save_load_round_trip_transforms_the_same(planted, tmp_path, ngram):
    docs, _, k = planted
    documents = DocumentConfig(ngram=ngram, min_count=3)
    model = fit_topic_model(
        docs, k, documents, TopicConfig(num_topics=4, passes=1, batch_size=128, n_jobs=1), info={"label_dir": "x"}
    )
    path = model.save(tmp_path / "model.safetensors")
    header = read_safetensors_header(path)
    assert header["components"]["dtype"] == "F64" and header["components"]["shape"] == [4, model.num_features]
    assert header["ngram_ids"]["dtype"] == "I64" and header["__metadata__"]["format"] == "speechssl-topic-model"
    assert not path.read_bytes().startswith(b"\x80")  # no pickle
    loaded = TopicModel.load(path)
    assert loaded.documents == documents and loaded.config == model.config and loaded.info == model.info
    assert loaded.num_units == k and np.array_equal(loaded.ngram_ids, model.ngram_ids)
    if ngram == 2:
        assert model.ngram_ids.size > 0
    assert np.array_equal(loaded.transform(docs, n_jobs=1), model.transform(docs, n_jobs=1))
    assert not list(tmp_path.glob(".*partial*"))  # written atomically


def test_loading_refuses_other_files(tmp_path):
    pickled = tmp_path / "model.safetensors"
    pickled.write_bytes(pickle.dumps({"components": np.ones((2, 3))}))
    with pytest.raises(ValueError, match="not a safetensors file"):
        TopicModel.load(pickled)
    from safetensors.numpy import save_file

    other = tmp_path / "other.safetensors"
    save_file({"weight": np.ones(3)}, str(other), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="not a speechssl topic model"):
        TopicModel.load(other)
    with pytest.raises(FileNotFoundError, match="topic model not found"):
        TopicModel.load(tmp_path / "missing.safetensors")


# ---------------------------------------------------------------------------------------------
# topic folders

SPEC = FeatureSpec(kind="layer", dim=32, frame_rate=50.0, layer=1, encoder="test")


def make_label_dir(
    path: Path, splits: dict[str, tuple[str, dict[str, np.ndarray]]], num_units: int, kmeans_id: str = "km"
) -> Path:
    """A label folder: ``<split>.labels`` and ``labels.json`` (split -> (manifest, labels))."""
    infos = {}
    for split, (manifest, labels) in splits.items():
        write_labels(path / f"{split}.labels", labels)
        infos[split] = SplitInfo(manifest=manifest, cuts=len(labels), frames=int(sum(len(v) for v in labels.values())))
    write_label_dir_meta(LabelDir(path, num_units, 50.0, SPEC, "km.safetensors", kmeans_id, infos))
    return path


@pytest.fixture
def planted_label_dir(planted, tmp_path):
    docs, _, k = planted
    labels = {f"utt{i:04d}": d for i, d in enumerate(docs)}
    ids = list(labels)
    train = {i: labels[i] for i in ids[:300]}
    dev = {i: labels[i] for i in ids[300:]}
    dev["empty"] = np.zeros(0, dtype=np.int64)
    return make_label_dir(tmp_path / "labels", {"train": ("none", train), "dev": ("none", dev)}, k)


def test_label_dir_to_topic_folder(planted_label_dir, planted_model, tmp_path):
    model = fit_label_dir(
        planted_label_dir, "train", config=TopicConfig(num_topics=4, passes=5, batch_size=64, n_jobs=1)
    )
    assert (
        model.info["label_dir"] == str(planted_label_dir)
        and model.info["kmeans_id"] == "km"
        and model.info["docs"] == 300
    )
    out = tmp_path / "topics"
    result = label_topic_dir(model, planted_label_dir, out, model_path="m.safetensors", n_jobs=1)
    assert sorted(p.name for p in out.iterdir()) == [
        "dev.topic_dist.npz",
        "dev.topics",
        "topics.json",
        "train.topic_dist.npz",
        "train.topics",
    ]
    meta = json.loads((out / "topics.json").read_text())
    assert meta["format"] == "speechssl-topics" and meta["num_topics"] == 4 and meta["model"] == "m.safetensors"
    assert meta["label_dir"] == str(planted_label_dir) and meta["documents"] == {
        "dedup": True,
        "ngram": 1,
        "min_count": 5,
    }
    assert meta["splits"]["train"]["cuts"] == 300 and meta["splits"]["dev"] == {
        "cuts": 101,
        "empty": 1,
        "topic_counts": result.splits["dev"].topic_counts,
    }
    assert sum(meta["splits"]["dev"]["topic_counts"]) == 101
    topic_dir = read_topic_dir(out)
    for split in ("train", "dev"):
        hard = topic_dir.read(split)
        ids, dist = topic_dir.read_dist(split)
        labels = read_labels(planted_label_dir / f"{split}.labels")
        assert list(hard) == list(labels) == ids.tolist() and ids.dtype.kind == "U"
        assert dist.dtype == np.float32 and dist.shape == (len(ids), 4)
        np.testing.assert_allclose(dist.sum(axis=1), 1.0, rtol=1e-5)
        assert [hard[i] for i in ids] == dist.argmax(axis=1).tolist()
        expected = model.transform(list(labels.values()), n_jobs=1).astype(np.float32)
        assert np.array_equal(dist, expected)
    ids, dist = topic_dir.read_dist("dev")
    np.testing.assert_allclose(dist[ids.tolist().index("empty")], 0.25)  # an empty cut: the uniform prior
    with np.load(out / "dev.topic_dist.npz", allow_pickle=False) as z:  # no object arrays
        assert sorted(z.files) == ["dist", "ids"]


def test_labelling_refuses_missing_splits_and_other_units(planted_label_dir, planted_model, tmp_path):
    out = tmp_path / "topics"
    with pytest.raises(ValueError, match="no labels for split 'test'; it has train, dev"):
        label_topic_dir(planted_model, planted_label_dir, out, ["train", "test"])
    assert not (out / "topics.json").exists()
    other = make_label_dir(tmp_path / "k50", {"train": ("none", {"a": np.array([1, 49])})}, 50)
    with pytest.raises(ValueError, match="labels have 50 units but the topic model was fitted on 40"):
        label_topic_dir(planted_model, other, out)
    fitted = fit_label_dir(planted_label_dir, "train", config=TopicConfig(num_topics=4, passes=1, n_jobs=1))
    relabelled = make_label_dir(
        tmp_path / "other_km", {"train": ("none", {"a": np.array([1, 2])})}, 40, kmeans_id="other"
    )
    with pytest.raises(ValueError, match="k-means model other"):
        label_topic_dir(fitted, relabelled, out)
    with pytest.raises(ValueError, match="no labels for split 'test'"):
        fit_label_dir(planted_label_dir, "test")


def test_topics_json_is_written_last(planted_label_dir, planted_model, tmp_path, monkeypatch):
    out = tmp_path / "topics"
    label_topic_dir(planted_model, planted_label_dir, out, n_jobs=1)
    assert (out / "topics.json").is_file()
    calls = []

    def failing_savez(f, **arrays):
        calls.append(1)
        if len(calls) == 2:  # the second split fails
            raise OSError("disk full")
        np.savez(f, **arrays)

    monkeypatch.setattr(tp.np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        label_topic_dir(planted_model, planted_label_dir, out, n_jobs=1)
    assert not (out / "topics.json").exists()  # the earlier, complete labelling is no longer claimed
    assert not list(out.glob(".*partial*"))
    with pytest.raises(FileNotFoundError, match="labelling did not finish"):
        read_topic_dir(out)


# ---------------------------------------------------------------------------------------------
# analysis


def test_attribute_scores_worked_out_by_hand():
    topics = [0, 0, 0, 1, 1, 1]
    classes = ["a", "a", "b", "b", "b", "b"]
    s = attribute_score("x", topics, classes)
    assert (s.cuts, s.classes) == (6, 2)
    assert s.purity == pytest.approx(5 / 6)  # topic 0: 2 of 3 are "a"; topic 1: 3 of 3 are "b"
    assert s.majority == pytest.approx(4 / 6)
    # NMI = I(T; C) / mean(H(T), H(C)), by hand
    h_t = math.log(2)
    h_c = -(2 / 6 * math.log(2 / 6) + 4 / 6 * math.log(4 / 6))
    joint = {(0, "a"): 2 / 6, (0, "b"): 1 / 6, (1, "b"): 3 / 6}
    p_t = {0: 0.5, 1: 0.5}
    p_c = {"a": 2 / 6, "b": 4 / 6}
    mi = sum(p * math.log(p / (p_t[t] * p_c[c])) for (t, c), p in joint.items())
    assert s.nmi == pytest.approx(mi / ((h_t + h_c) / 2))
    perfect = attribute_score("y", [3, 3, 7, 7], ["m", "m", "f", "f"])
    assert perfect.nmi == pytest.approx(1.0) and perfect.purity == 1.0 and perfect.majority == 0.5


def fake_cut(cut_id: str, speaker: str, gender: str | None, language: str | None, style: str | None = None):
    sup = SimpleNamespace(speaker=speaker, gender=gender, language=language, custom={"style": style} if style else None)
    return SimpleNamespace(id=cut_id, supervisions=[sup])


def test_topic_analysis_skips_missing_attributes_and_counts_usage():
    cuts = [
        fake_cut("a", "s1", "f", None),
        fake_cut("b", "s1", "f", None),
        fake_cut("c", "s2", "m", None),
        fake_cut("d", "s2", None, None),
        fake_cut("not-labelled", "s3", "m", None),
    ]
    analysis = topic_analysis({"a": 0, "b": 0, "c": 2, "d": 2, "gone": 1}, cuts, num_topics=4, path="t")
    assert [a.name for a in analysis.attributes] == ["speaker", "gender"]  # no language or style in these cuts
    speaker, gender = analysis.attributes
    assert speaker.cuts == 4 and speaker.nmi == pytest.approx(1.0) and speaker.purity == 1.0
    assert gender.cuts == 3 and gender.purity == 1.0  # "d" has no gender
    assert analysis.cuts == 4 and analysis.unmatched == 1
    assert (
        analysis.topics_used == 2 and analysis.entropy_bits == pytest.approx(1.0) and analysis.max_entropy_bits == 2.0
    )
    d = analysis.as_dict()
    assert d["attributes"]["gender"]["purity"] == 1.0 and "style" not in d["attributes"]
    text = analysis.format()
    assert "2/4 topics used" in text and "speaker" in text and "language" not in text.split("\n", 1)[1]
    with pytest.raises(ValueError, match="none of the 1 topic-labelled cuts"):
        topic_analysis({"zzz": 0}, cuts, num_topics=4)


# ---------------------------------------------------------------------------------------------
# `speechssl topics` on the mini corpus, units = phones from its alignments


@pytest.fixture(scope="module")
def phone_label_dir(mini_corpus, tmp_path_factory):
    """A label folder for train/dev/test whose units are the frame phones (50 Hz)."""
    frames = {}
    for split in ("train", "dev", "test"):
        cuts = load_cuts(cuts_path(mini_corpus, split))
        frames[split] = {cut.id: frame_phone_labels(cut, frame_shift=0.02) for cut in cuts}
    inventory = sorted({p for split in frames.values() for seq in split.values() for p in seq})
    index = {p: i for i, p in enumerate(inventory)}
    splits = {
        split: (
            str(cuts_path(mini_corpus, split)),
            {cid: np.array([index[p] for p in seq], dtype=np.int64) for cid, seq in f.items()},
        )
        for split, f in frames.items()
    }
    return make_label_dir(tmp_path_factory.mktemp("labels") / "phones", splits, len(inventory), kmeans_id="phones")


def test_cli_fit_label_analyze_on_the_mini_corpus(phone_label_dir, tmp_path, capsys):
    model, out = tmp_path / "t4.safetensors", tmp_path / "t4"
    assert (
        cli_main(
            [
                "topics",
                "fit",
                "--topics",
                "4",
                "--passes",
                "20",
                "--batch-size",
                "16",
                "--jobs",
                "1",
                str(phone_label_dir),
                str(model),
            ]
        )
        == 0
    )
    assert "4 topics over" in capsys.readouterr().out and model.is_file()
    assert cli_main(["topics", "label", "--model", str(model), str(phone_label_dir), str(out), "--num-jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert all(f"{split}.topics" in printed for split in ("train", "dev", "test"))
    meta = json.loads((out / "topics.json").read_text())
    assert list(meta["splits"]) == ["train", "dev", "test"] and meta["model"] == str(model)

    assert cli_main(["topics", "analyze", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cuts = sum(s["cuts"] for s in meta["splits"].values())
    assert report["cuts"] == cuts and report["unmatched"] == 0 and report["num_topics"] == 4
    attrs = report["attributes"]
    assert set(attrs) == {"speaker", "gender", "language", "style"}
    assert attrs["language"]["classes"] == 4 and attrs["language"]["cuts"] == cuts
    # phone documents carry the language (the languages' phone sets differ), not the prosody style;
    # 40 short training utterances make a rough model (language NMI 0.35-0.57 over seeds 0-2)
    language, style = attrs["language"], attrs["style"]
    assert language["nmi"] > 0.3 and language["purity"] > language["majority"] + 0.15
    assert language["nmi"] > style["nmi"] + 0.2
    assert report["topics_used"] >= 2

    assert cli_main(["topics", "analyze", str(out), "--split", "dev"]) == 0
    table = capsys.readouterr().out
    assert "language" in table and "NMI" in table and "(dev)" in table


def test_cli_errors_are_one_line(phone_label_dir, tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    assert (
        cli_main(
            [
                "topics",
                "fit",
                "--topics",
                "3",
                "--passes",
                "1",
                "--jobs",
                "1",
                "--split",
                "dev",
                str(phone_label_dir),
                str(model),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        cli_main(
            ["topics", "label", "--model", str(model), str(phone_label_dir), str(tmp_path / "t"), "--split", "eval"]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("speechssl topics: error:") and "no labels for split 'eval'" in err and err.count("\n") == 1
    assert cli_main(["topics", "analyze", str(tmp_path / "nothing")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert cli_main(["topics", "fit", "--ngram", "5", str(phone_label_dir), str(model)]) == 1
    assert "ngram must be" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["topics"])  # a subcommand is required


def test_help_examples_are_the_documented_ones():
    from speechssl.cli.topics import get_parser

    epilog = get_parser().epilog
    assert (
        epilog.split("Example:")[1].split()
        == (
            "speechssl topics fit --topics 4 exp/labels/mfcc_km100 exp/topics/mfcc_km100_t4.safetensors "
            "speechssl topics label --model exp/topics/mfcc_km100_t4.safetensors exp/labels/mfcc_km100 exp/topics/mfcc_km100_t4 "
            "speechssl topics analyze exp/topics/mfcc_km100_t4"
        ).split()
    )
    assert len([line for line in epilog.split("Example:")[1].splitlines() if line.strip()]) == 3
