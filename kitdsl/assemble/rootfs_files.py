"""The ``files`` section of a system as root file system entries (LinuxKit's ``filesystem``).

Each :class:`~kitdsl.dsl.File` becomes one entry, after every container, so it wins over
whatever an image put at the same path:

* a directory, a symbolic link, inline ``contents``, a host file (``source``, read from the
  folder of the file that defined the entry, see :mod:`kitdsl.load.file_sources`) or the
  system's own configuration (``metadata``: ``yaml`` or ``json``, see
  :mod:`kitdsl.assemble.metadata`);
* the mode is the entry's, or 0600 (0700 for a directory); owner and group are resolved with
  :meth:`System.resolve_id` (container names become their allocated ids);
* every missing parent directory is created first, owned like the entry, with a mode derived
  from the entry's (each class that has any bit gets its ``x`` bit: 0644 gives 0755).

Where this differs from LinuxKit: LinuxKit writes a parent directory even when an image
already made it, which changes that directory's mode and owner when unpacked (``etc/motd``
with mode 0600 makes ``etc`` 0700). Here a parent is only written when nothing earlier in
the stream made it (the caller passes the set of directories written so far). A relative
``source`` is read from the defining file's folder, not the working directory.

Missing sources are found by :func:`plan_files` before anything is written: an ``optional``
entry is skipped with a warning, any other is an error naming where the entry was defined.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kitdsl.assemble.layers import DEFAULT_MTIME
from kitdsl.assemble.metadata import ImageRefs, metadata_bytes
from kitdsl.dsl import File, System
from kitdsl.errors import ConfigError
from kitdsl.load.file_sources import source_path
from kitdsl.log import warn
from kitdsl.outputs.entry import Entry

__all__ = ["PlannedFile", "dir_mode", "file_entries", "plan_files"]

FILES_SOURCE = "linuxkit.files"
"""``LINUXKIT.source`` of files-section entries, as LinuxKit writes it."""


@dataclass(frozen=True)
class PlannedFile:
    """A files-section entry that will be written, with its source checked."""

    index: int
    """Position in ``system.files`` (``LINUXKIT.location`` is ``files[index]``)."""
    file: File
    source: Path | None
    """The host file to copy, for a ``source`` entry."""


def dir_mode(mode: int) -> int:
    """The mode of a parent directory made for an entry of ``mode`` (LinuxKit's rule)."""
    result = mode | 0o100
    if mode & 0o060:
        result |= 0o010
    if mode & 0o006:
        result |= 0o001
    return result


def plan_files(system: System) -> list[PlannedFile]:
    """The entries of ``system.files`` to write; raises :class:`ConfigError` for a missing
    source that is not ``optional`` (optional ones are left out with a warning)."""
    planned = []
    for index, file in enumerate(system.files):
        path = source_path(file)
        if path is not None and not path.is_file():
            where = file.field_origin("source") or file.origin
            problem = "is not a regular file" if path.exists() else "does not exist"
            if file.optional:
                warn(f"skipping file {file.path!r}: its source {path} {problem}", location=where)
                continue
            raise ConfigError(
                f"the source of file {file.path!r}, {path}, {problem}",
                location=where,
                hint="create it, fix the path (relative sources are read from the folder of "
                "the file defining the entry), or set optional=True to skip it",
            )
        planned.append(PlannedFile(index, file, path))
    return planned


def file_entries(
    system: System,
    planned: list[PlannedFile],
    directories: set[str],
    *,
    mtime: int = DEFAULT_MTIME,
    images: ImageRefs | None = None,
) -> Iterator[Entry]:
    """The entries of ``planned`` (from :func:`plan_files`), parents first, dated ``mtime``.

    ``directories`` holds the directories the stream already has (names without a trailing
    ``/``); it is updated with those written here. A source file is opened when its entry is
    taken and closed when the next one is. ``images`` names the images as the build resolved
    them, for ``metadata`` entries (default: as written, canonical).
    """
    for item in planned:
        file = item.file
        # "./etc//motd" and "/etc/motd" name the same path as "etc/motd".
        name = "/".join(part for part in file.path.split("/") if part not in ("", "."))
        mode = _mode(file)
        uid, gid = system.resolve_id(file.uid), system.resolve_id(file.gid)
        pax = {"LINUXKIT.location": f"files[{item.index}]", "LINUXKIT.source": FILES_SOURCE}
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in directories:
                directories.add(parent)
                yield _entry(parent, tarfile.DIRTYPE, dir_mode(mode), uid, gid, pax, mtime)
        if file.directory:
            directories.add(name)
            yield _entry(name, tarfile.DIRTYPE, mode, uid, gid, pax, mtime)
        elif file.symlink is not None:
            link = _entry(name, tarfile.SYMTYPE, mode, uid, gid, pax, mtime)
            link.info.linkname = file.symlink
            yield link
        elif item.source is not None:
            yield from _source_entry(name, item, mode, uid, gid, pax, mtime)
        else:
            entry = _entry(name, tarfile.REGTYPE, mode, uid, gid, pax, mtime)
            data = _contents(system, file, images)
            entry.info.size = len(data)
            yield Entry(entry.info, io.BytesIO(data))


def _mode(file: File) -> int:
    mode = file.mode
    if mode is None:
        return file.default_mode
    return mode if isinstance(mode, int) else int(mode.removeprefix("0o"), 8)


def _entry(
    name: str, kind: bytes, mode: int, uid: int, gid: int, pax: dict[str, str], mtime: int
) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
    info.mtime = mtime
    info.pax_headers = dict(pax)
    return Entry(info)


def _contents(system: System, file: File, images: ImageRefs | None) -> bytes:
    if file.metadata is None:
        return (file.contents or "").encode()
    # Relative sources are written as seen from the system's own folder, so the metadata
    # does not depend on the directory the build runs in.
    base = Path(os.path.abspath(system.origin.file)).parent if system.origin else None
    return metadata_bytes(system, file.metadata, images, base=base)


def _source_entry(
    name: str, item: PlannedFile, mode: int, uid: int, gid: int, pax: dict[str, str], mtime: int
) -> Iterator[Entry]:
    assert item.source is not None
    try:
        handle = item.source.open("rb")
    except OSError as error:
        raise ConfigError(
            f"cannot read {item.source}, the source of file {item.file.path!r}: {error.strerror}",
            location=item.file.field_origin("source") or item.file.origin,
        ) from error
    with handle:
        entry = _entry(name, tarfile.REGTYPE, mode, uid, gid, pax, mtime)
        entry.info.size = os.fstat(handle.fileno()).st_size
        yield Entry(entry.info, handle)
