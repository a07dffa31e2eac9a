"""What every output format is given, what it promises, and the registry of formats by name.

A format is a class with a ``needs`` attribute and two methods (:class:`OutputFormat`),
registered under the name users type (``@register("kernel+initrd")``). It gets a :class:`Job`:
the root file system, the kernel parts (:class:`Boot`), and where to write
(:class:`Target`). It writes its files atomically (:class:`~kitdsl.outputs.files.AtomicFiles`)
and returns their paths.

``needs`` tells :func:`~kitdsl.outputs.driver.write_outputs` what to prepare, so formats that
need more than one streaming pass fit without special cases:

* :attr:`Needs.STREAM`: one pass over the root file system entries, in order (``tar``,
  ``kernel+initrd``);
* :attr:`Needs.SPOOL`: a tar file of the root file system on disk, to read as often as it likes
  or hand to a tool (file system images, ISOs with the root file system on them);
* :attr:`Needs.KIT`: only the kernel, the initrd and the command line (``tar-kernel-initrd``,
  and later the disk images that boot a kernel and an initrd).
"""

from __future__ import annotations

import contextlib
import enum
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

from kitdsl.errors import UsageError
from kitdsl.outputs.entry import DEFAULT_MTIME, Entry, Reader
from kitdsl.outputs.pgzip import DEFAULT_LEVEL
from kitdsl.outputs.segments import SegmentCache

Blob = bytes | Path
"""File contents, in memory or in a file."""


@contextlib.contextmanager
def open_blob(blob: Blob) -> Iterator[Reader]:
    """A reader of ``blob``'s bytes."""
    if isinstance(blob, bytes):
        yield io.BytesIO(blob)
    else:
        with blob.open("rb") as handle:
            yield handle


def blob_size(blob: Blob) -> int:
    """How many bytes ``blob`` holds."""
    return len(blob) if isinstance(blob, bytes) else blob.stat().st_size


@dataclass(frozen=True)
class Boot:
    """The parts of a system the boot loader loads, kept out of the root file system stream.

    LinuxKit keeps them in the root file system tar under ``boot/`` (``kernel``, ``cmdline``,
    ``ucode.cpio``); the ``tar`` format writes them there, and the initrd formats take them
    from here.
    """

    kernel: Blob | None = None
    """The kernel image; ``None`` for a system without one (then no kernel file is written)."""
    kernel_mode: int = 0o644
    """The permissions of ``boot/kernel`` in a tar: those of the kernel image's file, as
    LinuxKit keeps them."""
    cmdline: str = ""
    """The kernel command line."""
    ucode: Blob | None = None
    """CPU microcode as an uncompressed cpio, loaded before the initrd (``None``: none)."""
    mtime: int = DEFAULT_MTIME
    """The time of the entries the formats make up for these parts (``boot/`` in a tar, the
    members of ``tar-kernel-initrd``): the build's ``SOURCE_DATE_EPOCH`` or LinuxKit's."""
    pax_headers: Mapping[str, str] = field(default_factory=dict)
    """PAX records put on the ``boot/`` entries of a tar (LinuxKit: ``LINUXKIT.source``, the
    kernel image, and ``LINUXKIT.location`` = ``kernel``)."""


@dataclass(frozen=True)
class Compression:
    """How compressed outputs (initrds) are compressed."""

    level: int = DEFAULT_LEVEL
    """gzip level, 0 (stored) to 9 (smallest, slowest)."""
    threads: int | None = None
    """Compression threads; ``None`` for one more than the CPUs this process may use. The bytes
    written do not depend on it."""

    def __post_init__(self) -> None:
        if not 0 <= self.level <= 9:
            raise ValueError(f"gzip level must be 0 to 9, not {self.level}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, not {self.threads}")


@dataclass(frozen=True)
class Target:
    """Where a format writes: ``folder/<name><suffix>`` for each of its files."""

    folder: Path
    name: str
    compression: Compression = field(default_factory=Compression)

    def filename(self, suffix: str) -> str:
        """The file name for one of the format's files (``"-kernel"`` → ``<name>-kernel``)."""
        return f"{self.name}{suffix}"


class Needs(enum.Enum):
    """What a format needs prepared before it runs (see the module documentation)."""

    STREAM = "stream"
    SPOOL = "spool"
    KIT = "kit"


@dataclass(frozen=True)
class Job:
    """Everything a format is given."""

    boot: Boot
    target: Target
    rootfs: Iterable[Entry]
    """The root file system, without the kernel parts; iterate it once."""
    spool: Path | None = None
    """For :attr:`Needs.SPOOL`: a PAX tar of ``rootfs`` on disk."""
    initrd: Path | None = None
    """For :attr:`Needs.KIT`: the root file system as a gzip-compressed newc cpio, without the
    microcode (which is ``boot.ucode``)."""
    cache: SegmentCache | None = None
    """Where encoders keep and find the encoded segments of a
    :class:`~kitdsl.outputs.segments.SegmentedStream` (``None``: nothing kept)."""

    def require_spool(self) -> Path:
        """:attr:`spool`, which a :attr:`Needs.SPOOL` format can rely on."""
        if self.spool is None:
            raise RuntimeError("this output format needs a spooled tar; use write_outputs")
        return self.spool

    def require_initrd(self) -> Path:
        """:attr:`initrd`, which a :attr:`Needs.KIT` format can rely on."""
        if self.initrd is None:
            raise RuntimeError("this output format needs a built initrd; use write_outputs")
        return self.initrd


class OutputFormat(Protocol):
    """An output format. Instances are made once, with no arguments, by :func:`register`."""

    needs: ClassVar[Needs]

    def filenames(self, name: str, boot: Boot) -> list[str]:
        """The names of the files :meth:`write` will write for this base name and boot parts
        (to show them, or to check for clashes, before building)."""
        ...

    def write(self, job: Job) -> list[Path]:
        """Write the files, each one completely or not at all, and return their paths."""
        ...


_FORMATS: dict[str, OutputFormat] = {}

FormatClass = TypeVar("FormatClass", bound=type[OutputFormat])


def register(name: str) -> Callable[[FormatClass], FormatClass]:
    """Class decorator: make the format available as ``name``."""

    def add(cls: FormatClass) -> FormatClass:
        if name in _FORMATS:
            raise ValueError(f"output format {name!r} is registered twice")
        _FORMATS[name] = cls()
        return cls

    return add


def get(name: str) -> OutputFormat:
    """The format registered as ``name``; a :class:`UsageError` listing the known ones if none."""
    try:
        return _FORMATS[name]
    except KeyError:
        raise UsageError(
            f"unknown output format {name!r}", hint=f"known formats: {', '.join(names())}"
        ) from None


def names() -> list[str]:
    """The registered format names, in registration order."""
    return list(_FORMATS)
