"""What speechssl needs installed: versions, torchaudio's compiled library against torch, and one
clear line (what is wrong, both versions, the fix) instead of a traceback from a dependency's
internals when something is missing or broken.

torchaudio is in maintenance and its 2.11 line is its last. ``import torchaudio`` loads a compiled
library linked against some torch builds and not others, and its wheels do not say which (2.11.0
declares no torch requirement; 2.11.1 declares ``torch>=2.11`` and fails to load with torch 2.11.0).
:data:`TORCHAUDIO_LOADS_WITH` records what was measured; pyproject.toml's ranges follow it, and an
environment that pairs them wrongly anyway is named, with the fix, by :func:`import_torchaudio`,
through which every import of torchaudio in speechssl goes.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from types import ModuleType

# torchaudio release -> the torch releases (first, last: "major.minor") its compiled library loads
# with. Measured on 2026-12-02 by loading each pair (torch from PyPI, Linux x86-64; the library, then
# Kaldi MFCC, fbank, resample, HuBERT and forced_align): torchaudio 2.11.0 loads with torch 2.11.0,
# 2.12.0, 2.12.1, 2.13.0, 2.14.0 and 2.14.1 and fails with 2.15.0 (its CUDA 13.0 build against
# torch's 13.2); 2.11.1 fails with 2.11.0, 2.12.0 and 2.12.1 (undefined symbols) and loads with
# 2.13.0-2.15.0 (2.15 is outside speechssl's tested range). Neither loads beside a CPU-only torch
# (both link libc10_cuda.so). pyproject.toml pins torchaudio 2.11.0 for that reason.
TORCHAUDIO_LOADS_WITH: dict[str, tuple[str, str]] = {
    "2.11.0": ("2.11", "2.14"),
    "2.11.1": ("2.13", "2.14"),
}

# import name -> distribution name, where they differ
_DISTRIBUTIONS = {
    "yaml": "PyYAML",
    "sklearn": "scikit-learn",
    "faiss": "faiss-cpu",
}

# where the tested versions of everything are, and the command that installs them
LOCK_FILE = "uv.lock"
SETUP_FIX = "tools/setup.sh --force (installs the tested versions of uv.lock)"


class DependencyError(ImportError):
    """A dependency is missing or does not load; the message is one line with the fix."""


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (as pip names it), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def source_checkout() -> Path | None:
    """The repository root when speechssl runs from a source checkout (its lock file beside it)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / LOCK_FILE).is_file() and (root / "pyproject.toml").is_file() else None


def release(version: str) -> tuple[int, ...]:
    """``"2.14.1+cu130"`` -> ``(2, 14, 1)``: the numeric release, local and pre-release tags dropped."""
    m = re.match(r"(\d+(?:\.\d+)*)", version)
    if not m:
        raise ValueError(f"not a version: {version!r}")
    return tuple(int(p) for p in m.group(1).split("."))


def _in_range(torch_version: str, bounds: tuple[str, str]) -> bool:
    have = release(torch_version)
    first, last = (release(b) for b in bounds)
    return first <= have[: len(first)] and have[: len(last)] <= last


def _next_release(version: str) -> str:
    parts = list(release(version))
    parts[-1] += 1
    return ".".join(map(str, parts))


def torchaudio_fix(torch_version: str, torchaudio_version: str) -> str:
    """How to make ``torchaudio_version`` load beside ``torch_version``: one line of commands."""
    ta = ".".join(map(str, release(torchaudio_version)))
    fixes = []
    if ta in TORCHAUDIO_LOADS_WITH:
        first, last = TORCHAUDIO_LOADS_WITH[ta]
        fixes.append(f"pip install 'torch>={first},<{_next_release(last)}' (torchaudio {ta} loads with torch {first}-{last})")
    fixes += [
        f"pip install torchaudio=={other} (it loads with torch {first}-{last})"
        for other, (first, last) in TORCHAUDIO_LOADS_WITH.items()
        if other != ta and _in_range(torch_version, (first, last))
    ]
    if not fixes:
        fixes.append("pip install a torch and torchaudio that load together")
    if source_checkout() is not None:
        fixes.insert(0, SETUP_FIX)
    return "; or ".join(fixes)


