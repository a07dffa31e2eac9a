"""Writing a format's files so that none is ever seen half-written.

Each file is written under a hidden temporary name in the output folder (so the final rename
stays on one file system), flushed and fsync'd. Only when the whole format succeeded are the
files renamed to their real names, and the folder fsync'd so the renames survive a crash. If
anything fails, or the build is interrupted, the temporary files are removed and the files of
an earlier build are left as they were.

What tells a file in place from another is its :func:`identity` (size and modification time).
The identity of a file put in place is taken from the file as written, before the rename
(:func:`written_identity`): another build writing the same folder may replace it right after,
and must not pass for this one.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, cast

from kitdsl.errors import OutputError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

FILE_MODE = 0o644

_PUT_IN_PLACE: dict[tuple[int, Path], list[int]] = {}
"""(thread, path) → the identity of the file :class:`AtomicFiles` put there last, until asked
(:func:`written_identity`)."""


def identity(path: Path) -> list[int]:
    """What tells that the file at ``path`` is a given one: its size and modification time."""
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def written_identity(path: Path) -> list[int]:
    """The identity of the file this thread last put at ``path`` (as it was written, whatever
    replaced it since; forgotten once asked), or of the file there now if it wrote none."""
    known = _PUT_IN_PLACE.pop((threading.get_ident(), path), None)
    return known if known is not None else identity(path)


WRITE_BEHIND = 16 << 20
"""Bytes of an output after which the kernel is asked to start writing them to disk."""


class _WriteBehind(io.FileIO):
    """An output file whose pages the kernel starts writing to disk every
    :data:`WRITE_BEHIND` bytes, while the rest is still being made: the fsync before the
    rename then waits for the last few megabytes rather than the whole file (35-48 ms for a
    150 MB initrd here, with the CPUs otherwise idle)."""

    _flushed = 0
    _position = 0

    def write(self, data: ReadableBuffer, /) -> int:
        written = super().write(data)
        self._position += written
        end = self._position
        if end - self._flushed >= WRITE_BEHIND and hasattr(os, "posix_fadvise"):
            # DONTNEED starts the range's writeback without waiting for it (pages still
            # being written stay cached). Only a hint: a file system may refuse it.
            with contextlib.suppress(OSError):
                os.posix_fadvise(
                    self.fileno(), self._flushed, end - self._flushed, os.POSIX_FADV_DONTNEED
                )
            self._flushed = end
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        self._position = super().seek(offset, whence)
        self._flushed = min(self._flushed, self._position)
        return self._position


class AtomicFiles:
    """A set of output files that appear together, complete, or not at all::

    with AtomicFiles(folder) as files:
        files.create("x-kernel").write(kernel)
    files.written  # [folder / "x-kernel"]
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []
        """The files in place, once the ``with`` block has ended without error."""
        self._pending: list[tuple[Path, Path, BinaryIO]] = []
        self._stale: list[Path] = []

    def __enter__(self) -> AtomicFiles:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _output_error(self.folder, error) from error
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self._discard()
            if isinstance(error, OSError):
                raise _output_error(self._pending_paths(), error) from error
            return
        try:
            self._commit()
        except OSError as failure:
            self._discard()
            raise _output_error(self._pending_paths(), failure) from failure

    def create(self, filename: str) -> BinaryIO:
        """A new file that becomes ``folder/filename`` when the block succeeds."""
        fd, temporary = tempfile.mkstemp(prefix=f".{filename}.", suffix=".tmp", dir=self.folder)
        handle = cast(BinaryIO, io.BufferedWriter(_WriteBehind(fd, "wb")))
        self._pending.append((self.folder / filename, Path(temporary), handle))
        return handle

    def remove(self, filename: str) -> None:
        """Remove ``folder/filename``, if it exists, when the block succeeds: an output of an
        earlier build this one does not write (say a command line that is now empty)."""
        self._stale.append(self.folder / filename)

    def _pending_paths(self) -> Path | list[Path]:
        paths = [final for final, _, _ in self._pending]
        return paths[0] if len(paths) == 1 else paths or self.folder

    def _commit(self) -> None:
        for _, temporary, handle in self._pending:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            os.chmod(temporary, FILE_MODE)
        for final, temporary, _ in self._pending:
            # Taken while the name is still this build's own (a rename keeps both figures).
            written = identity(temporary)
            os.replace(temporary, final)
            _PUT_IN_PLACE[(threading.get_ident(), final)] = written
            self.written.append(final)
        for stale in self._stale:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        directory = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _discard(self) -> None:
        for _, temporary, handle in self._pending:
            with contextlib.suppress(OSError):
                handle.close()
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


def _output_error(where: Path | list[Path], error: OSError) -> OutputError:
    shown = ", ".join(str(path) for path in where) if isinstance(where, list) else str(where)
    reason = error.strerror or str(error)
    if error.filename and error.strerror:  # a file we read, or a folder, rather than the output
        reason = f"{error.strerror}: {error.filename}"
    return OutputError(
        f"cannot write {shown}: {reason}",
        hint="check that the folder is writable and that the disk has room",
    )


def write_kernel(files: AtomicFiles, kernel: Path | bytes | None, filename: str) -> None:
    """Write the kernel as ``filename`` among ``files``; with no kernel, remove an earlier
    build's (so it cannot be booted with the new files by mistake)."""
    if kernel is None:
        files.remove(filename)
        return
    target = files.create(filename)
    if isinstance(kernel, bytes):
        target.write(kernel)
    else:
        with kernel.open("rb") as source:
            shutil.copyfileobj(source, target, 1 << 20)
