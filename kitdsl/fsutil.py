"""File-system helpers that never leave a half-written file where it could be used."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_bytes(
    path: Path, data: bytes, *, mode: int = 0o644, prefix: str | None = None
) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync'd, then
    renamed and the rename made durable: readers see the old file or the new one, never a
    part. ``prefix`` names the temporary file (so a sweeper can recognise leftovers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        prefix=prefix or f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode(), mode=mode)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's contents, in hex."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def files_digest(root: Path, paths: Iterable[Path]) -> str:
    """The SHA-256, in hex, of each file's path relative to ``root``, a NUL and its contents,
    in the order given: what a piece of kitdsl's own code is, as part of a cache key."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def json_digest(data: Any) -> str:
    """The SHA-256, in hex, of ``data`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
