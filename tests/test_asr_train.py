"""CTC ASR on an encoder: the model in its three modes, training, checkpoints and resume, the saved
model, decoding and RESULTS.md, run for real on the tiny mini corpus with a tiny random encoder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from speechssl.adapters.bank import AdapterConfig, iter_adapter_parameters
from speechssl.checkpoint import save_encoder
from speechssl.config import apply_overrides, load_config
from speechssl.downstream.asr.model import AsrEncoderConfig, CTCHead, HeadConfig, build_ctc_model
from speechssl.downstream.asr.train import AsrConfig, AsrTrainer, ctc_feasible
from speechssl.models import build_encoder, preset

ROOT = Path(__file__).resolve().parents[1]


def _encoder(seed: int = 0):
    torch.manual_seed(seed)
    return build_encoder(preset("tiny_hubert"))


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("enc") / "tiny_hubert.safetensors"
    save_encoder(_encoder(), path)
    return path


def _config(mode_file: str, corpus: Path, encoder: Path, *overrides: str) -> AsrConfig:
    cfg = load_config(AsrConfig, ROOT / "recipes" / "asr" / mode_file)
    base = [
        f"data.corpus={corpus}", f"encoder.path={encoder}", "data.languages=[en]", "head.hidden_size=32",
        "sampler.max_duration=12", "optim.warmup_steps=2", "optim.max_steps=6", "optim.lr=0.003",
        "run.valid_every=3", "run.save_every=3", "run.log_every=1", "run.progress=false", "run.device=cpu",
    ]
    return apply_overrides(cfg, base + list(overrides))


# ---------------------------------------------------------------------------------------------
# the model


def test_lstm_head_ignores_padding():
    torch.manual_seed(0)
    head = CTCHead(8, 5, "lstm", hidden_size=6, num_layers=2, dropout=0.0).eval()
    x = torch.randn(2, 7, 8)
    lens = torch.tensor([7, 4])
    both = head(x, lens)
    alone = head(x[1:, :4], lens[1:])
    torch.testing.assert_close(both[1, :4], alone[0], rtol=1e-5, atol=1e-6)
    assert both.shape == (2, 7, 5)


@pytest.mark.parametrize(
    "mode, adapter",
    [("frozen", None), ("adapters", AdapterConfig(bottleneck="houlsby", bottleneck_dim=8)),
     ("adapters", AdapterConfig(lora_targets=("q", "v"), lora_rank=2)), ("finetune", None)],
)
def test_modes_train_the_right_parameters(mode, adapter):
    enc_cfg = AsrEncoderConfig(mode=mode) if adapter is None else AsrEncoderConfig(mode=mode, adapter=adapter)
    model = build_ctc_model(_encoder(), enc_cfg, HeadConfig(kind="linear"), vocab_size=11)
    adapter_ids = {id(p) for _, _, p in iter_adapter_parameters(model.encoder)}
    for name, p in model.encoder.named_parameters():
        if mode == "frozen":
            assert not p.requires_grad, name
        elif mode == "adapters":
            assert p.requires_grad == (id(p) in adapter_ids), name
        else:
            assert p.requires_grad == (not name.startswith("feature_extractor.")), name
    assert all(p.requires_grad for p in model.head.parameters()) and all(p.requires_grad for p in model.interface.parameters())
    assert (mode == "adapters") == bool(adapter_ids)
    model.train()
    assert model.encoder.training == (mode != "frozen")  # a frozen encoder runs without dropout


def test_padded_batch_equals_single_items():
    model = build_ctc_model(_encoder(), AsrEncoderConfig(mode="frozen"), HeadConfig(hidden_size=16), vocab_size=9).eval()
    torch.manual_seed(1)
    wavs = torch.randn(2, 16000)
    lens = torch.tensor([16000, 9000])
    with torch.no_grad():
        batch, frames = model(wavs, lens)
        alone, frames1 = model(wavs[1:, :9000])
    n = int(frames[1])
    assert n == int(frames1[0])
    torch.testing.assert_close(batch[1, :n], alone[0, :n], rtol=1e-4, atol=1e-4)


def test_ctc_feasibility():
    assert ctc_feasible(target_len=5, repeats=0, frames=5)
    assert not ctc_feasible(target_len=5, repeats=1, frames=5)  # "aa" needs a blank between the a's
    assert ctc_feasible(target_len=5, repeats=1, frames=6)


def test_recipe_configs_load():
    for path in sorted((ROOT / "recipes" / "asr").glob("*.yaml")):
        cfg = load_config(AsrConfig, path)
        assert cfg.encoder.mode in ("frozen", "adapters", "finetune"), path
    lora = load_config(AsrConfig, ROOT / "recipes" / "asr" / "lora.yaml")
    assert lora.encoder.adapter.bottleneck is None and lora.encoder.adapter.lora_targets == ("q", "v", "fc1", "fc2")


# ---------------------------------------------------------------------------------------------
# training, saving, decoding


def test_train_decode_and_results(mini_corpus, encoder_path, tmp_path):
    """Frozen encoder + BiLSTM: the loss falls, the saved model reloads to the same outputs, decoding
    writes hyps and metrics whose CER and WER agree with jiwer, and RESULTS.md is made from them."""
    jiwer = pytest.importorskip("jiwer")
    from speechssl.downstream.asr.infer import decode_split
    from speechssl.downstream.asr.results import write_results
    from speechssl.downstream.asr.store import load_ctc_model

    exp = tmp_path / "frozen"
    cfg = _config("frozen.yaml", mini_corpus, encoder_path, "optim.max_steps=30", "run.valid_every=15", "run.save_every=15", "run.log_every=5")
    trainer = AsrTrainer(cfg, exp, command="speechssl asr train ...")
    trainer.train()
    records = [json.loads(line) for line in (exp / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    assert train[-1]["loss"] < train[0]["loss"], (train[0], train[-1])
    assert [r["step"] for r in valid] == [15, 30] and all(0 <= r["cer"] for r in valid)
    for name in ("config.yaml", "command.txt", "vocab.json", "summary.json", "model.safetensors"):
        assert (exp / name).is_file(), name
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["trainable_params"] == trainer.report.trainable
    assert len(summary["layer_weights"]) == 3 and abs(sum(summary["layer_weights"]) - 1) < 1e-5

    model, vocab, loaded_cfg = load_ctc_model(exp)
    assert loaded_cfg.encoder.path == str(encoder_path.resolve())
    trainer.model.eval()
    wav = torch.randn(1, 12000)
    with torch.no_grad():
        torch.testing.assert_close(model(wav)[0], trainer.model(wav)[0])

    metrics = decode_split(exp, tmp_path / "dec", split="test")
    hyps = [json.loads(line) for line in (tmp_path / "dec" / "hyps.jsonl").read_text().splitlines()]
    assert metrics["utterances"] == len(hyps) > 0 and metrics["mode"] == "frozen"
    refs, outs = [h["ref"] for h in hyps], [h["hyp"] for h in hyps]
    assert all(r == r.lower() for r in refs)
    assert metrics["cer"] == pytest.approx(jiwer.cer(refs, outs))
    if all(outs):  # jiwer refuses empty hypotheses
        assert metrics["wer"] == pytest.approx(jiwer.wer(refs, outs))
    assert metrics["trainable_params"] == trainer.report.trainable and metrics["stored_bytes"] > 0

    beam = decode_split(exp, tmp_path / "dec_lm", split="test", beam=4, lm_order=2)
    assert beam["decoder"] == "beam" and beam["lm_order"] == 2 and beam["utterances"] == metrics["utterances"]

    text = write_results([("frozen, greedy", tmp_path / "dec"), ("frozen, LM", tmp_path / "dec_lm")], tmp_path / "RESULTS.md", "Tiny")
    assert (tmp_path / "RESULTS.md").read_text() == text
    row = next(line for line in text.splitlines() if line.startswith("| frozen, greedy"))
    assert f"{100 * metrics['cer']:.2f}" in row and f"{100 * metrics['wer']:.2f}" in row
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        write_results([("missing", tmp_path / "nowhere")], tmp_path / "R.md", "x")


def test_resume_equals_uninterrupted(mini_corpus, encoder_path, tmp_path):
    """A run stopped after its step-3 checkpoint and started again ends with the same weights as
    one that never stopped (adapters mode: dropout, data order and optimizer state all resume)."""
    from safetensors.torch import load_file

    overrides = ("encoder.adapter.dropout=0.1", "head.dropout=0.1")
    whole = tmp_path / "whole"
    AsrTrainer(_config("adapters.yaml", mini_corpus, encoder_path, *overrides), whole).train()

    cut = tmp_path / "cut"
    AsrTrainer(_config("adapters.yaml", mini_corpus, encoder_path, *overrides), cut).train()
    # make it look stopped after step 3: no final checkpoint and no exported model
    (cut / "checkpoints" / "step-00000006.pt").unlink()
    for name in ("model.safetensors", "adapter.safetensors", "summary.json", "log.jsonl"):
        (cut / name).unlink()
    resumed = AsrTrainer(_config("adapters.yaml", mini_corpus, encoder_path, *overrides), cut)
    assert resumed.step == 3
    resumed.train()
    for name in ("model.safetensors", "adapter.safetensors"):
        a, b = load_file(str(whole / name)), load_file(str(cut / name))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"{name}: {k}")


def test_adapters_store_only_the_adapter_and_check_the_base(mini_corpus, encoder_path, tmp_path):
    from speechssl.adapters.store import read_adapter_metadata
    from speechssl.downstream.asr.store import load_ctc_model

    enc = tmp_path / "enc.safetensors"
    enc.write_bytes(encoder_path.read_bytes())
    exp = tmp_path / "lora"
    AsrTrainer(_config("lora.yaml", mini_corpus, enc, "optim.max_steps=2"), exp).train()
    meta = read_adapter_metadata(exp / "adapter.safetensors")
    assert meta["name"] == "lora" and "fc1" in meta["config"]
    assert not (exp / "encoder.safetensors").exists()
    model, _, _ = load_ctc_model(exp)
    assert any(True for _ in iter_adapter_parameters(model.encoder))
    save_encoder(_encoder(seed=5), enc)  # the base file replaced by other weights
    with pytest.raises(ValueError, match="trained on base encoder"):
        load_ctc_model(exp)


def test_finetune_keeps_the_encoder_frozen_for_freeze_steps(mini_corpus, encoder_path, tmp_path):
    from speechssl import load_encoder

    base = load_encoder(encoder_path).state_dict()
    frozen_exp = tmp_path / "ft_frozen"
    AsrTrainer(_config("finetune.yaml", mini_corpus, encoder_path, "optim.max_steps=2", "encoder.freeze_steps=2"), frozen_exp).train()
    after = load_encoder(frozen_exp / "encoder.safetensors").state_dict()
    assert all(torch.equal(base[k], after[k]) for k in base)
    exp = tmp_path / "ft"
    AsrTrainer(_config("finetune.yaml", mini_corpus, encoder_path, "optim.max_steps=2", "encoder.freeze_steps=1"), exp).train()
    tuned = load_encoder(exp / "encoder.safetensors").state_dict()
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed and not any(k.startswith("feature_extractor.") for k in changed)
    assert any(k.startswith("encoder.layers.") for k in changed)


def test_sentencepiece_targets(mini_corpus, encoder_path, tmp_path):
    from speechssl.downstream.asr.infer import decode_split

    exp = tmp_path / "spm"
    AsrTrainer(_config("frozen.yaml", mini_corpus, encoder_path, "target.kind=unigram", "target.vocab_size=30", "optim.max_steps=2"), exp).train()
    assert (exp / "vocab.model").is_file() and not (exp / "vocab.json").exists()
    m = decode_split(exp, tmp_path / "dec", split="dev")
    assert m["utterances"] > 0
    with pytest.raises(ValueError, match="character targets"):
        decode_split(exp, tmp_path / "dec_lm", split="dev", lm_order=2)


def test_user_errors(mini_corpus, encoder_path, tmp_path):
    cfg = _config("frozen.yaml", mini_corpus, encoder_path)
    with pytest.raises(ValueError, match="encoder.path is not set"):
        AsrTrainer(replace(cfg, encoder=replace(cfg.encoder, path=None)), tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="no split 'nope'.*found dev, test, train"):
        AsrTrainer(replace(cfg, data=replace(cfg.data, train_split="nope")), tmp_path / "b")
    with pytest.raises(ValueError, match=r"no cut in languages \['xx'\]; the split has de, en, es, fr"):
        AsrTrainer(replace(cfg, data=replace(cfg.data, languages=["xx"])), tmp_path / "c")
    with pytest.raises(ValueError, match="encoder.mode must be one of"):
        AsrEncoderConfig(mode="partial")
    from speechssl.downstream.asr.store import load_ctc_model

    with pytest.raises(FileNotFoundError, match="no trained model"):
        load_ctc_model(tmp_path / "a")


def test_cli_train_decode_results(mini_corpus, encoder_path, tmp_path, capsys):
    from speechssl.cli.main import main

    exp = tmp_path / "exp"
    args = ["asr", "train", "--config", str(ROOT / "recipes/asr/adapters.yaml"), "--corpus", str(mini_corpus),
            "--encoder", str(encoder_path), "--exp", str(exp), "data.languages=[en]", "--max-steps", "2", "run.progress=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trainable" in out and "cer=" in out
    assert "speechssl asr train" in (exp / "command.txt").read_text()
    assert main(["asr", "decode", str(exp), "--split", "dev", "--out", str(tmp_path / "dec")]) == 0
    assert "CER" in capsys.readouterr().out
    assert main(["asr", "results", "--out", str(tmp_path / "R.md"), "--title", "T", f"adapters={tmp_path / 'dec'}"]) == 0
    assert "| adapters | adapters | dev |" in (tmp_path / "R.md").read_text()
    assert main(["asr", "decode", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 1
    assert "no trained model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["asr", "results", "--out", str(tmp_path / "R.md"), "no-equals-sign"])
    assert exit_.value.code == 2 and "expected LABEL=FOLDER" in capsys.readouterr().err
