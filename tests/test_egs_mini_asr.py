"""egs/mini/asr/run.sh and egs/mini/new_language/run.sh, run for real on the tiny mini corpus."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
ASR = ROOT / "egs" / "mini" / "asr" / "run.sh"
NEW_LANGUAGE = ROOT / "egs" / "mini" / "new_language" / "run.sh"


def _env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _rows(results: str) -> dict[str, list[str]]:
    """system -> its cells, from the RESULTS.md table."""
    rows = {}
    for line in results.splitlines():
        if line.startswith("| ") and not line.startswith("| system") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_new_language_recipe(mini_corpus, tmp_path):
    """English-only pretraining, 10 minutes of German (all the tiny corpus has), four modes, and a
    RESULTS.md whose every figure is the decode folders' metrics."""
    exp = tmp_path / "exp"
    cmd = [str(NEW_LANGUAGE), "--tiny", "true", "--data", str(mini_corpus.parent), "--exp", str(exp), "--nj", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for s in range(6):
        assert f"stage {s}:" in run.stdout, f"stage {s} did not run"

    # the encoder was pretrained on English only, the ASR data is German
    pretrain = json.loads((exp / "data" / "pretrain_en" / "subset.json").read_text())
    assert all(set(split["languages"]) == {"en"} for split in pretrain["splits"].values())
    german = json.loads((exp / "data" / "de_10min" / "subset.json").read_text())
    assert all(set(split["languages"]) == {"de"} for split in german["splits"].values())
    assert german["splits"]["train"]["seconds"] <= 600
    for labels in (exp / "ssl" / "labels").iterdir():  # both iterations' units are of the English subset
        assert json.loads((labels / "labels.json").read_text())["splits"]["train"]["manifest"] == str(exp / "data" / "pretrain_en" / "cuts_train.jsonl.gz")
    encoder = exp / "ssl" / "pretrain" / "iter2" / "encoder.safetensors"
    assert encoder.is_file()

    modes = ["frozen_linear", "adapters", "lora", "finetune"]
    for mode in modes:
        cfg = (exp / "asr" / mode / "config.yaml").read_text()
        assert str(encoder) in cfg and "de_10min" in cfg and "max_steps: 20" in cfg
    assert (exp / "asr" / "adapters" / "adapter.safetensors").is_file()
    assert (exp / "asr" / "finetune" / "encoder.safetensors").is_file()

    results = (exp / "RESULTS.md").read_text()
    assert "de from 10 minutes" in results and "pretrained on en" in results
    rows = _rows(results)
    assert list(rows) == modes
    for mode in modes:
        m = json.loads((exp / "asr" / mode / "decode_test" / "metrics.json").read_text())
        cells = rows[mode]
        assert cells[2] == "test" and int(cells[3]) == m["utterances"] > 0
        assert cells[4] == f"{100 * m['cer']:.2f}" and cells[5] == f"{100 * m['wer']:.2f}"
    trainable = {mode: json.loads((exp / "asr" / mode / "summary.json").read_text())["trainable_params"] for mode in modes}
    assert trainable["frozen_linear"] < trainable["lora"] < trainable["finetune"]
    assert trainable["adapters"] < trainable["finetune"]
    sizes = {mode: json.loads((exp / "asr" / mode / "decode_test" / "metrics.json").read_text())["stored_bytes"] for mode in modes}
    assert sizes["adapters"] < sizes["finetune"] and sizes["lora"] < sizes["finetune"]
    assert "| frozen_linear | frozen |" in run.stdout  # printed as well

    # a second run skips everything and changes nothing
    stamp = (exp / "RESULTS.md").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done before:") >= 2 + 2 * len(modes) + 1, again.stdout
    assert (exp / "RESULTS.md").stat().st_mtime_ns == stamp


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_asr_recipe_with_a_given_encoder(mini_corpus, tmp_path):
    """English ASR on an encoder given with --encoder (no pretraining), one mode, a beam with an LM."""
    from speechssl.checkpoint import save_encoder
    from speechssl.models import build_encoder, preset

    torch.manual_seed(0)
    encoder = tmp_path / "tiny.safetensors"
    save_encoder(build_encoder(preset("tiny_hubert")), encoder)
    exp = tmp_path / "exp"
    cmd = [str(ASR), "--tiny", "true", "--data", str(mini_corpus.parent), "--exp", str(exp), "--encoder", str(encoder),
           "--modes", "frozen", "--steps", "3", "--beam", "3", "--lm_order", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "stage 2: the encoder is --encoder" in run.stdout and not (exp / "ssl").exists()
    assert (exp / "data" / "en" / "subset.json").is_file() and not (exp / "data" / "pretrain_all").exists()
    m = json.loads((exp / "asr" / "frozen" / "decode_test" / "metrics.json").read_text())
    assert m["decoder"] == "beam" and m["lm_order"] == 2
    assert re.search(r"\| frozen \| frozen \| test \| \d+ \|", (exp / "RESULTS.md").read_text())
    assert "max_steps: 3" in (exp / "asr" / "frozen" / "config.yaml").read_text()

    help_ = subprocess.run([str(ASR), "--help"], capture_output=True, text=True, env=_env())
    assert help_.returncode == 0 and "--budget_minutes (\"\")" in help_.stdout and "--modes (\"frozen adapters finetune\")" in help_.stdout
    help_nl = subprocess.run([str(NEW_LANGUAGE), "--help"], capture_output=True, text=True, env=_env())
    assert help_nl.returncode == 0 and "--lang (de)" in help_nl.stdout and "--budget_minutes (10)" in help_nl.stdout
    bad = subprocess.run([str(ASR), "--modes", "nope", "--stage", "9"], capture_output=True, text=True, env=_env())
    assert bad.returncode == 2 and "mini_nope.yaml" in bad.stderr
    bad = subprocess.run([str(NEW_LANGUAGE), "--lnag", "fr", "--stage", "9"], capture_output=True, text=True, env=_env())
    assert bad.returncode == 2 and "unknown option --lnag" in bad.stderr
