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
    if len(specs) == 1 and not is_yaml(specs[0]):
        return load_system_file(SystemSpec.parse(specs[0]))
    from kitdsl.load.linuxkit_yaml import read_linuxkit_yaml

    # YAML files are read without the checks across components; merge() runs them on the
    # whole, so one file may use a volume or an id name that another file defines.
    return merge(
        *(
            read_linuxkit_yaml(Path(spec))
            if is_yaml(spec)
            else load_system_file(SystemSpec.parse(spec))
            for spec in specs
        )
    )
