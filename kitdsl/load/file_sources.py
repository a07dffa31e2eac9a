"""Where the ``source`` of a :class:`~kitdsl.dsl.File` points, seen from any folder.

A relative source is relative to the folder of the file that defined the entry: the
``system.py`` that constructed the ``File``, or the YAML file it was read from (its ``origin``).
That way a system builds the same from any working directory. A system written out somewhere
else (``kitdsl export``, ``kitdsl convert``) must point at the same files from its new folder,
so the writers rewrite relative sources with :func:`source_from`.

Paths are combined lexically (``a/../b`` is ``b``), as :func:`os.path.relpath` does.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from kitdsl.dsl.models import File
from kitdsl.errors import Location

__all__ = ["defining_folder", "is_relative_source", "source_from", "source_path"]


def is_relative_source(source: str) -> bool:
    """True when ``source`` depends on the folder it is read from: neither absolute nor ``~``."""
    return not (source.startswith("~") or PurePath(source).is_absolute())


def defining_folder(file: File) -> Path:
    """The absolute folder a relative source of ``file`` is read from.

    That is the folder of the file that set the source (``file.field_origin("source")``: the
    ``File`` itself, or a later ``replace``/``override`` elsewhere); an origin that is not a path
    on disk (``<stdin>``) and a ``File`` without origin are read from the current directory.
    """
    origin = _source_origin(file)
    if origin is None:
        return Path.cwd()
    return Path(os.path.abspath(origin.file)).parent


def _source_origin(file: File) -> Location | None:
    return file.field_origin("source") or file.origin


def source_path(file: File) -> Path | None:
    """The absolute path ``file.source`` refers to, or ``None`` when it has no source.

    ``~`` and ``~user`` are expanded; a relative source is taken from :func:`defining_folder`.
    """
    if file.source is None:
        return None
    if file.source.startswith("~"):
        return Path(os.path.abspath(os.path.expanduser(file.source)))
    return Path(os.path.abspath(defining_folder(file) / file.source))


def source_from(file: File, base: Path | None = None) -> str | None:
    """``file.source`` written for a file that will be read from folder ``base``.

    ``base`` is the folder of the output (``None``: the current directory). A relative source
    becomes the path from ``base`` to the same file, with ``/`` separators. Absolute and ``~``
    sources, and the source of a ``File`` without origin, are kept as written, and so is a
    source whose folder is ``base`` already, so a round trip keeps the user's spelling.
    """
    source = file.source
    if source is None or _source_origin(file) is None or not is_relative_source(source):
        return source
    folder = defining_folder(file)
    target = Path(os.path.abspath(base if base is not None else Path.cwd()))
    if folder == target:
        return source
    try:
        relative = PurePath(os.path.relpath(folder / source, target)).as_posix()
    except ValueError:  # on another drive (Windows): no relative path exists
        return PurePath(os.path.abspath(folder / source)).as_posix()
    # A first folder named "~x" would be read as a home directory.
    return f"./{relative}" if relative.startswith("~") else relative
