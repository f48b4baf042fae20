"""Speaker verification and emotion recognition: the upstreams (features, random encoder), pooling,
the x-vector head and AAM-softmax, training with resume, saved models, evaluation files checked
against scikit-learn, RESULTS.md, and the CLI, run for real on the tiny mini corpus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from speechssl.checkpoint import save_encoder
from speechssl.config import apply_overrides, load_config
from speechssl.downstream.er.train import ErConfig, ErTrainer, load_er_model
from speechssl.downstream.pooling import build_pooling
from speechssl.downstream.sv.model import AAMSoftmax, SvHeadConfig, XVectorHead
from speechssl.downstream.sv.train import SvConfig, SvTrainer, load_sv_model
from speechssl.downstream.upstream import FeatureUpstream, UpstreamConfig, load_upstream, upstream_fingerprint
from speechssl.models import build_encoder, preset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "tiny_hubert.safetensors"
    save_encoder(build_encoder(preset("tiny_hubert")), path)
    return path


COMMON = ["sampler.max_duration=12", "optim.warmup_steps=2", "optim.max_steps=6", "run.valid_every=3", "run.save_every=3",
          "run.log_every=1", "run.progress=false", "run.device=cpu", "run.precision=fp32"]


def _sv_config(corpus: Path, *overrides: str) -> SvConfig:
    cfg = load_config(SvConfig, ROOT / "recipes" / "sv" / "mini_xvector.yaml")
    base = [f"data.corpus={corpus}", f"data.valid_trials={corpus / 'trials_dev.txt'}", "head.channels=24", "head.stats_channels=32",
            "head.embedding_dim=16", "optim.lr=0.003", *COMMON]
    return apply_overrides(cfg, base + list(overrides))


def _er_config(corpus: Path, *overrides: str) -> ErConfig:
    cfg = load_config(ErConfig, ROOT / "recipes" / "er" / "mini_mlp.yaml")
    base = [f"data.corpus={corpus}", "head.projection_dim=16", "head.hidden_size=16", "optim.lr=0.003", *COMMON]
    return apply_overrides(cfg, base + list(overrides))


# ---------------------------------------------------------------------------------------------
# upstreams, pooling, heads


@pytest.mark.parametrize("kind, dim", [("mfcc", 39), ("fbank", 80)])
def test_feature_upstream_padded_batch_equals_items(kind, dim):
    up = FeatureUpstream(kind)
    torch.manual_seed(0)
    wavs = 0.1 * torch.randn(2, 8000)
    lens = torch.tensor([8000, 5000])
    out = up.extract_features(wavs, lens)
    assert up.num_layers == 0 and up.hidden_size == dim and len(out.hidden_states) == 1
    assert out.lengths.tolist() == up.output_lengths(lens).tolist() == [48, 29]
    alone = up.extract_features(wavs[1:, :5000])
    torch.testing.assert_close(out.hidden_states[0][1, :29], alone.hidden_states[0][0], rtol=1e-5, atol=1e-5)
    assert out.hidden_states[0][1, 29:].abs().sum() == 0  # padding frames are zero
    if kind == "mfcc":  # the same features as the MFCC of the k-means labels
        from speechssl.features.mfcc import mfcc_39

        torch.testing.assert_close(out.hidden_states[0][0], mfcc_39(wavs[0]))
    with pytest.raises(ValueError, match="shorter than one 25 ms window"):
        up.extract_features(wavs[:, :300])


def test_random_init_keeps_the_architecture_and_draws_new_weights(encoder_path):
    pretrained = load_upstream(UpstreamConfig(path=str(encoder_path)))
    rand0 = load_upstream(UpstreamConfig(path=str(encoder_path), init="random"), seed=0)
    rand0b = load_upstream(UpstreamConfig(path=str(encoder_path), init="random"), seed=0)
    rand1 = load_upstream(UpstreamConfig(path=str(encoder_path), init="random"), seed=1)
    assert rand0.config == pretrained.config
    fingerprints = {upstream_fingerprint(m) for m in (pretrained, rand0, rand1)}
    assert len(fingerprints) == 3 and upstream_fingerprint(rand0b) == upstream_fingerprint(rand0)
    assert upstream_fingerprint(load_upstream(UpstreamConfig(kind="fbank"))) == "features:fbank:kaldi"
    with pytest.raises(ValueError, match="must be frozen"):
        UpstreamConfig(kind="mfcc", mode="adapters")
    with pytest.raises(ValueError, match="encoder.init must be one of"):
        UpstreamConfig(init="scratch")
    with pytest.raises(ValueError, match="encoder.path is not set"):
        load_upstream(UpstreamConfig())


@pytest.mark.parametrize("name", ["mean", "stats", "attentive"])
def test_pooling_ignores_padding(name):
    torch.manual_seed(0)
    pool = build_pooling(name, 6).eval()
    x = torch.randn(2, 9, 6)
    lens = torch.tensor([9, 5])
    both = pool(x, lens)
    alone = pool(x[1:, :5], lens[1:])
    torch.testing.assert_close(both[1], alone[0], rtol=1e-5, atol=1e-6)
    assert both.shape == (2, pool.output_size)
    if name == "mean":
        torch.testing.assert_close(both[1], x[1, :5].mean(0))
    if name == "stats":
        torch.testing.assert_close(both[1], torch.cat([x[1, :5].mean(0), x[1, :5].std(0, unbiased=False)]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pooling", ["stats", "attentive"])
def test_xvector_head_ignores_padding(pooling):
    torch.manual_seed(0)
    head = XVectorHead(8, 5, SvHeadConfig(channels=12, stats_channels=10, embedding_dim=6, pooling=pooling)).eval()
    x = torch.randn(2, 20, 8)
    lens = torch.tensor([20, 11])
    x[1, 11:] = 100.0  # whatever the padding holds must not matter
    both = head(x, lens)
    alone = head(x[1:, :11], lens[1:])
    torch.testing.assert_close(both[1], alone[0], rtol=1e-5, atol=1e-5)
    assert both.shape == (2, 6)


def test_aam_softmax_margin():
    torch.manual_seed(0)
    aam = AAMSoftmax(4, 3, margin=0.0, scale=10.0)
    emb, labels = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    loss, cos = aam(emb, labels)
    ref = torch.nn.functional.normalize(emb) @ torch.nn.functional.normalize(aam.weight).T
    torch.testing.assert_close(cos, ref)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(10.0 * ref, labels))
    aam.margin = 0.3
    loss_m, _ = aam(emb, labels)
    theta = torch.acos(ref.clamp(-1, 1))
    logits = 10.0 * ref.clone()
    rows = torch.arange(5)
    target = theta[rows, labels] + 0.3
    logits[rows, labels] = 10.0 * torch.where(target < math.pi, torch.cos(target), ref[rows, labels] - math.sin(math.pi - 0.3) * 0.3)
    torch.testing.assert_close(loss_m, torch.nn.functional.cross_entropy(logits, labels), rtol=1e-4, atol=1e-5)
    assert loss_m > loss  # the margin makes the target harder


# ---------------------------------------------------------------------------------------------
# speaker verification


def _trainable_tensors(exp_model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in exp_model.state_dict().items() if not k.startswith("encoder.")}


def test_sv_train_evaluate_and_files(mini_corpus, encoder_path, tmp_path):
    from sklearn.metrics import roc_curve
    from scipy.optimize import brentq

    from speechssl.downstream.sv.infer import evaluate_trials
    from speechssl.downstream.sv.results import write_results
    from speechssl.downstream.sv.scoring import read_scores

    exp = tmp_path / "sv"
    trainer = SvTrainer(_sv_config(mini_corpus, f"encoder.path={encoder_path}"), exp)
    assert all(not p.requires_grad for p in trainer.model.encoder.parameters())
    last = trainer.train()
    assert 0.0 <= last["eer"] <= 1.0 and "min_dcf_0.01" in last
    logs = [json.loads(line) for line in (exp / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs if r["split"] == "valid"] == [3, 6]
    assert all("accuracy" in r for r in logs if r["split"] == "train")
    for name in ("config.yaml", "summary.json", "model.safetensors"):
        assert (exp / name).is_file(), name
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["upstream"] == "pretrained" and summary["classes"] == len(trainer.classes) and len(summary["layer_weights"]) == 3

    model, cfg = load_sv_model(exp)
    trainer.model.eval()
    wav = torch.randn(1, 16000) * 0.1
    torch.testing.assert_close(model(wav)[0], trainer.model(wav)[0])

    out = tmp_path / "eval"
    m = evaluate_trials(exp, out, trials=mini_corpus / "trials_test.txt", split="test", asnorm=True, top_k=5, device="cpu")
    assert (out / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trials, columns = read_scores(out / "scores.txt")
    labels = np.array([t.label for t in trials])
    assert m["trials"] == len(trials) == len((mini_corpus / "trials_test.txt").read_text().split("\n")) - 1
    for key, got in (("score", m["eer"]), ("asnorm", m["asnorm"]["eer"])):
        fpr, tpr, _ = roc_curve(labels, columns[key])
        sklearn_eer = brentq(lambda x: 1.0 - x - np.interp(x, fpr, tpr), 0.0, 1.0)
        assert got == pytest.approx(sklearn_eer, abs=1e-6)
    assert m["cohort"]["top_k"] == 5 and m["upstream"] == "pretrained" and m["trainable_params"] == summary["trainable_params"]

    text = write_results([("pretrained", out)], tmp_path / "R.md", "SV")
    assert f"| pretrained | pretrained | frozen | test | {m['trials']} | {100 * m['eer']:.2f} |" in text


def test_sv_resume_equals_uninterrupted(mini_corpus, tmp_path):
    """fbank upstream, 1-second crops drawn from (seed, epoch, batch): a run stopped after its step-3
    checkpoint and restarted ends with the same weights as one that never stopped."""
    cfg = _sv_config(mini_corpus, "encoder.kind=fbank", "data.crop_seconds=1.0", "data.valid_trials=null")
    full = SvTrainer(cfg, tmp_path / "full")
    full.train()
    cut = tmp_path / "cut"
    SvTrainer(cfg, cut).train()
    # make it look stopped after step 3: no final checkpoint and no exported model
    (cut / "checkpoints" / "step-00000006.pt").unlink()
    for name in ("model.safetensors", "summary.json", "log.jsonl"):
        (cut / name).unlink()
    resumed = SvTrainer(cfg, cut)
    assert resumed.step == 3
    resumed.train()
    a, b = _trainable_tensors(full.model), _trainable_tensors(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_sv_user_errors(mini_corpus, encoder_path, tmp_path):
    bad = tmp_path / "trials.txt"
    bad.write_text("1 spk000_en_00000 nobody_here\n")
    with pytest.raises(ValueError, match="not in split 'dev'"):
        SvTrainer(_sv_config(mini_corpus, "encoder.kind=fbank", f"data.valid_trials={bad}"), tmp_path / "a")
    with pytest.raises(ValueError, match="encoder.path is not set"):
        SvTrainer(_sv_config(mini_corpus), tmp_path / "b")
    with pytest.raises(FileNotFoundError, match="no split 'nope'"):
        SvTrainer(_sv_config(mini_corpus, "encoder.kind=fbank", "data.train_splits=[nope]"), tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="no trained model"):
        load_sv_model(tmp_path / "c")


# ---------------------------------------------------------------------------------------------
# emotion recognition


def test_er_train_evaluate_results(mini_corpus, encoder_path, tmp_path):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

    from speechssl.downstream.er.infer import evaluate_split
    from speechssl.downstream.er.results import write_results

    runs = {}
    for name, extra in (("mfcc", ["encoder.kind=mfcc"]), ("random", [f"encoder.path={encoder_path}", "encoder.init=random"])):
        exp = tmp_path / name
        trainer = ErTrainer(_er_config(mini_corpus, *extra), exp)
        counts = trainer.train_split.counts()
        n = sum(counts.values())
        expected = [n / (len(trainer.classes) * counts[c]) for c in trainer.classes]
        torch.testing.assert_close(trainer.class_weights, torch.tensor(expected))
        last = trainer.train()
        assert set(last) == {"accuracy", "ua", "macro_f1"}
        model, cfg, classes = load_er_model(exp)
        assert classes == ["neutral", "happy", "sad", "angry"] == trainer.classes
        runs[name] = evaluate_split(exp, tmp_path / f"{name}_eval", split="test", device="cpu")

    out = tmp_path / "random_eval"
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    refs, hyps = [p["ref"] for p in preds], [p["hyp"] for p in preds]
    m = runs["random"]
    assert m["utterances"] == len(preds)
    assert m["accuracy"] == pytest.approx(accuracy_score(refs, hyps))
    assert m["unweighted_accuracy"] == pytest.approx(balanced_accuracy_score(refs, hyps))
    assert m["macro_f1"] == pytest.approx(f1_score(refs, hyps, labels=m["labels"], average="macro", zero_division=0))
    assert m["confusion"] == confusion_matrix(refs, hyps, labels=m["labels"]).tolist()
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG" and "reference" in (out / "confusion.md").read_text()
    assert m["upstream"] == "random" and runs["mfcc"]["upstream"] == "mfcc"

    # folds given one label are averaged
    text = write_results([("mfcc", tmp_path / "mfcc_eval"), ("both", tmp_path / "mfcc_eval"), ("both", out)], tmp_path / "R.md", "ER")
    mean_ua = (runs["mfcc"]["unweighted_accuracy"] + m["unweighted_accuracy"]) / 2
    row = next(line for line in text.splitlines() if line.startswith("| both |"))
    assert f"| 2 | {runs['mfcc']['utterances'] + m['utterances']} |" in row and f"{100 * mean_ua:.2f}" in row


def test_er_user_errors(mini_corpus, tmp_path):
    with pytest.raises(ValueError, match="labels .* are not in data.classes"):
        ErTrainer(_er_config(mini_corpus, "encoder.kind=mfcc", "data.classes=[neutral,happy]"), tmp_path / "a")
    with pytest.raises(ValueError, match="no cut left"):
        ErTrainer(_er_config(mini_corpus, "encoder.kind=mfcc", "data.label=emotion4"), tmp_path / "b")


def test_cli_sv_er(mini_corpus, encoder_path, tmp_path, capsys):
    from speechssl.cli.main import main

    sv = tmp_path / "sv"
    args = ["sv", "train", "--config", str(ROOT / "recipes/sv/mini_xvector.yaml"), "--corpus", str(mini_corpus), "--exp", str(sv),
            "encoder.kind=mfcc", "--max-steps", "2", "head.channels=16", "head.stats_channels=16", "head.embedding_dim=8", "run.progress=false"]
    assert main(args) == 0
    assert "speechssl sv train" in (sv / "command.txt").read_text()
    assert main(["sv", "evaluate", str(sv), "--trials", str(mini_corpus / "trials_test.txt"), "--out", str(tmp_path / "sve")]) == 0
    assert "EER" in capsys.readouterr().out
    assert main(["sv", "results", "--out", str(tmp_path / "S.md"), f"mfcc={tmp_path / 'sve'}"]) == 0
    er = tmp_path / "er"
    assert main(["er", "train", "--config", str(ROOT / "recipes/er/mini_mlp.yaml"), "--corpus", str(mini_corpus), "--exp", str(er),
                 "encoder.kind=fbank", "--max-steps", "2", "run.progress=false"]) == 0
    assert main(["er", "evaluate", str(er), "--split", "dev", "--out", str(tmp_path / "ere")]) == 0
    assert "UA" in capsys.readouterr().out
    assert main(["er", "results", "--out", str(tmp_path / "E.md"), f"fbank={tmp_path / 'ere'}"]) == 0
    assert "| fbank | fbank | frozen | 1 |" in (tmp_path / "E.md").read_text()
    assert main(["sv", "evaluate", str(tmp_path / "none"), "--trials", str(mini_corpus / "trials_test.txt"), "--out", str(tmp_path / "x")]) == 1
    assert "no trained model" in capsys.readouterr().err
    assert main(["sv", "evaluate", str(er), "--trials", str(mini_corpus / "trials_test.txt"), "--out", str(tmp_path / "x")]) == 1
    assert "not a speechssl speaker verification model" in capsys.readouterr().err


def test_sv_adapters_store_only_the_adapter(mini_corpus, encoder_path, tmp_path):
    from speechssl.adapters.bank import iter_adapter_parameters

    exp = tmp_path / "ad"
    trainer = SvTrainer(_sv_config(mini_corpus, f"encoder.path={encoder_path}", "encoder.mode=adapters", "encoder.adapter.bottleneck_dim=4",
                                   "optim.max_steps=2", "data.valid_trials=null"), exp)
    adapter_ids = {id(p) for _, _, p in iter_adapter_parameters(trainer.model.encoder)}
    assert adapter_ids and all(p.requires_grad == (id(p) in adapter_ids) for p in trainer.model.encoder.parameters())
    trainer.train()
    assert (exp / "adapter.safetensors").is_file() and not (exp / "encoder.safetensors").exists()
    model, cfg = load_sv_model(exp)
    trainer.model.eval()
    wav = torch.randn(2, 12000) * 0.1
    torch.testing.assert_close(model(wav)[0], trainer.model(wav)[0])


def test_hidden_state_norm_is_measured_on_training_data_and_saved(mini_corpus, tmp_path):
    from speechssl.data.dataset import load_cut_audio

    exp = tmp_path / "norm"
    cfg = _er_config(mini_corpus, "encoder.kind=fbank", "encoder.normalize=true", "encoder.normalize_utterances=5", "optim.max_steps=2", "data.valid_split=null")
    trainer = ErTrainer(cfg, exp)
    feats = [FeatureUpstream("fbank")._one(torch.from_numpy(load_cut_audio(c))) for c in list(trainer.train_cuts)[:5]]
    frames = torch.cat(feats).double()
    torch.testing.assert_close(trainer.model.norm.mean[0], frames.mean(0).float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(trainer.model.norm.std[0], frames.std(0, unbiased=False).float(), rtol=1e-4, atol=1e-4)
    trainer.train()
    model, _, _ = load_er_model(exp)
    torch.testing.assert_close(model.norm.mean, trainer.model.norm.mean)
    torch.testing.assert_close(model.norm.std, trainer.model.norm.std)
    wav = torch.randn(1, 16000) * 0.1
    trainer.model.eval()
    torch.testing.assert_close(model(wav)[0], trainer.model(wav)[0])


def test_sv_results_average_nested_figures(tmp_path):
    from speechssl.downstream.sv.results import write_results

    for i, (eer, dcf, asn) in enumerate([(0.1, 0.5, 0.08), (0.2, 0.7, 0.12)]):
        d = tmp_path / f"fold{i}"
        d.mkdir()
        m = {"split": "test", "trials": 10, "utterances": 5, "eer": eer, "min_dcf": {"0.01": dcf, "0.05": dcf / 2},
             "asnorm": {"eer": asn, "min_dcf": {"0.01": dcf, "0.05": dcf}}, "upstream": "mfcc", "mode": "frozen"}
        (d / "metrics.json").write_text(json.dumps(m))
    text = write_results([("mfcc", tmp_path / "fold0"), ("mfcc", tmp_path / "fold1")], tmp_path / "R.md", "SV")
    assert "| mfcc (mean of 2) | mfcc | frozen | test | 10 | 15.00 | 0.6000 | 0.3000 | 10.00 | 0.6000 |" in text


def test_a_diverging_downstream_run_stops_and_exports_nothing(mini_corpus, tmp_path, capsys):
    """The downstream trainers share pretraining's skip policy: optim.lr=1e30 makes every step
    after the first non-finite; two are skipped (nonfinite_patience=2), the third stops the run."""
    from speechssl.cli.main import main

    er = tmp_path / "er"
    argv = ["er", "train", "--config", str(ROOT / "recipes/er/mini_mlp.yaml"), "--corpus", str(mini_corpus), "--exp", str(er),
            "encoder.kind=fbank", "--max-steps", "10", "run.progress=false", "optim.lr=1e30", "optim.warmup_steps=0",
            "optim.nonfinite_patience=2", "run.log_every=1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "training diverged: non-finite loss or gradient norm at steps 2-4" in err and "Traceback" not in err
    assert not (er / "model.safetensors").exists() and not (er / "summary.json").exists()
    records = [json.loads(line) for line in (er / "log.jsonl").read_text().splitlines()]
    assert [r.get("skipped_steps", 0) for r in records] == [0, 1, 1]
