"""The ``kernel+initrd`` format, and turning a root file system stream into an initrd.

An initrd here is what LinuxKit writes: the root file system as a newc cpio
(:mod:`kitdsl.outputs.cpio`) in one gzip member (:mod:`kitdsl.outputs.pgzip`), zero-padded to a
multiple of 4 bytes so another archive could follow it (the kernel looks for an uncompressed
cpio only at 4-byte boundaries, and skips zeros between archives). Entries under ``boot/`` are
left out, as LinuxKit leaves them out: that folder holds the kernel parts, which the boot
loader loads separately.

``kernel+initrd`` writes ``<name>-kernel``, ``<name>-initrd.img`` (the microcode cpio first,
when there is one: the kernel reads early microcode only from an uncompressed cpio at the very
start) and ``<name>-cmdline`` only when the command line is not empty. A file of an earlier
build that this one does not write (a ``-cmdline`` when the command line is now empty, a
``-kernel`` when there is now no kernel) is removed, so it cannot be booted with the new
files by mistake.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from kitdsl.outputs.base import Boot, Compression, Job, Needs, open_blob, register
from kitdsl.outputs.cpio import CpioWriter
from kitdsl.outputs.entry import Entry, is_boot_entry
from kitdsl.outputs.files import AtomicFiles, write_kernel
from kitdsl.outputs.pgzip import BLOCK_SIZE, GzipWriter, Sink
from kitdsl.outputs.segments import SegmentCache, SegmentedStream, SegmentTap


def encoding(compression: Compression) -> str:
    """The name of the initrd encoding of a segment at this compression (the zlib version
    is part of it: another zlib may compress differently)."""
    return f"cpio-gzip{compression.level}-{BLOCK_SIZE}-zlib{zlib.ZLIB_RUNTIME_VERSION}"


def write_initrd(
    rootfs: Iterable[Entry],
    out: Sink,
    compression: Compression | None = None,
    cache: SegmentCache | None = None,
) -> int:
    """Write ``rootfs`` (less ``boot/``) to ``out`` as a gzip-compressed newc cpio padded to 4
    bytes; return the number of bytes written.

    When ``rootfs`` is a :class:`SegmentedStream` each segment is compressed on its own; with
    a ``cache``, keyed segments are kept, or copied from the cache when they are there. The
    bytes are the same either way.
    """
    compression = compression or Compression()
    taps: list[SegmentTap] = []  # committed when their last block is written
    try:
        with GzipWriter(out, level=compression.level, threads=compression.threads) as gz:
            cpio = CpioWriter(gz)
            if isinstance(rootfs, SegmentedStream):
                _write_segments(rootfs, cpio, gz, encoding(compression), cache, taps)
            else:
                for entry in rootfs:
                    if not is_boot_entry(entry.info.name):
                        cpio.add(entry)
            cpio.close()
    except BaseException:
        for tap in taps:  # what was not committed is dropped, whatever failed
            tap.discard()
        raise
    padding = -gz.compressed_size % 4
    out.write(bytes(padding))
    return gz.compressed_size + padding


def _write_segments(
    rootfs: SegmentedStream,
    cpio: CpioWriter,
    gz: GzipWriter,
    name: str,
    cache: SegmentCache | None,
    taps: list[SegmentTap],
) -> None:
    for segment in rootfs.segments():
        cached = cache.get(name, segment.key) if cache is not None else None
        if cached is not None:
            gz.append_compressed(cached.path, cached.crc, cached.length)
            rootfs.reused(cached.directories)
            continue
        tap = cache.tap(name, segment.key) if cache is not None else None
        gz.begin_segment(tap, tap.commit if tap is not None else None)
        if tap is not None:
            taps.append(tap)
        with rootfs.read(segment, tap.directories if tap is not None else None) as entries:
            for entry in entries:
                if not is_boot_entry(entry.info.name):
                    cpio.add(entry)
        gz.end_segment()


@register("kernel+initrd")
class KernelInitrd:
    """``<name>-kernel``, ``<name>-initrd.img`` and ``<name>-cmdline`` (when not empty)."""

    needs: ClassVar[Needs] = Needs.STREAM

    def filenames(self, name: str, boot: Boot) -> list[str]:
        """The files written for ``name``."""
        names = [f"{name}-kernel"] if boot.kernel is not None else []
        names.append(f"{name}-initrd.img")
        if boot.cmdline:
            names.append(f"{name}-cmdline")
        return names

    def write(self, job: Job) -> list[Path]:
        """Write the kernel, the initrd (microcode first) and the command line."""
        boot, target = job.boot, job.target
        with AtomicFiles(target.folder) as files:
            write_kernel(files, boot.kernel, target.filename("-kernel"))
            initrd = files.create(target.filename("-initrd.img"))
            if boot.ucode is not None:
                with open_blob(boot.ucode) as ucode:
                    shutil.copyfileobj(ucode, initrd)
            write_initrd(job.rootfs, initrd, target.compression, job.cache)
            if boot.cmdline:
                files.create(target.filename("-cmdline")).write(boot.cmdline.encode())
            else:
                files.remove(target.filename("-cmdline"))
        return files.written
