"""A read-only onshutdown container whose image an onboot container already extracted.

The bundle ``containers/onshutdown/000-alpine-c`` binds onboot[0]'s ``rootfs/`` onto its own
``rootfs/`` (de-duplication works across sections). Checked by hand.
"""

from kitdsl import Onboot, Onshutdown, Service, System

system = System(
    onboot=[
        Onboot(name="alpine-a", image="alpine:3.20", readonly=True, command=["true"]),
        Onboot(name="alpine-b", image="docker.io/library/alpine:3.20"),
    ],
    onshutdown=[
        Onshutdown(name="alpine-c", image="library/alpine:3.20", readonly=True, command=["sync"]),
    ],
    services=[Service(name="alpine-d", image="alpine")],
)
target = ("onshutdown", 0)
