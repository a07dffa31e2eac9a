"""Reading ``.deb`` files without dpkg: the ``ar`` container, the control fields and
maintainer scripts, and the data tar as a stream of checked members.

A ``.deb`` is an ``ar`` archive of ``debian-binary`` (``2.0``), ``control.tar[.gz|.xz|.zst]``
and ``data.tar[.gz|.xz|.bz2|.lzma|.zst]``, in that order (members starting with ``_`` are
ignored, as dpkg ignores them). zstd needs the optional ``zstandard`` package.

Data members are named as they would be in an image, relative to its root (``./usr/bin/x`` is
``usr/bin/x``), and entries that could write outside the root when unpacked are refused: an
absolute name, a ``..`` component, a relative symbolic link that climbs above the root, a hard
link to something that is not an earlier member, or a member below an earlier symbolic link.
Absolute symbolic link targets are normal in packages (``/etc/alternatives/...``) and resolve
inside the image, so they are kept. Device nodes are refused: Debian Policy forbids them.

Maintainer scripts are read and reported, never run.
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import io
import lzma
import os
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, Any, BinaryIO

from kitdsl.pkg.debian import deb822
from kitdsl.pkg.debian.errors import DebError

AR_MAGIC = b"!<arch>\n"
MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")
"""Control files that dpkg would run at install or removal."""
_COMPRESSIONS = ("", ".gz", ".xz", ".bz2", ".lzma", ".zst")
_DECOMPRESS_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, tarfile.TarError)


@dataclass(frozen=True)
class _Member:
    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class DataMember:
    """One entry of the data tar: its header (``info.name`` normalised, hard link targets
    too) and, for a regular file, a reader of its content, valid until the next member."""

    info: tarfile.TarInfo
    reader: IO[bytes] | None

    @property
    def name(self) -> str:
        """The path in the image, without a leading ``./`` or ``/``."""
        return self.info.name


class DebFile:
    """One ``.deb`` file; the control part is read when first asked for, the data part each
    time :meth:`members` is iterated."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._control_member, self._data_member = self._read_ar()

    def _error(self, message: str, hint: str | None = None) -> DebError:
        return DebError(f"{self.path}: {message}", hint=hint)

    def _read_ar(self) -> tuple[_Member, _Member]:
        members: list[_Member] = []
        try:
            with self.path.open("rb") as handle:
                if handle.read(8) != AR_MAGIC:
                    raise self._error("not a .deb file (no ar archive header)")
                end = os.fstat(handle.fileno()).st_size
                offset = 8
                while header := handle.read(60):
                    if len(header) != 60 or header[58:60] != b"`\n":
                        raise self._error(f"damaged ar member header at byte {offset}")
                    name = header[:16].decode("ascii", "replace").rstrip().removesuffix("/")
                    size_text = header[48:58].decode("ascii", "replace").strip()
                    if not size_text.isdigit():
                        raise self._error(f"ar member {name!r} has no valid size")
                    size = int(size_text)
                    members.append(_Member(name, offset + 60, size))
                    offset += 60 + size + (size & 1)
                    handle.seek(offset)
        except OSError as exc:
            raise self._error(f"cannot read: {exc.strerror or exc}") from None
        if members and members[-1].offset + members[-1].size > end:
            raise self._error("truncated (the last ar member runs past the end of the file)")
        wanted = [m for m in members if not m.name.startswith("_")]
        if len(wanted) != 3 or wanted[0].name != "debian-binary":
            names = ", ".join(m.name for m in members) or "nothing"
            raise self._error(
                f"not a .deb file: its ar members are {names}",
                hint="a .deb holds debian-binary, control.tar.* and data.tar.*, in that order",
            )
        version = self._read(wanted[0]).strip()
        if not version.startswith(b"2."):
            raise self._error(f"unsupported .deb format version {version[:20]!r}")
        control, data = wanted[1], wanted[2]
        for member, stem in ((control, "control.tar"), (data, "data.tar")):
            if member.name.removeprefix(stem) not in _COMPRESSIONS or not member.name.startswith(
                stem
            ):
                raise self._error(f"unexpected member {member.name!r} where {stem}.* belongs")
        return control, data

    def _read(self, member: _Member) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(member.offset)
            return handle.read(member.size)

    def _open_tar(self, member: _Member, handle: BinaryIO) -> tarfile.TarFile:
        handle.seek(member.offset)
        raw = io.BufferedReader(_Slice(handle, member.size))
        suffix = member.name.rpartition(".tar")[2]
        return tarfile.open(fileobj=_decompressed(raw, suffix, self.path), mode="r|")

    @cached_property
    def control_files(self) -> dict[str, bytes]:
        """The files of ``control.tar`` by name (``control``, ``md5sums``, ``postinst``...)."""
        files: dict[str, bytes] = {}
        try:
            with (
                self.path.open("rb") as handle,
                self._open_tar(self._control_member, handle) as tar,
            ):
                for info in tar:
                    name = posixpath.normpath(info.name.lstrip("/")).removeprefix("./")
                    if info.isfile() and "/" not in name and name != ".":
                        reader = tar.extractfile(info)
                        files[name] = reader.read() if reader else b""
        except _DECOMPRESS_ERRORS as exc:
            raise self._error(f"damaged {self._control_member.name}: {exc}") from None
        if "control" not in files:
            raise self._error("its control archive has no control file")
        return files

    @cached_property
    def control(self) -> deb822.Paragraph:
        """The fields of the package's ``control`` file."""
        try:
            return deb822.parse_one(self.control_files["control"].decode("utf-8", "replace"))
        except deb822.Deb822Error as exc:
            raise self._error(f"malformed control file: {exc}") from None

    @property
    def name(self) -> str:
        """The ``Package`` field."""
        return self.control.get("Package", "")

    @property
    def version(self) -> str:
        """The ``Version`` field."""
        return self.control.get("Version", "")

    @property
    def architecture(self) -> str:
        """The ``Architecture`` field."""
        return self.control.get("Architecture", "")

    @property
    def maintainer_scripts(self) -> tuple[str, ...]:
        """The maintainer scripts the package has (``postinst``, ...): kitdsl never runs
        them, so what they would do at install time does not happen."""
        return tuple(name for name in MAINTAINER_SCRIPTS if name in self.control_files)

    @property
    def triggers(self) -> tuple[str, ...]:
        """The lines of the ``triggers`` control file (``activate-noawait ldconfig``): work
        other packages' scripts would do for this one, which does not happen either."""
        text = self.control_files.get("triggers", b"").decode("utf-8", "replace")
        lines = (line.partition("#")[0].strip() for line in text.splitlines())
        return tuple(line for line in lines if line)

    def members(self) -> Iterator[DataMember]:
        """The entries of the data tar, in archive order, checked and normalised (see the
        module's description); the root entry ``./`` is skipped."""
        symlinks: set[str] = set()
        files: set[str] = set()  # regular files so far: what a hard link may point at
        try:
            with self.path.open("rb") as handle, self._open_tar(self._data_member, handle) as tar:
                for info in tar:
                    name = self._checked(info, symlinks, files)
                    if name is None:
                        continue
                    info.name = name
                    reader = tar.extractfile(info) if info.isfile() else None
                    yield DataMember(info, reader)
        except _DECOMPRESS_ERRORS as exc:
            raise self._error(f"damaged {self._data_member.name}: {exc}") from None

    def files(self) -> list[str]:
        """Every path the package installs, in archive order."""
        return [member.name for member in self.members()]

    def _checked(self, info: tarfile.TarInfo, symlinks: set[str], files: set[str]) -> str | None:
        raw = info.name
        name = _normalise(raw)
        if name is None:
            raise self._error(
                f"refusing data member {raw!r}: it would be written outside the root",
                hint="the package is corrupt or hostile; do not use it",
            )
        if not name:
            return None  # "./", the root itself
        parent = name
        while "/" in parent:
            parent = parent.rpartition("/")[0]
            if parent in symlinks:
                raise self._error(
                    f"refusing data member {raw!r}: it lies below the symbolic link {parent}",
                    hint="the package is corrupt or hostile; do not use it",
                )
        if info.issym():
            target = info.linkname
            if not target.startswith("/") and not _stays_inside(
                posixpath.join(posixpath.dirname(name), target)
            ):
                raise self._error(
                    f"refusing symbolic link {raw!r} → {target!r}: it leaves the root",
                    hint="the package is corrupt or hostile; do not use it",
                )
            symlinks.add(name)
        elif info.islnk():
            target_name = _normalise(info.linkname)
            if not target_name or target_name not in files:
                raise self._error(
                    f"refusing hard link {raw!r} → {info.linkname!r}: its target is not an "
                    "earlier file of the package",
                    hint="the package is corrupt or hostile; do not use it",
                )
            info.linkname = target_name
        elif info.ischr() or info.isblk():
            raise self._error(f"refusing device node {raw!r}: packages must not ship devices")
        elif info.isfile():
            files.add(name)
        return name


