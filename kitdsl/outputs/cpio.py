"""A streaming writer of newc cpio archives, the format the Linux kernel unpacks as initramfs.

Layout of each entry (``Documentation/driver-api/early-userspace/buffer-format.rst``): the
6-byte magic ``070701``, thirteen 8-digit hexadecimal fields (ino, mode, uid, gid, nlink,
mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check), the name with its
terminating NUL, zero padding to a multiple of 4 bytes, the data, zero padding to a multiple of
4. The archive ends with an entry named ``TRAILER!!!``.

Tar entries are converted as LinuxKit's ``initrd.CopySplitTar`` does:

* regular files, directories, symlinks, character and block devices and fifos are kept, with
  their mode, uid, gid and mtime (whole seconds; newc has no sub-second field);
* a **hard link becomes a relative symlink** to its target (mode 0777, as every symlink).
  Real newc hard links would need the link count of a file when the file itself is written
  (the kernel only remembers files whose first entry says ``nlink >= 2``), and a tar stream
  only reveals the links later; so a one-pass writer would have to hold every file's data
  until the end. A symlink costs no data, keeps the stream one pass, and is what LinuxKit
  systems already boot with;
* anything else (a tar volume label, say) is refused with an :class:`~kitdsl.errors.OutputError`
  naming the entry.

The output is deterministic: an entry's inode number is the CRC-32 of its name (never 0), so
an entry's bytes do not depend on what comes before it and a run of entries can be encoded
once and reused in later archives; the archive's own device numbers are 0, and the check field
is 0. (Inode numbers only matter for hard links, which are never written here: every file has
one link.) Names are written as tar stored them, minus a
leading ``./`` or ``/`` and a trailing ``/``; the root itself is ``.``. Duplicate names are
kept: the kernel unpacks in order, so the last one wins, as in the tar.
"""

from __future__ import annotations

import math
import posixpath
import stat
import tarfile
import zlib
from functools import partial

from kitdsl.errors import OutputError
from kitdsl.outputs.entry import Entry, copy_contents
from kitdsl.outputs.pgzip import Sink

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
HEADER_SIZE = 110
PATH_MAX = 4096  # the kernel refuses longer names and link targets
MAX_FIELD = 0xFFFFFFFF
SMALL = 1 << 16
"""Files up to this size are written with their header in one piece."""

_TAR_TYPE_NAMES = {
    tarfile.GNUTYPE_LONGNAME: "GNU long name",
    tarfile.GNUTYPE_LONGLINK: "GNU long link name",
    tarfile.GNUTYPE_SPARSE: "GNU sparse file",
    b"V": "GNU volume label",
    b"M": "GNU multi-volume continuation",
    b"N": "GNU old long name",
    b"D": "GNU dump directory",
    tarfile.XHDTYPE: "PAX extended header",
    tarfile.XGLTYPE: "PAX global header",
}


def newc_header(
    name: bytes,
    *,
    ino: int,
    mode: int,
    uid: int = 0,
    gid: int = 0,
    nlink: int = 1,
    mtime: int = 0,
    size: int = 0,
    rdevmajor: int = 0,
    rdevminor: int = 0,
) -> bytes:
    """One newc header: the fixed part, ``name`` and its NUL, padded to 4 bytes."""
    fields = (ino, mode, uid, gid, nlink, mtime, size, 0, 0, rdevmajor, rdevminor, len(name) + 1, 0)
    header = _FIXED % fields + name + b"\0"
    return header + bytes(-len(header) % 4)


_FIXED = MAGIC + b"%08x" * 13
"""The fixed part of a newc header: the magic and thirteen 8-digit hexadecimal fields."""


