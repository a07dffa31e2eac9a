"""Cgroup resources of every kind, sysctl and annotations.

Covers: the entry's ``resources`` replacing the label's whole block, Go struct key order
(devices, memory, cpu, pids, blockIO, hugepageLimits, network; ``blockio`` becomes
``blockIO``), zeros and ``false`` kept where Go has pointers (swappiness 0,
disableOOMKiller false) and kept for plain fields (hugepage limit 0), a device rule appended to
resources without rules, ``sysctl`` and ``annotations`` maps written in sorted key order.
Checked by hand.
"""

from kitdsl import (
    BlockIO,
    Cpu,
    Device,
    HugepageLimit,
    InterfacePriority,
    Memory,
    Network,
    Pids,
    Resources,
    Service,
    System,
    ThrottleDevice,
    WeightDevice,
)

system = System(
    services=[
        Service(
            name="limited",
            image="example.org/app:1",
            resources=Resources(
                memory=Memory(limit=268435456, swappiness=0, disable_oom_killer=False),
                cpu=Cpu(cpus="0-1", shares=512, period=100000, quota=50000),
                pids=Pids(limit=64),
                blockio=BlockIO(
                    weight=500,
                    weight_device=[WeightDevice(major=8, minor=0, weight=200)],
                    throttle_read_bps_device=[ThrottleDevice(major=8, minor=0, rate=1048576)],
                ),
                hugepage_limits=[HugepageLimit(page_size="2MB", limit=0)],
                network=Network(
                    class_id=1048577, priorities=[InterfacePriority(name="eth0", priority=5)]
                ),
            ),
            devices=[Device(path="all", type="b")],
            sysctl={"net.ipv4.ip_forward": "1", "net.core.somaxconn": "1024"},
            annotations={"org.example/z": "last", "org.example/a": "first"},
        )
    ]
)
target = ("services", 0)
