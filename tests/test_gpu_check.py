"""tools/gpu_check.sh, the one call a lent GPU machine runs, end to end on the CPU (--device cpu
--quick): every step runs, the output folder holds the log, the doctor's report, the summary and
the benchmarks' headline lines."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from recipe_runner import ENV

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
STEPS = ("doctor", "gpu_tests", "smoke", "encoder", "pretrain_step", "tokens")


def test_gpu_check_on_cpu(mini_corpus, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [str(SCRIPT), "--device", "cpu", "--quick", "--data", str(mini_corpus), "--out", str(out)],
        capture_output=True, text=True, env=ENV, timeout=900,
    )
    log = (out / "log.txt").read_text() if (out / "log.txt").exists() else ""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:] + log[-4000:]
    summary = (out / "summary.txt").read_text()
    for step in STEPS:
        assert re.search(rf"^{step}\s+ok\s+\d+ s$", summary, re.M), summary
    assert "all steps passed" in summary
    # the smoke test checked its own outputs: finite pretraining losses, tokens written
    assert re.search(r"^smoke: \d+ pretraining loss records, last [0-9.]+; 80 token lines$", log, re.M), log[-3000:]
    headlines = (out / "headlines.txt").read_text()
    for name in ("encoder_speedup_vs_transformers", "pretrain_step_speedup_vs_torchaudio", "tokens_rtf"):
        assert re.search(rf"^\w+ \| {name}: [0-9.]+", headlines, re.M), headlines
    doctor = (out / "doctor.txt").read_text()
    assert "torchaudio" in doctor and doctor.rstrip().splitlines()[-1].startswith("healthy")


def test_gpu_check_stops_at_its_budget(tmp_path):
    """A budget spent skips the remaining steps and fails the run, so a call never outlasts its limit."""
    out = tmp_path / "out"
    run = subprocess.run([str(SCRIPT), "--device", "cpu", "--budget", "5", "--out", str(out)], capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 1
    summary = (out / "summary.txt").read_text()
    assert re.search(r"^doctor\s+SKIPPED \(budget spent\)", summary, re.M) and "FAILED: doctor gpu_tests smoke" in summary


def test_gpu_check_arguments(tmp_path):
    bad = subprocess.run([str(SCRIPT), "--device", "tpu", "--out", str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert bad.returncode == 2 and "--device must be cuda or cpu" in bad.stderr
    help_ = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, env=ENV)
    assert help_.returncode == 0 and "--budget" in help_.stdout and "gpu-wheels.sh" in help_.stdout
