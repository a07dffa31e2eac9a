"""The ``kernel+squashfs`` format: the kernel, its command line, and the root file system as a
squashfs image, made by ``mksquashfs`` (squashfs-tools 4.5.1 or newer) from a tar on its
standard input.

``kernel+squashfs`` writes ``<name>-kernel``, ``<name>-cmdline`` (whenever there is a kernel,
even with an empty command line, as LinuxKit writes it) and ``<name>-squashfs.img``: the root
file system without ``boot/``, compressed with gzip. The image is meant to be the root the
kernel mounts read-only (``root=/dev/vda``, say); the kernel must then have squashfs built in,
since there is no initrd to load it from (Debian's kernels build it as a module, with the zlib,
xz, zstd, lz4 and lzo decompressors). CPU microcode has no place in this format and is left out.

The image depends only on the root file system, never on the clock, the host, the user or the
number of processors. mksquashfs reads a tar differently from the tools that unpack our other
formats, so the tar it is given is prepared first:

* the last entry of a path wins, as when a tar or an initrd is unpacked (mksquashfs keeps the
  first one); a hard link whose target is replaced later in the stream is written after the
  replacement, so it names the final file (as the initrd's symbolic link for it does);
* the root directory (``./``), which mksquashfs skips, gives ``-root-mode``, ``-root-uid`` and
  ``-root-gid`` (0755 and root when there is none); its time, and the file system's creation
  time, are the newest time of any entry (``SOURCE_DATE_EPOCH``, see :func:`write_squashfs`);
* a parent directory no entry describes is made 0755, owned by root, with LinuxKit's fixed
  time (mksquashfs would date it now);
* user and group names are dropped, so the numeric ids are kept (mksquashfs would look the
  names up in the build machine's ``/etc/passwd``);
* only the ``SCHILY.xattr.*`` PAX records (extended attributes, file capabilities) are kept;
* times are whole seconds from 1970 to 2106, what squashfs can hold; earlier or later ones are
  clamped.

That needs two passes over the root file system, so the format reads a spooled tar
(:attr:`~kitdsl.outputs.base.Needs.SPOOL`); memory stays bounded by the number of paths.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, ClassVar

from kitdsl.errors import OutputError
from kitdsl.log import warn
from kitdsl.outputs.base import Boot, Compression, Job, Needs, register
from kitdsl.outputs.entry import DEFAULT_MTIME, Entry, TarSource, copy_contents, is_boot_entry
from kitdsl.outputs.files import AtomicFiles, write_kernel

MKSQUASHFS = "mksquashfs"
MINIMUM_VERSION = (4, 5, 1)
"""The first squashfs-tools with ``-tar`` (Debian 12 ships it)."""
COMPRESSORS = ("gzip", "xz", "zstd", "lz4", "lzo")
"""The compressors Debian's kernels read (``SQUASHFS_ZLIB``, ``_XZ``, ``_ZSTD``, ``_LZ4``,
``_LZO`` are built into their squashfs module)."""
MAX_TIME = 2**32 - 1
INSTALL_HINT = "install squashfs-tools (apt-get install squashfs-tools, or `just deps` as root)"

_SUPPORTED_TYPES = (
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.FIFOTYPE,
)


def write_squashfs(
    rootfs: Iterable[Entry],
    out: BinaryIO,
    compression: Compression | None = None,
    *,
    compressor: str = "gzip",
) -> None:
    """Write ``rootfs`` (less ``boot/``) to ``out`` as a squashfs image.

    ``rootfs`` is read twice (the first pass reads headers only), so it must be a
    :class:`~kitdsl.outputs.entry.TarSource` or a collection, not a one-shot iterator. ``out``
    is a file on disk, which mksquashfs reopens, seeks and reads back. ``compression.level``
    is the gzip level (0: nothing compressed); other compressors use mksquashfs's default
    settings. ``compression.threads`` does not change the bytes written.
    """
    if iter(rootfs) is rootfs:
        raise TypeError("write_squashfs reads rootfs twice; pass a TarSource or a list")
    if compressor not in COMPRESSORS:
        raise ValueError(f"compressor must be one of {', '.join(COMPRESSORS)}, not {compressor!r}")
    compression = compression or Compression()
    layout = _Layout.scan(rootfs)
    command = [
        *_as_root(),
        _mksquashfs(),
        "-",
        f"/proc/self/fd/{out.fileno()}",  # the child's own copy of the descriptor
        "-tar",
        "-noappend",
        "-reproducible",
        "-no-progress",
        "-quiet",
        *_compression_options(compressor, compression),
        *layout.root_options(),
    ]
    if compression.threads is not None:
        command += ["-processors", str(compression.threads)]
    if layout.newest > time.time():
        warn(
            "the root file system has files dated in the future: the squashfs image's root "
            "directory gets the time of the build, so the image is not reproducible"
        )
    # -mkfs-time and -root-time would fix the times, but mksquashfs 4.5 ignores -root-time
    # when it reads a tar and dates the root directory now. SOURCE_DATE_EPOCH instead clamps
    # every time to at most its value (the newest entry's time leaves the entries' own times
    # alone and dates the root directory) and sets the file system's creation time.
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(layout.newest)}
    out.flush()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            pass_fds=(out.fileno(),),
            env=env,
        )
        assert process.stdin is not None
        try:
            try:
                _write_tar(layout.entries(rootfs), process.stdin)
                process.stdin.close()
            except BrokenPipeError:
                pass  # mksquashfs stopped reading: its exit status and message say why
            status = process.wait()
        finally:
            if process.poll() is None:  # our side failed or was interrupted
                process.kill()
                process.wait()
            with contextlib.suppress(OSError):
                process.stdin.close()
        errors.seek(0)
        messages = errors.read().decode("utf-8", "replace").strip().splitlines()
    if status != 0:
        raise OutputError(
            f"mksquashfs failed (exit status {status})",
            details=tuple(messages[-5:]),
            hint="the messages above are mksquashfs's; check the disk has room",
        )
    for message in messages:  # what mksquashfs skipped (a hard link to nothing, say)
        warn(f"mksquashfs: {message}")


class _Layout:
    """What the first pass learns: where each path's last entry is, which paths end up
    directories, and the root directory's attributes."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.directories: set[str] = set()
        self.root = tarfile.TarInfo("")
        self.root.mode = 0o755
        self.newest = DEFAULT_MTIME
        """The newest time of any entry, in whole seconds: the root directory's time."""

    @classmethod
    def scan(cls, rootfs: Iterable[Entry]) -> _Layout:
        layout = cls()
        for index, entry in enumerate(_without_boot(rootfs)):
            name = _path(entry)
            layout.newest = max(layout.newest, _seconds(entry.info.mtime))
            if not name:
                layout.root = entry.info
                continue
            layout.last[name] = index
            if entry.info.isdir():
                layout.directories.add(name)
            else:
                layout.directories.discard(name)
        return layout

    def root_options(self) -> list[str]:
        root = self.root
        return [
            *("-root-mode", f"{root.mode & 0o7777:o}"),
            *("-root-uid", str(root.uid)),
            *("-root-gid", str(root.gid)),  # mksquashfs 4.5 ignores these two: see _as_root
        ]

    def entries(self, rootfs: Iterable[Entry]) -> Iterator[Entry]:
        """The second pass: the entries mksquashfs is given (see the module documentation)."""
        made: set[str] = set()
        waiting: dict[str, list[Entry]] = {}  # hard links waiting for their target's last entry
        for index, entry in enumerate(_without_boot(rootfs)):
            name = _path(entry)
            if not name or self.last[name] != index:
                continue
            info = entry.info
            if info.islnk() and self.last.get(_clean(info.linkname, entry), -1) > index:
                waiting.setdefault(_clean(info.linkname, entry), []).append(entry)
                continue
            pending = [entry]
            while pending:
                current = pending.pop()
                yield from self._parents(_path(current), made)
                yield _prepared(current)
                pending += reversed(waiting.pop(_path(current), []))
        for entries in waiting.values():  # targets that never came: mksquashfs says so
            for entry in entries:
                yield from self._parents(_path(entry), made)
                yield _prepared(entry)

    def _parents(self, name: str, made: set[str]) -> Iterator[Entry]:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in self.directories and parent not in made:
                made.add(parent)
                yield Entry.directory(parent)


