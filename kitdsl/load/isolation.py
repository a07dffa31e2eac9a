"""Importing a project's modules so that nothing leaks from one load into the next.

While a system file loads, the project root is first on ``sys.path``, and the project's own
top-level names resolve to the project even where another source tree on ``sys.path`` has a
package of the same name (a folder without ``__init__.py`` would otherwise lose to it). Names of
the standard library and of installed packages are never taken over: a ``json/`` or ``yaml/``
folder of data in a repository does not hide the real module.

Afterwards every module imported from the project is forgotten, and modules of the project that
were imported before (by a test, say) are put back, so each load sees fresh copies.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

# Folders of a project that hold other people's code, not the user's.
_LIBRARY_PARTS = frozenset(
    {"site-packages", "dist-packages", ".venv", "venv", ".tox", ".nox", "__pypackages__"}
)
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
# kitdsl itself may live below the project root (as in kitdsl's own repository); it is never a
# user module, or the user's models would be instances of other classes than ours.
_OWN_PACKAGE_DIR = Path(__file__).resolve().parent.parent
ENTRY_PREFIX = "_kitdsl_system_"


def is_user_file(path: str | Path, root: Path, folders: dict[str, Path] | None = None) -> bool:
    """True for a file of the project itself: below ``root``, not in a virtual environment
    or installed-packages folder, not kitdsl.

    ``folders`` remembers resolved folders between calls that look at many files at once (the
    modules of ``sys.modules``: resolving each path in full is most of the time of a load)."""
    if isinstance(path, str) and path.startswith("<"):
        return False
    resolved = _resolve(path, folders) if folders is not None else Path(path).resolve()
    if resolved.is_relative_to(_OWN_PACKAGE_DIR):
        return False
    try:
        relative = resolved.relative_to(root)
    except ValueError:
        return False
    return not any(part in _LIBRARY_PARTS for part in relative.parts)


def _is_library(origin: str | None) -> bool:
    """The standard library, built-in modules and installed packages."""
    if origin is None or origin in ("built-in", "frozen"):
        return True
    resolved = Path(origin).resolve()
    return resolved.is_relative_to(_STDLIB) or any(
        part in _LIBRARY_PARTS for part in resolved.parts
    )


def _resolve(path: str | Path, folders: dict[str, Path]) -> Path:
    """``Path(path).resolve()``, the folder of ``path`` resolved once per ``folders``."""
    text = os.fspath(path)
    absolute = text if os.path.isabs(text) else os.path.join(os.getcwd(), text)
    folder, name = os.path.split(absolute)
    if name in ("", ".", "..") or os.path.islink(absolute):
        return Path(absolute).resolve()
    known = folders.get(folder)
    if known is None:
        known = folders[folder] = Path(folder).resolve()
    return known / name


def is_user_module(module: ModuleType, root: Path, folders: dict[str, Path] | None = None) -> bool:
    """A module (or namespace package) whose code comes from the project (``folders`` as for
    :func:`is_user_file`)."""
    file = getattr(module, "__file__", None)
    if file:
        return is_user_file(file, root, folders)
    locations = list(getattr(module, "__path__", []))
    return bool(locations) and all(is_user_file(location, root, folders) for location in locations)


def _top_levels(root: Path) -> set[str]:
    names = set()
    for entry in root.iterdir():
        if entry.suffix == ".py":
            names.add(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier() and entry.name not in _LIBRARY_PARTS:
            names.add(entry.name)
    return names - set(sys.stdlib_module_names)


class _TrackingLoader(importlib.abc.Loader):
    """Wraps a user module's loader to keep the stack of modules being executed."""

    def __init__(self, inner: importlib.abc.Loader, tracker: ImportTracker) -> None:
        self._inner = inner
        self._tracker = tracker

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._tracker.run(module, self._inner)

    def __getattr__(self, name: str) -> object:
        # get_source, get_filename, is_package...: tracebacks and linecache need them.
        return getattr(self._inner, name)


class ImportTracker(importlib.abc.MetaPathFinder):
    """Resolves the project's own names to the project and records which user modules are
    executing, so an import cycle can be reported as the chain of modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.top_levels = _top_levels(root)
        self.stack: list[str] = []
        self._takes_over: dict[str, bool] = {}

    def takes_over(self, name: str) -> bool:
        """Whether the project's ``name`` must win over what ``sys.path`` would find: yes,
        unless the other one is part of the standard library or an installed package."""
        if name not in self.top_levels:
            return False
        if name not in self._takes_over:
            others = [entry for entry in sys.path if Path(entry or ".").resolve() != self.root]
            elsewhere = importlib.machinery.PathFinder.find_spec(name, others)
            self._takes_over[name] = elsewhere is None or not _is_library(elsewhere.origin)
        return self._takes_over[name]

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None and self.takes_over(fullname):
            path = [str(self.root)]
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or spec.origin is None:
            return spec
        if is_user_file(spec.origin, self.root):
            spec.loader = _TrackingLoader(spec.loader, self)
        return spec

    def run(self, module: ModuleType, loader: importlib.abc.Loader) -> None:
        """Execute a user module, keeping the stack of modules being executed."""
        self.stack.append(_module_label(module))
        try:
            loader.exec_module(module)
        except BaseException as exc:
            if not hasattr(exc, "_kitdsl_import_stack"):
                exc._kitdsl_import_stack = list(self.stack)  # type: ignore[attr-defined]
            raise
        finally:
            self.stack.pop()


def _module_label(module: ModuleType) -> str:
    if module.__name__.startswith(ENTRY_PREFIX):
        return Path(module.__file__ or module.__name__).name
    return module.__name__


@contextmanager
def isolated_imports(root: Path) -> Iterator[ImportTracker]:
    """Make ``root`` importable for the duration, then forget every module imported from it."""
    tracker = ImportTracker(root)
    folders: dict[str, Path] = {}  # resolved, for this load only: links may change between

    def belongs(name: str, module: ModuleType) -> bool:
        top = name.partition(".")[0]
        return is_user_module(module, root, folders) or (
            top in tracker.top_levels and tracker.takes_over(top) and top != "kitdsl"
        )

    set_aside = {name: module for name, module in sys.modules.items() if belongs(name, module)}
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
        # Decide first, delete after: a namespace package's path is recomputed from its
        # parent's, which must still be there while we look.
        doomed = [
            name
            for name in set(sys.modules) - before
            if name.startswith(ENTRY_PREFIX) or belongs(name, sys.modules[name])
        ]
        for name in doomed:
            del sys.modules[name]
        sys.modules.update(set_aside)
