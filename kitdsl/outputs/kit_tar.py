"""The ``tar-kernel-initrd`` format: ``<name>-initrd.tar`` holding the boot kit.

As LinuxKit writes it: a PAX tar with ``kernel``, ``initrd.img`` (without the microcode),
``cmdline`` and ``ucode.cpio``, in that order, each only when it is not empty; mode 0644,
owner 0:0, dated :attr:`Boot.mtime` (LinuxKit's fixed time unless ``SOURCE_DATE_EPOCH``
says otherwise). Boot-loader images and installers unpack it.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import ClassVar

from kitdsl.outputs.base import Blob, Boot, Job, Needs, blob_size, open_blob, register
from kitdsl.outputs.files import AtomicFiles


@register("tar-kernel-initrd")
class TarKernelInitrd:
    """``<name>-initrd.tar``: kernel, initrd, command line and microcode in one tar."""

    needs: ClassVar[Needs] = Needs.KIT

    def filenames(self, name: str, boot: Boot) -> list[str]:
        """The one file written for ``name``."""
        return [f"{name}-initrd.tar"]

    def write(self, job: Job) -> list[Path]:
        """Write the tar from the kit prepared by the driver."""
        boot = job.boot
        members: list[tuple[str, Blob | None]] = [
            ("kernel", boot.kernel),
            ("initrd.img", job.require_initrd()),
            ("cmdline", boot.cmdline.encode()),
            ("ucode.cpio", boot.ucode),
        ]
        with AtomicFiles(job.target.folder) as files:
            out = files.create(job.target.filename("-initrd.tar"))
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name, blob in members:
                    if blob is None or blob_size(blob) == 0:
                        continue
                    info = tarfile.TarInfo(name)
                    info.mode, info.mtime, info.size = 0o644, boot.mtime, blob_size(blob)
                    with open_blob(blob) as data:
                        tar.addfile(info, data)
        return files.written
