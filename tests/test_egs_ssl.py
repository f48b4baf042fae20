"""egs/mini/ssl/run.sh, HuBERT's pretraining iterations, run for real on the tiny mini corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "mini" / "ssl" / "run.sh"


def _records(log: Path, split: str) -> list[dict]:
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in records if r["split"] == split]


@pytest.mark.slow  # a recipe-level run: CI runs it (-m "not gpu"), the default suite does not
def test_egs_mini_ssl_run_sh(mini_corpus, tmp_path):
    """Both iterations end to end (stage 0 finds the session's tiny corpus complete), the report,
    a falling loss, and a second run that skips every finished stage."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    exp = tmp_path / "exp"
    cmd = [str(RECIPE), "--tiny", "true", "--data", str(mini_corpus.parent), "--exp", str(exp), "--nj", "2"]
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for s in range(10):
        assert f"stage {s}:" in run.stdout, f"stage {s} did not run"
    assert (exp / "run.command").read_text().strip().endswith("--nj 2")

    # the tiny defaults: 20 MFCC clusters, then 30 clusters of layer 1 of iteration 1's encoder
    units = [exp / "labels" / "mfcc_km20", exp / "labels" / "hubert_iter1_l1_km30"]
    encoders = [exp / "pretrain" / f"iter{i}" / "encoder.safetensors" for i in (1, 2)]
    for path in units + encoders:
        assert path.exists(), path
    assert json.loads((units[1] / "labels.json").read_text())["feature"]["layer"] == 1
    for i in (1, 2):  # with the topic loss (topic_weight 0.1 by default)
        config = (exp / "pretrain" / f"iter{i}" / "config.yaml").read_text()
        assert "weight: 0.1" in config and "_t4" in config

    report = exp / "report"
    table = (report / "label_quality.txt").read_text()
    assert "PNMI" in table
    # the iteration-2 units' PNMI against the MFCC units', per split
    assert {line.split()[1] for line in table.splitlines() if line.startswith("PNMI ")} == {"train:", "dev:", "test:"}
    for u in units:
        rows = [line for line in table.splitlines() if line.startswith(str(u))]
        assert {line.split()[1] for line in rows} == {"train", "dev", "test"}, table
    quality = json.loads((report / "label_quality.json").read_text())
    assert [Path(k).name for k in quality] == [u.name for u in units]
    for per_split in quality.values():
        assert all(0.0 < q["pnmi"] <= 1.0 for q in per_split.values())
    assert "PNMI" in run.stdout and "iteration 2:" in (report / "losses.txt").read_text()

    # iteration 1 learned: its training loss fell
    train = _records(exp / "pretrain" / "iter1" / "log.jsonl", "train")
    assert len(train) >= 2
    assert train[-1]["loss"] < train[0]["loss"], (train[0], train[-1])

    # a second run finds every stage done: nothing is recomputed, and it is quick
    stamps = {p: p.stat().st_mtime_ns for p in encoders + [report / ".done"]}
    start = time.perf_counter()
    again = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done before:") == 10, again.stdout  # 2 x (features, k-means, units, topics, pretraining)
    assert "PNMI" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert elapsed < 30, f"the second run took {elapsed:.1f} s"

    # a remade stage makes the stages after it stale: redoing iteration 1's k-means (stage 2)
    # redoes its units and topics (stage 3)
    (exp / "kmeans" / "mfcc_km20" / ".done").unlink()
    before = (units[0] / ".done").stat().st_mtime_ns
    redo = subprocess.run(cmd + ["--stage", "2", "--stop_stage", "3"], check=False, capture_output=True, text=True, env=env)
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert "done before:" not in redo.stdout, redo.stdout
    assert (units[0] / ".done").stat().st_mtime_ns > before


def test_egs_mini_ssl_run_sh_options():
    help_ = subprocess.run([str(RECIPE), "--help"], check=False, capture_output=True, text=True)
    assert help_.returncode == 0
    assert '--clusters ("100 500")' in help_.stdout and "--stop_stage (100)" in help_.stdout
    bad = subprocess.run([str(RECIPE), "--cluster", "100"], check=False, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --cluster" in bad.stderr
    uneven = subprocess.run([str(RECIPE), "--clusters", "100 500 500"], check=False, capture_output=True, text=True)
    assert uneven.returncode == 2 and "one value per iteration" in uneven.stderr
