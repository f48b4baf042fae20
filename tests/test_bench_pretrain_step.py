"""tools/bench/pretrain_step.py runs end to end at the smallest sizes and prints its headline lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "bench" / "pretrain_step.py"
TINY = ["--preset", "tiny_hubert", "--batch", "1", "--seconds", "0.5", "--clusters", "20", "--warmup", "1", "--rounds", "1"]


def run_bench(*extra: str) -> dict[str, str]:
    res = subprocess.run([sys.executable, str(SCRIPT), *TINY, *extra], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "check at init" in res.stdout and "WARNING" not in res.stdout, res.stdout
    out = res.stdout.strip().splitlines()
    blank = len(out) - 1 - out[::-1].index("")  # the headline lines follow the last blank line
    return dict(line.split(": ", 1) for line in out[blank + 1 :])


def test_pretrain_step_bench_prints_headlines():
    headline = run_bench("--threads", "1")
    assert list(headline) == [
        "pretrain_step_speedup_vs_torchaudio",
        "pretrain_step_audio_s_per_s",
        "pretrain_step_peak_memory_ratio",
    ]
    assert re.fullmatch(r"\d+\.\d\dx", headline["pretrain_step_speedup_vs_torchaudio"])
    assert float(headline["pretrain_step_audio_s_per_s"]) > 0
    assert float(headline["pretrain_step_peak_memory_ratio"]) > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pretrain_step_bench_cuda_prints_mfu():
    headline = run_bench("--device", "cuda", "--dtype", "bf16", "--peak-tflops", "100")
    assert list(headline)[-2:] == ["pretrain_step_peak_memory_ratio", "pretrain_step_mfu"]
    assert 0 < float(headline["pretrain_step_mfu"]) < 1
