"""tmpfs mounts, and which kind wins at one destination: defaults < tmpfs < binds < mounts.

``/dev`` as tmpfs replaces the default /dev (its options only), ``/data`` is both a tmpfs and a
bind (the bind wins), ``/cache`` is both a bind and a ``mounts`` entry (the mount wins, its
source filled in from the type). A tmpfs without options has no ``options`` key.
Checked by hand.
"""

from kitdsl import Mount, Onboot, System

system = System(
    onboot=[
        Onboot(
            name="scratch",
            image="example.org/app:1",
            tmpfs=["/tmp", "/run:size=10m,mode=1777", "/dev:size=1m", "/data"],
            binds=["/host/data:/data", "/host/cache:/cache"],
            mounts=[Mount(destination="/cache", type="tmpfs", options=["size=5m"])],
        )
    ]
)
target = ("onboot", 0)
