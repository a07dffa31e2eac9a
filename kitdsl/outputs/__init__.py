"""Output formats: from a root file system stream and the kernel parts to files on disk.

One module per format, each registered by name (:func:`register`)::

    from kitdsl.outputs import Boot, Entry, Target, write_outputs

    rootfs = [Entry.directory("etc"), Entry.file("etc/hostname", b"box\\n")]
    boot = Boot(kernel=Path("vmlinuz"), cmdline="console=ttyS0")
    write_outputs(["kernel+initrd"], rootfs, boot, Target(Path("out"), "box"))
    # [out/box-kernel, out/box-initrd.img, out/box-cmdline]

| name | files | needs |
|---|---|---|
| ``kernel+initrd`` | ``<name>-kernel``, ``<name>-initrd.img``, ``<name>-cmdline`` | stream |
| ``tar`` | ``<name>.tar`` | stream |
| ``tar-kernel-initrd`` | ``<name>-initrd.tar`` | kit |
| ``docker`` | ``<name>.docker``; the image ``<name>:latest`` loaded into Docker | stream |
| ``kernel+squashfs`` | ``<name>-kernel``, ``<name>-cmdline``, ``<name>-squashfs.img`` | spool |
"""

# The built-in formats register themselves when imported.
from kitdsl.outputs import docker, initrd, kit_tar, squashfs, tar
from kitdsl.outputs.base import (
    Blob,
    Boot,
    Compression,
    Job,
    Needs,
    OutputFormat,
    Target,
    get,
    names,
    register,
)
from kitdsl.outputs.driver import write_outputs
from kitdsl.outputs.entry import DEFAULT_MTIME, Entry, Reader, TarSource, read_tar
from kitdsl.outputs.initrd import write_initrd
from kitdsl.outputs.tar import open_linuxkit_tar, write_tar

__all__ = [
    "DEFAULT_MTIME",
    "Blob",
    "Boot",
    "Compression",
    "Entry",
    "Job",
    "Needs",
    "OutputFormat",
    "Reader",
    "TarSource",
    "Target",
    "docker",
    "get",
    "initrd",
    "kit_tar",
    "names",
    "open_linuxkit_tar",
    "read_tar",
    "register",
    "squashfs",
    "tar",
    "write_initrd",
    "write_outputs",
    "write_tar",
]
