"""Hypothesis strategies for valid systems: every field kind, nested resources, files, volumes.

``systems()`` draws a :class:`System` that validates: container and volume names are unique,
binds name existing volumes (``:ro`` for read-only ones) and uid/gid names name containers.
Strings include the ones YAML and Python quoting get wrong (``yes``, ``0644``, ``a: b``, ``"``).
"""

from __future__ import annotations

from typing import Any, get_args

from hypothesis import strategies as st

from kitdsl import (
    BindNS,
    BlockIO,
    Cpu,
    Device,
    DeviceRule,
    File,
    HugepageLimit,
    IdMapping,
    Interface,
    InterfacePriority,
    Kernel,
    Memory,
    Mount,
    Network,
    Onboot,
    Onshutdown,
    Pids,
    Resources,
    Runtime,
    Service,
    System,
    ThrottleDevice,
    Volume,
    WeightDevice,
)
from kitdsl.dsl.models import Container, Propagation
from kitdsl.dsl.types import ALL_CAPABILITIES
from kitdsl.reference import ReferenceSyntaxError, parse

TRICKY = [
    *("", " ", "yes", "no", "on", "off", "y", "true", "False", "null", "~", "NULL"),
    *("0644", "0o17", "0x1F", "1e5", "1_000", ".5", "+1", "-0", ".inf", "2001-12-14"),
    *("-", "- a", "a: b", "a #b", "#c", "@x", "'", '"', "'\"", "\\", "\\n", "<<", "*a"),
    *("&a", "!tag", "%x", "|", ">", "[a]", "{a}", "?", ",", "`", "...", "---", "="),
    *("multi\nline\n", "no final\nbreak", "\n", "\n\n", " lead", "trail ", "\ttab", "a  \nb"),
    *(" \n x", "€ 日本語", "\x00", "\x85", "\u2028", "\r\n", "a\rb", "\ufeff", "é", "e\u0301"),
]
texts = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=16),
).filter(lambda text: not text.startswith("@pkg:"))
# Plain-alphabet strategies: much faster to draw than regular expressions.
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_ALNUM = _LOWER + "0123456789"
segments = st.text(_ALNUM + "._-", min_size=1, max_size=6)
words = st.text(_ALNUM + "._=-", min_size=1, max_size=8)
paths = st.lists(segments, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
ints = st.integers(-(2**63), 2**63 - 1)
counts = st.integers(0, 2**40)
modes = st.integers(0, 0o7777)
container_names = st.builds(
    "{}{}{}".format,
    st.sampled_from(_LOWER),
    st.text(_ALNUM, max_size=5),
    st.sampled_from(["", "-1", ".b", "_x2"]),
)
volume_names = st.text(_ALNUM + "_-", min_size=1, max_size=8)


def _valid_reference(text: str) -> bool:
    try:
        parse(text)
    except ReferenceSyntaxError:
        return False
    return True


images = st.builds(
    "{}{}{}{}".format,
    st.sampled_from(["", "docker.io/", "ghcr.io/", "localhost:5000/", "registry.example:443/"]),
    st.lists(st.text(_ALNUM, min_size=1, max_size=6), min_size=1, max_size=3).map("/".join),
    st.sampled_from(["", ":latest", ":v1.2.0", ":6.6.71", ":3.20-alpine"]),
    st.sampled_from(["", "@sha256:" + "ab" * 32]),
).filter(_valid_reference)


def optional_fields(
    model: Any, required: dict[str, Any], optional: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """``model(**kwargs)`` with the required fields and any subset of the optional ones."""
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: model(**kw))


id_mappings = st.builds(IdMapping, host_id=counts, container_id=counts, size=st.integers(1, 2**32))
capability_lists = st.one_of(
    st.lists(st.sampled_from(ALL_CAPABILITIES), max_size=4),
    st.sampled_from([["all"], ["none"]]),
)
mounts = optional_fields(
    Mount,
    {},
    {
        "destination": st.one_of(paths, texts),
        "type": st.sampled_from(["", "tmpfs", "proc", "overlay", "cgroup"]),
        "source": texts,
        "options": st.lists(texts, max_size=3),
        "uid_mappings": st.lists(id_mappings, max_size=2),
        "gid_mappings": st.lists(id_mappings, max_size=1),
    },
) | st.builds(Mount, destination=paths, type=st.just("bind"), source=paths)
devices = st.one_of(
    st.builds(Device, path=st.just("all"), type=st.sampled_from("bca"), mode=st.none() | modes),
    st.builds(
        Device, path=paths, type=st.sampled_from("bcup"), major=counts, minor=counts, mode=modes
    ),
)
throttle = st.builds(ThrottleDevice, major=counts, minor=counts, rate=counts)
resources = optional_fields(
    Resources,
    {},
    {
        "devices": st.lists(
            optional_fields(
                DeviceRule,
                {"allow": st.booleans()},
                {"type": st.sampled_from("abc"), "major": ints, "minor": ints, "access": words},
            ),
            max_size=2,
        ),
        "memory": optional_fields(
            Memory,
            {},
            {
                "limit": ints,
                "reservation": ints,
                "swap": ints,
                "kernel": ints,
                "kernel_tcp": ints,
                "swappiness": st.integers(0, 100),
                "disable_oom_killer": st.booleans(),
            },
        ),
        "cpu": optional_fields(
            Cpu,
            {},
            {
                "shares": counts,
                "quota": ints,
                "period": counts,
                "realtime_runtime": ints,
                "realtime_period": counts,
                "cpus": texts,
                "mems": texts,
            },
        ),
        "pids": st.builds(Pids, limit=ints),
        "blockio": optional_fields(
            BlockIO,
            {},
            {
                "weight": counts,
                "leaf_weight": counts,
                "weight_device": st.lists(
                    optional_fields(
                        WeightDevice,
                        {"major": counts, "minor": counts},
                        {"weight": counts, "leaf_weight": counts},
                    ),
                    max_size=2,
                ),
                "throttle_read_bps_device": st.lists(throttle, max_size=2),
                "throttle_write_iops_device": st.lists(throttle, max_size=1),
            },
        ),
        "hugepage_limits": st.lists(
            st.builds(HugepageLimit, page_size=st.sampled_from(["2MB", "1GB", "64"]), limit=counts),
            max_size=2,
        ),
        "network": optional_fields(
            Network,
            {},
            {
                "class_id": counts,
                "priorities": st.lists(
                    st.builds(InterfacePriority, name=texts, priority=counts), max_size=2
                ),
            },
        ),
    },
)
runtimes = optional_fields(
    Runtime,
    {},
    {
        "cgroups": st.lists(texts, max_size=2),
        "mounts": st.lists(mounts, max_size=2),
        "mkdir": st.lists(texts, max_size=2),
        "interfaces": st.lists(
            optional_fields(
                Interface,
                {"name": texts},
                {"add": texts, "peer": texts, "create_in_root": st.booleans()},
            ),
            max_size=2,
        ),
        "bind_ns": optional_fields(
            BindNS,
            {},
            dict.fromkeys(("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"), paths),
        ),
        "namespace": texts,
    },
)
rlimits = st.builds(
    "{},{},{}".format,
    st.sampled_from(["nofile", "NPROC", "RLIMIT_CORE", "memlock"]),
    st.sampled_from(["0", "1024", "unlimited"]),
    st.sampled_from(["4096", "unlimited"]),
)
env = st.builds("{}={}".format, st.text(_LOWER.upper() + "_", min_size=1, max_size=6), texts)
tmpfs = st.builds("{}{}".format, paths, st.sampled_from(["", ":size=64m", ":mode=1777,nosuid"]))


def namespaces(field: str) -> st.SearchStrategy[str]:
    keywords = ["host", "root", "new", "", *(["none"] if field == "net" else [])]
    return st.sampled_from(keywords) | paths


def binds(volumes: list[Volume]) -> st.SearchStrategy[str]:
    """Host binds, and binds of the drawn volumes (``:ro`` where the volume is read-only)."""
    options = st.sampled_from(["", ":ro", ":rw,rshared", ":ro,nosuid"])
    host = st.builds("{}:{}{}".format, paths, paths, options)
    if not volumes:
        return host
    volume_bind = st.builds(
        lambda volume, target, extra: (
            f"{volume.name}:{target}{':ro' if volume.readonly else extra}"
        ),
        st.sampled_from(volumes),
        paths,
        st.sampled_from(["", ":ro", ":rw"]),
    )
    return host | volume_bind


def ids(names: list[str]) -> st.SearchStrategy[int | str]:
    return st.integers(0, 2**31) | st.sampled_from(["root", "", *names])


def containers(
    model: type[Container], name: str, names: list[str], volumes: list[Volume]
) -> st.SearchStrategy[Container]:
    """A container of class ``model`` called ``name`` with any subset of its fields set."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "capabilities": capability_lists,
        "capabilities_add": capability_lists,
        "ambient": capability_lists,
        "mounts": st.lists(mounts, max_size=2),
        "binds": st.lists(binds(volumes), max_size=3),
        "binds_add": st.lists(binds(volumes), max_size=2),
        "devices": st.lists(devices, max_size=2),
        "tmpfs": st.lists(tmpfs, max_size=2),
        "command": st.lists(texts, max_size=4),
        "env": st.lists(env, max_size=3),
        "cwd": texts,
        **{field: namespaces(field) for field in ("net", "pid", "ipc", "uts", "userns")},
        "hostname": texts,
        "readonly": st.booleans(),
        "masked_paths": st.lists(texts, max_size=2),
        "readonly_paths": st.lists(paths, max_size=2),
        "uid": ids(names),
        "gid": ids(names),
        "additional_gids": st.lists(ids(names), max_size=3),
        "no_new_privileges": st.booleans(),
        "oom_score_adj": st.integers(-1000, 1000),
        "rootfs_propagation": st.sampled_from(get_args(Propagation)),
        "cgroups_path": texts,
        "resources": resources,
        "sysctl": st.dictionaries(texts, texts, max_size=3),
        "rlimits": st.lists(rlimits, max_size=2),
        "uid_mappings": st.lists(id_mappings, max_size=2),
        "gid_mappings": st.lists(id_mappings, max_size=2),
        "annotations": st.dictionaries(words, texts, max_size=2),
        "runtime": runtimes,
    }
    return optional_fields(model, {"name": st.just(name), "image": images}, fields)


kernels = optional_fields(
    Kernel,
    {},
    {
        "image": images,
        "cmdline": texts,
        "binary": texts,
        "tar": st.none() | texts,
        "ucode": st.none() | texts,
    },
)
volumes = optional_fields(
    Volume,
    {"name": volume_names},
    {
        "image": images,
        "readonly": st.booleans(),
        "format": st.sampled_from(["filesystem", "oci"]),
        "platforms": st.lists(st.sampled_from(["linux/amd64", "linux/arm64/v8", "linux/s390x"])),
    },
)
file_paths = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", "/"]),
    st.lists(segments.filter(lambda part: part not in (".", "..")), min_size=1, max_size=3).map(
        "/".join
    ),
    st.sampled_from(["", "/"]),
)


def files(names: list[str]) -> st.SearchStrategy[File]:
    """A file, directory, symlink or metadata entry, with optional mode and owner."""
    kinds = st.sampled_from(["directory", "symlink", "contents", "source", "metadata"])

    def build(kind: str) -> st.SearchStrategy[File]:
        value = {
            "directory": st.just(True),
            "metadata": st.sampled_from(["yaml", "json"]),
        }.get(kind, texts)
        return optional_fields(
            File,
            {"path": file_paths, kind: value},
            {"optional": st.booleans(), "mode": modes, "uid": ids(names), "gid": ids(names)},
        )

    return kinds.flatmap(build)


@st.composite
def systems(draw: st.DrawFn) -> System:
    """A valid system with up to seven containers spread over the three sections."""
    names = draw(st.lists(container_names, unique=True, max_size=7))
    drawn_volumes = draw(st.lists(volumes, max_size=3, unique_by=lambda volume: volume.name))
    sections: dict[str, list[Any]] = {"onboot": [], "onshutdown": [], "services": []}
    models: dict[str, type[Container]] = {
        "onboot": Onboot,
        "onshutdown": Onshutdown,
        "services": Service,
    }
    for name in names:
        section = draw(st.sampled_from(list(sections)))
        sections[section].append(draw(containers(models[section], name, names, drawn_volumes)))
    return System(
        kernel=draw(st.none() | kernels),
        init=draw(st.lists(images, max_size=4)),
        files=draw(st.lists(files(names), max_size=4)),
        volumes=drawn_volumes,
        **sections,
    )
