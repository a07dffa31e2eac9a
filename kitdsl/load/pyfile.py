"""Loading a ``system.py``: import it in isolation and take its ``system``.

Each load imports the user's file, and every module it imports from the project, afresh: nothing
leaks into ``sys.modules`` or ``sys.path`` from one load to the next, so two products sharing
``systems/common`` can be loaded side by side. The project root (the nearest folder above the
file holding ``pyproject.toml``, ``.git`` or ``kitdsl.toml``) is importable during the load, which
is what makes ``from systems.common import base`` work.

Whatever goes wrong is reported at the user's line: an exception in their module, a model that
does not validate (the line where it was constructed, not a pydantic traceback), an import cycle
between their modules, or a file that defines no system.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

from pydantic import ValidationError

from kitdsl.dsl.origin import is_internal
from kitdsl.dsl.system import System
from kitdsl.errors import ConfigError, KitError, Location, UserCodeError
from kitdsl.load.isolation import ENTRY_PREFIX, ImportTracker, is_user_file, isolated_imports
from kitdsl.load.validation import describe_validation_error

ROOT_MARKERS = ("pyproject.toml", ".git", "kitdsl.toml")
DEFAULT_ATTRIBUTE = "system"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_counter = itertools.count()


@dataclass(frozen=True)
class SystemSpec:
    """``path/system.py`` or ``path/system.py:NAME`` as given on the command line."""

    path: Path
    attribute: str = DEFAULT_ATTRIBUTE

    @classmethod
    def parse(cls, text: str) -> SystemSpec:
        """Split an optional ``:NAME`` suffix off a file argument."""
        head, sep, tail = text.rpartition(":")
        if sep and head and _IDENTIFIER.fullmatch(tail):
            return cls(Path(head), tail)
        return cls(Path(text))


def project_root(path: Path) -> Path:
    """The nearest folder above ``path`` that holds a project marker, else its own folder."""
    start = path.resolve().parent
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return start


def load_system_file(spec: str | SystemSpec) -> System:
    """Import a ``system.py`` in isolation and return its system (``system`` or ``:NAME``)."""
    if isinstance(spec, str):
        spec = SystemSpec.parse(spec)
    path = spec.path
    if not path.is_file():
        raise ConfigError(f"no such file: {path}", hint="give the path of a system.py file")
    root = project_root(path)
    with isolated_imports(root) as tracker:
        module = _execute(path, root, tracker)
        return _take_system(module, spec)


def load_namespace(path: Path) -> dict[str, object]:
    """Import a Python file in isolation, as a system file is, and return its module-level
    names (for ``kitdsl pkg``, which takes the packages a file defines)."""
    if not path.is_file():
        raise ConfigError(f"no such file: {path}", hint="give the path of a Python file")
    root = project_root(path)
    with isolated_imports(root) as tracker:
        return dict(vars(_execute(path, root, tracker)))


def _entry_name(path: Path, root: Path, tracker: ImportTracker) -> str:
    """The module name of the entry file: its dotted path in the project when that works
    (so relative imports do), else a name of its own."""
    relative = path.resolve().relative_to(root).with_suffix("").parts
    if (
        relative
        and all(part.isidentifier() for part in relative)
        and relative[0] in tracker.top_levels
        and tracker.takes_over(relative[0])
    ):
        return ".".join(relative)
    return f"{ENTRY_PREFIX}{next(_counter)}"


def _execute(path: Path, root: Path, tracker: ImportTracker) -> ModuleType:
    name = _entry_name(path, root, tracker)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        tracker.run(module, module_spec.loader)
    except KitError:
        raise
    except ValidationError as exc:
        title, details = describe_validation_error(exc)
        raise ConfigError(title, location=_user_location(exc, root, path), details=details) from exc
    except SyntaxError as exc:
        where = Location(exc.filename or str(path), exc.lineno, exc.offset)
        raise UserCodeError(f"syntax error: {exc.msg}", location=where) from exc
    except SystemExit as exc:
        raise UserCodeError(
            f"the module called sys.exit({exc.code!r}) while being loaded",
            location=_user_location(exc, root, path),
            hint="a system file must define a system, not run a program",
        ) from exc
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _describe_exception(exc, root, path) from exc
    return module


def _describe_exception(exc: BaseException, root: Path, path: Path) -> KitError:
    where = _user_location(exc, root, path)
    cycle = _import_cycle(exc)
    if cycle is not None:
        return ConfigError(
            "import cycle between your modules: " + " -> ".join(cycle),
            location=where,
            hint="move what both modules need into a third module that imports neither",
        )
    if isinstance(exc, ModuleNotFoundError):
        return UserCodeError(
            str(exc),
            location=where,
            hint=f"your modules are imported from the project root {root}",
        )
    return UserCodeError(f"{type(exc).__name__}: {exc}", location=where)


def _take_system(module: ModuleType, spec: SystemSpec) -> System:
    value = getattr(module, spec.attribute, None)
    if isinstance(value, System):
        return value
    found = sorted(
        name
        for name, candidate in vars(module).items()
        if isinstance(candidate, System) and not name.startswith("_")
    )
    where = Location(str(spec.path))
    if value is None:
        hint = (
            f"it defines {', '.join(found)}: choose one with {spec.path}:{found[0]}"
            if found
            else f"assign a kitdsl.System to a variable named {DEFAULT_ATTRIBUTE!r}"
        )
        return _raise(
            ConfigError(f"{spec.path} defines no {spec.attribute!r}", location=where, hint=hint)
        )
    return _raise(
        ConfigError(
            f"{spec.attribute!r} in {spec.path} is a {type(value).__name__}, not a kitdsl System",
            location=where,
        )
    )


def _raise(error: KitError) -> System:
    raise error


# --- locating the user's line -----------------------------------------------------------------


def _user_location(exc: BaseException, root: Path, path: Path) -> Location | None:
    """The innermost traceback frame in the user's own files (the project, not libraries)."""
    found: Location | None = None
    tb: TracebackType | None = exc.__traceback__
    for frame, lineno in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if not is_internal(filename) and is_user_file(filename, root):
            found = Location(filename, lineno)
    return found or Location(str(path))


# --- import cycles ---------------------------------------------------------------------------


def _import_cycle(exc: BaseException) -> list[str] | None:
    """The chain of user modules that import each other, if ``exc`` comes from a cycle."""
    text = str(exc)
    if "partially initialized module" not in text and "circular import" not in text:
        return None
    match = re.search(r"partially initialized module '([^']+)'", text)
    stack: list[str] = getattr(exc, "_kitdsl_import_stack", [])
    if match is None or match.group(1) not in stack:
        return stack or None
    start = stack.index(match.group(1))
    return [*stack[start:], match.group(1)]