def _normalise(raw: str) -> str | None:
    """``./usr/bin/x`` → ``usr/bin/x``; ``None`` for a name that leaves the root (absolute,
    or with a ``..`` that climbs above it); ``""`` for the root itself."""
    if raw.startswith("/") or "\0" in raw:
        return None
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            # Even a ".." that stays inside is refused: no honest package writes one.
            return None
        parts.append(part)
    return "/".join(parts)


def _stays_inside(path: str) -> bool:
    """Whether a relative path, ``..`` resolved lexically, stays below the root."""
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


def _decompressed(raw: BinaryIO, suffix: str, path: Path) -> IO[bytes] | gzip.GzipFile:
    """A reader of ``raw`` decompressed as its member name's ``suffix`` says."""
    if suffix == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if suffix == ".xz":
        return lzma.LZMAFile(raw, format=lzma.FORMAT_XZ)
    if suffix == ".lzma":
        return lzma.LZMAFile(raw, format=lzma.FORMAT_ALONE)
    if suffix == ".bz2":
        return bz2.BZ2File(raw)
    if suffix == ".zst":
        return _zstd_reader(raw, path)
    return raw


def _zstd_reader(raw: BinaryIO, path: Path) -> IO[bytes]:
    try:
        zstandard: Any = importlib.import_module("zstandard")
    except ImportError:
        raise DebError(
            f"{path}: its data is zstd-compressed, and the zstandard package is not installed",
            hint="pip install zstandard",
        ) from None
    reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(raw)
    return reader


class _Slice(io.RawIOBase):
    """A read-only view of ``size`` bytes of a file from its current position."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        super().__init__()
        self._handle = handle
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        size = min(len(view), self._left)
        if size <= 0:
            return 0
        data = self._handle.read(size)
        view[: len(data)] = data
        self._left -= len(data)
        return len(data)
