"""linuxkit/sysctl as onboot[0]: a read-only container whose label sets ``readonly: true``.

Covers: ``root.readonly``, ``ro`` added to the /dev and /sys default mounts only, an image with
no Env (no ``env`` key) and no WorkingDir (cwd "/"), and the read-only bundle layout: the image
is extracted to ``rootfs/`` and bind-mounted onto itself. Checked by hand.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(name="sysctl", image="linuxkit/sysctl:v1.0.0"),
        Onboot(name="dhcpcd", image="linuxkit/dhcpcd:v1.0.0"),
    ]
)
target = ("onboot", 0)