def archive_name(name: str) -> str:
    """A tar path as a cpio name: no leading ``./`` or ``/``, no empty parts, ``.`` for the
    root. Raises :class:`OutputError` for ``..``, which would unpack outside the root."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise OutputError(
            f"cannot put {name!r} in an initrd: the path goes up with '..'",
            hint="paths in the root file system must stay inside it",
        )
    return "/".join(parts) or "."


def hardlink_target(name: str, target: str) -> str:
    """The relative symlink that stands for a hard link ``name`` → ``target`` (both paths
    from the root): ``bin/sh`` → ``bin/busybox`` gives ``busybox``."""
    return posixpath.relpath(
        "/" + archive_name(target), "/" + posixpath.dirname(archive_name(name))
    )


class CpioWriter:
    """Writes tar :class:`Entry` objects to ``sink`` as a newc cpio archive.

    Call :meth:`close` to write the trailer; ``sink`` is left open.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._closed = False
        self.entries = 0
        """Entries written so far (not counting the trailer)."""

    def add(self, entry: Entry) -> None:
        """Append one tar entry (see the module documentation for how each type converts)."""
        if self._closed:
            raise ValueError("add to a closed CpioWriter")
        info = entry.info
        name = archive_name(info.name)
        body = b""
        size = 0
        permissions = info.mode & 0o7777
        rdev = (0, 0)
        if info.isreg():
            kind, size = stat.S_IFREG, info.size
        elif info.isdir():
            kind = stat.S_IFDIR
        elif info.issym():
            kind, body = stat.S_IFLNK, _encode(info.linkname)
        elif info.islnk():
            kind, body = stat.S_IFLNK, _encode(hardlink_target(info.name, info.linkname))
            permissions = 0o777  # the link's mode is the file's; Linux symlinks are all 0777
        elif info.ischr() or info.isblk():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            rdev = (info.devmajor, info.devminor)
        elif info.isfifo():
            kind = stat.S_IFIFO
        else:
            raise _unsupported(entry)
        encoded = _encode(name)
        for what, text in (("name", encoded), ("link target", body)):
            if len(text) >= PATH_MAX:
                raise _error(entry, f"its {what} is longer than the kernel's {PATH_MAX - 1} bytes")
        if body:
            size = len(body)
        for field, value in (("size", size), ("uid", info.uid), ("gid", info.gid)):
            if not 0 <= value <= MAX_FIELD:
                raise _error(entry, f"its {field} {value} does not fit newc's 32-bit field")
        header = newc_header(
            encoded,
            ino=zlib.crc32(encoded) or 1,
            mode=kind | permissions,
            uid=info.uid,
            gid=info.gid,
            nlink=2 if kind == stat.S_IFDIR else 1,
            # newc holds unsigned 32-bit seconds: earlier times become 0, later ones the maximum.
            mtime=min(max(math.floor(info.mtime), 0), MAX_FIELD),
            size=size,
            rdevmajor=rdev[0],
            rdevminor=rdev[1],
        )
        if kind == stat.S_IFREG and size <= SMALL:
            # One write for a small file: most of a root file system, and a write costs more
            # than the copy it saves.
            self._sink.write(header + self._small_data(entry, size) + bytes(-size % 4))
        elif kind == stat.S_IFREG:
            self._sink.write(header)
            self._copy_data(entry, size)
        else:
            self._sink.write(header + body + bytes(-len(body) % 4))
        self.entries += 1

    def close(self) -> None:
        """Write the ``TRAILER!!!`` entry that ends the archive."""
        if not self._closed:
            self._sink.write(newc_header(TRAILER.encode(), ino=0, mode=0))
            self._closed = True

    def _small_data(self, entry: Entry, size: int) -> bytes:
        if not size:
            return b""
        if entry.data is None:
            raise ValueError(f"tar entry {entry.info.name!r} has {size} bytes but no data")
        data = entry.data.read(size)
        while len(data) < size and (more := entry.data.read(size - len(data))):
            data += more
        if len(data) < size:
            raise _short(entry, size - len(data))
        return data

    def _copy_data(self, entry: Entry, size: int) -> None:
        copy_contents(entry.info, entry.data, self._sink.write, partial(_short, entry))
        if size % 4:
            self._sink.write(bytes(-size % 4))


def _short(entry: Entry, missing: int) -> OutputError:
    return _error(entry, f"its data ended {missing} bytes short of its size {entry.info.size}")


def _encode(text: str) -> bytes:
    # tarfile decodes names as UTF-8 with surrogateescape; this gives back the original bytes.
    return text.encode("utf-8", "surrogateescape")


def _error(entry: Entry, reason: str, hint: str | None = None) -> OutputError:
    """An error about one entry, saying which image it came from when the stream recorded it
    (LinuxKit's PAX records ``LINUXKIT.source`` and ``LINUXKIT.location``)."""
    pax = entry.info.pax_headers
    details = tuple(
        f"{label}: {pax[key]}"
        for key, label in (("LINUXKIT.source", "from image"), ("LINUXKIT.location", "section"))
        if key in pax
    )
    return OutputError(
        f"cannot put {entry.info.name!r} in an initrd: {reason}", hint=hint, details=details
    )


def _unsupported(entry: Entry) -> OutputError:
    kind = entry.info.type
    label = _TAR_TYPE_NAMES.get(kind, "unknown type")
    return _error(
        entry,
        f"tar entry type {kind.decode('latin-1')!r} ({label}) has no cpio equivalent",
        hint="an initrd holds files, directories, symlinks, hard links, devices and fifos; "
        "remove the entry from the image, or use the 'tar' output format",
    )
