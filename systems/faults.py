"""A system whose parts misbehave on purpose, for the boot tests (tests/test_edge_boot.py).

An onboot container that fails (exit code 3), a service that exits as soon as it starts, an
onboot container that leaves a network namespace behind (a veth pair end and ``bindNS``,
which LinuxKit systems use) with a service living in it, an onshutdown container, and a
read-only and a read-write volume.
"""

from kitdsl import (
    BindNS,
    Interface,
    Onboot,
    Onshutdown,
    Runtime,
    Service,
    System,
    Volume,
    packages,
)
from systems.common import base

fail = Onboot(
    name="fail",
    image=packages.busybox,
    command=["sh", "-c", "echo failing on purpose; exit 3"],
)

netns = Onboot(
    name="netns",
    image=packages.busybox,
    net="new",
    capabilities=["CAP_NET_ADMIN"],
    command=["ip", "addr", "add", "192.168.77.2/24", "dev", "veth1"],
    runtime=Runtime(
        interfaces=[Interface(name="veth1", peer="veth0")],
        bind_ns=BindNS(net="/run/netns/faults"),
        mkdir=["/run/faults"],
        cgroups=["faults"],
    ),
)

crash = Service(
    name="crash",
    image=packages.busybox,
    command=["sh", "-c", "echo crashing on purpose; exit 1"],
)

inside = Service(
    name="inside",
    image=packages.busybox,
    net="/run/netns/faults",
    readonly=True,
    command=["sleep", "3600"],
)

goodbye = Onshutdown(name="goodbye", image=packages.busybox, command=["echo", "goodbye"])

system = System(
    kernel=base.KERNEL,
    init=base.INIT,
    onboot=[fail, netns],
    onshutdown=[goodbye],
    services=[crash, inside],
    volumes=[
        Volume(name="tools", image=packages.busybox, readonly=True),
        Volume(name="scratch"),
    ],
)
"""Boots, with one failing onboot container and one crashing service."""
