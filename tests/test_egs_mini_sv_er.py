"""egs/mini/sv/run.sh and egs/mini/er/run.sh, run for real on the tiny mini corpus with a tiny
random-weight encoder: every system trains, is scored, and lands in RESULTS.md as measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recipe_runner import ok as _ok, run_recipe as _run

ROOT = Path(__file__).resolve().parents[1]
SV = ROOT / "egs" / "mini" / "sv" / "run.sh"
ER = ROOT / "egs" / "mini" / "er" / "run.sh"


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    from speechssl.checkpoint import save_encoder
    from speechssl.models import build_encoder, preset

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "tiny.safetensors"
    save_encoder(build_encoder(preset("tiny_hubert")), path)
    return path


def _row(results: str, system: str) -> list[str]:
    line = next(line for line in results.splitlines() if line.startswith(f"| {system} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_mini_sv(mini_corpus, encoder, tmp_path):
    exp = tmp_path / "exp"
    args = ["--tiny", "true", "--data", mini_corpus.parent, "--exp", exp, "--encoder", encoder, "--systems", "fbank random pretrained", "--steps", "6"]
    run = _ok(_run(SV, *args))
    results = (exp / "RESULTS.md").read_text()
    assert results.strip() in run.stdout
    for system in ("fbank", "random", "pretrained"):
        ev = exp / "sv" / system / "eval_test"
        m = json.loads((ev / "metrics.json").read_text())
        assert (ev / "det.png").is_file() and (ev / "scores.txt").is_file()
        row = _row(results, system)
        assert row[1] == m["upstream"] == system and row[5] == f"{100 * m['eer']:.2f}" and row[8] == f"{100 * m['asnorm']['eer']:.2f}"
        assert (exp / "sv" / system / "model.safetensors").is_file()
    again = _ok(_run(SV, *args))
    assert again.stdout.count("done before") == 7  # 3 trainings, 3 evaluations, RESULTS.md


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_mini_er(mini_corpus, encoder, tmp_path):
    exp = tmp_path / "exp"
    run = _ok(_run(ER, "--tiny", "true", "--data", mini_corpus.parent, "--exp", exp, "--encoder", encoder, "--systems", "mfcc pretrained", "--steps", "6"))
    results = (exp / "RESULTS.md").read_text()
    assert results.strip() in run.stdout and "emotion (prosody style) recognition" in results
    for system in ("mfcc", "pretrained"):
        ev = exp / "er" / system / "eval_test"
        m = json.loads((ev / "metrics.json").read_text())
        assert (ev / "confusion.png").is_file() and (ev / "confusion.md").is_file()
        row = _row(results, system)
        assert row[1] == system and row[6] == f"{100 * m['unweighted_accuracy']:.2f}" and row[5] == f"{100 * m['accuracy']:.2f}"
        assert m["labels"] == ["neutral", "happy", "sad", "angry"]


def test_mini_recipes_options(tmp_path):
    for recipe in (SV, ER):
        help_ = _ok(_run(recipe, "--help")).stdout
        assert "--systems (\"fbank mfcc random pretrained\")" in help_ and "Stages:" in help_
        bad = _run(recipe, "--nope", "1")
        assert bad.returncode == 2 and "unknown option --nope" in bad.stderr
        bad = _run(recipe, "--systems", "fbank wavlm", "--exp", tmp_path / "x")
        assert bad.returncode == 2 and "unknown system 'wavlm'" in bad.stderr
        bad = _run(recipe, "--stage", "1", "--encoder", tmp_path / "missing.safetensors", "--exp", tmp_path / "x")
        assert bad.returncode == 2 and "no such file" in bad.stderr
