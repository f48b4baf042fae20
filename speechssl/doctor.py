"""``speechssl doctor``: what this installation is and what is wrong with it, with a one-line fix for
each problem. Every check runs in any environment, however broken: a failing import is a finding,
never a crash.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from typing import Callable

from speechssl import __version__
from speechssl.deps import (
    LOCK_FILE,
    SETUP_FIX,
    DependencyError,
    declared_requirements,
    import_torchaudio,
    installed_version,
    source_checkout,
)

OK, NOTE, WARN, FAIL = "ok", "note", "warn", "FAIL"


@dataclasses.dataclass
class Check:
    """One line of the report: ``name``, its ``status`` (ok / note / warn / FAIL), what was found,
    and for a problem the one-line ``fix``."""

    name: str
    status: str
    found: str
    fix: str = ""


def _python() -> list[Check]:
    ok = sys.version_info >= (3, 10)
    return [Check("python", OK if ok else FAIL, f"{platform.python_version()} ({sys.executable})", "" if ok else "speechssl needs Python >= 3.10")]


def _bytecode() -> list[Check]:
    """Where Python may not write .pyc files (PYTHONDONTWRITEBYTECODE), torch's must exist already,
    or every command compiles its modules again (2 s a process on a 2-core machine)."""
    if not sys.dont_write_bytecode:
        return []
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return []
    if os.path.exists(importlib.util.cache_from_source(spec.origin)):
        return [Check("bytecode", OK, "PYTHONDONTWRITEBYTECODE is set; installed packages are compiled")]
    return [Check("bytecode", WARN, "PYTHONDONTWRITEBYTECODE is set and torch has no .pyc files: every command compiles it again (seconds each)",
                  "tools/setup.sh --force (compiles them), or python -m compileall -q <site-packages>")]


def _speechssl() -> list[Check]:
    root = source_checkout()
    where = f"source checkout {root}" if root else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [Check("speechssl", OK, f"{__version__} ({where})")]


def _requirements() -> list[Check]:
    """Every requirement speechssl declares (its dev extra too): installed, and in range."""
    from packaging.requirements import Requirement

    declared = declared_requirements()
    if declared is None:
        return [Check("requirements", FAIL, "speechssl is not installed (no package metadata, no source checkout)", "pip install speechssl")]
    out, base, base_ok, dev_missing = [], 0, 0, []
    for text in declared:
        req = Requirement(text)
        dev = req.marker is not None and "extra" in str(req.marker)
        if req.marker is not None and not req.marker.evaluate({"extra": "dev" if dev else ""}):
            continue  # not for this Python / platform
        base += not dev
        have = installed_version(req.name)
        if have is None:
            if dev:
                dev_missing.append(req.name)
            else:
                out.append(Check(req.name, FAIL, "not installed", f"pip install '{req.name}{req.specifier}'"))
        elif not req.specifier.contains(have, prereleases=True):
            out.append(Check(req.name, FAIL if not dev else WARN, f"{have}, outside speechssl's range {req.specifier}", f"pip install '{req.name}{req.specifier}'"))
        else:
            base_ok += not dev
    if dev_missing:
        out.append(Check("dev extra", NOTE, f"not installed: {', '.join(dev_missing)} (needed by the tests only)", "pip install -e '.[dev]'"))
    out.insert(0, Check("requirements", OK if not any(c.status == FAIL for c in out) else FAIL, f"{base_ok} of {base} declared packages installed and in range"))
    return out


def _lock() -> list[Check]:
    """Installed versions against the lock file (in a source checkout): the set the tests passed with."""
    root = source_checkout()
    if root is None:
        return []
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    from packaging.markers import Marker

    with open(root / LOCK_FILE, "rb") as f:
        lock = tomllib.load(f)
    differ = []
    for pkg in lock.get("package", []):
        markers = pkg.get("resolution-markers")
        if markers and not any(Marker(m).evaluate() for m in markers):
            continue  # locked for another Python
        if pkg.get("source", {}).get("editable") or pkg.get("source", {}).get("virtual"):
            continue  # speechssl itself
        have = installed_version(pkg["name"])
        if have is not None and have.split("+")[0] != pkg["version"]:
            differ.append(f"{pkg['name']} {have} (lock {pkg['version']})")
    if not differ:
        return [Check("lock", OK, f"installed versions equal {root / LOCK_FILE}")]
    shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
    return [Check("lock", WARN, f"{len(differ)} packages differ from the tested lock: {shown}", SETUP_FIX)]


def _torch() -> list[Check]:
    try:
        import torch
    except (ImportError, OSError) as e:
        return [Check("torch", FAIL, f"{installed_version('torch') or 'not installed'}: does not import ({str(e).splitlines()[-1] if str(e) else type(e).__name__})", SETUP_FIX)]
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else ("ROCm build" if getattr(torch.version, "hip", None) else "CPU build")
    out = [Check("torch", OK, f"{torch.__version__} ({build})")]
    if not torch.version.cuda:
        out.append(Check("cuda", NOTE, "this torch has no CUDA support: training and extraction run on the CPU"))
    elif not torch.cuda.is_available():
        smi = shutil.which("nvidia-smi")
        if smi:
            out.append(Check("cuda", WARN, f"nvidia-smi is here but torch sees no GPU (torch built for CUDA {torch.version.cuda})", "update the NVIDIA driver to one that supports this CUDA, or install a torch built for the driver's CUDA"))
        else:
            out.append(Check("cuda", NOTE, "no CUDA device: training and extraction run on the CPU"))
    else:
        cudnn = torch.backends.cudnn.version()
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            bf16 = "bf16" if p.major >= 8 else "no bf16 (use --precision fp16 or fp32)"
            out.append(Check(f"cuda:{i}", OK, f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute {p.major}.{p.minor}, {bf16}, cuDNN {cudnn}"))
    return out


def _torchaudio() -> list[Check]:
    version = installed_version("torchaudio")
    if version is None:
        return [Check("torchaudio", FAIL, "not installed", f"{SETUP_FIX}, or pip install torchaudio")]
    try:
        ta = import_torchaudio()
    except DependencyError as e:
        found, _, fix = str(e).partition(" Fix: ")
        return [Check("torchaudio", FAIL, found, fix)]
    return [Check("torchaudio", OK, f"{ta.__version__} (compiled library loads)")]


def _faiss() -> list[Check]:
    try:
        import faiss
    except ImportError as e:
        return [Check("faiss", FAIL, f"does not import ({e})", f"{SETUP_FIX}, or pip install faiss-cpu")]
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    has_gpu = hasattr(faiss, "StandardGpuResources")
    found = f"{faiss.__version__} ({'GPU support, ' + str(gpus) + ' GPUs' if has_gpu else 'CPU only'})"
    cuda = _cuda_devices()
    if cuda and not has_gpu:
        return [Check("faiss", NOTE, found + f"; k-means runs on the CPU though {cuda} GPUs are here", "for GPU k-means (kmeans fit --gpu) install a faiss GPU build: conda install -c pytorch faiss-gpu")]
    return [Check("faiss", OK, found)]


def _cuda_devices() -> int:
    torch = sys.modules.get("torch")
    try:
        return torch.cuda.device_count() if torch is not None and torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver is reported by the torch check
        return 0


def _version_of(module: str, distribution: str, *, optional: str = "", load: bool = True) -> Callable[[], list[Check]]:
    """A check that ``distribution`` is installed and, with ``load``, that ``module`` imports (those
    with compiled parts; the pure-Python ones are only looked up, importing them costs seconds).
    ``optional`` says who needs it when it may be absent."""

    def check() -> list[Check]:
        version = installed_version(distribution)
        problem = None
        if version is None or importlib.util.find_spec(module) is None:
            problem = "not installed"
        elif load:
            try:
                importlib.import_module(module)
            except (ImportError, OSError) as e:
                problem = f"{version}: does not import ({str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__})"
        if problem is None:
            return [Check(distribution, OK, version)]
        if optional:
            return [Check(distribution, NOTE, f"{problem} ({optional})", "pip install -e '.[dev]'")]
        return [Check(distribution, FAIL, problem, f"{SETUP_FIX}, or pip install --force-reinstall {distribution}")]

    return check


def _soundfile() -> list[Check]:
    try:
        import soundfile
    except (ImportError, OSError) as e:
        return [Check("soundfile", FAIL, f"does not import ({e})", "pip install --force-reinstall soundfile (it carries libsndfile)")]
    return [Check("soundfile", OK, f"{installed_version('soundfile')} (libsndfile {soundfile.__libsndfile_version__})")]


def _espeak() -> list[Check]:
    fix = "apt-get install espeak-ng (tools/setup.sh does it); only the synthetic mini corpus needs it"
    exe = shutil.which("espeak-ng")
    if exe is None:
        return [Check("espeak-ng", WARN, "the espeak-ng command is not on PATH", fix)]
    try:
        from speechssl.data.mini.espeak import _load_library

        _load_library()
    except FileNotFoundError as e:
        return [Check("espeak-ng", WARN, f"{exe} is here but its library is not ({str(e)[:120]})", fix)]
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return [Check("espeak-ng", WARN, f"{exe} does not run ({e})", fix)]
    return [Check("espeak-ng", OK, version.split(" Data at:")[0] or exe)]


def _threads() -> list[Check]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    torch = sys.modules.get("torch")
    intra = torch.get_num_threads() if torch is not None else None
    interop = torch.get_num_interop_threads() if torch is not None else None
    found = f"{cpus} usable CPUs (of {os.cpu_count()}); torch intra-op {intra}, inter-op {interop}"
    found += "; " + (", ".join(f"{k}={v}" for k, v in env.items()) if env else "OMP_NUM_THREADS unset")
    if intra is not None and intra > cpus:
        return [Check("threads", WARN, found, f"export OMP_NUM_THREADS={cpus} (more threads than CPUs slows every step)")]
    return [Check("threads", OK, found)]


def _cpu() -> list[Check]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2" if flags else "unknown"
    note = f"{', '.join(bf16)}: CPU bf16 autocast is fast" if bf16 else "no native bf16: keep CPU runs in fp32 (bf16 is emulated, ~4x slower)"
    return [Check("cpu", OK, f"{model}, {platform.machine()}, {simd}, {note}")]


CHECKS: list[Callable[[], list[Check]]] = [
    _python,
    _bytecode,
    _speechssl,
    _requirements,
    _lock,
    _torch,
    _torchaudio,
    _faiss,
    _version_of("lhotse", "lhotse", load=False),
    _version_of("transformers", "transformers", optional="tests only: reference models", load=False),
    _soundfile,
    _version_of("sentencepiece", "sentencepiece"),
    _version_of("sklearn", "scikit-learn", load=False),
    _version_of("numpy", "numpy"),
    _espeak,
    _threads,
    _cpu,
]


def run_checks() -> list[Check]:
    """All checks, in order; a check that crashes is itself a failed check (never an exception)."""
    out = []
    for check in CHECKS:
        name = check.__name__.strip("_")
        try:
            out.extend(check())
        except Exception as e:  # noqa: BLE001 - the doctor reports, it does not crash
            out.append(Check(name, FAIL, f"the check itself failed: {type(e).__name__}: {e}", "report this with the output above"))
    return out


def format_report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"speechssl doctor (speechssl {__version__}, {platform.system()} {platform.release()})"]
    for c in checks:
        lines.append(f"  {c.status:<4}  {c.name:<{width}}  {c.found}")
        if c.fix and c.status != OK:
            lines.append(f"  {'':<4}  {'':<{width}}  fix: {c.fix}")
    problems = [c.name for c in checks if c.status in (FAIL, WARN)]
    failed = [c.name for c in checks if c.status == FAIL]
    if failed:
        lines.append(f"unhealthy: {len(failed)} problem(s) to fix ({', '.join(failed)})" + (f"; warnings: {', '.join(n for n in problems if n not in failed)}" if len(problems) > len(failed) else ""))
    elif problems:
        lines.append(f"healthy, with warnings: {', '.join(problems)}")
    else:
        lines.append("healthy")
    return "\n".join(lines)


__all__ = ["Check", "CHECKS", "run_checks", "format_report", "OK", "NOTE", "WARN", "FAIL"]
