"""Bundled packages that run once at boot: ``sysctl``, ``dhcpcd`` and ``modprobe``.

Each is busybox (the shared :data:`~kitdsl.packages.busybox.busybox` layer) with a script, and
an ``org.mobyproject.config`` label giving the container only what its job needs.
"""

from __future__ import annotations

from kitdsl.dsl import ContainerConfig, File
from kitdsl.packages.busybox import busybox, data_file
from kitdsl.pkg.package import Package

__all__ = ["dhcpcd", "modprobe", "sysctl"]

sysctl = Package(
    name="sysctl",
    base=[busybox],
    files=[
        data_file("sysctl/sysctl.sh", "usr/sbin/apply-sysctl", mode=0o755),
        data_file("sysctl/00-kitdsl.conf", "etc/sysctl.d/00-kitdsl.conf"),
        File(path="hostroot/etc/sysctl.d", directory=True, mode=0o755),
    ],
    cmd=["/usr/sbin/apply-sysctl"],
    config=ContainerConfig(
        readonly=True,
        # Writing /proc/sys takes CAP_SYS_ADMIN, and CAP_NET_ADMIN for net.*; the host's
        # network namespace (the default) is the one configured.
        capabilities=["CAP_SYS_ADMIN", "CAP_NET_ADMIN"],
        binds=["/etc/sysctl.d:/hostroot/etc/sysctl.d:ro"],
    ),
)
"""Applies ``/etc/sysctl.d/*.conf``: kitdsl's defaults (hardening, server limits), then the
system's own files (``File(path="etc/sysctl.d/50-mine.conf", ...)``), which win."""

dhcpcd = Package(
    name="dhcpcd",
    base=[busybox],
    files=[
        data_file("dhcpcd/dhcpcd.sh", "usr/sbin/dhcpcd", mode=0o755),
        data_file("dhcpcd/default.script", "usr/share/udhcpc/default.script", mode=0o755),
    ],
    cmd=["/usr/sbin/dhcpcd"],
    config=ContainerConfig(
        readonly=True,
        # Raw sockets and port 68 for DHCP, NET_ADMIN to configure the interfaces and routes.
        capabilities=["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        # The container's /etc is the host's /run/resolvconf, where /etc/resolv.conf points.
        binds=["/run/resolvconf:/etc"],
    ),
)
"""DHCP on every ethernet interface with busybox ``udhcpc`` (address, routes, MTU,
``/etc/resolv.conf``); exits once each has a lease (onboot). ``command=["/usr/sbin/dhcpcd",
"--daemon"]`` keeps renewing them (a service)."""

modprobe = Package(
    name="modprobe",
    base=[busybox],
    files=[
        data_file("modprobe/load-modules.sh", "usr/sbin/load-modules", mode=0o755),
        File(path="lib/modules", directory=True, mode=0o755),
    ],
    cmd=["/usr/sbin/load-modules"],
    config=ContainerConfig(
        readonly=True,
        net="none",
        capabilities=["CAP_SYS_MODULE"],
        binds=["/lib/modules:/lib/modules:ro"],
    ),
)
"""Loads the kernel modules named as its command:
``Onboot(name="modules", image=modprobe, command=["load-modules", "wireguard"])``."""
