"""An init-style onboot job: load kernel modules from the host's /lib/modules, read-only root.

Covers: a read-only container where a bind replaces the read-only /sys default mount (the
bind's options win: no ``ro``), while /dev keeps its ``ro``; the entry's command with a
relative program name (kept as is). Checked by hand.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(
            name="modprobe",
            image="linuxkit/modprobe:v1.0.0",
            command=["modprobe", "-a", "virtio_net", "virtio_blk"],
        )
    ]
)
target = ("onboot", 0)
