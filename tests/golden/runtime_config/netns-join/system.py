"""nginx joining the WireGuard network namespace that an onboot container bound to a path.

Covers: ``net: /run/netns/wg0`` (a ``network`` namespace entry with a path), capabilities from
the entry in the entry's order (sorted for the other sets), a read-only bind (``ro`` then
``rbind``), a relative ``runtime.mkdir`` path, an image without label and with a Cmd that
contains ``;``. Checked by hand.
"""

from kitdsl import BindNS, Interface, Onboot, Runtime, Service, System

system = System(
    onboot=[
        Onboot(
            name="wg0",
            image="linuxkit/ip:v1.0.0",
            net="new",
            runtime=Runtime(
                interfaces=[Interface(name="wg0", add="wireguard", create_in_root=True)],
                bind_ns=BindNS(net="/run/netns/wg0"),
            ),
        ),
    ],
    services=[
        Service(
            name="nginx",
            image="nginx:1.27-alpine",
            net="/run/netns/wg0",
            capabilities=[
                "CAP_NET_BIND_SERVICE",
                "CAP_CHOWN",
                "CAP_SETUID",
                "CAP_SETGID",
                "CAP_DAC_OVERRIDE",
            ],
            binds=["/etc/nginx/conf.d:/etc/nginx/conf.d:ro"],
            runtime=Runtime(mkdir=["var/cache/nginx"]),
        )
    ],
)
target = ("services", 0)
