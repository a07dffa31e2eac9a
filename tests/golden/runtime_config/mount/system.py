"""linuxkit/mount as onboot[1], label modelled on pkg/mount (binds /dev, /var, /:/hostroot).

Covers: the bind ``/var:/var:rshared,rbind`` keeps the user's options and gets ``rbind`` only
once (LinuxKit would write ``rbind`` twice, issue #2877; a deliberate difference), a bind of
``/``, ``rootfsPropagation`` (written after ``namespaces``). Checked by hand.
"""

from kitdsl import Onboot, System

system = System(
    onboot=[
        Onboot(name="format", image="linuxkit/format:v1.0.0"),
        Onboot(
            name="mount",
            image="linuxkit/mount:v1.0.0",
            command=["/usr/bin/mountie", "-label", "DATA", "/var/lib/docker"],
        ),
    ]
)
target = ("onboot", 1)
