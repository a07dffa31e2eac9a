"""``Packages`` indexes: reading them fast, caching the result, and looking packages up.

Debian's main ``Packages`` for one architecture is about 50 MB and 60,000 paragraphs. Only the
dozen fields resolution and download need are kept, read with one regular expression over the
whole text (a loop over lines costs about twice as much). Relationship fields stay strings
until a resolver asks for one, since only a few hundred packages are ever looked at.

The parsed form is cached on disk keyed by the sha256 of the index file it came from, so a
second run with the same index costs a ``marshal`` load instead of decompressing and parsing.
``marshal`` is used because it is the fastest loader of plain tuples of strings in the standard
library and, unlike ``pickle``, cannot run code when loading.
"""

from __future__ import annotations

import contextlib
import marshal
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, cmp_to_key
from pathlib import Path

from kitdsl.fsutil import atomic_write_bytes
from kitdsl.pkg.debian.errors import ReleaseError
from kitdsl.pkg.debian.relations import Relation, RelationError, parse_provides
from kitdsl.pkg.debian.version import compare_versions

CACHE_FORMAT = 1
"""Bumped whenever the cached tuple layout changes, so old caches are ignored, not misread."""
FIELDS = (
    "Package",
    "Version",
    "Architecture",
    "Multi-Arch",
    "Essential",
    "Depends",
    "Pre-Depends",
    "Provides",
    "Filename",
    "Size",
    "SHA256",
    "Source",
)
_SLOT = {name: index for index, name in enumerate(FIELDS)}
# A kept field with its continuation lines, or a blank line (a paragraph boundary).
_LINE = re.compile(
    rb"^(" + b"|".join(f.encode() for f in FIELDS) + rb"):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)"
    rb"|^([ \t]*)$",
    re.MULTILINE,
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Package:
    """One binary package of an index, as much of it as resolving and fetching need."""

    name: str
    version: str
    architecture: str
    filename: str
    """Path of the ``.deb`` below the mirror's URL (``pool/main/b/busybox/...deb``)."""
    size: int
    sha256: str
    mirror: str
    """The URL of the archive it was listed in (without a trailing slash)."""
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    multi_arch: str = ""
    essential: bool = False
    source: str = ""
    """The source package, when it differs from ``name`` (without its version)."""

    @property
    def url(self) -> str:
        """Where to download the ``.deb``."""
        return f"{self.mirror}/{self.filename}"

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.architecture})"


def parse_packages(data: bytes, *, mirror: str, what: str) -> list[Package]:
    """The packages of an uncompressed ``Packages`` file; ``what`` names it in errors."""
    return [_package(record, mirror, what) for record in parse_records(data)]


def parse_records(data: bytes) -> list[tuple[str, ...]]:
    """Each paragraph's kept fields, as a tuple in :data:`FIELDS` order (missing ones empty).
    This plain form is what the on-disk cache holds."""
    records: list[tuple[str, ...]] = []
    empty = [""] * len(FIELDS)
    current = empty.copy()
    seen = False
    for field, value, _blank in _LINE.findall(data):
        if field:
            if b"\n" in value:
                value = b" ".join(value.split())
            current[_SLOT[field.decode()]] = value.decode("utf-8", "replace").strip()
            seen = True
        elif seen:  # the other alternative: a blank line ends the paragraph
            records.append(tuple(current))
            current = empty.copy()
            seen = False
    if seen:
        records.append(tuple(current))
    return records


def _package(record: Sequence[str], mirror: str, what: str) -> Package:
    """A record made a :class:`Package`, checked."""
    (name, version, arch, multi_arch, essential, depends, pre_depends, provides) = record[:8]
    filename, size, sha256, source = record[8:]
    if not name or not version or not arch or not filename:
        raise ReleaseError(
            f"{what}: a paragraph lacks Package, Version, Architecture or Filename "
            f"(package {name or '?'})",
            hint="the index is damaged; try another mirror",
        )
    if not size.isdigit() or not _SHA256.fullmatch(sha256):
        raise ReleaseError(
            f"{what}: package {name} {version} has no valid Size and SHA256",
            hint="kitdsl only downloads files it can check by sha256",
        )
    return Package(
        name=name,
        version=version,
        architecture=arch,
        filename=filename,
        size=int(size),
        sha256=sha256,
        mirror=mirror,
        depends=depends,
        pre_depends=pre_depends,
        provides=provides,
        multi_arch=multi_arch,
        essential=essential == "yes",
        source=source.partition(" ")[0],
    )


