"""Pretraining: the masked prediction model and losses, label alignment of crops, the training
loop (loss falls, resume equals uninterrupted, DDP equals one process, a save killed midway)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechssl.models import build_encoder, preset
from speechssl.pretrain.masking import MaskingConfig, span_mask
from speechssl.pretrain.model import IGNORE, PredictionConfig, PretrainModel, TopicLossConfig

REPO = Path(__file__).resolve().parents[1]


def _model(num_units=(20,), seed=0, family="hubert", **pred):
    torch.manual_seed(seed)
    enc = build_encoder(preset(f"tiny_{family}"))
    return PretrainModel(enc, list(num_units), PredictionConfig(final_dim=16, **pred))


def _batch(model, B=3, S=16000, seed=1):
    g = torch.Generator().manual_seed(seed)
    wavs = torch.randn(B, S, generator=g)
    T = int(model.frame_lengths(torch.tensor([S]))[0])
    mask = span_mask(torch.full((B,), T), T, MaskingConfig(mask_prob=0.5, mask_length=4), g)
    targets = [torch.randint(0, k, (B, T), generator=g) for k in model.num_units]
    return wavs, mask, targets


def _reference_losses(model, wavs, mask, targets, temp=0.1):
    """HuBERT's loss written out independently: cosine_similarity against every unit embedding."""
    enc = model.encoder
    feats, _ = enc.feature_extractor(wavs)
    penalty = feats.pow(2).mean()
    x = enc.feature_projection(feats)
    x = torch.where(mask[..., None], enc.mask_embedding, x)
    _, last = enc.encoder(x)
    proj = model.final_proj(last).chunk(len(targets), dim=-1)
    masked = unmasked = 0.0
    for p, emb, t in zip(proj, model.label_embeddings, targets):
        logits = F.cosine_similarity(p[..., None, :], emb[None, None], dim=-1) / temp  # (B, T, K)
        masked = masked + F.cross_entropy(logits[mask], t[mask], reduction="sum")
        unmasked = unmasked + F.cross_entropy(logits[~mask], t[~mask], reduction="sum")
    return masked, unmasked, penalty


def test_masked_prediction_loss_matches_a_written_out_reference():
    model = _model(num_units=(20, 7), unmasked_weight=0.5).eval()
    wavs, mask, targets = _batch(model)
    with torch.no_grad():
        out = model(wavs, None, mask, targets)
        ref_m, ref_u, ref_pen = _reference_losses(model, wavs, mask, targets)
    assert out.num_masked == int(mask.sum()) and out.num_unmasked == int((~mask).sum())
    torch.testing.assert_close(out.masked_loss, ref_m, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.unmasked_loss, ref_u, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.feature_penalty, ref_pen)


def test_ignored_frames_and_padding_carry_no_loss():
    model = _model().eval()
    wavs, mask, targets = _batch(model)
    t = targets[0].clone()
    t[:, -5:] = IGNORE  # labels end 5 frames early
    with torch.no_grad():
        out = model(wavs, None, mask, [t])
    assert out.num_masked == int((mask & (t != IGNORE)).sum())
    # padding: item 1 is shorter; its padded frames are neither masked nor unmasked targets
    lens = torch.tensor([16000, 9000, 16000])
    frames = model.frame_lengths(lens)
    with torch.no_grad():
        out = model(wavs, lens, mask, targets)
    valid = torch.arange(mask.shape[1])[None] < frames[:, None]
    assert out.num_masked == int((mask & valid).sum())
    assert out.num_unmasked == int((~mask & valid).sum())


