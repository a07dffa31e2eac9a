"""``capabilities: [none]`` with an ambient capability, over a label giving ``all``.

``none`` empties the effective set (no ``effective`` key); the ambient capability still goes
into bounding, inheritable and permitted. Written in upper case, ``NONE`` is the same keyword.
``noNewPrivileges`` and a negative ``oomScoreAdj`` from the entry. Checked by hand.
"""

from kitdsl import Service, System

system = System(
    services=[
        Service(
            name="web",
            image="example.org/web:1",
            capabilities=["NONE"],
            ambient=["CAP_NET_BIND_SERVICE"],
            no_new_privileges=True,
            oom_score_adj=-500,
            uid=1000,
            gid=1000,
        )
    ]
)
target = ("services", 0)