def _last_line(error: BaseException) -> str:
    """The most specific line of an exception chain (the loader's own message, e.g. the symbol)."""
    while error.__cause__ is not None or error.__context__ is not None:
        inner = error.__cause__ or error.__context__
        if not str(inner).strip():
            break
        error = inner
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def torchaudio_problem(error: BaseException) -> str:
    """One line: torchaudio failed to load, both versions, why, and the fix."""
    torch_v = installed_version("torch") or "not installed"
    ta_v = installed_version("torchaudio") or "unknown"
    return (
        f"torchaudio {ta_v} cannot load its compiled library with torch {torch_v} ({_last_line(error)}). "
        f"Fix: {torchaudio_fix(torch_v, ta_v) if torch_v != 'not installed' else 'pip install torch'}"
    )


def _torch_problem(error: BaseException) -> str:
    return (
        f"torch {installed_version('torch') or '?'} does not load ({_last_line(error)}). Fix: {_install_fix('torch')} "
        "(a CUDA build needs its nvidia-* packages; pip install --force-reinstall torch restores them)"
    )


def _import_checked(name: str, problem) -> ModuleType:
    """``import name``, or :class:`DependencyError`: not installed, a dependency of it missing, or
    ``problem(error)`` when it is there but does not load (its compiled library, say)."""
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == name:
            raise DependencyError(f"{name} is not installed. Fix: {_install_fix(name)}") from e
        raise DependencyError(missing_module_message(e)) from e
    except (OSError, ImportError, RuntimeError) as e:  # a compiled library (OSError), torchaudio's CUDA check (RuntimeError)
        raise DependencyError(problem(e)) from e


def import_torch() -> ModuleType:
    """``import torch``, or :class:`DependencyError` with one line when it is missing or its
    compiled libraries do not load (a CUDA build without its CUDA libraries, say)."""
    return _import_checked("torch", _torch_problem)


def import_torchaudio() -> ModuleType:
    """``import torchaudio``, or :class:`DependencyError` with one line naming torch's and
    torchaudio's versions and the fix when it is missing or its compiled library does not load."""
    return _import_checked("torchaudio", torchaudio_problem)


def torchaudio_module(name: str) -> ModuleType:
    """A torchaudio submodule (``"compliance.kaldi"``, ``"functional"``), imported after
    :func:`import_torchaudio` has checked that torchaudio loads."""
    import_torchaudio()
    return importlib.import_module(f"torchaudio.{name}")


def _install_fix(distribution: str) -> str:
    spec = _requirement_of(distribution)
    pip = f"pip install '{spec}'" if spec else f"pip install {distribution}"
    return f"{SETUP_FIX}, or {pip}" if source_checkout() is not None else pip


def declared_requirements() -> list[str] | None:
    """speechssl's requirements as PEP 508 strings (the dev extra's marked ``extra == "dev"``):
    pyproject.toml's in a source checkout (the truth there, also when run from the tree without
    an install), else the installed package's metadata; None when neither is found."""
    root = source_checkout()
    if root is not None:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # Python 3.10: the declared backport
            import tomli as tomllib
        with open(root / "pyproject.toml", "rb") as f:
            project = tomllib.load(f)["project"]
        out = list(project.get("dependencies", []))
        for extra, reqs in project.get("optional-dependencies", {}).items():
            out += [f"{r} and extra == '{extra}'" if ";" in r else f"{r}; extra == '{extra}'" for r in reqs]
        return out
    try:
        return importlib.metadata.requires("speechssl") or []
    except importlib.metadata.PackageNotFoundError:
        return None


def _requirement_of(distribution: str) -> str | None:
    """speechssl's own requirement string for ``distribution`` (``"lhotse>=1.24"``), if it declares one."""
    want = _canonical(distribution)
    for req in declared_requirements() or []:
        name = re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0]
        if _canonical(name) == want:
            return req.split(";")[0].strip()
    return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_module_message(error: ModuleNotFoundError) -> str:
    """One line for a dependency that is not installed: which package, and how to install it."""
    top = (error.name or "").split(".")[0] or "?"
    dist = _DISTRIBUTIONS.get(top, top)
    return f"the Python package '{dist}' is not installed (a partial install). Fix: {_install_fix(dist)}; 'speechssl doctor' lists anything else missing"


def is_dependency_failure(error: BaseException) -> bool:
    """A ModuleNotFoundError for a package other than speechssl itself (a partial install)."""
    return isinstance(error, ModuleNotFoundError) and bool(error.name) and error.name.split(".")[0] != "speechssl"
