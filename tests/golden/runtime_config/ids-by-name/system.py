"""uid, gid and additionalGids given as container names.

Ids are allocated from 100 in onboot, onshutdown, services order: dhcpcd 100, format 101,
flush 102, getty 103, app 104. ``root`` and ``""`` are 0; numbers are kept. The entry's uid and
gid win over the label's. Checked by hand.
"""

from kitdsl import Onboot, Onshutdown, Service, System

system = System(
    onboot=[
        Onboot(name="dhcpcd", image="linuxkit/dhcpcd:v1.0.0"),
        Onboot(name="format", image="linuxkit/format:v1.0.0"),
    ],
    onshutdown=[Onshutdown(name="flush", image="example.org/flush:1")],
    services=[
        Service(name="getty", image="linuxkit/getty:v1.0.0"),
        Service(
            name="app",
            image="example.org/app:1",
            uid="app",
            gid="flush",
            additional_gids=["root", 5, "getty", ""],
        ),
    ],
)
target = ("services", 1)