def test_feature_grad_mult_scales_only_the_front_end_gradient():
    grads = {}
    for mult in (1.0, 0.1, 0.0):
        model = _model(feature_grad_mult=mult).train()
        wavs, mask, targets = _batch(model)
        out = model(wavs, None, mask, targets)
        (out.masked_loss / out.num_masked + 10 * out.feature_penalty).backward()
        grads[mult] = {n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()}
    front = [n for n in grads[1.0] if n.startswith("encoder.feature_extractor.")]
    rest = [n for n in grads[1.0] if n not in front and grads[1.0][n] is not None]
    assert front and rest
    for n in front:
        torch.testing.assert_close(grads[0.1][n], 0.1 * grads[1.0][n], rtol=1e-4, atol=1e-8)
        assert grads[0.0][n] is None  # frozen: no autograd through the front end at all
    for n in rest:
        torch.testing.assert_close(grads[0.1][n], grads[1.0][n], rtol=1e-4, atol=1e-7)


def test_topic_loss_hard_equals_one_hot_soft_and_pooling_choices_differ():
    torch.manual_seed(0)
    enc = build_encoder(preset("tiny_hubert"))
    outs = {}
    for targets_kind, pooling in (("hard", "all"), ("soft", "all"), ("hard", "unmasked")):
        torch.manual_seed(0)
        model = PretrainModel(
            enc, [20], PredictionConfig(final_dim=16), TopicLossConfig(weight=1.0, targets=targets_kind, pooling=pooling), num_topics=5
        ).eval()
        wavs, mask, targets = _batch(model)
        hard = torch.tensor([0, 3, 4])
        topic = hard if targets_kind == "hard" else F.one_hot(hard, 5).float()
        with torch.no_grad():
            outs[(targets_kind, pooling)] = model(wavs, None, mask, targets, topic)
    a, b, c = outs[("hard", "all")], outs[("soft", "all")], outs[("hard", "unmasked")]
    torch.testing.assert_close(a.topic_loss, b.topic_loss)
    assert a.num_utterances == 3 and not torch.allclose(a.topic_loss, c.topic_loss)
    with pytest.raises(ValueError, match="topics"):
        PretrainModel(enc, [20], topic=TopicLossConfig(weight=1.0), num_topics=0)


# ---- data: crops and label alignment ----


def _split_with_index_labels(mini_corpus, rate):
    """The train split of the tiny corpus with synthetic labels: label i of a cut is i (so a
    target tells exactly which utterance frame it came from)."""
    from speechssl.data.manifest import load_cuts
    from speechssl.pretrain.data import LabelSet, SplitData

    cuts = load_cuts(mini_corpus / "cuts_train.jsonl.gz").to_eager()
    labels = {c.id: np.arange(int(c.duration * rate) + 1) for c in cuts}
    return SplitData(cuts, [LabelSet(Path("fake"), 100000, rate, labels)], None, Path("fake.jsonl.gz"))


@pytest.mark.parametrize("rate", [100.0, 50.0])
def test_random_crops_keep_labels_aligned(mini_corpus, rate):
    from speechssl.data.audio import load_cut_audio
    from speechssl.pretrain.data import PretrainDataConfig, PretrainDataset

    data = _split_with_index_labels(mini_corpus, rate)
    conv = preset("tiny_hubert").conv_layers
    ds = PretrainDataset(data, conv, PretrainDataConfig(crop_seconds=0.6), seed=3)
    cuts = data.cuts.subset(first=6)
    batch = ds[(0, 0, cuts)]
    assert batch.wavs.shape[1] == int(0.6 * 16000) and (batch.wav_lens == batch.wavs.shape[1]).all()  # cropped, no padding
    ratio = rate / 50.0
    starts = []
    for i, cid in enumerate(batch.cut_ids):
        t = batch.targets[0][i]
        k = int(t[0]) / ratio  # the crop's first frame in the utterance
        assert k == int(k)
        k = int(k)
        starts.append(k)
        n = int(batch.frame_lens[i])
        expected = np.floor((np.arange(n) + k) * ratio + 1e-6).astype(int)
        assert t[:n].tolist() == expected.tolist()
        full = load_cut_audio(data.cuts[cid])
        torch.testing.assert_close(batch.wavs[i], torch.from_numpy(full[k * 320 : k * 320 + batch.wavs.shape[1]]))
    assert len(set(starts)) > 1  # crops really are random
    again = ds[(0, 0, cuts)]
    assert torch.equal(again.wavs, batch.wavs)  # same epoch, same batch: same crops
    other = ds[(1, 0, cuts)]
    assert not torch.equal(other.wavs, batch.wavs)  # another epoch: other crops


