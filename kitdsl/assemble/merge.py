"""Merging a container entry with its image's label and configuration (LinuxKit's precedence).

For each field the entry wins over the ``org.mobyproject.config`` label, which wins over the
image configuration, which wins over LinuxKit's default. "Set" means different things per field,
exactly as in LinuxKit (``ConfigToOCI`` and its ``assign*`` functions):

* lists, maps and most scalars: set when not ``None`` (``[]``, ``""`` and ``False`` count);
* ``cwd``, ``net``, ``pid``, ``ipc``, ``uts``, ``userns`` and ``hostname``: set when non-empty;
* ``capabilities`` and ``binds``: the entry's list if set, else the label's list followed by the
  entry's ``capabilities_add``/``binds_add``. The label's own ``.add`` lists are ignored;
* ``runtime``: field by field, and ``bind_ns`` namespace by namespace.

Before merging, binds and ``type: bind`` mounts of the entry whose source is not an absolute path
are rewritten to the volume's merged directory (LinuxKit does this for the entry only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kitdsl.dsl import (
    BindNS,
    Container,
    ContainerConfig,
    Device,
    IdMapping,
    Interface,
    Mount,
    Resources,
    Runtime,
)
from kitdsl.dsl.system import Section, bind_volume
from kitdsl.dsl.types import image_reference
from kitdsl.errors import ConfigError, Location
from kitdsl.oci.image_config import ExecutionConfig

VOLUMES_DIR = "/containers/volumes"
"""Where the init mounts volumes at boot: a volume's files are in ``VOLUMES_DIR/<name>/merged``."""

BIND_NS_KEYS = tuple(BindNS.model_fields)
"""``cgroup, ipc, mnt, net, pid, user, uts``: the order ``runtime.json`` writes them in."""

T = TypeVar("T")


@dataclass(frozen=True)
class Subject:
    """The container a configuration is made for; errors name it and point at its entry."""

    section: Section
    index: int
    container: Container

    @property
    def name(self) -> str:
        """The container's name."""
        return self.container.name

    @property
    def image(self) -> str:
        """The image reference as the entry gives it."""
        return image_reference(self.container.image)

    @property
    def location(self) -> Location | None:
        """Where the entry was written."""
        return self.container.origin

    def error(self, message: str, *, hint: str | None = None) -> ConfigError:
        """A :class:`ConfigError` about this container, located at its entry."""
        return ConfigError(
            f"{self.section} container {self.name!r}: {message}",
            location=self.location,
            hint=hint,
        )


@dataclass(frozen=True)
class MergedRuntime:
    """The merged ``runtime`` block: every list present, every ``bind_ns`` key present."""

    cgroups: list[str]
    mounts: list[Mount]
    mkdir: list[str]
    interfaces: list[Interface]
    bind_ns: dict[str, str]
    namespace: str


@dataclass(frozen=True)
class MergedConfig:
    """A container's configuration once entry, label, image and defaults are combined.

    Values are still in the user's terms (binds as text, ids as names); turning them into the
    OCI runtime specification is :mod:`kitdsl.assemble.oci_spec`'s job.
    """

    args: list[str]
    env: list[str]
    cwd: str
    capabilities: list[str]
    ambient: list[str]
    tmpfs: list[str]
    binds: list[str]
    mounts: list[Mount]
    devices: list[Device]
    net: str
    ipc: str
    uts: str
    pid: str
    userns: str
    hostname: str
    readonly: bool
    masked_paths: list[str]
    readonly_paths: list[str]
    uid: int | str
    gid: int | str
    additional_gids: list[int | str]
    no_new_privileges: bool
    oom_score_adj: int | None
    rootfs_propagation: str
    cgroups_path: str
    resources: Resources | None
    sysctl: dict[str, str]
    rlimits: list[str]
    uid_mappings: list[IdMapping]
    gid_mappings: list[IdMapping]
    annotations: dict[str, str]
    runtime: MergedRuntime
    warnings: tuple[str, ...] = ()


def merged_readonly(entry: ContainerConfig, label: ContainerConfig | None) -> bool:
    """Whether the container's root is read-only; it decides the bundle layout."""
    return bool(_pick(entry.readonly, _get(label, "readonly"), False))


