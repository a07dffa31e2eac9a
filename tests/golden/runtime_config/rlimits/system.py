"""rlimits: names with or without ``RLIMIT_`` in any case, spaces, ``unlimited`` in any case.

The entry's list replaces the label's; ``unlimited`` is 2^64-1; JSON order is type, hard, soft.
``noNewPrivileges`` comes from the label and is written after ``rlimits``. No capabilities at
all gives ``"capabilities": {}``. Checked by hand.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(
            name="limited",
            image="example.org/app:1",
            rlimits=[
                "nofile,1024,unlimited",
                "RLIMIT_CORE,0,0",
                " memlock , unlimited , UNLIMITED ",
                "Nproc,10,20",
            ],
        )
    ]
)
target = ("onboot", 0)
