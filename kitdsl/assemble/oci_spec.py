"""The OCI runtime specification (``config.json``) of a container, as LinuxKit writes it.

Every dict here is built in the field order of the Go structs of
``github.com/opencontainers/runtime-spec/specs-go`` (v1.2.1) and leaves out what Go's
``omitempty`` would: false, ``""``, nil and empty lists and maps, but not a zero behind a pointer
(``oomScoreAdj: 0`` is written when it is set). :func:`kitdsl.assemble.gojson.marshal_indent`
then gives the same bytes as LinuxKit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kitdsl.assemble.gojson import sorted_map
from kitdsl.assemble.merge import MergedConfig, Subject
from kitdsl.assemble.resources import linux_resources
from kitdsl.dsl import IdMapping, Mount
from kitdsl.dsl.types import ALL_CAPABILITIES

OCI_VERSION = "1.2.1"
"""``specs.Version`` of the runtime-spec module LinuxKit vendors."""

RLIMIT_UNLIMITED = 2**64 - 1
_RLIMITS = frozenset(
    f"RLIMIT_{name}"
    for name in (
        *("CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS"),
        *("LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"),
    )
)
_UINT64 = re.compile(r"[0-9]+")

# Docker's defaults, without /dev/shm and /dev/mqueue (LinuxKit leaves those out on purpose).
_DEFAULT_MOUNTS: tuple[tuple[str, str, list[str], bool], ...] = (
    # destination, type (= source), options, gets "ro" when the container is read-only
    ("/proc", "proc", ["nosuid", "nodev", "noexec", "relatime"], False),
    ("/dev", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"], True),
    (
        "/dev/pts",
        "devpts",
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        False,
    ),
    ("/sys", "sysfs", ["nosuid", "noexec", "nodev"], True),
    ("/sys/fs/cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"], False),
)
_TYPE_FROM_SOURCE = frozenset({"mqueue", "devpts", "proc", "sysfs", "cgroup"})
_DEFAULT_MOUNTPOINT = {
    "proc": "/proc",
    "devpts": "/dev/pts",
    "sysfs": "/sys",
    "cgroup": "/sys/fs/cgroup",
    "mqueue": "/dev/mqueue",
}


def oci_spec(subject: Subject, merged: MergedConfig, ids: Mapping[str, int]) -> dict[str, Any]:
    """The ``config.json`` document; ``ids`` maps container names to their uid/gid."""
    bounding, effective, ambient = capabilities(subject, merged.capabilities, merged.ambient)
    caps = _omit_empty(
        {
            "bounding": bounding,
            "effective": effective,
            "inheritable": bounding,
            "permitted": bounding,
            "ambient": ambient,
        }
    )
    user = _omit_empty(
        {
            "uid": resolve_id(subject, merged.uid, ids, "uid"),
            "gid": resolve_id(subject, merged.gid, ids, "gid"),
            "additionalGids": [
                resolve_id(subject, gid, ids, "additional gid") for gid in merged.additional_gids
            ],
        },
        keep=("uid", "gid"),
    )
    process = _omit_empty(
        {
            "user": user,
            "args": merged.args,
            "env": merged.env,
            "cwd": merged.cwd,
            "capabilities": caps,
            "rlimits": [rlimit(subject, text) for text in merged.rlimits],
            "noNewPrivileges": merged.no_new_privileges,
            "oomScoreAdj": merged.oom_score_adj,
        },
        keep=("user", "cwd", "capabilities"),
    )
    resources, linux_devices = linux_resources(merged.resources, merged.devices)
    linux = _omit_empty(
        {
            "uidMappings": [id_mapping(m) for m in merged.uid_mappings],
            "gidMappings": [id_mapping(m) for m in merged.gid_mappings],
            "sysctl": sorted_map(merged.sysctl),
            "resources": resources,
            "cgroupsPath": merged.cgroups_path,
            "namespaces": namespaces(merged),
            "devices": linux_devices,
            "rootfsPropagation": merged.rootfs_propagation,
            "maskedPaths": merged.masked_paths,
            "readonlyPaths": merged.readonly_paths,
        },
        keep=("resources",),
    )
    return _omit_empty(
        {
            "ociVersion": OCI_VERSION,
            "process": process,
            "root": _omit_empty({"path": "rootfs", "readonly": merged.readonly}, keep=("path",)),
            "hostname": merged.hostname,
            "mounts": mounts(subject, merged),
            "annotations": sorted_map(merged.annotations),
            "linux": linux,
        },
        keep=("ociVersion",),
    )


def _omit_empty(fields: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Go's ``omitempty``: drop false, "", None and empty lists/maps, except fields in ``keep``
    (Go fields without ``omitempty``, and non-nil pointers to empty structs)."""
    return {
        key: value
        for key, value in fields.items()
        if key in keep or not (value is None or value is False or value in ("", [], {}))
    }


