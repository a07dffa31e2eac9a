"""What ``kitdsl pkg`` commands are given: the packages defined in a file or a module.

A target is ``FILE.py`` or ``FILE.py:NAME``, or an importable module such as
``kitdsl.packages`` or ``kitdsl.packages:httpd``. Without ``:NAME``, every package defined at
the top of the file or module counts, and, when the file defines a ``system``, every package it
uses (base packages included).
"""

from __future__ import annotations

import importlib

from kitdsl.dsl.system import System
from kitdsl.errors import ConfigError, UsageError
from kitdsl.load.pyfile import SystemSpec, load_namespace
from kitdsl.pkg.package import Package
from kitdsl.pkg.system import add_package, system_packages

__all__ = ["packages_of"]


def packages_of(target: str) -> list[Package]:
    """The packages ``target`` names, each once (by repository), in a stable order."""
    spec = SystemSpec.parse(target)
    named = spec.attribute if ":" in target else None
    if spec.path.suffix == ".py" or spec.path.exists():
        namespace = load_namespace(spec.path)
    else:
        namespace = _module(str(spec.path))
    if named is not None:
        value = namespace.get(named)
        if isinstance(value, Package):
            return [value]
        if isinstance(value, System):
            return system_packages(value)
        raise UsageError(
            f"{target}: {named!r} is not a package or a system",
            hint=f"packages there: {', '.join(_names(namespace)) or 'none'}",
        )
    found: dict[str, Package] = {}
    for _, value in sorted(namespace.items()):
        if isinstance(value, Package):
            for package in [*_bases(value), value]:
                add_package(found, package)
        elif isinstance(value, System):
            for package in system_packages(value):
                add_package(found, package)
    if not found:
        raise UsageError(f"{target} defines no packages")
    return list(found.values())


def _bases(package: Package) -> list[Package]:
    return [item for base in package.base for item in [*_bases(base), base]]


def _names(namespace: dict[str, object]) -> list[str]:
    return sorted(name for name, value in namespace.items() if isinstance(value, Package))


def _module(name: str) -> dict[str, object]:
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        raise ConfigError(
            f"{name} is neither a file nor an importable module ({error})",
            hint="give FILE.py, FILE.py:NAME or a module such as kitdsl.packages:httpd",
        ) from None
    return dict(vars(module))
