"""Gateway: routes a WireGuard tunnel; no console in production, one in the debug variant."""

from kitdsl import BindNS, File, Interface, Onboot, Runtime, Service
from systems.common import base, ssh

wg0 = Onboot(
    name="wg0",
    image="linuxkit/ip:3fc5a8a5a0d9a3e4b3b1f24ac3b8dbea6d1b7c2f",
    net="new",
    binds=["/etc/wireguard:/etc/wireguard:ro"],
    command=["sh", "-c", "ip link set wg0 up && wg setconf wg0 /etc/wireguard/wg0.conf"],
    capabilities=["CAP_NET_ADMIN"],
    runtime=Runtime(
        interfaces=[Interface(name="wg0", add="wireguard", create_in_root=True)],
        bind_ns=BindNS(net="/run/netns/wg"),
    ),
)

forward = Service(
    name="forward",
    image="linuxkit/sysctl:5a374e4bf3e5a7deeacff6571d0f30f7ea8f56db",
    net="/run/netns/wg",
    sysctl={"net.ipv4.ip_forward": "1"},
    capabilities=["CAP_NET_ADMIN", "CAP_SYS_ADMIN"],
    readonly=True,
)

wg_config = File(
    path="etc/wireguard/wg0.conf",
    contents="[Interface]\nListenPort = 51820\n",
    mode=0o600,
)

system = base.system.remove("getty").extend(onboot=[wg0], services=[forward], files=[wg_config])
"""Production gateway: no console."""

debug = system.extend(
    services=[base.getty.replace(env=["INSECURE=true"]), ssh.sshd],
    files=[ssh.root_ssh, ssh.authorized_keys],
)
"""Debug variant: the production gateway plus a console and sshd (``gateway.py:debug``)."""
