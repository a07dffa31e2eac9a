"""The ``tar`` format: the root file system as one PAX tar, streamed, as LinuxKit writes it.

The kernel parts come first, under ``boot/`` (LinuxKit's order: ``boot``, ``boot/cmdline``,
``boot/kernel``, ``boot/ucode.cpio``; mode 0755 for the folder, the kernel's own mode
(:attr:`Boot.kernel_mode`) and 0644 for the other files, owner 0:0, :attr:`Boot.mtime`),
then every entry of the stream unchanged, PAX records included. So the tar holds everything
the other formats are made from, and :func:`open_linuxkit_tar` splits it again.

:func:`write_tar` writes the same bytes to any stream (standard output, say).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from kitdsl.errors import OutputError
from kitdsl.outputs.base import Blob, Boot, Job, Needs, blob_size, open_blob, register
from kitdsl.outputs.entry import Entry, Reader, TarSource, copy_contents
from kitdsl.outputs.files import AtomicFiles
from kitdsl.outputs.pgzip import Sink
from kitdsl.outputs.segments import SegmentCache, SegmentedStream

CHUNK = 1 << 20
BOOT_PARTS = ("boot/kernel", "boot/cmdline", "boot/ucode.cpio")


def boot_entries(boot: Boot) -> Iterator[tuple[tarfile.TarInfo, Blob | None]]:
    """The ``boot/`` entries for ``boot`` (none when there is no kernel, no command line and
    no microcode), each with its contents."""
    files: list[tuple[str, Blob]] = []
    if boot.cmdline or boot.kernel is not None:  # LinuxKit writes it even when empty
        files.append(("boot/cmdline", boot.cmdline.encode()))
    if boot.kernel is not None:
        files.append(("boot/kernel", boot.kernel))
    if boot.ucode is not None:
        files.append(("boot/ucode.cpio", boot.ucode))
    if not files:
        return
    yield _boot_info("boot", tarfile.DIRTYPE, 0o755, boot), None
    for name, blob in files:
        mode = boot.kernel_mode if name == "boot/kernel" else 0o644
        info = _boot_info(name, tarfile.REGTYPE, mode, boot)
        info.size = blob_size(blob)
        yield info, blob


def _boot_info(name: str, kind: bytes, mode: int, boot: Boot) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, boot.mtime
    info.pax_headers = dict(boot.pax_headers)
    return info


ENCODING = "tar"
"""The name of the tar encoding of a segment."""


class TarWriter:
    """Writes a PAX tar to ``out`` byte for byte as :mod:`tarfile` does (``w|`` mode), with a
    way to copy in runs of entries encoded earlier (a tar entry's bytes do not depend on where
    it is in the archive) and a tap that also receives what is written."""

    def __init__(self, out: Sink) -> None:
        self._out = out
        self.tap: Sink | None = None
        self.offset = 0

    def write(self, data: bytes) -> None:
        """Write raw bytes (whole entries)."""
        self._out.write(data)
        if self.tap is not None:
            self.tap.write(data)
        self.offset += len(data)

    def add(self, info: tarfile.TarInfo, data: Reader | None = None) -> None:
        """Append one entry; ``data`` gives exactly ``info.size`` bytes for a regular file."""
        self.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if not info.isreg() or not info.size:
            return
        copy_contents(info, data, self.write, lambda missing: _short(info, missing))
        if info.size % tarfile.BLOCKSIZE:
            self.write(bytes(-info.size % tarfile.BLOCKSIZE))

    def copy(self, path: Path) -> None:
        """Append the entries kept in ``path`` (bytes this writer wrote before)."""
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                self.write(chunk)

    def close(self) -> None:
        """End the archive: two zero blocks, then zeros up to a whole record."""
        self.write(bytes(2 * tarfile.BLOCKSIZE))
        if self.offset % tarfile.RECORDSIZE:
            self.write(bytes(-self.offset % tarfile.RECORDSIZE))


def _short(info: tarfile.TarInfo, missing: int) -> OutputError:
    return OutputError(
        f"cannot write {info.name!r}: its data ended {missing} bytes short of its size {info.size}"
    )


def write_tar(
    rootfs: Iterable[Entry],
    boot: Boot | None,
    out: Sink,
    cache: SegmentCache | None = None,
    *,
    last: Iterable[Entry] = (),
) -> None:
    """Write ``boot``'s parts under ``boot/`` (if given), then ``rootfs``, then ``last``, as a
    PAX tar.

    When ``rootfs`` is a :class:`SegmentedStream` and a ``cache`` is given, the bytes of each
    keyed segment are kept, or copied from the cache when they are there.
    """
    tar = TarWriter(out)
    for info, blob in boot_entries(boot) if boot is not None else ():
        if blob is None:
            tar.add(info)
        else:
            with open_blob(blob) as data:
                tar.add(info, data)
    if isinstance(rootfs, SegmentedStream) and cache is not None:
        _write_segments(rootfs, tar, cache)
    else:
        for entry in rootfs:
            tar.add(entry.info, entry.data)
    for entry in last:
        tar.add(entry.info, entry.data)
    tar.close()


def _write_segments(rootfs: SegmentedStream, tar: TarWriter, cache: SegmentCache) -> None:
    for segment in rootfs.segments():
        cached = cache.get(ENCODING, segment.key)
        if cached is not None:
            tar.copy(cached.path)
            rootfs.reused(cached.directories)
            continue
        tap = cache.tap(ENCODING, segment.key)
        tar.tap, start = tap, tar.offset
        try:
            with rootfs.read(segment, tap.directories if tap is not None else None) as entries:
                for entry in entries:
                    tar.add(entry.info, entry.data)
        except BaseException:
            if tap is not None:
                tap.discard()
            raise
        finally:
            tar.tap = None
        if tap is not None:
            tap.commit(0, tar.offset - start)


@register("tar")
class Tar:
    """``<name>.tar``: the whole system as a PAX tar."""

    needs: ClassVar[Needs] = Needs.STREAM

    def filenames(self, name: str, boot: Boot) -> list[str]:
        """The one file written for ``name``."""
        return [f"{name}.tar"]

    def write(self, job: Job) -> list[Path]:
        """Stream the tar to ``<name>.tar``."""
        with AtomicFiles(job.target.folder) as files:
            write_tar(job.rootfs, job.boot, files.create(job.target.filename(".tar")), job.cache)
        return files.written


def open_linuxkit_tar(path: Path) -> tuple[Boot, TarSource]:
    """Split a LinuxKit-style root file system tar (from ``linuxkit build -format tar`` or the
    ``tar`` format) into its kernel parts (``boot/kernel``, ``boot/cmdline``,
    ``boot/ucode.cpio``) and a source of the rest, which leaves out ``boot/``."""
    parts: dict[str, bytes] = {}
    for entry in TarSource(path):
        name = "/".join(part for part in entry.info.name.split("/") if part not in ("", "."))
        if name in BOOT_PARTS and entry.data is not None:
            parts[name] = entry.data.read()
    boot = Boot(
        kernel=parts.get("boot/kernel"),
        cmdline=parts.get("boot/cmdline", b"").decode("utf-8", "surrogateescape"),
        ucode=parts.get("boot/ucode.cpio"),
    )
    return boot, TarSource(path, without_boot=True)
