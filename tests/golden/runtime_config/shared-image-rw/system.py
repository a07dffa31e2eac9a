"""A read-write container whose image an earlier, read-only container already extracted.

``alpine:3.20``, ``docker.io/library/alpine:3.20`` and ``library/alpine:3.20`` are one canonical
reference, so onboot[1] overlays the first extraction, onboot[0]'s ``rootfs/``, instead of an
own ``lower/``. Also covers a container without any capabilities (``"capabilities": {}``).
Checked by hand.
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
target = ("onboot", 1)
