"""Atomic file writes: a reader never sees a half-written file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600, and some writers (safetensors) recreate the file: set the mode the
        # user's umask gives any new file just before the rename
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_output_file(path: str | Path | None, flag: str) -> None:
    """OutputError unless ``path`` can be (re)written as a file: not a folder, its parent not a file."""
    from mobilefer.errors import OutputError

    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; expected a file name")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputError(f"{flag} {path}: {parent} is a file, not a folder")
    check_writable(parent, flag, path)


def check_output_dir(path: str | Path | None, flag: str) -> None:
    """OutputError unless ``path`` is a folder or can become one."""
    from mobilefer.errors import OutputError

    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path}: is a file; expected a folder")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputError(f"{flag} {path}: {parent} is a file, not a folder")
    check_writable(path if path.is_dir() else parent, flag, path)


def check_writable(folder: Path | None, flag: str, path: Path) -> None:
    """OutputError where ``folder`` (the existing folder the output goes into or below) cannot be
    written: said before any work, not after a long job on its temporary file."""
    from mobilefer.errors import OutputError

    folder = folder or Path.cwd()
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: cannot write in {folder} (permission denied or a read-only disk)")
