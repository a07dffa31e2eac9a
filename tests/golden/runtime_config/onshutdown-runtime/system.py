"""An onshutdown container (``containers/onshutdown/001-teardown``) with a full runtime block.

Covers: ``runtime.mounts`` written as given after the generated rootfs mounts (no defaults
filled in, empty fields left out), ``interfaces`` that move an existing link (no ``add``),
create a veth pair (``peer``) or a tap device, ``createInRoot`` always written, ``cgroups``,
``mkdir``, ``namespace``; the label's runtime fields replaced field by field. Checked by hand.
"""

from kitdsl import Interface, Mount, Onboot, Onshutdown, Runtime, System

system = System(
    onboot=[Onboot(name="setup", image="example.org/tools:1")],
    onshutdown=[
        Onshutdown(name="flush", image="example.org/tools:1"),
        Onshutdown(
            name="teardown",
            image="example.org/teardown:1",
            runtime=Runtime(
                cgroups=["teardown"],
                mounts=[
                    Mount(
                        destination="/run/app", type="tmpfs", source="tmpfs", options=["size=1m"]
                    ),
                    Mount(destination="/run/app", options=["remount", "ro"]),
                ],
                mkdir=["/run/app/state", "var/tmp"],
                interfaces=[
                    Interface(name="eth1"),
                    Interface(name="veth1", peer="veth1-peer"),
                    Interface(name="tap0", add="tuntap", create_in_root=False),
                ],
                namespace="shutdown",
            ),
        ),
    ],
)
target = ("onshutdown", 1)
