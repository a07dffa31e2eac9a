"""Label vs entry: the label sets every field, the entry overrides every one of them.

One field of each precedence class: lists, maps and resources replaced even by ``[]``/``{}``/an
empty ``Resources()``; booleans and numbers replaced even by ``False``/``0`` (``oomScoreAdj: 0``
is still written: it is a pointer in Go); namespace and hostname fields replaced by non-empty
values (``host``/``root``/``new``); ``runtime`` fields and ``bindNS`` keys replaced by empty
values. Checked by hand.
"""

from kitdsl import BindNS, Resources, Runtime, Service, System

system = System(
    services=[
        Service(
            name="precise",
            image="example.org/labelled:1",
            command=["/entry-cmd", "arg"],
            env=["FROM=entry"],
            cwd="/entry",
            capabilities=["CAP_CHOWN"],
            ambient=[],
            tmpfs=["/entry-tmp"],
            binds=["/entry:/entry"],
            mounts=[],
            devices=[],
            net="host",
            ipc="root",
            uts="host",
            pid="new",
            userns="host",
            hostname="entry-host",
            readonly=False,
            masked_paths=[],
            readonly_paths=["/entry/ro"],
            uid=0,
            gid=0,
            additional_gids=[],
            no_new_privileges=False,
            oom_score_adj=0,
            rootfs_propagation="private",
            cgroups_path="",
            resources=Resources(),
            sysctl={},
            rlimits=[],
            uid_mappings=[],
            gid_mappings=[],
            annotations={},
            runtime=Runtime(
                cgroups=[], mkdir=[], interfaces=[], namespace="", bind_ns=BindNS(uts="")
            ),
        )
    ]
)
target = ("services", 0)
