"""Volumes bound by name: a read-write one, and a read-only one bound with ``:ro``.

A bind whose source does not start with ``/`` names a volume and is rewritten to
``/containers/volumes/<name>/merged``; other binds are left alone. Checked by hand.
"""

from kitdsl import Service, System, Volume

system = System(
    services=[
        Service(
            name="app",
            image="example.org/app:1",
            binds=["data:/var/data", "config:/etc/app:ro", "/host:/host"],
        )
    ],
    volumes=[
        Volume(name="data"),
        Volume(name="config", image="example.org/config:1", readonly=True),
    ],
)
target = ("services", 0)
