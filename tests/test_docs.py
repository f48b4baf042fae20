"""The pages under docs/ that walk through a user story: their bash blocks run as they are, in
order, on the tiny mini corpus (a random-weight encoder stands in for a pretrained one)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from speechssl.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def bash_commands(page: Path) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture
def workdir(mini_corpus, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mini").symlink_to(mini_corpus)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")  # the pages' commands run from the repository root
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_tokens_page_runs(workdir):
    from speechssl.checkpoint import save_encoder
    from speechssl.models import build_encoder, preset

    torch.manual_seed(0)
    (workdir / "exp").mkdir()
    save_encoder(build_encoder(preset("tiny_hubert")), workdir / "exp" / "tiny_hubert.safetensors")
    commands = bash_commands(ROOT / "docs" / "tokens.md")
    assert len(commands) == 5
    for line in commands:
        argv = shlex.split(line)
        assert argv[0] == "speechssl", line
        assert main(argv[1:]) == 0, line
    items = [json.loads(line) for line in (workdir / "exp" / "tokens" / "tokens.jsonl").read_text().splitlines()]
    assert items and all(len(i["units"]) == len(i["durations"]) for i in items)
    assert (workdir / "exp" / "tokens" / "tokens.json").is_file() and (workdir / "exp" / "tokens" / "bpe60.jsonl").is_file()


def test_new_language_page_runs(workdir):
    """The page's commands with a small random-weight encoder; the tiny corpus's German is under 10
    minutes, so the subset is all of it."""
    from speechssl.checkpoint import save_encoder
    from speechssl.models import build_encoder, preset

    torch.manual_seed(0)
    (workdir / "exp").mkdir()
    save_encoder(build_encoder(preset("tiny_hubert")), workdir / "exp" / "encoder.safetensors")
    commands = bash_commands(ROOT / "docs" / "new_language.md")
    assert len(commands) == 8
    for line in commands:
        argv = shlex.split(line)
        if argv[1:3] == ["asr", "train"]:
            argv.append("optim.max_steps=3")  # the page's 300 steps are for the 1-hour corpus
        assert main(argv[1:]) == 0, line
    text = (workdir / "exp" / "asr" / "RESULTS.md").read_text()
    for system in ("frozen_linear", "adapters", "lora"):
        assert f"| {system} |" in text
    assert (workdir / "exp" / "asr" / "adapters" / "adapter.safetensors").is_file()


def test_recipes_page_runs(tmp_path):
    """docs/recipes.md's bash blocks: recipes' --help and real-corpus dry runs (made-up corpus paths),
    run from the repository root. Each exits 0, a dry run prints its commands ('+ ' lines), and none
    writes anything under egs/ (ignored recipe outputs such as egs/*/*/exp/ included)."""
    import subprocess

    from recipe_runner import ENV, tree

    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the files under egs/")

    def egs_files() -> str:
        status = ["git", "status", "--porcelain", "--untracked-files=all", "--ignored", "egs"]
        return subprocess.run(status, cwd=ROOT, check=True, capture_output=True, text=True).stdout

    commands = bash_commands(ROOT / "docs" / "recipes.md")
    assert len(commands) >= 6
    before, before_tree = egs_files(), tree(ROOT / "egs")  # the tree catches empty folders too
    for line in commands:
        argv = shlex.split(line)
        assert argv[0].startswith("egs/") and argv[0].endswith("/run.sh"), line
        run = subprocess.run(argv, cwd=ROOT, env=ENV, check=False, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"{line}\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
        if "--help" in argv:
            assert "Options (default" in run.stdout, line
        else:
            assert argv[-2:] == ["--dry-run", "true"], line
            assert any(out.startswith("+ ") for out in run.stdout.splitlines()), f"{line}\n{run.stdout[-3000:]}"
        assert egs_files() == before, f"{line} wrote under egs/"
        assert tree(ROOT / "egs") == before_tree, f"{line} made {sorted(map(str, tree(ROOT / 'egs') - before_tree))}"
