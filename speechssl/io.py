"""Small file-system helpers shared by the library: atomic writes, so that an interrupted job never
leaves a partial file that looks complete."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


def _suffixes(path: Path) -> str:
    # keep multi-part suffixes (".jsonl.gz") so that libraries that pick a format by extension still do
    return "".join(path.suffixes) if path.suffixes else ""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path`` in one step.

    On an exception the temporary file is removed and ``path`` is left as it was.

    >>> with atomic_path("out/cuts.jsonl.gz") as tmp:   # doctest: +SKIP
    ...     cuts.to_file(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = _suffixes(path)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    tmp = path.with_name(f".{stem}.partial-{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
