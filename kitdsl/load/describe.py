"""Showing a resolved system to a person (YAML text) or a program (JSON).

The data is the LinuxKit document that ``kitdsl export`` writes (:func:`system_data` of
:mod:`kitdsl.load.linuxkit_yaml`), with every section present even when it is empty, and the
text is written by the same YAML writer. ``explain`` adds where every component was defined
and where each overridden field was set, so a team can see which shared module, or which
product file, decided a value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kitdsl.dsl.base import Model
from kitdsl.dsl.system import System
from kitdsl.errors import Location
from kitdsl.load import _yamlnodes as yn
from kitdsl.load import linuxkit_yaml
from kitdsl.load._fields import yaml_key

__all__ = [
    "LIST_SECTIONS",
    "explain_data",
    "model_data",
    "system_data",
    "to_json",
    "to_text",
]

LIST_SECTIONS = tuple(linuxkit_yaml.SECTIONS)
"""The sections that hold lists of components, in LinuxKit's order."""


def model_data(model: Model, *, base: Path | None = None) -> dict[str, Any]:
    """The fields that mean something, under their LinuxKit YAML keys.

    Relative file sources are written as seen from folder ``base`` (``None``: the current
    directory), where the person or program reading the output is.
    """
    return linuxkit_yaml.entry_data(model, base=base)


def system_data(system: System, *, base: Path | None = None) -> dict[str, Any]:
    """The whole system as plain data, with LinuxKit's keys and section order.

    Every section is present, empty or not; ``kernel`` only when the system has one.
    """
    return linuxkit_yaml.system_data(system, base=base, empty_sections=True)


def explain_data(system: System) -> dict[str, Any]:
    """For each component, where it was defined and where each overridden field was set.

    Keys are ``kernel`` and ``section/name`` (``services/getty``, ``files/etc/motd``); files
    may share a path, so a later one with a key already taken gets ``#2``, ``#3``...
    """
    result: dict[str, Any] = {}
    for section, model in _components(system):
        key = first = section if section == "kernel" else f"{section}/{_label(model)}"
        number = 1
        while key in result:
            number += 1
            key = f"{first}#{number}"
        entry: dict[str, Any] = {"origin": str(model.origin) if model.origin else None}
        overrides = _overrides(model)
        if overrides:
            entry["overrides"] = {field: str(where) for field, where in overrides.items()}
        result[key] = entry
    return result


def to_json(system: System, *, explain: bool = False, base: Path | None = None) -> str:
    """``kitdsl inspect --json``: :func:`system_data`, indented, sections in order.

    With ``explain``, :func:`explain_data` is added under an ``explain`` key.
    """
    data = system_data(system, base=base)
    if explain:
        data["explain"] = explain_data(system)
    return json.dumps(data, indent=2) + "\n"


def to_text(system: System, *, explain: bool = False, base: Path | None = None) -> str:
    """``kitdsl inspect``: the resolved system as YAML, with origins as comments if asked.

    Without ``explain`` this is exactly the YAML writer's output for :func:`system_data`.
    With it, a ``# name: file:line`` line precedes each component and ``# set at file:line``
    follows each key set somewhere other than where its component was defined.
    """
    data = system_data(system, base=base)
    lines: list[str] = []
    if system.kernel is not None:
        if explain:
            lines.append(f"# kernel: {system.kernel.origin or 'unknown'}")
        lines.extend(_mapping("kernel", data["kernel"], system.kernel, explain))
    lines.extend(_dump({"init": data["init"]}))
    for section in LIST_SECTIONS:
        items = getattr(system, section)
        if not items:
            lines.extend(_dump({section: []}))
            continue
        lines.append(f"{section}:")
        for model, item in zip(items, data[section], strict=True):
            if explain:
                lines.append(f"  # {_label(model)}: {model.origin or 'unknown'}")
            lines.extend(_item(item, model, explain))
    last = LIST_SECTIONS[-1]
    if yn.dump({last: data[last]}).endswith("\n...\n"):
        lines.append("...")  # the end of the document, as the writer marks it
    return "\n".join(lines) + "\n"


# --- pieces of the text -------------------------------------------------------------------------


def _dump(data: dict[str, Any]) -> list[str]:
    lines = yn.dump(data).rstrip("\n").split("\n")
    # After a scalar that keeps its final line breaks (``|+``) the writer ends the document
    # with "..."; within the text the next key ends the scalar, and indented, the marker would
    # be read as text.
    if lines[-1] == "...":
        lines.pop()
    return lines


def _keys(data: dict[str, Any], model: Model, explain: bool) -> list[str]:
    """The lines of a component's mapping, written one key at a time to annotate each."""
    overrides = _overrides(model) if explain else {}
    lines: list[str] = []
    for key, value in data.items():
        chunk = _dump({key: value})
        if key in overrides:
            # After a block scalar's "|" a comment is allowed too, so any first line takes one.
            chunk[0] += f"  # set at {overrides[key]}"
        lines.extend(chunk)
    return lines


def _mapping(key: str, data: dict[str, Any], model: Model, explain: bool) -> list[str]:
    if not data:
        return _dump({key: data})
    return [f"{key}:", *(_indent(line, "  ") for line in _keys(data, model, explain))]


def _item(data: dict[str, Any], model: Model, explain: bool) -> list[str]:
    """A list item as the writer indents it under its section: ``  - key: ...``."""
    if not data:
        return ["  - {}"]
    first, *rest = _keys(data, model, explain)
    return ["  - " + first, *(_indent(line, "    ") for line in rest)]


def _indent(line: str, pad: str) -> str:
    # Blank lines of a literal block stay blank: trailing spaces would change nothing but noise.
    return pad + line if line else line


# --- origins ------------------------------------------------------------------------------------


def _label(model: Model) -> str:
    for attribute in ("name", "path"):
        value = getattr(model, attribute, None)
        if isinstance(value, str):
            return value
    return type(model).__name__.lower()


def _components(system: System) -> list[tuple[str, Model]]:
    components: list[tuple[str, Model]] = []
    if system.kernel is not None:
        components.append(("kernel", system.kernel))
    for section in LIST_SECTIONS:
        components.extend((section, item) for item in getattr(system, section))
    return components


def _overrides(model: Model) -> dict[str, Location]:
    """YAML key → where it was set, for fields set elsewhere than the component's origin."""
    result: dict[str, Location] = {}
    for name, field in type(model).model_fields.items():
        where = model.field_origin(name)
        if where is not None and where != model.origin:
            result[yaml_key(name, field)] = where
    return result
