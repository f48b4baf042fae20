"""docs/cli.md is generated from the parsers (tools/cli_reference.py) and must match them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "tools" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_current_and_complete():
    from speechssl.cli.main import VERBS

    tool = _tool()
    text = tool.render()
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == text, "docs/cli.md is out of date: run tools/cli_reference.py"
    for verb in VERBS:
        assert f"\n## {verb}\n" in text and f"usage: speechssl {verb}" in text, verb
    for sub in ("asr train", "sv evaluate", "er results", "kmeans fit", "tokens extract", "topics analyze", "prepare voxceleb"):
        assert f"\n### {sub}\n" in text and f"usage: speechssl {sub}" in text, sub
    assert tool.main(["--check"]) == 0
