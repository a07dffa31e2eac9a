"""Every namespace kind: joined by path, new, or the host's.

net and uts join existing namespaces by path, ipc and user are new, pid is the host's (left
out); the entry's values win over the label's. A new user namespace with id mappings, and a
hostname. Order: network, ipc, uts, pid, user, then always mount. Checked by hand.
"""

from kitdsl import IdMapping, Onboot, System

system = System(
    onboot=[
        Onboot(
            name="isolated",
            image="example.org/app:1",
            net="/run/netns/wg0",
            ipc="new",
            uts="/proc/1/ns/uts",
            pid="host",
            userns="new",
            hostname="box",
            uid_mappings=[IdMapping(container_id=0, host_id=200000, size=65536)],
            gid_mappings=[IdMapping(container_id=0, host_id=300000, size=65536)],
        )
    ]
)
target = ("onboot", 0)
