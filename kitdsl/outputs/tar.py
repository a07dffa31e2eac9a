"""The ``tar`` format: the root file system as one PAX tar, streamed, as LinuxKit writes it.

The kernel parts come first, under ``boot/`` (LinuxKit's order: ``boot``, ``boot/cmdline``,
``boot/kernel``, ``boot/ucode.cpio``; mode 0755 for the folder and 0644 for the files, owner
0:0, LinuxKit's fixed mtime), then every entry of the stream unchanged, PAX records included.
So the tar holds everything the other formats are made from, and
:func:`open_linuxkit_tar` splits it again.

:func:`write_tar` writes the same bytes to any stream (standard output, say).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar

from kitdsl.outputs.base import Blob, Boot, Job, Needs, blob_size, open_blob, register
from kitdsl.outputs.entry import DEFAULT_MTIME, Entry, TarSource
from kitdsl.outputs.files import AtomicFiles

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
        info = _boot_info(name, tarfile.REGTYPE, 0o644, boot)
        info.size = blob_size(blob)
        yield info, blob


def _boot_info(name: str, kind: bytes, mode: int, boot: Boot) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, DEFAULT_MTIME
    info.pax_headers = dict(boot.pax_headers)
    return info


def write_tar(rootfs: Iterable[Entry], boot: Boot | None, out: BinaryIO) -> None:
    """Write ``boot``'s parts under ``boot/`` (if given), then ``rootfs``, as a PAX tar."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for info, blob in boot_entries(boot) if boot is not None else ():
            if blob is None:
                tar.addfile(info)
            else:
                with open_blob(blob) as data:
                    tar.addfile(info, data)
        for entry in rootfs:
            tar.addfile(entry.info, entry.data if entry.info.isreg() else None)


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
            write_tar(job.rootfs, job.boot, files.create(job.target.filename(".tar")))
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
