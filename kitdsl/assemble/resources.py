"""Cgroup resources and device nodes: ``linux.resources`` and ``linux.devices``.

Resources come from the merged configuration with their OCI JSON names, in Go struct order;
each device entry adds a cgroup rule allowing it (LinuxKit has no default deny rule, so runc's
own defaults apply).
"""

from __future__ import annotations

from typing import Any

from kitdsl.dsl import Device, Resources
from kitdsl.dsl.types import mode_value


def linux_resources(
    resources: Resources | None, entries: list[Device]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(``linux.resources``, ``linux.devices``): the resources, with the devices' cgroup rules
    appended to any rules they already hold, and the device nodes to create."""
    data = resources_json(resources)
    nodes, rules = devices(entries)
    if rules:
        data["devices"] = [*data.get("devices", []), *rules]
    return sorted_resources(data), nodes


def devices(entries: list[Device]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(``linux.devices``, cgroup rules to append to ``linux.resources.devices``)."""
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for device in entries:
        if device.path == "all":
            rules.append({"allow": True, "type": device.type, "access": "rwm"})
            continue
        assert device.mode is not None  # the model requires a mode for a real device
        nodes.append(
            {
                "path": device.path,
                "type": device.type,
                "major": device.major,
                "minor": device.minor,
                "fileMode": mode_value(device.mode),
            }
        )
        rules.append(
            {
                "allow": True,
                "type": device.type,
                "major": device.major,
                "minor": device.minor,
                "access": "rwm",
            }
        )
    return nodes, rules


def resources_json(resources: Resources | None) -> dict[str, Any]:
    """OCI ``LinuxResources`` with its JSON names; unset pointers left out, set zeros kept."""
    if resources is None:
        return {}
    data = resources.model_dump(by_alias=True, exclude_none=True)
    # Our aliases are the JSON names, except blockIO, whose YAML key ("blockio") differs.
    if "blockio" in data:
        data["blockIO"] = data.pop("blockio")
    return data


# Go struct order of each resources object, by the key it is found under.
_RESOURCE_ORDER = {
    "": ("devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network"),
    "devices": ("allow", "type", "major", "minor", "access"),
    "memory": (
        "limit",
        "reservation",
        "swap",
        "kernel",
        "kernelTCP",
        "swappiness",
        "disableOOMKiller",
    ),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems"),
    "pids": ("limit",),
    "blockIO": (
        "weight",
        "leafWeight",
        "weightDevice",
        "throttleReadBpsDevice",
        "throttleWriteBpsDevice",
        "throttleReadIOPSDevice",
        "throttleWriteIOPSDevice",
    ),
    "weightDevice": ("major", "minor", "weight", "leafWeight"),
    "throttle": ("major", "minor", "rate"),
    "hugepageLimits": ("pageSize", "limit"),
    "network": ("classID", "priorities"),
    "priorities": ("name", "priority"),
}
# Fields that are plain (not pointer) strings or slices with omitempty: left out when empty.
_OMIT_WHEN_EMPTY = frozenset(
    {
        "devices",
        "type",
        "access",
        "cpus",
        "mems",
        "weightDevice",
        "throttleReadBpsDevice",
        "throttleWriteBpsDevice",
        "throttleReadIOPSDevice",
        "throttleWriteIOPSDevice",
        "hugepageLimits",
        "priorities",
    }
)


def sorted_resources(data: Any, kind: str = "") -> Any:
    """Resources with keys in Go struct order and Go's ``omitempty`` applied."""
    if isinstance(data, list):
        return [sorted_resources(item, kind) for item in data]
    if not isinstance(data, dict):
        return data
    order = _RESOURCE_ORDER["throttle" if kind.startswith("throttle") else kind]
    return {
        key: sorted_resources(data[key], key)
        for key in order
        if key in data and not (key in _OMIT_WHEN_EMPTY and data[key] in ("", []))
    }
