"""The CLI surface: `speechssl --help` lists every verb, every verb has --help with an example,
README documents every verb, and CI runs the README's test command."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from speechssl.cli.main import VERBS, main

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert re.search(rf"^\s+{re.escape(verb)}\s", out, re.M), verb


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_has_help_with_an_example(verb, capsys):
    module = importlib.import_module(f"speechssl.cli.{VERBS[verb][0]}")
    assert callable(module.get_parser) and callable(module.main)
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"speechssl {verb}" in out
    example = out.split("Example")[-1]
    assert "Example" in out and f"speechssl {verb} " in example, f"{verb} --help has no example"


def test_unknown_verb_suggests(capsys):
    assert main(["stat"]) == 2
    assert "Did you mean 'stats'" in capsys.readouterr().err


def test_console_script_is_installed():
    exe = shutil.which("speechssl", path=str(Path(sys.executable).parent))
    assert exe, "the speechssl console script is not installed next to this Python"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "make-mini-corpus" in out


def test_readme_documents_every_verb_and_ci_runs_its_test_command():
    readme = (ROOT / "README.md").read_text()
    for verb in VERBS:
        assert f"speechssl {verb} " in readme, f"README has no example of 'speechssl {verb}'"
    test_cmd = "tools/setup.sh && .venv/bin/python -m pytest"
    assert test_cmd in readme
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
    # the first two commands of the README are the main job and the tests
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    assert "egs/mini/run.sh" in commands[0] and test_cmd in commands[1]



def test_every_verb_runs_as_a_module():
    """``python -m speechssl.cli.<module>`` is the same verb (recipes may call it so): each verb
    module ends by running its ``main`` (test_deps runs one such module for real)."""
    for verb, (module, _) in VERBS.items():
        tree = ast.parse((ROOT / "speechssl" / "cli" / f"{module}.py").read_text())
        last = tree.body[-1]
        assert isinstance(last, ast.If) and ast.unparse(last.test) == "__name__ == '__main__'", verb
        assert "sys.exit(main())" in ast.unparse(last), verb
