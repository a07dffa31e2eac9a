"""Devices: nodes with modes, ``path: all``, and rules added after the label's own rules.

The label's ``resources`` holds a deny-all rule and its ``devices`` a node the entry's
``devices`` replace (whole-list replacement). The device rules are appended to the label's
resources rules, in device order. ``fileMode`` is decimal: 0o666 → 438, "0660" → 432.
Checked by hand.
"""

from kitdsl import Device, Service, System

system = System(
    services=[
        Service(
            name="fuse",
            image="example.org/fuse-app:2",
            capabilities=["CAP_SYS_ADMIN"],
            devices=[
                Device(path="/dev/fuse", type="c", major=10, minor=229, mode=0o666),
                Device(path="all", type="c"),
                Device(path="/dev/sda", type="b", major=8, minor=0, mode="0660"),
            ],
        )
    ]
)
target = ("services", 0)
