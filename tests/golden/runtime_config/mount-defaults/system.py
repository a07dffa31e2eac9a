"""``mounts`` entries with missing fields filled in the way LinuxKit does.

A type taken from a pseudo-file-system source (mqueue, devpts), ``tmpfs`` for ``/dev``, a
source equal to the type, a destination from the type (/dev/mqueue, /dev/pts, /proc, /sys);
entries replacing default mounts; a mount without options has no ``options`` key. The id-mapped
bind keeps its ``uidMappings``/``gidMappings`` (LinuxKit drops them when it builds config.json;
a deliberate difference). Checked by hand.
"""

from kitdsl import IdMapping, Mount, Onboot, System

mapping = [IdMapping(container_id=0, host_id=100000, size=65536)]
system = System(
    onboot=[
        Onboot(
            name="mounter",
            image="example.org/app:1",
            mounts=[
                Mount(source="mqueue"),
                Mount(type="tmpfs", destination="/run/shm", options=["nosuid", "size=64m"]),
                Mount(type="proc", options=["ro"]),
                Mount(destination="/dev", options=["mode=755"]),
                Mount(source="devpts", options=["newinstance"]),
                Mount(
                    type="bind",
                    source="/srv/data",
                    destination="/data",
                    options=["rbind", "ro"],
                    uid_mappings=mapping,
                    gid_mappings=mapping,
                ),
                Mount(type="sysfs"),
            ],
        )
    ]
)
target = ("onboot", 0)