def test_padded_batches_mark_padding_unlabelled(mini_corpus):
    from speechssl.pretrain.data import PretrainDataConfig, PretrainDataset

    data = _split_with_index_labels(mini_corpus, 100.0)
    ds = PretrainDataset(data, preset("tiny_hubert").conv_layers, PretrainDataConfig(crop_seconds=30, pad=True), random_crop=False)
    batch = ds[data.cuts.subset(first=5)]
    lens = batch.frame_lens
    assert lens.min() < lens.max()
    for i in range(len(batch)):
        t = batch.targets[0][i]
        assert (t[: lens[i]] != IGNORE).all() and (t[lens[i] :] == IGNORE).all()
        assert t[: lens[i]].tolist() == list(range(0, 2 * int(lens[i]), 2))


# ---- the training loop ----


@pytest.fixture(scope="module")
def label_dirs(mini_corpus, tmp_path_factory):
    """k-means (k=20) labels of the tiny corpus and 4-topic labels over them."""
    from speechssl.cli.main import main

    out = tmp_path_factory.mktemp("pretrain_labels")
    km = out / "km20.safetensors"
    assert main(["kmeans", "fit", "--kind", "mfcc", "--clusters", "20", str(mini_corpus), str(km), "-q"]) == 0
    assert main(["kmeans", "label", "--model", str(km), str(mini_corpus), str(out / "labels"), "-q"]) == 0
    assert main(["topics", "fit", "--topics", "4", str(out / "labels"), str(out / "t4.safetensors"), "-q"]) == 0
    assert main(["topics", "label", "--model", str(out / "t4.safetensors"), str(out / "labels"), str(out / "topics"), "-q"]) == 0
    return out / "labels", out / "topics"


def _cfg(label_dirs, **overrides):
    from speechssl.config import apply_overrides, load_config
    from speechssl.pretrain.trainer import PretrainConfig

    cfg = load_config(PretrainConfig, REPO / "recipes" / "pretrain" / "tiny.yaml")
    base = [
        f"data.labels={label_dirs[0]}",
        "run.progress=false",
        "run.log_every=1",
        "sampler.max_duration=8",
        "data.crop_seconds=2.0",
    ]
    return apply_overrides(cfg, base + [f"{k}={v}" for k, v in overrides.items()])


def _records(exp: Path, split: str = "train") -> list[dict]:
    return [r for r in map(json.loads, (exp / "log.jsonl").read_text().splitlines()) if r["split"] == split]


def test_training_loss_falls_with_topic_loss(label_dirs, tmp_path):
    from speechssl import load_encoder
    from speechssl.pretrain.trainer import Trainer

    cfg = _cfg(label_dirs, **{"data.topics": label_dirs[1], "topic.weight": 0.5, "optim.max_steps": 30, "run.valid_every": 15, "optim.warmup_steps": 3})
    exp = tmp_path / "exp"
    metrics = Trainer(cfg, exp).train()
    train = _records(exp)
    first = np.mean([r["masked"] for r in train[:5]])
    last = np.mean([r["masked"] for r in train[-5:]])
    assert last < first - 0.1, (first, last)
    assert all("topic" in r for r in train)
    valid = _records(exp, "valid")
    assert [r["step"] for r in valid] == [15, 30] and 0 <= valid[-1]["masked_acc"] <= 1 and "topic_acc" in valid[-1]
    assert metrics["loss"] == pytest.approx(valid[-1]["loss"], rel=1e-4)
    assert (exp / "config.yaml").is_file() and list((exp / "tensorboard").iterdir())
    enc = load_encoder(exp / "encoder.safetensors")
    assert enc.num_layers == 2 and all(r["audio_seconds_per_second"] > 0 for r in train)


