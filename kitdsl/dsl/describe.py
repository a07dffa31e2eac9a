"""Showing a resolved system to a person (YAML-like text) or a program (JSON).

``explain`` adds where every component was defined and where each overridden field was set,
so a team can see which shared module, or which product file, decided a value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from kitdsl.dsl.base import Model
from kitdsl.dsl.models import Kernel
from kitdsl.dsl.system import System
from kitdsl.errors import Location

LIST_SECTIONS = ("onboot", "onshutdown", "services", "files", "volumes")


def model_data(model: Model) -> dict[str, Any]:
    """The fields that mean something, under their LinuxKit YAML keys."""
    data: dict[str, Any] = model.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude_defaults=True
    )
    if isinstance(model, Kernel) and model.tar is None:
        data["tar"] = "none"
    return data


def _label(model: Model) -> str:
    for attribute in ("name", "path"):
        value = getattr(model, attribute, None)
        if isinstance(value, str):
            return value
    return type(model).__name__.lower()


def _components(system: System) -> Iterator[tuple[str, Model]]:
    if system.kernel is not None:
        yield "kernel", system.kernel
    for section in LIST_SECTIONS:
        for item in getattr(system, section):
            yield f"{section}/{_label(item)}", item


def _overrides(model: Model) -> dict[str, Location]:
    """Fields set somewhere other than where the component was defined."""
    result = {}
    for name in type(model).model_fields:
        where = model.field_origin(name)
        if where is not None and where != model.origin:
            result[name] = where
    return result


def _yaml_key(model: Model, field: str) -> str:
    alias = type(model).model_fields[field].serialization_alias
    return alias or field


def explain_data(system: System) -> dict[str, Any]:
    """For each component, where it was defined and where each overridden field was set."""
    result: dict[str, Any] = {}
    for key, model in _components(system):
        entry: dict[str, Any] = {"origin": str(model.origin) if model.origin else None}
        overrides = _overrides(model)
        if overrides:
            entry["overrides"] = {_yaml_key(model, f): str(loc) for f, loc in overrides.items()}
        result[key] = entry
    return result


def system_data(system: System) -> dict[str, Any]:
    """The whole system as plain data, with LinuxKit's keys and section order."""
    data: dict[str, Any] = {}
    if system.kernel is not None:
        data["kernel"] = model_data(system.kernel)
    data["init"] = [str(item) for item in system.model_dump(mode="json")["init"]]
    for section in LIST_SECTIONS:
        data[section] = [model_data(item) for item in getattr(system, section)]
    return data


def to_json(system: System, *, explain: bool = False) -> str:
    """``kitdsl inspect --json``: stable, sorted-free (section order kept), indented."""
    data = system_data(system)
    if explain:
        data["explain"] = explain_data(system)
    return json.dumps(data, indent=2) + "\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, which is how people write file contents."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(data: object) -> list[str]:
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    return text.rstrip("\n").split("\n")


def to_text(system: System, *, explain: bool = False) -> str:
    """``kitdsl inspect``: the resolved system as YAML, with origins as comments if asked."""
    lines: list[str] = []
    if system.kernel is not None:
        if explain:
            lines.append(f"# kernel: {system.kernel.origin or 'unknown'}")
        lines.extend(
            _annotated(
                _dump({"kernel": model_data(system.kernel)}), system.kernel, explain, indent="  "
            )
        )
    init = system_data(system)["init"]
    lines.extend(_dump({"init": init}) if init else ["init: []"])
    for section in LIST_SECTIONS:
        items = getattr(system, section)
        if not items:
            lines.append(f"{section}: []")
            continue
        lines.append(f"{section}:")
        for item in items:
            if explain:
                lines.append(f"# {_label(item)}: {item.origin or 'unknown'}")
            lines.extend(_annotated(_dump([model_data(item)]), item, explain, indent="  "))
    return "\n".join(lines) + "\n"


def _annotated(lines: list[str], model: Model, explain: bool, *, indent: str) -> list[str]:
    if not explain:
        return lines
    overrides = {_yaml_key(model, field): where for field, where in _overrides(model).items()}
    result = []
    for line in lines:
        match = re.match(rf"^(?:- |{indent})([^\s:#][^:]*):", line)
        if match and match.group(1) in overrides:
            line = f"{line}  # set at {overrides[match.group(1)]}"
        result.append(line)
    return result
