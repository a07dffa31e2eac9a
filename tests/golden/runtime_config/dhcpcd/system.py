"""linuxkit/dhcpcd as onboot[1]: the worked example of the LinuxKit reference (§3.9).

The label gives four capabilities and a bind; the entry gives a one-shot command. Checked by
hand line by line against §3.9: effective capabilities in label order, the other sets sorted,
env from the image, cwd "/", mounts sorted by destination, a new pid and mount namespace.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(name="sysctl", image="linuxkit/sysctl:v1.0.0"),
        Onboot(
            name="dhcpcd",
            image="linuxkit/dhcpcd:v1.0.0",
            command=["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"],
        ),
    ]
)
target = ("onboot", 1)
