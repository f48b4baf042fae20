"""Running egs/ recipes from tests: the environment (the venv's speechssl on PATH), the run, a check
that it succeeded (showing its output when not), and what the data stages' outputs hold."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def run_recipe(recipe: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(recipe), *map(str, args)], check=False, capture_output=True, text=True, env=ENV)


def ok(run: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


def cut_ids(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line)["id"] for line in f if line.strip()]


def tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()
