"""Volumes named in ``binds_add`` and in ``type: bind`` mounts.

``binds_add`` is rewritten like ``binds`` and added to the label's binds. Mount-form references
are rewritten too: LinuxKit means to, but assigns to a copy of each mount and so writes the bare
volume name as source; a deliberate difference. The read-only volume is mounted with ``ro``.
Checked by hand.
"""

from kitdsl import Mount, Onboot, System, Volume

system = System(
    onboot=[
        Onboot(
            name="seed",
            image="example.org/app:1",
            binds_add=["data:/seed"],
            mounts=[
                Mount(type="bind", source="config", destination="/config", options=["rbind", "ro"]),
                Mount(type="bind", source="data", destination="/data-rw", options=["rbind", "rw"]),
            ],
        )
    ],
    volumes=[
        Volume(name="data"),
        Volume(name="config", readonly=True),
    ],
)
target = ("onboot", 0)