def test_wavlm_with_utterance_mixing_and_two_label_sets_trains(label_dirs, tmp_path):
    from speechssl.pretrain.trainer import Trainer

    labels = f"{label_dirs[0]},{label_dirs[0]}"
    cfg = _cfg(label_dirs, **{"encoder.preset": "tiny_wavlm", "mixing.prob": 1.0, "data.labels": labels, "optim.max_steps": 3, "data.valid_split": "null", "prediction.unmasked_weight": 0.5})
    exp = tmp_path / "exp"
    Trainer(cfg, exp).train()
    train = _records(exp)
    assert len(train) == 3 and all(math.isfinite(r["loss"]) and r["unmasked"] > 0 for r in train)


def _params(exp: Path) -> dict[str, torch.Tensor]:
    from speechssl.pretrain.checkpoint import latest_checkpoint, load_checkpoint

    return load_checkpoint(latest_checkpoint(exp / "checkpoints"))["model"]


def test_resume_equals_uninterrupted(label_dirs, tmp_path):
    from speechssl.pretrain.trainer import Trainer

    # dropout on, so that the RNG handling is part of what is compared
    over = {"optim.max_steps": 10, "data.valid_split": "null", "run.save_every": 100, "sampler.max_duration": 16, "encoder.overrides": "{dropout: 0.1, attention_dropout: 0.1}"}
    straight = tmp_path / "straight"
    Trainer(_cfg(label_dirs, **over), straight).train()
    parted = tmp_path / "parted"
    Trainer(_cfg(label_dirs, **over), parted).train(until=5)
    assert not (parted / "encoder.safetensors").exists()  # stopped early: not a finished run
    resumed = Trainer(_cfg(label_dirs, **over), parted)
    assert resumed.step == 5
    resumed.train()
    a, b = _records(straight), _records(parted)
    assert [r["step"] for r in b] == list(range(1, 11))
    for ra, rb in zip(a, b):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-6, abs=1e-7), (ra, rb)
    pa, pb = _params(straight), _params(parted)
    for name in pa:
        torch.testing.assert_close(pa[name], pb[name], rtol=0, atol=1e-6, msg=name)
    # the epochs ran over: the tiny train split is < 8 batches, so the resumed run crossed an epoch
    assert a[-1]["epoch"] >= 1


