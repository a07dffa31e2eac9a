"""``capabilities_add`` and ``binds_add`` holding entries the label already has, and repeats.

The label's lists come first, then each added entry not already there: effective capabilities
are NET_RAW, NET_ADMIN, SYS_TIME. LinuxKit keeps the duplicates (its ``mergeStrings`` never
records what it has seen) and would write NET_ADMIN and SYS_TIME twice in ``effective``; this
is a deliberate difference. Binds at one destination collapse either way. Checked by hand.
"""

from kitdsl import Service, System

system = System(
    services=[
        Service(
            name="openntpd",
            image="linuxkit/openntpd:v1.0.0",
            capabilities_add=["CAP_NET_ADMIN", "CAP_SYS_TIME", "CAP_SYS_TIME"],
            binds_add=[
                "/run:/run",
                "/etc/ntpd.conf:/etc/ntpd.conf:ro",
                "/etc/ntpd.conf:/etc/ntpd.conf:ro",
            ],
        )
    ]
)
target = ("services", 0)
