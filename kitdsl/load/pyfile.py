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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

from pydantic import ValidationError

from kitdsl.dsl.origin import is_internal
from kitdsl.dsl.system import System
from kitdsl.errors import ConfigError, KitError, Location, UserCodeError
from kitdsl.load.validation import describe_validation_error

ROOT_MARKERS = ("pyproject.toml", ".git", "kitdsl.toml")
DEFAULT_ATTRIBUTE = "system"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_counter = itertools.count()
# kitdsl itself may live below the project root (as in kitdsl's own repository); it is never
# treated as a user module, or the user's models would be of other classes than ours.
_OWN_PACKAGE = "kitdsl"


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
    with _isolated_imports(root) as tracker:
        module = _execute(path, root, tracker)
        return _take_system(module, spec)


def _execute(path: Path, root: Path, tracker: _ImportTracker) -> ModuleType:
    name = f"_kitdsl_system_{next(_counter)}"
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
    except Exception as exc:
        raise _describe_exception(exc, root, path) from exc
    return module


def _describe_exception(exc: Exception, root: Path, path: Path) -> KitError:
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
    user_prefix = str(root)
    main_file = str(path.resolve())
    for frame, lineno in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        resolved = str(Path(filename).resolve()) if not filename.startswith("<") else filename
        if is_internal(filename):
            continue
        if resolved == main_file or resolved.startswith(user_prefix + "/"):
            found = Location(filename, lineno)
    return found or Location(str(path))


# --- isolation and import cycles --------------------------------------------------------------


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


class _TrackingLoader(importlib.abc.Loader):
    """Wraps a user module's loader to keep the stack of modules being executed."""

    def __init__(self, inner: importlib.abc.Loader, tracker: _ImportTracker) -> None:
        self._inner = inner
        self._tracker = tracker

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._tracker.run(module, self._inner)

    def __getattr__(self, name: str) -> object:
        # get_source, get_filename, is_package...: tracebacks and linecache need them.
        return getattr(self._inner, name)


class _ImportTracker(importlib.abc.MetaPathFinder):
    """Finds modules under the project root and records which are executing, for cycles."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.top_levels = _project_top_levels(root)
        self.stack: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None and fullname in self.top_levels:
            # The project's own top-level names are looked up in the project only: a regular
            # package of the same name elsewhere on sys.path would otherwise win over a
            # namespace package (a folder without __init__.py) here.
            path = [str(self.root)]
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or spec.origin is None:
            return spec
        if fullname.partition(".")[0] == _OWN_PACKAGE or not _is_under(
            Path(spec.origin), self.root
        ):
            return spec
        spec.loader = _TrackingLoader(spec.loader, self)
        return spec

    def run(self, module: ModuleType, loader: importlib.abc.Loader) -> None:
        label = _module_label(module)
        self.stack.append(label)
        try:
            loader.exec_module(module)
        except BaseException as exc:
            if not hasattr(exc, "_kitdsl_import_stack"):
                exc._kitdsl_import_stack = list(self.stack)  # type: ignore[attr-defined]
            raise
        finally:
            self.stack.pop()


def _module_label(module: ModuleType) -> str:
    return (
        module.__name__
        if not module.__name__.startswith("_kitdsl_system_")
        else str(Path(module.__file__ or module.__name__).name)
    )


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _project_top_levels(root: Path) -> set[str]:
    names = set()
    for entry in root.iterdir():
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and _IDENTIFIER.fullmatch(entry.name):
            names.add(entry.name)
    names.discard(_OWN_PACKAGE)
    return names


@contextmanager
def _isolated_imports(root: Path) -> Iterator[_ImportTracker]:
    """Make ``root`` importable for the duration, then forget every module imported from it.

    Modules of the project that were imported before (by a test, say) are set aside and put
    back afterwards, so the user's file always sees fresh copies of its own modules.
    """
    tracker = _ImportTracker(root)
    top_levels = tracker.top_levels
    set_aside = {
        name: module for name, module in sys.modules.items() if name.partition(".")[0] in top_levels
    }
    for name in set_aside:
        del sys.modules[name]
    saved_path = list(sys.path)
    before = set(sys.modules)
    sys.path.insert(0, str(root))
    sys.meta_path.insert(0, tracker)
    importlib.invalidate_caches()
    try:
        yield tracker
    finally:
        sys.meta_path.remove(tracker)
        sys.path[:] = saved_path
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            origin = getattr(module, "__file__", None)
            if name.partition(".")[0] == _OWN_PACKAGE:
                continue
            ours = origin is not None and _is_under(Path(origin), root)
            if ours or name.startswith("_kitdsl_system_") or name.partition(".")[0] in top_levels:
                del sys.modules[name]
        sys.modules.update(set_aside)
