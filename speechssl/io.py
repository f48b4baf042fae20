"""Small file-system helpers shared by the library: atomic writes, so that an interrupted job never
leaves a partial file that looks complete (and a full disk is said in one line); output folders
owned by the run writing them (:func:`own_folder`); TSV cells that keep their row whatever a file
name holds (:func:`escape_tsv`)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator


def _suffixes(path: Path) -> str:
    # keep multi-part suffixes (".jsonl.gz") so that libraries that pick a format by extension still do
    return "".join(path.suffixes) if path.suffixes else ""


def no_space_error(path: str | os.PathLike, needed: int | None = None) -> OSError:
    """The one-line error for a full disk (``ENOSPC``): the path, what is free there and, where
    known, about how much was needed."""
    where = Path(path)
    probe = where.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = f"{shutil.disk_usage(probe).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    need = f", about {needed / 1e6:.1f} MB needed" if needed else ""
    return OSError(errno.ENOSPC, f"{path}: no space left on the device ({free}{need}); free some space or write elsewhere")


def _disk_full(error: BaseException, folder: Path) -> bool:
    """An error that a full disk caused: ENOSPC/EDQUOT, or a library's own write error (torch.save
    raises RuntimeError 'basic_ios::clear: iostream error') with less than 4 MiB left."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, RuntimeError):
        try:
            return shutil.disk_usage(folder).free < 4 << 20
        except OSError:
            return False
    return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, size_hint: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path`` in one step.

    On an exception the temporary file is removed and ``path`` is left as it was; a full disk is
    said in one line (:func:`no_space_error`, with ``size_hint`` bytes as what was needed).

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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if _disk_full(e, path.parent):
            raise no_space_error(path, size_hint) from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


LOCK_NAME = ".speechssl.lock"


class FolderInUseError(FileExistsError):
    """Another run is writing into the output folder (the message names it)."""


def _holder_text(verb: str, part: str) -> str:
    import datetime
    import shlex
    import socket
    import sys

    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return f"speechssl {verb} (pid {os.getpid()} on {socket.gethostname()}{part}, since {since}; command: {shlex.join(sys.argv)})"


def _read_holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def own_folder(folder: str | os.PathLike, verb: str, shard: tuple[int, int] = (1, 1)) -> Iterator[Path]:
    """Hold ``folder`` for this run while it writes there: a second run into it is refused with
    :class:`FolderInUseError` naming the holder (pid, host, since when, its command).

    The lock is ``flock`` on ``<folder>/.speechssl.lock``: the kernel releases it when the holder's
    process ends, however it ends, so a killed run never leaves it stuck (the file stays, unlocked;
    its text is only the last holder's). Workers of one sharded run (``shard=(i, n)``, ``n > 1``)
    share the folder and each holds its own ``.speechssl.lock.shard-i-of-n`` exclusively; an
    unsharded run excludes them all.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index, count = shard
    main = folder / LOCK_NAME
    files = []
    try:
        fd = os.open(main, os.O_RDWR | os.O_CREAT, 0o644)
        files.append(fd)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if count > 1 else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = [_read_holder(main)] if count > 1 else _current_holders(folder)
            raise FolderInUseError(_in_use(folder, [h for h in holders if h])) from None
        own = main
        if count > 1:
            own = folder / f"{LOCK_NAME}.shard-{index}-of-{count}"
            sfd = os.open(own, os.O_RDWR | os.O_CREAT, 0o644)
            files.append(sfd)
            try:
                fcntl.flock(sfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderInUseError(_in_use(folder, [h for h in [_read_holder(own)] if h], f" (shard {index}/{count})")) from None
        part = f", shard {index}/{count}" if count > 1 else ""
        fd_own = files[-1]
        os.ftruncate(fd_own, 0)
        os.pwrite(fd_own, (_holder_text(verb, part) + "\n").encode("utf-8"), 0)
        try:
            yield folder
        finally:
            os.ftruncate(fd_own, 0)  # released: no holder to name
    finally:
        for fd in reversed(files):
            os.close(fd)  # closing releases the flock


def _current_holders(folder: Path) -> list[str]:
    """Who holds ``folder`` (an unsharded run was refused): the shard workers holding their lock
    files, else the exclusive holder of the main one."""
    shards = [_read_holder(p) for p in sorted(folder.glob(f"{LOCK_NAME}.shard-*")) if _held(p)]
    return shards or [_read_holder(folder / LOCK_NAME)]


def _held(path: Path) -> bool:
    """Whether some process holds ``path``'s flock now (a killed worker's file is not held)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _in_use(folder: Path, holders: list[str], what: str = "") -> str:
    who = "; ".join(holders) if holders else "another run (it did not say which)"
    return f"{folder}{what}: in use by {who}. Wait for it to finish or stop it; or write somewhere else"


# TSV cells: names from the file system may hold tabs, newlines and backslashes; escaped, a row
# stays one line with its columns (unescape_tsv reads them back)
_TSV_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_tsv(text: str) -> str:
    """``text`` as one TSV cell: backslash, tab, newline and carriage return written as ``\\\\``,
    ``\\t``, ``\\n``, ``\\r``."""
    return "".join(_TSV_ESCAPES.get(ch, ch) for ch in str(text))


def unescape_tsv(cell: str) -> str:
    """The text :func:`escape_tsv` wrote."""
    if "\\" not in cell:
        return cell
    back = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    out, i = [], 0
    while i < len(cell):
        ch = cell[i]
        if ch == "\\" and i + 1 < len(cell) and cell[i + 1] in back:
            out.append(back[cell[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
