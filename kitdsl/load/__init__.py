"""Turning user files into a :class:`~kitdsl.dsl.System`, with source locations.

Every command that takes a system takes one or more files: ``system.py`` (optionally
``system.py:NAME``) or LinuxKit YAML. Several files are combined the way LinuxKit combines
several YAML files (:func:`kitdsl.dsl.merge`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kitdsl.dsl.system import System, merge
from kitdsl.errors import UsageError
from kitdsl.load.pyfile import SystemSpec, load_system_file

YAML_SUFFIXES = (".yml", ".yaml")


def is_yaml(spec: str) -> bool:
    """True when a file argument names LinuxKit YAML rather than Python."""
    return Path(spec).suffix.lower() in YAML_SUFFIXES


def load_system(specs: Sequence[str]) -> System:
    """Load and combine the systems named by ``specs`` (paths, ``path.py:NAME``)."""
    if not specs:
        raise UsageError("no system given", hint="name a system.py or a LinuxKit YAML file")
    systems: list[System] = []
    index = 0
    while index < len(specs):
        if is_yaml(specs[index]):
            # Consecutive YAML files are read together, so one may use a volume or an id
            # name that another defines, as with `linuxkit build a.yml b.yml`.
            end = index
            while end < len(specs) and is_yaml(specs[end]):
                end += 1
            systems.append(_load_yaml([Path(spec) for spec in specs[index:end]]))
            index = end
        else:
            systems.append(load_system_file(SystemSpec.parse(specs[index])))
            index += 1
    return systems[0] if len(systems) == 1 else merge(*systems)


def _load_yaml(paths: list[Path]) -> System:
    from kitdsl.load.linuxkit_yaml import load_linuxkit_yaml

    return load_linuxkit_yaml(paths)
