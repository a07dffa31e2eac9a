"""Booting built systems under qemu: for users (``kitdsl run qemu``) and for tests.

* :func:`boot` runs a system until it stops and says how it ended (:class:`RunResult`,
  :class:`Outcome`), with :class:`BootSpec` naming what to boot and :class:`RunOptions` how;
* :class:`Machine` boots one in the background for a test and drives it: waits on the
  console, HTTP and TCP, runs commands, powers it off;
* :func:`choose_accel` picks KVM or TCG, probing KVM once (:mod:`kitdsl.run.accel`).
"""

from kitdsl.run.accel import AccelChoice, KvmVerdict, choose_accel, probe_kvm
from kitdsl.run.boot import boot, describe_choice, describe_result, prepare
from kitdsl.run.console import ConsoleMatch, strip_ansi
from kitdsl.run.errors import GuestExited, MachineError, MachineTimeout, NoGuestShell, RunError
from kitdsl.run.machine import HttpResponse, Machine, TcpBanner
from kitdsl.run.process import Outcome, RunResult
from kitdsl.run.qemu import SHELL_PORT_NAME, kernel_cmdline, qemu_argv
from kitdsl.run.spec import BootSpec, Disk, Publish, RunOptions

__all__ = [
    "SHELL_PORT_NAME",
    "AccelChoice",
    "BootSpec",
    "ConsoleMatch",
    "Disk",
    "GuestExited",
    "HttpResponse",
    "KvmVerdict",
    "Machine",
    "MachineError",
    "MachineTimeout",
    "NoGuestShell",
    "Outcome",
    "Publish",
    "RunError",
    "RunOptions",
    "RunResult",
    "TcpBanner",
    "boot",
    "choose_accel",
    "describe_choice",
    "describe_result",
    "kernel_cmdline",
    "prepare",
    "probe_kvm",
    "qemu_argv",
    "strip_ansi",
]