# --- mounts ----------------------------------------------------------------------------------


def mounts(subject: Subject, merged: MergedConfig) -> list[dict[str, Any]]:
    """Defaults, then tmpfs, then binds, then mounts; a later kind wins at the same destination.

    The list is sorted by destination, so ``/dev`` comes before ``/dev/pts``.
    """
    by_destination: dict[str, dict[str, Any]] = {}
    for destination, kind, options, ro in _DEFAULT_MOUNTS:
        options = [*options, "ro"] if ro and merged.readonly else options
        by_destination[destination] = _mount(destination, kind, kind, options)
    for text in merged.tmpfs:
        destination, sep, rest = text.partition(":")
        if ":" in rest:
            raise subject.error(f"cannot parse tmpfs {text!r}: too many ':'")
        options = rest.split(",") if sep else []
        by_destination[destination] = _mount(destination, "tmpfs", "tmpfs", options)
    for text in merged.binds:
        parts = text.split(":")
        if not 2 <= len(parts) <= 3:
            raise subject.error(
                f"cannot parse bind {text!r}: expected 'source:destination[:option,option]'"
            )
        source, destination = parts[0], parts[1]
        if len(parts) == 3:
            options = parts[2].split(",")
            # LinuxKit appends rbind unconditionally, so "…:rbind" ends up with it twice
            # (linuxkit/linuxkit#2877); once is enough.
            if "rbind" not in options:
                options.append("rbind")
        else:
            options = ["rw", "rbind", "rshared"]
        by_destination[destination] = _mount(destination, "bind", source, options)
    for mount in merged.mounts:
        filled = _filled_mount(subject, mount)
        by_destination[filled["destination"]] = filled
    return [by_destination[key] for key in sorted(by_destination)]


def _filled_mount(subject: Subject, mount: Mount) -> dict[str, Any]:
    """A ``mounts`` entry with LinuxKit's defaults for a missing type, source or destination."""
    kind, source, destination = mount.type, mount.source, mount.destination
    if not kind and source in _TYPE_FROM_SOURCE:
        kind = source
    if not kind and destination == "/dev":
        kind = "tmpfs"
    if not kind:
        raise subject.error(
            f"mount for destination {destination!r} is missing type",
            hint="set type, e.g. type='bind' or type='tmpfs'",
        )
    source = source or kind
    destination = destination or _DEFAULT_MOUNTPOINT.get(kind, "")
    if not destination:
        raise subject.error(
            f"mount type {kind!r} is missing destination",
            hint="set destination to an absolute path inside the container",
        )
    return _mount(
        destination,
        kind,
        source,
        mount.options or [],
        [id_mapping(m) for m in mount.uid_mappings or []],
        [id_mapping(m) for m in mount.gid_mappings or []],
    )


def _mount(
    destination: str,
    kind: str,
    source: str,
    options: list[str],
    uid_mappings: list[dict[str, int]] | None = None,
    gid_mappings: list[dict[str, int]] | None = None,
) -> dict[str, Any]:
    return _omit_empty(
        {
            "destination": destination,
            "type": kind,
            "source": source,
            "options": options,
            "uidMappings": uid_mappings,
            "gidMappings": gid_mappings,
        },
        keep=("destination",),
    )


