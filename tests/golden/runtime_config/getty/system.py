"""linuxkit/getty as a service, with its label from pkg/getty/build.yml.

Covers: ``capabilities: [all]`` (41 names; effective in kernel order, the other sets sorted),
binds over the default /dev and /sys mounts (a bind wins), four devices with ``mode: "0666"``
(``fileMode`` 438 and a cgroup rule each), pid and net from the host (only a mount namespace),
and the entry's ``env`` replacing the image's whole environment (PATH is gone, as in LinuxKit).
Checked by hand.
"""

from kitdsl import Onboot, Service, System

system = System(
    onboot=[Onboot(name="dhcpcd", image="linuxkit/dhcpcd:v1.0.0")],
    services=[
        Service(name="getty", image="linuxkit/getty:v1.0.0", env=["INSECURE=true"]),
    ],
)
target = ("services", 0)
