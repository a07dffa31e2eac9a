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
    systems = [_load_one(spec) for spec in specs]
    return systems[0] if len(systems) == 1 else merge(*systems)


def _load_one(spec: str) -> System:
    if is_yaml(spec):
        from kitdsl.load.linuxkit_yaml import load_linuxkit_yaml

        return load_linuxkit_yaml([Path(spec)])
    return load_system_file(SystemSpec.parse(spec))


__all__ = ["SystemSpec", "is_yaml", "load_system", "load_system_file"]
