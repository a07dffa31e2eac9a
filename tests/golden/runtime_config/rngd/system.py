"""linuxkit/rngd run once at boot (``-1``), label modelled on pkg/rngd/build.yml.

Covers: ``oomScoreAdj`` from the label (after ``capabilities`` in ``process``), new network and
IPC namespaces (``new`` gives a namespace without a path), namespace order network, ipc, pid,
mount, and a read-only root at onboot[1]. Checked by hand.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(name="sysctl", image="linuxkit/sysctl:v1.0.0"),
        Onboot(name="rngd1", image="linuxkit/rngd:v1.0.0", command=["/sbin/rngd", "-1"]),
    ]
)
target = ("onboot", 1)
