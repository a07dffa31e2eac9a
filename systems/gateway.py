"""Gateway: routes a WireGuard tunnel; no console in production, one in the debug variant."""

from kitdsl import BindNS, File, Interface, Kernel, Onboot, Runtime, packages
from kitdsl.packages.kernel import VIRTUAL_MACHINE_MODULES
from kitdsl.pkg.kernel import KernelPackage
from kitdsl.pkg.package import Package
from systems.common import base, ssh

kernel = KernelPackage(name="kernel-wireguard", modules=[*VIRTUAL_MACHINE_MODULES, "wireguard"])
"""The bundled kernel's modules and WireGuard's."""

wireguard = Package(
    name="wireguard",
    base=[packages.busybox],
    debian=["wireguard-tools"],
    keep=["usr/bin/wg", "lib/*-linux-gnu*/libc.so.6", "lib/*-linux-gnu*/ld-linux*", "lib64/*"],
)
"""``wg`` (and busybox's ``ip``) to configure WireGuard interfaces."""

wg0 = Onboot(
    name="wg0",
    image=wireguard,
    net="new",
    binds=["/etc/wireguard:/etc/wireguard:ro"],
    command=["sh", "-c", "ip link set wg0 up && wg setconf wg0 /etc/wireguard/wg0.conf"],
    capabilities=["CAP_NET_ADMIN"],
    runtime=Runtime(
        interfaces=[Interface(name="wg0", add="wireguard", create_in_root=True)],
        bind_ns=BindNS(net="/run/netns/wg"),
    ),
)

# runc sets the container's sysctl settings as it creates it, in the tunnel's namespace.
forward = Onboot(
    name="forward",
    image=packages.sysctl,
    net="/run/netns/wg",
    sysctl={"net.ipv4.ip_forward": "1"},
    command=["true"],
)

wg_config = File(
    path="etc/wireguard/wg0.conf",
    contents="[Interface]\nListenPort = 51820\n",
    mode=0o600,
)

system = (
    base.system.replace(kernel=Kernel(image=kernel, cmdline=base.KERNEL.cmdline))
    .remove("getty")
    .extend(onboot=[wg0, forward], files=[wg_config])
)
"""Production gateway: no console."""

debug = system.extend(
    services=[base.getty.replace(env=["INSECURE=true"]), ssh.sshd],
    files=[ssh.root_ssh, ssh.authorized_keys],
)
"""Debug variant: the production gateway plus a console and sshd (``gateway.py:debug``)."""
