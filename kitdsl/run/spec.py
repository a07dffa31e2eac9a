"""What to boot (:class:`BootSpec`) and how (:class:`RunOptions`): plain values, no I/O
beyond looking at which boot files exist.

``BootSpec.from_output("out/edge")`` finds the files ``kitdsl build`` wrote:
``out/edge-kernel`` with ``out/edge-initrd.img`` (and ``out/edge-cmdline`` when the command
line is not empty), or ``out/edge-kernel`` with ``out/edge-squashfs.img``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kitdsl.errors import UsageError
from kitdsl.run.errors import RunError

Accel = Literal["auto", "kvm", "tcg"]
DiskFormat = Literal["raw", "qcow2"]

_SUFFIXES = ("-kernel", "-initrd.img", "-cmdline", "-squashfs.img")


@dataclass(frozen=True)
class BootSpec:
    """A kernel and what it boots: an initrd, or a squashfs root file system on a disk."""

    kernel: Path
    initrd: Path | None = None
    cmdline: str = ""
    squashfs: Path | None = None
    """A squashfs image attached as the first virtio disk, booted with ``root=/dev/vda``."""

    @classmethod
    def from_output(cls, prefix: Path) -> BootSpec:
        """The boot files of a build named ``prefix`` (``out/edge``; ``out/edge-kernel`` and
        the other file names are accepted too)."""
        for suffix in _SUFFIXES:
            if prefix.name.endswith(suffix) and prefix.name != suffix:
                prefix = prefix.with_name(prefix.name.removesuffix(suffix))
                break
        kernel, initrd, cmdline, squashfs = (
            prefix.with_name(prefix.name + suffix) for suffix in _SUFFIXES
        )
        build_hint = (
            f"build it first (`kitdsl build FILE -o {prefix.parent}` writes the kernel+initrd "
            "format), or give --kernel and --initrd"
        )
        if not kernel.is_file():
            raise RunError(f"there is no kernel to boot: {kernel} does not exist", hint=build_hint)
        text = cmdline.read_text().strip() if cmdline.is_file() else ""
        if initrd.is_file():
            return cls(kernel, initrd=initrd, cmdline=text)
        if squashfs.is_file():
            return cls(kernel, cmdline=text, squashfs=squashfs)
        raise RunError(
            f"{kernel} has no {initrd.name} or {squashfs.name} next to it", hint=build_hint
        )

    def check(self) -> None:
        """Raise :class:`RunError` when a file to boot is missing."""
        for label, path in (
            ("kernel", self.kernel),
            ("initrd", self.initrd),
            ("squashfs image", self.squashfs),
        ):
            if path is not None and not path.is_file():
                raise RunError(f"the {label} {path} does not exist")
        if self.initrd is not None and self.squashfs is not None:
            raise UsageError("boot an initrd or a squashfs image, not both")


@dataclass(frozen=True)
class Publish:
    """A port of the guest reachable on the host's 127.0.0.1 (qemu user networking)."""

    host: int
    guest: int
    protocol: Literal["tcp", "udp"] = "tcp"

    @classmethod
    def parse(cls, text: str) -> Publish:
        """``HOST:GUEST[/tcp|udp]``, as ``--publish`` takes it."""
        match = re.fullmatch(r"(\d+):(\d+)(?:/(tcp|udp))?", text.strip())
        if match is None:
            raise UsageError(
                f"--publish {text!r} is not HOST:GUEST[/tcp|udp]",
                hint="for example --publish 8080:80 or --publish 5353:53/udp",
            )
        host, guest = int(match.group(1)), int(match.group(2))
        for port in (host, guest):
            if not 1 <= port <= 65535:
                raise UsageError(f"--publish {text!r}: {port} is not a port number (1-65535)")
        return cls(host, guest, "udp" if match.group(3) == "udp" else "tcp")

    def hostfwd(self) -> str:
        """The ``hostfwd=`` value of qemu's user network."""
        return f"{self.protocol}:127.0.0.1:{self.host}-:{self.guest}"


_SIZE = re.compile(r"(\d+)([MG]?)", re.IGNORECASE)


@dataclass(frozen=True)
class Disk:
    """A disk image attached as a virtio disk (``/dev/vda``, ``/dev/vdb``, ... in order)."""

    path: Path
    size_mib: int | None = None
    """Create the image with this size when it does not exist."""
    format: DiskFormat | None = None
    """``None``: qcow2 when the image is created, else what the existing file holds."""

    @classmethod
    def parse(cls, text: str) -> Disk:
        """``[file=]PATH[,size=N[M|G]][,format=raw|qcow2]``, as ``--disk`` takes it."""
        path: str | None = None
        size: int | None = None
        fmt: DiskFormat | None = None
        for index, part in enumerate(text.split(",")):
            key, sep, value = part.partition("=")
            if not sep and index == 0:
                path = part
            elif key == "file":
                path = value
            elif key == "size":
                match = _SIZE.fullmatch(value)
                if match is None or int(match.group(1)) == 0:
                    raise UsageError(f"--disk {text!r}: size must be N, NM or NG (N > 0)")
                size = int(match.group(1)) * (1024 if match.group(2).upper() == "G" else 1)
            elif key == "format":
                if value not in ("raw", "qcow2"):
                    raise UsageError(f"--disk {text!r}: format must be raw or qcow2")
                fmt = "raw" if value == "raw" else "qcow2"
            else:
                raise UsageError(
                    f"--disk {text!r}: unknown part {part!r}",
                    hint="write PATH[,size=N[M|G]][,format=raw|qcow2]",
                )
        if not path:
            raise UsageError(f"--disk {text!r} names no file")
        return cls(Path(path), size, fmt)


@dataclass(frozen=True)
class RunOptions:
    """How to boot: the ``kitdsl run qemu`` options, for Python callers."""

    mem: int = 1024
    """MiB of guest memory."""
    cpus: int = 1
    publish: tuple[Publish, ...] = ()
    disks: tuple[Disk, ...] = ()
    append: str = ""
    """Added to the kernel command line."""
    accel: Accel = "auto"
    timeout: float | None = None
    """Seconds before the guest is killed (:attr:`Outcome.TIMEOUT`); ``None`` waits forever."""
    console_log: Path | None = None
    """The console without ANSI escapes; ``None`` writes no log."""
    qemu: str | None = None
    """The qemu binary; ``None`` looks for ``qemu-system-x86_64`` on ``PATH``."""
    extra_args: tuple[str, ...] = field(default=())
    """More qemu arguments, added last."""

    def __post_init__(self) -> None:
        if self.mem < 64:
            raise UsageError(f"--mem {self.mem}: give at least 64 (MiB)")
        if self.cpus < 1:
            raise UsageError(f"--cpus {self.cpus}: give at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise UsageError(f"--timeout {self.timeout}: give a number of seconds above 0")
        if self.accel not in ("auto", "kvm", "tcg"):
            raise UsageError(f"--accel {self.accel}: choose auto, kvm or tcg")
