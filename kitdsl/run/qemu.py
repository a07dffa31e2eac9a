"""The qemu binary and the command line a boot runs.

:func:`qemu_argv` is pure: everything it decides can be read in one place.

* ``-S`` starts the guest paused: kitdsl connects to QMP and only then lets it run, so no
  event (power off, reset, panic) can happen before anyone listens.
* ``-no-reboot`` turns a guest reboot into an exit, ``-device pvpanic-pci -action
  panic=exit-failure`` turns a panic into an exit when the guest loads the pvpanic-pci driver,
  and ``panic=-1`` (added unless the command line sets ``panic=``) makes a guest without that
  driver reboot, hence exit, on a panic instead of hanging. :mod:`kitdsl.run.process` then
  tells the cases apart.
* The console is the first serial port, ``console=ttyS0`` is added when the command line names
  no console.
* User networking with ``hostfwd`` on 127.0.0.1 only; virtio-net, virtio-rng, virtio disks.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kitdsl.errors import UsageError
from kitdsl.run.errors import RunError
from kitdsl.run.spec import BootSpec, Disk, DiskFormat, RunOptions

SHELL_PORT_NAME = "org.kitdsl.shell"
"""The virtio serial port :class:`~kitdsl.run.machine.Machine` runs commands through."""

SHELL_PORT_ID = "shell-port"
"""Its qemu device id, which QMP's ``VSERPORT_CHANGE`` events name."""

_QEMU = "qemu-system-x86_64"
_QCOW2_MAGIC = b"QFI\xfb"


def find_qemu(explicit: str | None = None) -> str:
    """The qemu binary to run: ``explicit`` (a path or a name on ``PATH``) or
    ``qemu-system-x86_64``."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise RunError(f"booting under qemu is supported on x86_64 hosts, not {platform.machine()}")
    name = explicit or _QEMU
    found = shutil.which(name)
    if found is None:
        raise RunError(
            f"qemu was not found: {name} is not an executable file or on PATH",
            hint="install it (apt-get install qemu-system-x86) or give --qemu PATH",
        )
    return found


def qemu_version(qemu: str) -> str:
    """The first line of ``qemu --version``."""
    try:
        result = subprocess.run(
            [qemu, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RunError(f"cannot run {qemu} --version: {error}") from error
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RunError(f"{qemu} --version failed: {result.stderr.strip()}")
    return lines[0]


@dataclass(frozen=True)
class PreparedDisk:
    """A disk that exists, with its format known."""

    path: Path
    format: DiskFormat


def prepare_disk(disk: Disk, qemu: str) -> PreparedDisk:
    """Create ``disk`` with ``qemu-img create`` when it does not exist (it needs a size)."""
    if disk.path.exists():
        if disk.format is not None:
            return PreparedDisk(disk.path, disk.format)
        with disk.path.open("rb") as handle:
            magic = handle.read(4)
        return PreparedDisk(disk.path, "qcow2" if magic == _QCOW2_MAGIC else "raw")
    if disk.size_mib is None:
        raise UsageError(
            f"the disk {disk.path} does not exist",
            hint=f"add a size to create it: --disk {disk.path},size=1G",
        )
    fmt: DiskFormat = disk.format or "qcow2"
    qemu_img = shutil.which("qemu-img", path=f"{Path(qemu).parent}{os.pathsep}{_path()}")
    if qemu_img is None:
        raise RunError(
            f"cannot create {disk.path}: qemu-img is not installed",
            hint="apt-get install qemu-utils, or create the image yourself",
        )
    disk.path.parent.mkdir(parents=True, exist_ok=True)
    # qemu-img writes the file in place; a partial image is removed so it is not reused.
    argv = [qemu_img, "create", "-q", "-f", fmt, str(disk.path), f"{disk.size_mib}M"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        disk.path.unlink(missing_ok=True)
        raise RunError(f"qemu-img could not create {disk.path}: {result.stderr.strip()}")
    return PreparedDisk(disk.path, fmt)


def _path() -> str:
    return os.environ.get("PATH", os.defpath)


def kernel_cmdline(spec: BootSpec, append: str) -> str:
    """The command line the kernel gets: the build's, ``append``, and what kitdsl adds."""
    # Plain splitting is enough to see which keys are set; values are passed on as written.
    keys = {word.split("=", 1)[0] for word in f"{spec.cmdline} {append}".split()}
    added = []
    if "console" not in keys:
        added.append("console=ttyS0")
    if "panic" not in keys:
        added.append("panic=-1")
    if spec.squashfs is not None and "root" not in keys:
        added.append("root=/dev/vda")
    return " ".join(part for part in (spec.cmdline.strip(), append.strip(), *added) if part)


SerialMode = Literal["terminal", "pipe"]


@dataclass(frozen=True)
class Sockets:
    """Unix sockets kitdsl listens on; qemu connects to them when it starts."""

    qmp: Path
    shell: Path | None = None


def accel_args(accel: Literal["kvm", "tcg"]) -> list[str]:
    """``-accel`` and the CPU model that goes with it."""
    # KVM runs the host's CPU; under TCG "max" emulates every feature qemu can, so guests
    # built for newer x86-64 levels run too.
    return ["-accel", accel, "-cpu", "host" if accel == "kvm" else "max"]


def qemu_argv(
    qemu: str,
    spec: BootSpec,
    options: RunOptions,
    *,
    accel: Literal["kvm", "tcg"],
    disks: list[PreparedDisk],
    sockets: Sockets,
    serial: SerialMode,
) -> list[str]:
    """The whole qemu command line for one boot.

    ``serial="terminal"`` multiplexes qemu's monitor on the console (Ctrl-A x quits, as with
    ``-nographic``); ``"pipe"`` passes the console's bytes through untouched.
    """
    argv = [qemu, "-nodefaults", "-no-user-config", "-display", "none", "-S"]
    argv += ["-machine", "q35", *accel_args(accel)]
    argv += ["-smp", str(options.cpus), "-m", str(options.mem)]
    argv += ["-kernel", str(spec.kernel)]
    if spec.initrd is not None:
        argv += ["-initrd", str(spec.initrd)]
    argv += ["-append", kernel_cmdline(spec, options.append)]
    if serial == "terminal":
        argv += ["-serial", "mon:stdio"]
    else:
        argv += ["-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console"]
    argv += ["-qmp", f"unix:{sockets.qmp}"]
    argv += ["-no-reboot", "-action", "panic=exit-failure", "-device", "pvpanic-pci"]
    netdev = "user,id=net0"
    for publish in options.publish:
        netdev += f",hostfwd={publish.hostfwd()}"
    argv += ["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"]
    argv += ["-device", "virtio-rng-pci"]
    drives = []
    if spec.squashfs is not None:
        drives.append(f"file={_escape(spec.squashfs)},format=raw,if=virtio,readonly=on")
    drives += [f"file={_escape(disk.path)},format={disk.format},if=virtio" for disk in disks]
    for drive in drives:
        argv += ["-drive", drive]
    if sockets.shell is not None:
        argv += [
            "-device",
            "virtio-serial-pci",
            "-chardev",
            f"socket,id=shell,path={sockets.shell}",
            "-device",
            f"virtserialport,chardev=shell,id={SHELL_PORT_ID},name={SHELL_PORT_NAME}",
        ]
    return argv + list(options.extra_args)


def _escape(path: Path) -> str:
    """A path as a value of a qemu option list, where a comma is written twice."""
    return str(path).replace(",", ",,")