def _short(info: tarfile.TarInfo, missing: int) -> OutputError:
    return OutputError(
        f"cannot put {info.name!r} in a squashfs image: its data ended {missing} bytes short "
        f"of its size {info.size}"
    )


def _write_tar(entries: Iterable[Entry], out: IO[bytes]) -> None:
    """Write ``entries`` as a tar in the dialect mksquashfs 4.5 reads best: GNU headers (it
    strips a leading ``/`` or ``../`` from a PAX ``linkpath``, but not from a GNU long link),
    and PAX headers only for the entries that carry extended attributes (which Linux allows on
    no symbolic link but for ``security.*`` and ``trusted.*`` ones)."""
    for entry in entries:
        info = entry.info
        if info.pax_headers:
            out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        else:
            out.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
        if not info.isreg():
            continue
        copy_contents(info, entry.data, out.write, functools.partial(_short, info))
        out.write(bytes(-info.size % tarfile.BLOCKSIZE))
    out.write(bytes(2 * tarfile.BLOCKSIZE))


def _without_boot(rootfs: Iterable[Entry]) -> Iterator[Entry]:
    return (entry for entry in rootfs if not is_boot_entry(entry.info.name))


def _path(entry: Entry) -> str:
    return _clean(entry.info.name, entry)


def _clean(name: str, entry: Entry) -> str:
    """``name`` as mksquashfs sees it: no ``.`` or empty components (``""`` is the root)."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise OutputError(
            f"cannot put {entry.info.name!r} in a squashfs image: a path goes up with '..'",
            hint="paths in the root file system must stay inside it",
        )
    return "/".join(parts)


def _prepared(entry: Entry) -> Entry:
    """A copy of ``entry`` with only what mksquashfs should read (module documentation)."""
    info = copy.copy(entry.info)
    if info.isreg():
        info.type = tarfile.REGTYPE
    elif info.type not in _SUPPORTED_TYPES:
        raise OutputError(
            f"cannot put {entry.info.name!r} in a squashfs image: tar entry type "
            f"{info.type.decode('latin-1')!r} is not a file, directory, link, device or fifo",
            hint="remove the entry from the image, or use the 'tar' output format",
        )
    info.name = _path(entry)
    if info.islnk():
        info.linkname = _clean(info.linkname, entry)
    info.uname = info.gname = ""
    info.mtime = _seconds(info.mtime)
    info.pax_headers = {
        key: value for key, value in info.pax_headers.items() if key.startswith("SCHILY.xattr.")
    }
    return Entry(info, entry.data)


def _seconds(mtime: float) -> int:
    return min(max(int(mtime), 0), MAX_TIME)


def _as_root() -> list[str]:
    """What to run mksquashfs under so that the root directory is owned by root.

    mksquashfs before 4.6 gives the root directory of a tar's image the ids of the user who
    runs it (``-root-uid`` and ``-root-gid`` are ignored there). Someone else than root runs it
    in a user namespace where they are root, as ``unshare --map-root-user`` makes one.
    """
    version = _version(_mksquashfs())
    if os.geteuid() == 0 or (version is not None and version >= (4, 6)):
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        warn(
            f"the squashfs image's root directory will be owned by uid {os.geteuid()}, not root: "
            "mksquashfs 4.5 gives it the builder's ids; install util-linux (for unshare) or "
            "squashfs-tools 4.6 or newer"
        )
        return []
    return [unshare, "--map-root-user"]


def _compression_options(compressor: str, compression: Compression) -> list[str]:
    if compression.level == 0:
        return ["-noI", "-noD", "-noF", "-noX"]
    if compressor == "gzip":
        return ["-comp", "gzip", "-Xcompression-level", str(compression.level)]
    return ["-comp", compressor]


def _mksquashfs() -> str:
    """The path of a usable mksquashfs; an :class:`OutputError` saying what to install if
    there is none."""
    path = shutil.which(MKSQUASHFS)
    if path is None:
        raise OutputError(
            "the kernel+squashfs format needs mksquashfs, which is not installed",
            hint=INSTALL_HINT,
        )
    version = _version(path)
    if version is not None and version < MINIMUM_VERSION:
        shown = ".".join(map(str, version))
        raise OutputError(
            f"{path} is squashfs-tools {shown}; reading a tar needs 4.5.1 or newer",
            hint=INSTALL_HINT,
        )
    return path


@functools.cache
def _version(path: str) -> tuple[int, ...] | None:
    """``mksquashfs -version``'s version (``None`` when it says none we understand)."""
    try:
        result = subprocess.run([path, "-version"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    match = re.search(r"version (\d+(?:\.\d+)*)", result.stdout + result.stderr)
    return tuple(int(part) for part in match[1].split(".")) if match else None


@register("kernel+squashfs")
class KernelSquashfs:
    """``<name>-kernel``, ``<name>-cmdline`` and ``<name>-squashfs.img``."""

    needs: ClassVar[Needs] = Needs.SPOOL

    def filenames(self, name: str, boot: Boot) -> list[str]:
        """The files written for ``name``."""
        names = [f"{name}-kernel"] if boot.kernel is not None else []
        if boot.kernel is not None or boot.cmdline:
            names.append(f"{name}-cmdline")
        return [*names, f"{name}-squashfs.img"]

    def write(self, job: Job) -> list[Path]:
        """Write the kernel, the command line and the squashfs image of the spooled tar."""
        boot, target = job.boot, job.target
        source = TarSource(job.require_spool(), without_boot=True)
        _mksquashfs()  # before anything is written
        with AtomicFiles(target.folder) as files:
            write_kernel(files, boot.kernel, target.filename("-kernel"))
            if boot.kernel is not None or boot.cmdline:
                files.create(target.filename("-cmdline")).write(boot.cmdline.encode())
            else:
                files.remove(target.filename("-cmdline"))
            image = files.create(target.filename("-squashfs.img"))
            write_squashfs(source, image, target.compression)
        return files.written
