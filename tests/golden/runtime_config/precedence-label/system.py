"""Label vs entry: the entry sets nothing (or empty text), so the label's value is used for each
field, and the label's command, env and cwd win over the image's Cmd, Env and WorkingDir.

``cwd=""``, ``net=""`` and ``hostname=""`` count as unset, as in LinuxKit. Every other field
comes from the same label as in ``precedence-entry``: ambient capabilities (also added to the
other sets), id mappings, sysctl, all five namespace kinds, a ``mounts`` entry without source,
a read-only root, and the whole ``runtime`` block. Checked by hand.
"""

from kitdsl import Service, System

system = System(
    services=[Service(name="labelled", image="example.org/labelled:1", cwd="", net="", hostname="")]
)
target = ("services", 0)
