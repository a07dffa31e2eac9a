"""linuxkit/format as onboot[0], label from pkg/format/build.yml.

Covers: ``devices: [{path: all, type: b}]`` (a block-device cgroup rule, no node), a bind over
the default /dev, the entry's ``command`` replacing the image's Entrypoint and Cmd together.
Checked by hand.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(
            name="format",
            image="linuxkit/format:v1.0.0",
            command=["/usr/bin/format", "-type", "ext4", "-label", "DATA", "/dev/sda"],
        ),
        Onboot(name="mount", image="linuxkit/mount:v1.0.0"),
    ]
)
target = ("onboot", 0)
