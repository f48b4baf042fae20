"""The install: pyproject.toml and uv.lock agree, the tested set is what is installed, `speechssl
doctor` reports on it, and a broken or partial environment gets one line with the fix (never a
traceback from inside a dependency)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from speechssl import deps, doctor

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the declared tomli backport
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.deps


def _requirement_set(texts) -> set[tuple[str, str, str]]:
    """Requirements compared by meaning: canonical name, specifier, normalised marker."""
    out = set()
    for text in texts:
        r = Requirement(text)
        out.add((canonicalize_name(r.name), str(r.specifier), str(r.marker or "")))
    return out


def _lock() -> dict:
    with open(ROOT / "uv.lock", "rb") as f:
        return tomllib.load(f)


def test_lock_was_made_from_this_pyproject():
    """uv.lock records the requirements it was resolved from: they must be pyproject.toml's own
    (else: tools/lock.sh), and every direct requirement's locked version must satisfy its range."""
    declared = deps.declared_requirements()
    lock = _lock()
    (me,) = [p for p in lock["package"] if p["name"] == "speechssl"]
    locked_reqs = []
    for r in me["metadata"]["requires-dist"]:
        text = r["name"] + r.get("specifier", "")
        if "marker" in r:
            text += f"; {r['marker']}"
        locked_reqs.append(text)
    want, have = _requirement_set(declared), _requirement_set(locked_reqs)
    assert want == have, (
        "pyproject.toml and uv.lock disagree; refresh the lock with tools/lock.sh\n"
        f"  only in pyproject.toml: {sorted(want - have)}\n  only in uv.lock: {sorted(have - want)}"
    )
    versions: dict[str, list[str]] = {}
    for p in lock["package"]:
        versions.setdefault(p["name"], []).append(p["version"])
    for text in declared:
        r = Requirement(text)
        name = canonicalize_name(r.name)
        assert name in versions, f"{name} is required but not in uv.lock"
        for v in versions[name]:
            assert r.specifier.contains(v, prereleases=True), f"uv.lock has {name} {v}, outside {r.specifier}"


def test_installed_set_is_the_lock():
    """In the environment tools/setup.sh made (what CI runs), every installed package is at its
    locked version: the tests pass with the set the lock promises."""
    if not (Path(sys.prefix) / ".speechssl-setup").is_file():
        pytest.skip("not the venv tools/setup.sh made (it installs the lock)")
    (check,) = doctor._lock()
    assert check.status == doctor.OK, check.found


def test_every_pair_the_ranges_admit_loads_together():
    """The ranges are true: every torch release pyproject.toml admits loads every torchaudio it
    admits (by the measured table), the GPU image's preinstalled 2.11 pair is admitted, and the
    lock's pair is one of them."""
    reqs = {canonicalize_name(Requirement(r).name): Requirement(r) for r in deps.declared_requirements()}
    torch_range, ta_range = reqs["torch"].specifier, reqs["torchaudio"].specifier
    admitted_ta = [ta for ta in deps.TORCHAUDIO_LOADS_WITH if ta_range.contains(ta)]
    assert admitted_ta, f"torchaudio{ta_range} admits no release of the measured table"
    admitted_torch = [f"2.{minor}.0" for minor in range(0, 40) if torch_range.contains(f"2.{minor}.0")]
    assert admitted_torch
    for ta in admitted_ta:
        for t in admitted_torch:
            assert deps._in_range(t, deps.TORCHAUDIO_LOADS_WITH[ta]), f"torch {t} with torchaudio {ta} is admitted but does not load"
    assert torch_range.contains("2.11.0") and ta_range.contains("2.11.0"), "the GPU image's preinstalled pair"
    locked = {p["name"]: p["version"] for p in _lock()["package"]}
    assert deps._in_range(locked["torch"], deps.TORCHAUDIO_LOADS_WITH[locked["torchaudio"]])


@pytest.mark.parametrize(
    ("torch_v", "ta_v", "expect"),
    [
        ("2.11.0", "2.11.1", "pip install torchaudio==2.11.0"),
        ("2.12.1+cu130", "2.11.1+cu132", "pip install torchaudio==2.11.0"),
        ("2.11.0", "2.11.1", "pip install 'torch>=2.13,<2.15'"),
        ("2.15.0", "2.11.0", "pip install 'torch>=2.11,<2.15'"),
        ("3.0.0", "2.12.0", "pip install a torch and torchaudio that load together"),
    ],
)
def test_torchaudio_fix_names_a_pair_that_loads(torch_v, ta_v, expect):
    fix = deps.torchaudio_fix(torch_v, ta_v)
    assert expect in fix
    assert "\n" not in fix


def _fake_package(root: Path, name: str, version: str, init: str) -> None:
    """An importable package ``name`` whose ``__init__`` runs ``init``, with pip metadata saying
    ``version`` (so importlib.metadata reports it as installed)."""
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(init)
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