def runtime_mount(mount: Mount) -> dict[str, Any]:
    """A mount written as it is (``runtime.mounts`` and the generated rootfs mounts)."""
    return _mount(
        mount.destination,
        mount.type,
        mount.source,
        mount.options or [],
        [id_mapping(m) for m in mount.uid_mappings or []],
        [id_mapping(m) for m in mount.gid_mappings or []],
    )


def id_mapping(mapping: IdMapping) -> dict[str, int]:
    """OCI ``LinuxIDMapping``: container id first, as in the Go struct."""
    return {"containerID": mapping.container_id, "hostID": mapping.host_id, "size": mapping.size}


# --- namespaces, capabilities, rlimits, ids --------------------------------------------------


def namespaces(merged: MergedConfig) -> list[dict[str, str]]:
    """network, ipc, uts, pid, user when not shared with the host; always a new mount namespace.

    A value other than a keyword is the path of a namespace to join.
    """
    result: list[dict[str, str]] = []
    for kind, value, new in (
        ("network", merged.net, ("new", "none")),
        ("ipc", merged.ipc, ("new",)),
        ("uts", merged.uts, ("new",)),
        ("pid", merged.pid, ("new", "")),
        ("user", merged.userns, ("new",)),
    ):
        if value in ("host", "root"):
            continue
        result.append({"type": kind} if value in new else {"type": kind, "path": value})
    result.append({"type": "mount"})
    # LinuxKit has no cgroup namespace here (a TODO in its source); runc keeps the host's.
    return result


def capabilities(
    subject: Subject, caps: list[str], ambient: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """(bounding, effective, ambient). Bounding, inheritable and permitted are all the sorted
    union of the other two; a lone ``all`` or ``none`` expands."""
    effective = _expand(subject, caps, "capabilities")
    ambient = _expand(subject, ambient, "ambient")
    return sorted({*effective, *ambient}), effective, ambient


def _expand(subject: Subject, names: list[str], what: str) -> list[str]:
    if len(names) == 1 and names[0].lower() == "all":
        return list(ALL_CAPABILITIES)
    if len(names) == 1 and names[0].lower() == "none":
        return []
    known = frozenset(ALL_CAPABILITIES)
    for name in names:
        if name in ("all", "none"):
            raise subject.error(
                f"{what}: {name!r} must be the only entry, but the list is {names}",
                hint="the image label and capabilities_add were combined; set `capabilities` "
                "to the whole list instead",
            )
        if name not in known:
            raise subject.error(f"unknown capability: {name}")
    return list(names)


def rlimit(subject: Subject, text: str) -> dict[str, Any]:
    """``"nofile,1024,unlimited"`` → ``{"type": "RLIMIT_NOFILE", "hard": …, "soft": 1024}``."""
    parts = [part.strip() for part in text.split(",", 2)]
    if len(parts) != 3:
        raise subject.error(f"cannot parse rlimit {text!r}: expected 'name,soft,hard'")
    name = parts[0].upper()
    if not name.startswith("RLIMIT_"):
        name = f"RLIMIT_{name}"
    if name not in _RLIMITS:
        # LinuxKit's message prints an empty name here; ours names the limit.
        raise subject.error(f"unknown rlimit {parts[0]!r} in {text!r}")
    soft, hard = (_limit(subject, value, text) for value in parts[1:])
    return {"type": name, "hard": hard, "soft": soft}


def _limit(subject: Subject, value: str, text: str) -> int:
    if value.lower() == "unlimited":
        return RLIMIT_UNLIMITED
    if not _UINT64.fullmatch(value) or int(value) > RLIMIT_UNLIMITED:
        raise subject.error(f"rlimit {text!r}: cannot parse {value!r} as uint64")
    return int(value)


def resolve_id(subject: Subject, ref: int | str, ids: Mapping[str, int], what: str) -> int:
    """A uid/gid: a number as is, ``""``/``"root"`` 0, a container name its allocated id."""
    if isinstance(ref, int):
        return ref
    if ref in ("", "root"):
        return 0
    if ref not in ids:
        raise subject.error(
            f"{what}: cannot find id {ref!r}: it is neither a number, 'root', nor the name of "
            "a container",
            hint=f"containers are: {', '.join(sorted(ids)) or 'none'}",
        )
    return ids[ref]
