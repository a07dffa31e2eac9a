"""A WireGuard link set up at boot, as in LinuxKit's examples/wireguard.yml.

Covers: ``runtime.interfaces`` (``createInRoot`` always written), ``runtime.bindNS.net`` so that
later containers can join the namespace, the entry's ``net: new`` winning over the label's
``net: host``, the entry's binds replacing the label's, and ``>`` escaped the Go way in args.
Checked by hand.
"""

from kitdsl import BindNS, Interface, Onboot, Runtime, Service, System

system = System(
    onboot=[
        Onboot(name="dhcpcd", image="linuxkit/dhcpcd:v1.0.0"),
        Onboot(
            name="wg0",
            image="linuxkit/ip:v1.0.0",
            net="new",
            binds=["/etc/wireguard:/etc/wireguard"],
            command=[
                "sh",
                "-c",
                "ip link set dev wg0 up; wg setconf wg0 /etc/wireguard/wg0.conf; "
                "wg show wg0 > /dev/console",
            ],
            runtime=Runtime(
                interfaces=[Interface(name="wg0", add="wireguard", create_in_root=True)],
                bind_ns=BindNS(net="/run/netns/wg0"),
            ),
        ),
    ],
    services=[Service(name="nginx", image="nginx:1.27-alpine", net="/run/netns/wg0")],
)
target = ("onboot", 1)