def load_cached(cache_file: Path, data: Callable[[], bytes]) -> list[tuple[str, ...]]:
    """The records of an index (see :func:`parse_records`), from ``cache_file`` when it holds
    them, else parsed from ``data()`` (the uncompressed index) and written there atomically."""
    with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
        loaded = marshal.loads(cache_file.read_bytes())
        if isinstance(loaded, tuple) and len(loaded) == 2 and loaded[0] == CACHE_FORMAT:
            records: list[tuple[str, ...]] = loaded[1]
            return records
    records = parse_records(data())
    atomic_write_bytes(cache_file, marshal.dumps((CACHE_FORMAT, tuple(records))))
    return records


_Raw = tuple[tuple[str, ...], str, str]
"""A record not yet made a :class:`Package`: the fields, the mirror URL, the index's name."""


class PackageIndex:
    """The packages of one or more indexes, looked up by name or by what they provide.

    Records become :class:`Package` objects only when looked up: resolving touches a few
    hundred of the tens of thousands an index lists, so building them all would dominate the
    cost of a cached run."""

    def __init__(self, packages: Iterable[Package] = ()) -> None:
        self._entries: dict[str, list[Package | _Raw]] = {}
        self._found: dict[str, list[Package]] = {}
        for package in packages:
            self._entries.setdefault(package.name, []).append(package)

    def add_records(self, records: Iterable[Sequence[str]], *, mirror: str, what: str) -> None:
        """Add the records of one index (from :func:`parse_records`), listed at ``mirror``;
        ``what`` names the index in errors."""
        entries = self._entries
        for record in records:
            entry = (tuple(record), mirror, what)
            found = entries.get(record[0])
            if found is None:
                entries[record[0]] = [entry]
            else:
                found.append(entry)
        self._found.clear()
        self.__dict__.pop("_provides", None)

    def __len__(self) -> int:
        return sum(len(found) for found in self._entries.values())

    def __iter__(self) -> Iterator[Package]:
        for name in sorted(self._entries):
            yield from self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> list[Package]:
        """Every package called ``name``, newest version first."""
        found = self._found.get(name)
        if found is None:
            packages: dict[tuple[str, str], Package] = {}
            for entry in self._entries.get(name, ()):
                package = entry if isinstance(entry, Package) else _package(*entry)
                # The same package listed twice (binary-all and binary-amd64) counts once.
                packages.setdefault((package.version, package.architecture), package)
            found = list(packages.values())
            if len(found) > 1:
                found.sort(key=cmp_to_key(lambda a, b: compare_versions(b.version, a.version)))
            self._found[name] = found
        return list(found)

    def names(self) -> list[str]:
        """The real (not virtual) package names, sorted."""
        return sorted(self._entries)

    def providers(self, name: str) -> list[tuple[Package, Relation]]:
        """The packages that provide ``name``, each with its provide entry (whose version is
        the provided version, if any)."""
        result: list[tuple[Package, Relation]] = []
        for provider in self._provides.get(name, ()):
            for package in self.get(provider):
                try:
                    entries = parse_provides(package.provides)
                except RelationError as exc:
                    raise ReleaseError(f"package {package}: {exc}") from None
                result += [(package, entry) for entry in entries if entry.name == name]
        return result

    @cached_property
    def _provides(self) -> dict[str, list[str]]:
        """Virtual name → the names of packages that (in some version) provide it. Only the
        names are split out here; the entries are parsed when asked for."""
        table: dict[str, list[str]] = {}
        for name, entries in self._entries.items():
            provided: set[str] = set()
            for entry in entries:
                field = entry.provides if isinstance(entry, Package) else entry[0][7]
                if field:
                    provided.update(_PROVIDED_NAME.findall(field))
            for virtual in provided:
                table.setdefault(virtual.lower(), []).append(name)
        for names in table.values():
            names.sort()
        return table


_PROVIDED_NAME = re.compile(r"(?:^|,)\s*([a-zA-Z0-9][a-zA-Z0-9+.\-]*)")
