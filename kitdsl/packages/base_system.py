"""The init: what runs a kitdsl (or LinuxKit) system's containers, as one ``init`` image.

It holds busybox (``/bin/busybox`` and its applets), runc with the two libraries it links
(glibc and libseccomp: Debian has no static runc) and the init's shell scripts. Boot, logs,
supervision and shutdown are described in docs/init.md.

Its files, from ``files/init``:

===============================  ==============================================================
``/init``                        stage 1: makes the initramfs a root runc can use (a bind mount)
``/sbin/init``                   stage 2: writes the inittab, becomes busybox init (PID 1)
``/usr/lib/kitdsl/rc.init``      mounts, modules, hostname, volumes, the onboot containers
``/usr/lib/kitdsl/supervise``    runs one service and restarts it, backing off
``/usr/lib/kitdsl/rc.shutdown``  the onshutdown containers, stopping what runs
``/usr/lib/kitdsl/lib.sh``       running a bundle: runtime.json, runc, logs
``/usr/lib/kitdsl/runtime.awk``  runtime.json parsed (busybox awk), as shell commands
``/usr/lib/kitdsl/hook``         runc's createRuntime hook: interfaces and bindNS
===============================  ==============================================================

runtime.json is read with a JSON parser written in awk rather than with ``jq``: busybox already
has awk, and jq would add a binary and two libraries (about 400 kB) to every initrd for the one
file it reads. The parser takes any valid JSON, not only the layout kitdsl and LinuxKit write.
"""

from __future__ import annotations

from kitdsl.dsl import File
from kitdsl.packages.busybox import busybox, data_file
from kitdsl.pkg.package import Package

__all__ = ["init"]

_LIB = "usr/lib/kitdsl"

init = Package(
    name="init",
    base=[busybox],
    debian=["runc"],
    # runc and what its dynamic linking needs; glibc's other files (locales, gconv, iconv, the
    # other libraries) are left out.
    keep=[
        "usr/sbin/runc",
        "lib/*-linux-gnu*/libc.so.6",
        "lib/*-linux-gnu*/ld-linux*.so*",
        "lib/ld-linux*.so*",
        "lib64/ld-linux*.so*",
        "usr/lib/*-linux-gnu*/libseccomp.so.2*",
    ],
    files=[
        data_file("init/stage1.sh", "init", mode=0o755),
        data_file("init/stage2.sh", "sbin/init", mode=0o755),
        data_file("init/rc.init.sh", f"{_LIB}/rc.init", mode=0o755),
        data_file("init/rc.shutdown.sh", f"{_LIB}/rc.shutdown", mode=0o755),
        data_file("init/supervise.sh", f"{_LIB}/supervise", mode=0o755),
        data_file("init/hook.sh", f"{_LIB}/hook", mode=0o755),
        data_file("init/command-port.sh", f"{_LIB}/command-port", mode=0o755),
        data_file("init/lib.sh", f"{_LIB}/lib.sh"),
        data_file("init/runtime.awk", f"{_LIB}/runtime.awk"),
        data_file("init/log.awk", f"{_LIB}/log.awk"),
        data_file("init/power-button.sh", "etc/acpi/PWRF/00000080", mode=0o755),
        File(path="etc/inittab", contents="# Written at boot by /sbin/init.\n", mode=0o644),
        File(path="etc/os-release", contents='NAME="kitdsl"\nID=kitdsl\n', mode=0o644),
        File(path="etc/sysctl.d", directory=True, mode=0o755),
        File(path="root/.ssh", directory=True, mode=0o700),
        *(File(path=path, directory=True, mode=0o755) for path in ("dev", "proc", "sys", "mnt")),
        File(path="var", directory=True, mode=0o755),
        File(path="containers", directory=True, mode=0o755),
    ],
)
"""busybox init with runc and the init's scripts: the ``init`` of a system (docs/init.md)."""