# what torch.ops.load_library raises for torchaudio 2.11.1's library beside torch 2.11.0: the
# loader's message, wrapped
BROKEN_TORCHAUDIO = """
lib = '/venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so'
try:
    raise OSError(lib + ': undefined symbol: torch_exception_get_what_without_backtrace')
except OSError as e:
    raise OSError('Could not load this library: ' + lib) from e
"""


@pytest.fixture
def broken_torchaudio(tmp_path) -> dict:
    """The environment of a process whose torchaudio 2.11.1 fails to load its compiled library,
    as it does beside torch 2.11.0."""
    site = tmp_path / "site"
    _fake_package(site, "torchaudio", "2.11.1", BROKEN_TORCHAUDIO)
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))


def _speechssl(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechssl.cli.main", *args], capture_output=True, text=True, env=env, timeout=300)


def _assert_one_line_about_torchaudio(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    (line,) = lines
    assert "Traceback" not in err
    torch_v = deps.installed_version("torch")
    assert "torchaudio 2.11.1" in line and f"torch {torch_v}" in line, line
    assert "torch_exception_get_what_without_backtrace" in line and "Fix: " in line, line


def test_broken_torchaudio_is_one_line_at_every_entry_point(broken_torchaudio, mini_corpus, tmp_path):
    # a verb that computes MFCC (k-means on the first iteration's features)
    run = _speechssl(broken_torchaudio, "features", str(mini_corpus / "cuts_dev.jsonl.gz"), str(tmp_path / "feats"), "--kind", "mfcc")
    assert run.returncode == 1
    _assert_one_line_about_torchaudio(run.stderr)
    assert run.stderr.startswith("speechssl features: error: torchaudio")
    # the same verb run as a module (python -m speechssl.cli.features), as recipes may
    run = subprocess.run(
        [sys.executable, "-m", "speechssl.cli.features", str(mini_corpus / "cuts_dev.jsonl.gz"), str(tmp_path / "f2"), "--kind", "mfcc"],
        capture_output=True, text=True, env=broken_torchaudio, timeout=300,
    )
    assert run.returncode == 1
    _assert_one_line_about_torchaudio(run.stderr)
    assert not list((tmp_path / "f2").rglob("*.json")), "nothing that looks finished"
    # the library: the same one-line message, as an ImportError subclass
    code = (
        "import torch\nfrom speechssl.deps import DependencyError\nfrom speechssl.features.mfcc import mfcc_39\n"
        "try:\n    mfcc_39(torch.zeros(16000))\nexcept DependencyError as e:\n    print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=broken_torchaudio, timeout=300)
    _assert_one_line_about_torchaudio(run.stdout)
    # doctor reports it with the fix, and exits 1
    run = _speechssl(broken_torchaudio, "doctor")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL  torchaudio" in run.stdout and "fix: " in run.stdout and "unhealthy" in run.stdout, run.stdout


def test_missing_package_is_one_line(tmp_path):
    """A partial install (lhotse missing): the verb names the package and the fix."""
    code = "import sys\nsys.modules['lhotse'] = None\nfrom speechssl.cli.main import main\nsys.exit(main(['stats', 'nowhere']))\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    assert "speechssl stats: error: the Python package 'lhotse' is not installed" in run.stderr
    assert "lhotse>=" in run.stderr  # the declared requirement, ready to pip install


def test_doctor_on_this_install():
    """The install the tests run in is healthy, and doctor's report names everything a bug
    report needs."""
    run = subprocess.run([sys.executable, "-m", "speechssl.cli.main", "doctor"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for name in ("python", "requirements", "torch", "torchaudio", "faiss", "lhotse", "transformers", "espeak-ng", "threads", "cpu"):
        assert f"  {name} " in out, name
    assert "compiled library loads" in out
    assert out.rstrip().splitlines()[-1].startswith("healthy")


def test_doctor_reports_missing_and_out_of_range_requirements(monkeypatch):
    real = deps.installed_version

    def fake(dist: str):
        return {"lhotse": None, "faiss-cpu": "1.2.0"}.get(dist, real(dist)) if dist in ("lhotse", "faiss-cpu") else real(dist)

    monkeypatch.setattr(doctor, "installed_version", fake)
    checks = {c.name: c for c in doctor._requirements()}
    assert checks["requirements"].status == doctor.FAIL
    assert checks["lhotse"].status == doctor.FAIL and checks["lhotse"].fix.startswith("pip install 'lhotse>=")
    assert checks["faiss-cpu"].status == doctor.FAIL and "outside" in checks["faiss-cpu"].found


def test_doctor_survives_a_crashing_check(monkeypatch):
    def boom():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(doctor, "CHECKS", [doctor._python, boom])
    checks = doctor.run_checks()
    assert checks[-1].status == doctor.FAIL and "driver exploded" in checks[-1].found
    assert "unhealthy" in doctor.format_report(checks)


def test_ci_installs_the_lock_and_runs_every_cpu_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'tools/setup.sh && .venv/bin/python -m pytest -m "not gpu"' in ci
    setup = (ROOT / "tools" / "setup.sh").read_text()
    assert re.search(r"uv sync .*--locked", setup), "setup.sh installs uv.lock, refusing a lock out of date"
    assert "--compile-bytecode" in setup
