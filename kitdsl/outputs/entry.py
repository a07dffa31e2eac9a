"""The root file system as every output format receives it: a stream of tar entries.

An :class:`Entry` is a :class:`tarfile.TarInfo` and, for a regular file, a reader of its
contents. A stream is any iterable of entries, consumed once, in order; an entry's reader is
only valid until the next entry is taken (exactly as when reading a tar file from a pipe), so
nothing needs to hold a whole file system in memory.

:class:`TarSource` is the one stream that can be read more than once: it reopens a tar file on
disk for every pass. (A tar written by ``linuxkit build -format tar``, or by our ``tar`` format,
is split back into kernel parts and root file system by
:func:`kitdsl.outputs.tar.open_linuxkit_tar`.)
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from kitdsl.assemble.layers import DEFAULT_MTIME as DEFAULT_MTIME
from kitdsl.errors import OutputError


class Reader(Protocol):
    """What an entry's contents are read from (a file, :class:`io.BytesIO`, a tar member)."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a root file system tar stream.

    ``data`` is read for regular files only (exactly ``info.size`` bytes) and only until the
    next entry of the stream is taken. Hard links name their target in ``info.linkname``,
    relative to the root, as tar does.
    """

    info: tarfile.TarInfo
    data: Reader | None = None

    @classmethod
    def file(
        cls,
        name: str,
        contents: bytes,
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: float = DEFAULT_MTIME,
    ) -> Entry:
        """A regular file holding ``contents``."""
        info = _info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
        info.size = len(contents)
        return cls(info, io.BytesIO(contents))

    @classmethod
    def directory(
        cls,
        name: str,
        *,
        mode: int = 0o755,
        uid: int = 0,
        gid: int = 0,
        mtime: float = DEFAULT_MTIME,
    ) -> Entry:
        """A directory."""
        return cls(_info(name, tarfile.DIRTYPE, mode, uid, gid, mtime))

    @classmethod
    def symlink(
        cls, name: str, target: str, *, uid: int = 0, gid: int = 0, mtime: float = DEFAULT_MTIME
    ) -> Entry:
        """A symbolic link to ``target`` (taken as it is, absolute or relative)."""
        info = _info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime)
        info.linkname = target
        return cls(info)

    @classmethod
    def hardlink(cls, name: str, target: str, *, mtime: float = DEFAULT_MTIME) -> Entry:
        """A hard link to the earlier entry ``target`` (a path from the root)."""
        info = _info(name, tarfile.LNKTYPE, 0o644, 0, 0, mtime)
        info.linkname = target
        return cls(info)

    @classmethod
    def device(
        cls,
        name: str,
        kind: str,
        major: int,
        minor: int,
        *,
        mode: int = 0o600,
        uid: int = 0,
        gid: int = 0,
        mtime: float = DEFAULT_MTIME,
    ) -> Entry:
        """A device node; ``kind`` is ``"char"`` or ``"block"``."""
        types = {"char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}
        if kind not in types:
            raise ValueError(f"device kind must be 'char' or 'block', not {kind!r}")
        info = _info(name, types[kind], mode, uid, gid, mtime)
        info.devmajor, info.devminor = major, minor
        return cls(info)

    @classmethod
    def fifo(
        cls,
        name: str,
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: float = DEFAULT_MTIME,
    ) -> Entry:
        """A named pipe."""
        return cls(_info(name, tarfile.FIFOTYPE, mode, uid, gid, mtime))


def _info(name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
    return info


COPY_CHUNK = 1 << 20


def copy_contents(
    info: tarfile.TarInfo,
    data: Reader | None,
    write: Callable[[bytes], object],
    short: Callable[[int], Exception],
) -> None:
    """Pass exactly ``info.size`` bytes of ``data`` to ``write``, in chunks; ``short(missing)``
    is raised when the data ends early (a file that shrank, a damaged layer)."""
    remaining = info.size
    if remaining and data is None:
        raise ValueError(f"tar entry {info.name!r} has {remaining} bytes but no data")
    while remaining:
        assert data is not None
        chunk = data.read(min(remaining, COPY_CHUNK))
        if not chunk:
            raise short(remaining)
        write(chunk)
        remaining -= len(chunk)


def read_tar(handle: BinaryIO, *, origin: str = "the tar stream") -> Iterator[Entry]:
    """The entries of a tar read from ``handle`` in one pass (any compression :mod:`tarfile`
    recognises). ``origin`` names the input in errors."""
    try:
        with tarfile.open(fileobj=handle, mode="r|*") as tar:
            for info in tar:
                yield Entry(info, tar.extractfile(info) if info.isreg() else None)
    except (tarfile.TarError, EOFError) as error:
        raise OutputError(
            f"cannot read {origin}: {error}",
            hint="the file is not a tar archive, or is truncated; build it again",
        ) from error


class TarSource:
    """A root file system kept in a tar file, read again for every pass over it.

    With ``without_boot``, entries under ``boot/`` (where LinuxKit puts the kernel, its
    command line and the microcode) are left out.
    """

    def __init__(self, path: Path, *, without_boot: bool = False) -> None:
        self.path = path
        self.without_boot = without_boot

    def __iter__(self) -> Iterator[Entry]:
        try:
            handle = self.path.open("rb")
        except OSError as error:
            raise OutputError(f"cannot read {self.path}: {error.strerror}") from error
        with handle:
            for entry in read_tar(handle, origin=str(self.path)):
                if not (self.without_boot and is_boot_entry(entry.info.name)):
                    yield entry


def is_boot_entry(name: str) -> bool:
    """Whether a tar path is ``boot`` or below it (``./`` and ``/`` prefixes ignored)."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return bool(parts) and parts[0] == "boot"
