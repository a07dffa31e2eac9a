"""linuxkit/sshd as services[1], label from pkg/sshd/build.yml after PR #3871 (no /root/.ssh bind).

Covers: ``binds_add`` appended to the label's binds (the way to get authorized keys in),
``devices: [{path: all, type: a}]`` (a cgroup rule only, no device node), ``capabilities: [all]``,
pid from the host. Checked by hand.
"""

from kitdsl import Service, System

system = System(
    services=[
        Service(name="getty", image="linuxkit/getty:v1.0.0"),
        Service(name="sshd", image="linuxkit/sshd:v1.0.0", binds_add=["/root/.ssh:/root/.ssh"]),
    ],
)
target = ("services", 1)