def test_ddp_two_processes_equal_one_process_with_accumulation(label_dirs, tmp_path):
    from speechssl.config import save_config
    from speechssl.pretrain.trainer import Trainer

    over = {"optim.max_steps": 3, "data.valid_split": "null", "sampler.drop_last": "true", "sampler.max_duration": 6}
    one = tmp_path / "one"
    Trainer(_cfg(label_dirs, **{**over, "optim.accum_steps": 2}), one).train()
    cfg_path = tmp_path / "ddp.yaml"
    save_config(_cfg(label_dirs, **over), cfg_path)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "speechssl.cli.pretrain",
         "--config", str(cfg_path), "--exp", str(tmp_path / "two"), "-q"],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _records(one), _records(tmp_path / "two")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        for key in ("loss", "masked", "feature_penalty", "masked_acc", "audio_seconds"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (key, ra, rb)
    pa, pb = _params(one), _params(tmp_path / "two")
    for name in pa:
        torch.testing.assert_close(pa[name], pb[name], rtol=1e-4, atol=1e-5, msg=name)


_KILLED_SAVE = """
import sys, time, torch
import speechssl.pretrain.checkpoint as ckpt

def slow_save(obj, f):  # write a part of the file, then hang: the parent kills us here
    with open(f, "wb") as out:
        out.write(b"PK" + bytes(4096))
        out.flush()
    print("writing", flush=True)
    time.sleep(120)

ckpt.torch.save = slow_save
ckpt.save_checkpoint(sys.argv[1], 999, {"model": {}})
"""


def test_a_run_killed_during_a_save_leaves_the_previous_checkpoint_usable(label_dirs, tmp_path):
    from speechssl.pretrain.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
    from speechssl.pretrain.trainer import Trainer

    over = {"optim.max_steps": 4, "data.valid_split": "null", "run.save_every": 2}
    exp = tmp_path / "exp"
    Trainer(_cfg(label_dirs, **over), exp).train(until=2)
    folder = exp / "checkpoints"
    before = latest_checkpoint(folder)
    assert before is not None and before.name == "step-00000002.pt"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(folder)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert child.stdout.readline().strip() == "writing"
        partial = [p for p in folder.iterdir() if "partial" in p.name]
        assert partial, list(folder.iterdir())  # the half-written file exists...
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert [p for _, p in list_checkpoints(folder)] == [before]  # ...but is never taken for a checkpoint
    assert load_checkpoint(before)["step"] == 2
    resumed = Trainer(_cfg(label_dirs, **over), exp)
    assert resumed.step == 2
    resumed.train()
    assert latest_checkpoint(folder).name == "step-00000004.pt"


def test_pretrain_cli_print_config_and_bad_labels(tmp_path, capsys):
    from speechssl.cli.main import main

    assert main(["pretrain", "--config", str(REPO / "recipes/pretrain/hubertopic_base.yaml"), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "weight: 0.5" in out and "preset: hubert_base" in out
    with pytest.raises(SystemExit):  # training needs an experiment folder
        main(["pretrain", "--config", str(REPO / "recipes/pretrain/tiny.yaml")])
    assert "--exp" in capsys.readouterr().err
    assert main(["pretrain", "--config", str(REPO / "recipes/pretrain/tiny.yaml"), "--labels", str(tmp_path / "nope"), "--exp", str(tmp_path / "e")]) == 1
    assert "nope" in capsys.readouterr().err


def test_an_unreadable_recording_is_skipped_and_named_or_fails_when_strict(mini_corpus, tmp_path):
    from lhotse import CutSet
    from lhotse.audio import AudioSource
    from lhotse.utils import fastcopy

    from speechssl.data.audio import AudioError
    from speechssl.pretrain.data import PretrainDataConfig, PretrainDataset

    data = _split_with_index_labels(mini_corpus, 100.0)
    good = list(data.cuts.subset(first=3))
    bad_file = tmp_path / "bad.flac"
    bad_file.write_bytes(b"not audio at all" * 100)
    bad_rec = fastcopy(good[0].recording, sources=[AudioSource(type="file", channels=[0], source=str(bad_file))])
    cuts = CutSet.from_cuts([fastcopy(good[0], recording=bad_rec)] + good[1:])
    conv = preset("tiny_hubert").conv_layers
    batch = PretrainDataset(data, conv, PretrainDataConfig())[cuts]
    assert batch.cut_ids == [c.id for c in good[1:]]
    assert [cid for cid, _ in batch.skipped] == [good[0].id] and "bad.flac" in batch.skipped[0][1]
    with pytest.raises(AudioError, match="bad.flac"):
        PretrainDataset(data, conv, PretrainDataConfig(), strict=True)[cuts]


def _strict_json(path: Path) -> list[dict]:
    """log.jsonl read as strict JSON: a bare NaN or Infinity fails."""

    def refuse(token):
        raise AssertionError(f"{path}: non-JSON token {token}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_a_diverging_run_stops_keeps_the_last_good_checkpoint_and_writes_no_encoder(label_dirs, tmp_path, capsys):
    """optim.lr=1e6: the first step is applied, every later one is non-finite. Five are skipped
    (optim.nonfinite_patience, default 5), the sixth stops the run with one line; the newest
    checkpoint is the last good step's, finite; no encoder.safetensors; log.jsonl stays JSON."""
    from speechssl.cli.main import main
    from speechssl.pretrain.checkpoint import latest_checkpoint, load_checkpoint

    exp = tmp_path / "exp"
    argv = ["pretrain", "--config", str(REPO / "recipes/pretrain/tiny.yaml"), "--labels", str(label_dirs[0]), "--exp", str(exp)]
    overrides = ["optim.lr=1e6", "optim.warmup_steps=0", "optim.max_steps=20", "run.save_every=1", "run.log_every=1",
                 "run.progress=false", "sampler.max_duration=8", "data.crop_seconds=2.0", "data.valid_split=null"]
    assert main(argv + overrides) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith(f"speechssl pretrain: error: {exp}: training diverged: non-finite loss or gradient norm at steps 2-7"), err
    assert "optim.nonfinite_patience=5" in err[-1] and "Lower optim.lr (now 1e+06)" in err[-1]
    assert sum("checkpoint not written" in line for line in err) == 5  # steps 2-6 were due a checkpoint each
    assert not (exp / "encoder.safetensors").exists()
    ckpt = latest_checkpoint(exp / "checkpoints")
    state = load_checkpoint(ckpt)
    assert state["step"] == 1  # steps 2-6 were skipped and saved nothing
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    records = _strict_json(exp / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert math.isfinite(records[0]["loss"]) and "skipped_steps" not in records[0]
    assert all(r["skipped_steps"] == 1 and "loss" not in r for r in records[1:])


def test_nonfinite_patience_zero_stops_at_the_first_bad_step(label_dirs, tmp_path):
    from speechssl.nonfinite import TrainingDiverged
    from speechssl.pretrain.trainer import Trainer

    cfg = _cfg(label_dirs, **{"optim.lr": 1e6, "optim.warmup_steps": 0, "optim.max_steps": 10, "optim.nonfinite_patience": 0, "data.valid_split": "null"})
    trainer = Trainer(cfg, tmp_path / "exp")
    with pytest.raises(TrainingDiverged, match="at step 2 "):
        trainer.train()
    assert trainer.step == 1


def test_log_jsonl_writes_nonfinite_values_as_null(tmp_path):
    from speechssl.metrics_log import MetricsLog

    log = MetricsLog(tmp_path)
    log.write("valid", 3, 0, {"loss": float("nan"), "acc": 0.5, "grad_norm": float("inf")})
    log.close()
    assert _strict_json(tmp_path / "log.jsonl") == [{"split": "valid", "step": 3, "epoch": 0, "loss": None, "acc": 0.5, "grad_norm": None}]


def test_a_nonfinite_encoder_is_never_written(tmp_path):
    from speechssl.checkpoint import save_encoder

    encoder = build_encoder(preset("tiny_hubert"))
    with torch.no_grad():
        encoder.encoder.layers[1].feed_forward.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"enc.safetensors: encoder: refused: 1 tensor\(s\) hold NaN or infinite values \(encoder.layers.1.feed_forward.fc1.weight\)"):
        save_encoder(encoder, tmp_path / "enc.safetensors")
    assert not (tmp_path / "enc.safetensors").exists()


def test_resume_cuts_the_log_back_to_the_checkpoint(label_dirs, tmp_path):
    """A run killed after logging steps its last checkpoint does not hold: the resumed run logs
    them again, and log.jsonl has every step once."""
    from speechssl.pretrain.checkpoint import checkpoint_path
    from speechssl.pretrain.trainer import Trainer

    over = {"optim.max_steps": 8, "data.valid_split": "null", "run.save_every": 4}
    exp = tmp_path / "exp"
    Trainer(_cfg(label_dirs, **over), exp).train(until=6)
    checkpoint_path(exp / "checkpoints", 6).unlink()  # killed after logging step 6, before its checkpoint
    with open(exp / "log.jsonl", "a") as f:
        f.write('{"split": "train", "step": 7, "lo')  # and mid-line
    resumed = Trainer(_cfg(label_dirs, **over), exp)
    assert resumed.step == 4
    assert [r["step"] for r in _strict_json(exp / "log.jsonl")] == [1, 2, 3, 4]
    resumed.train()
    assert [r["step"] for r in _strict_json(exp / "log.jsonl")] == list(range(1, 9))


def test_topics_must_belong_to_the_labels(label_dirs, mini_corpus, tmp_path):
    """Topics of another k-means model's units, or of another manifest (a language subset), are
    refused, naming both folders."""
    from speechssl.cli.main import main
    from speechssl.pretrain.data import load_split

    labels, topics = label_dirs
    out = tmp_path
    # another k-means model (k=12) over the same corpus, and topics of its units
    assert main(["kmeans", "fit", "--kind", "mfcc", "--clusters", "12", str(mini_corpus), str(out / "km12.safetensors"), "-q"]) == 0
    assert main(["kmeans", "label", "--model", str(out / "km12.safetensors"), str(mini_corpus), str(out / "labels12"), "-q"]) == 0
    assert main(["topics", "fit", "--topics", "4", str(out / "labels12"), str(out / "t12.safetensors"), "-q"]) == 0
    assert main(["topics", "label", "--model", str(out / "t12.safetensors"), str(out / "labels12"), str(out / "topics12"), "-q"]) == 0
    cfg = _cfg(label_dirs, **{"data.topics": out / "topics12"}).data
    with pytest.raises(ValueError, match=rf"{out / 'topics12'}: topic labels of the units of k-means model \w+ \(.*labels12\), but the label folders are of other k-means models: {labels}"):
        load_split(cfg, "train")
    # the same k-means model, but the topics label an English-only subset of the corpus
    assert main(["subset", str(mini_corpus), str(out / "en"), "--languages", "en"]) == 0
    assert main(["kmeans", "label", "--model", str(labels.parent / "km20.safetensors"), str(out / "en"), str(out / "labels_en"), "-q"]) == 0
    assert main(["topics", "label", "--model", str(labels.parent / "t4.safetensors"), str(out / "labels_en"), str(out / "topics_en"), "-q"]) == 0
    cfg = _cfg(label_dirs, **{"data.topics": out / "topics_en"}).data
    with pytest.raises(ValueError, match=rf"{out / 'topics_en'}: its topic labels of split 'train' are of .*en/cuts_train.jsonl.gz .*but {labels} labels"):
        load_split(cfg, "train")
    assert len(load_split(_cfg(label_dirs, **{"data.topics": topics}).data, "train").cuts) > 0  # the right pair loads


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A 200 kB tmpfs where this test may mount one (root); else a disk that is full for
    torch.save (its own RuntimeError, as on a real full disk) and shutil.disk_usage."""
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        ok = os.environ.get("SPEECHSSL_TEST_NO_MOUNT") != "1" and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True
        ).returncode == 0
    except OSError:  # no mount command
        ok = False
    if not ok:
        from types import SimpleNamespace

        import speechssl.io
        import speechssl.pretrain.checkpoint

        def full(obj, f, *a, **k):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 0 vs 2; basic_ios::clear: iostream error")

        monkeypatch.setattr(speechssl.pretrain.checkpoint.torch, "save", full)
        monkeypatch.setattr(speechssl.io.shutil, "disk_usage", lambda p: SimpleNamespace(total=2 << 20, used=2 << 20, free=0))
    yield mount
    if ok:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_one_line_naming_the_path(label_dirs, small_disk, capsys):
    from speechssl.cli.main import main

    exp = small_disk / "exp"
    argv = ["pretrain", "--config", str(REPO / "recipes/pretrain/tiny.yaml"), "--labels", str(label_dirs[0]), "--exp", str(exp),
            "optim.max_steps=2", "run.save_every=1", "run.progress=false", "sampler.max_duration=8", "data.crop_seconds=2.0", "data.valid_split=null"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{exp / 'checkpoints' / 'step-00000001.pt'}: no space left on the device (" in err[0] and "MB needed" in err[0], err
    assert not [p for p in (exp / "checkpoints").iterdir() if p.name.endswith(".pt")]  # nothing partial left looking complete