def merge_config(
    subject: Subject,
    label: ContainerConfig | None,
    image: ExecutionConfig,
    volumes: Sequence[str],
) -> MergedConfig:
    """Combine ``subject``'s entry with the image's ``label`` and configuration.

    ``volumes`` are the names of the system's volumes; binds to other names are an error.
    """
    entry = subject.container
    binds = _rewrite_binds(subject, entry.binds, volumes)
    binds_add = _rewrite_binds(subject, entry.binds_add, volumes)
    mounts = _rewrite_mounts(subject, entry.mounts, volumes)
    labelled = {name: _get(label, name) for name in ContainerConfig.model_fields}

    warnings = tuple(
        f"image {subject.image}: the label's {key!r} is ignored; only a system entry can add "
        "to the label's list"
        for key, name in (("capabilities.add", "capabilities_add"), ("binds.add", "binds_add"))
        if labelled[name] is not None
    )
    return MergedConfig(
        args=_pick(entry.command, labelled["command"], image.command),
        env=_pick(entry.env, labelled["env"], image.env or []),
        cwd=_first_text(entry.cwd, labelled["cwd"], image.working_dir, "/"),
        capabilities=_pick(
            _listed(entry.capabilities),
            None,
            _add(labelled["capabilities"], _listed(entry.capabilities_add)),
        ),
        ambient=_pick(_listed(entry.ambient), labelled["ambient"], []),
        tmpfs=_pick(entry.tmpfs, labelled["tmpfs"], []),
        binds=_pick(binds, None, _add(labelled["binds"], binds_add)),
        mounts=_pick(mounts, labelled["mounts"], []),
        devices=_pick(entry.devices, labelled["devices"], []),
        net=_first_text(entry.net, labelled["net"], "root"),
        ipc=_first_text(entry.ipc, labelled["ipc"], "root"),
        uts=_first_text(entry.uts, labelled["uts"], "root"),
        pid=_first_text(entry.pid, labelled["pid"], ""),
        userns=_first_text(entry.userns, labelled["userns"], "root"),
        hostname=_first_text(entry.hostname, labelled["hostname"], ""),
        readonly=merged_readonly(entry, label),
        masked_paths=_pick(entry.masked_paths, labelled["masked_paths"], []),
        readonly_paths=_pick(entry.readonly_paths, labelled["readonly_paths"], []),
        uid=_pick(entry.uid, labelled["uid"], 0),
        gid=_pick(entry.gid, labelled["gid"], 0),
        additional_gids=_pick(_listed(entry.additional_gids), labelled["additional_gids"], []),
        no_new_privileges=_pick(entry.no_new_privileges, labelled["no_new_privileges"], False),
        oom_score_adj=_pick(entry.oom_score_adj, labelled["oom_score_adj"], None),
        rootfs_propagation=_pick(entry.rootfs_propagation, labelled["rootfs_propagation"], ""),
        cgroups_path=_pick(entry.cgroups_path, labelled["cgroups_path"], ""),
        resources=_pick(entry.resources, labelled["resources"], None),
        sysctl=_pick(entry.sysctl, labelled["sysctl"], {}),
        rlimits=_pick(entry.rlimits, labelled["rlimits"], []),
        uid_mappings=_pick(entry.uid_mappings, labelled["uid_mappings"], []),
        gid_mappings=_pick(entry.gid_mappings, labelled["gid_mappings"], []),
        annotations=_pick(entry.annotations, labelled["annotations"], {}),
        runtime=_merge_runtime(entry.runtime, labelled["runtime"]),
        warnings=warnings,
    )


def _merge_runtime(entry: Runtime | None, label: Runtime | None) -> MergedRuntime:
    """``assignRuntime``: each list from the entry, else the label; ``bind_ns`` key by key."""
    bind_ns_entry = entry.bind_ns if entry else None
    bind_ns_label = label.bind_ns if label else None
    return MergedRuntime(
        cgroups=_pick(_get(entry, "cgroups"), _get(label, "cgroups"), []),
        mounts=_pick(_get(entry, "mounts"), _get(label, "mounts"), []),
        mkdir=_pick(_get(entry, "mkdir"), _get(label, "mkdir"), []),
        interfaces=_pick(_get(entry, "interfaces"), _get(label, "interfaces"), []),
        bind_ns={
            key: _pick(_get(bind_ns_entry, key), _get(bind_ns_label, key), "")
            for key in BIND_NS_KEYS
        },
        namespace=_pick(_get(entry, "namespace"), _get(label, "namespace"), ""),
    )


# --- precedence rules ---------------------------------------------------------------------------


def _get(model: Any, name: str) -> Any:
    return None if model is None else getattr(model, name)


def _pick(entry: T | None, label: T | None, default: T) -> T:
    """The entry's value if set (even empty), else the label's, else the default."""
    if entry is not None:
        return entry
    if label is not None:
        return label
    return default


def _listed(values: Sequence[T] | None) -> list[T] | None:
    """A list copy: model fields may be typed as any sequence."""
    return None if values is None else list(values)


def _first_text(*values: str | None) -> str:
    """The first non-empty text: for fields where LinuxKit treats ``""`` as unset."""
    for value in values[:-1]:
        if value:
            return value
    return values[-1] or ""


def _add(base: list[T] | None, extra: list[T] | None) -> list[T]:
    """The label's list followed by the entry's ``.add`` entries it does not already hold.

    LinuxKit meant this to be a unique merge but keeps duplicates (its ``mergeStrings`` never
    records what it has seen); we skip an added entry that is already there.
    """
    merged = list(base or [])
    for item in extra or []:
        if item not in merged:
            merged.append(item)
    return merged


# --- volumes ---------------------------------------------------------------------------------


def volume_path(name: str) -> str:
    """Where volume ``name`` is mounted at boot."""
    return f"{VOLUMES_DIR}/{name}/merged"


def _check_volume(subject: Subject, name: str, what: str, volumes: Sequence[str]) -> None:
    if name not in volumes:
        known = ", ".join(sorted(volumes)) or "none are defined"
        raise subject.error(
            f"{what} names volume {name!r}, which does not exist",
            hint=f"volumes: {known}; host paths must start with '/'",
        )


def _rewrite_binds(
    subject: Subject, binds: list[str] | None, volumes: Sequence[str]
) -> list[str] | None:
    if binds is None:
        return None
    rewritten = []
    for bind in binds:
        volume = bind_volume(bind)
        if volume is not None:
            _check_volume(subject, volume, f"bind {bind!r}", volumes)
            bind = volume_path(volume) + bind.removeprefix(volume)
        rewritten.append(bind)
    return rewritten


def _rewrite_mounts(
    subject: Subject, mounts: list[Mount] | None, volumes: Sequence[str]
) -> list[Mount] | None:
    # LinuxKit means to rewrite these too but assigns to a copy, so its mounts keep the bare
    # volume name as source; we rewrite them as documented.
    if mounts is None:
        return None
    rewritten = []
    for mount in mounts:
        if mount.type == "bind" and mount.source and not mount.source.startswith("/"):
            _check_volume(subject, mount.source, f"mount of {mount.source!r}", volumes)
            mount = mount.model_copy(update={"source": volume_path(mount.source)})
        rewritten.append(mount)
    return rewritten
