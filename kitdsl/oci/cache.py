"""The image cache's maintenance: list, verify (and repair), prune, remove, import, export.

Each public method of :class:`Cache` is one ``kitdsl cache`` command and returns data; the CLI
prints it. ``Cache`` is a :class:`~kitdsl.oci.store.ContentStore`, so the registry client can
use the same object to write blobs and refs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal

from kitdsl.errors import CacheError
from kitdsl.oci.archive import ArchiveFormat, Exported, export_image
from kitdsl.oci.archive_import import Imported, import_archive
from kitdsl.oci.digest import ALGORITHM
from kitdsl.oci.media import Platform
from kitdsl.oci.store import (
    FETCHED_ANNOTATION,
    TEMP_PREFIX,
    ContentStore,
    default_cache_dir,
    recorded_platforms,
    ref_key,
    ref_name,
)
from kitdsl.oci.walk import walk

ProblemKind = Literal["unreadable-index", "corrupt-blob", "dangling-ref"]


@dataclass(frozen=True)
class CacheEntry:
    """One named image in the cache (a row of ``kitdsl cache ls``)."""

    name: str
    digest: str
    media_type: str
    platforms: tuple[str, ...]
    """Platforms fetched (for an index) or the image's own platform."""
    size: int
    """Bytes of the blobs this image reaches, shared blobs included."""
    complete: bool
    """False when content it needs is missing (``verify`` reports why)."""
    fetched: datetime | None
    """When the name was last resolved, if known."""


@dataclass(frozen=True)
class Problem:
    """Something ``verify`` found wrong; ``repaired`` when ``repair`` fixed it."""

    kind: ProblemKind
    subject: str
    """The blob digest, ref name, or file concerned."""
    message: str
    repaired: bool = False

    def __str__(self) -> str:
        suffix = " (repaired)" if self.repaired else ""
        return f"{self.kind}: {self.subject}: {self.message}{suffix}"


@dataclass(frozen=True)
class Freed:
    """What ``prune`` or ``remove`` deleted."""

    blobs: int = 0
    temporary: int = 0
    """Leftovers of interrupted writes."""
    bytes: int = 0


@dataclass(frozen=True)
class Removed:
    """The names ``remove`` forgot and what it freed."""

    names: tuple[str, ...]
    freed: Freed


class Cache(ContentStore):
    """The content-addressed image cache (an OCI image layout) and its maintenance."""

    @classmethod
    def open(cls, root: Path | str | None = None) -> Cache:
        """The cache at ``root``, or at :func:`~kitdsl.oci.store.default_cache_dir`."""
        return cls(Path(root) if root is not None else default_cache_dir())

    def ls(self) -> list[CacheEntry]:
        """Every named image, sorted by name."""
        entries = []
        for name, descriptor in self.refs().items():
            recorded = recorded_platforms(descriptor)
            result = walk(self, descriptor, recorded)
            platforms = recorded if recorded is not None else result.platforms
            fetched = (descriptor.annotations or {}).get(FETCHED_ANNOTATION)
            entries.append(
                CacheEntry(
                    name=name,
                    digest=descriptor.digest,
                    media_type=descriptor.media_type,
                    platforms=tuple(str(p) for p in platforms),
                    size=result.size,
                    complete=result.complete,
                    fetched=_parse_time(fetched),
                )
            )
        return entries

    def verify(self, *, repair: bool = False) -> list[Problem]:
        """Check every blob against its name and every ref for the content it needs.

        With ``repair``, corrupt blobs are deleted, refs missing content are forgotten (pull
        them again), and an unreadable ``index.json`` is moved aside to
        ``index.json.corrupt``. An empty list means the cache is sound.
        """
        problems: list[Problem] = []
        with self.exclusive() if repair else self.lease():
            try:
                roots = self.read_index()
            except CacheError as error:
                problems.append(
                    Problem("unreadable-index", str(self.index_path), error.message, repair)
                )
                roots = []
                if repair:
                    os.replace(self.index_path, self.index_path.with_name("index.json.corrupt"))
            corrupt = set()
            for digest, actual in self._hash_all():
                if actual == digest:
                    continue
                corrupt.add(digest)
                message = f"content hashes to {actual}" if actual else "unreadable"
                problems.append(Problem("corrupt-blob", digest, message, repair))
                if repair:
                    with contextlib.suppress(FileNotFoundError):
                        self.blob_path(digest).unlink()
            source = _Without(self, corrupt)
            dangling = []
            for descriptor in roots:
                result = walk(source, descriptor, recorded_platforms(descriptor))
                if result.complete:
                    continue
                dangling.append(descriptor)
                subject = ref_name(descriptor) or descriptor.digest
                missing = "; ".join(str(m) for m in result.missing[:3])
                more = len(result.missing) - 3
                message = f"needs {missing}" + (f" and {more} more" if more > 0 else "")
                problems.append(Problem("dangling-ref", subject, message, repair))
            if repair and dangling:
                self.write_index(d for d in roots if d not in dangling)
        return problems

    def prune(self) -> Freed:
        """Delete blobs no ref reaches and leftovers of interrupted writes.

        Refuses to run on an unreadable ``index.json`` rather than treat every blob as garbage.
        """
        with self.exclusive():
            keep: set[str] = set()
            for descriptor in self.read_index():
                keep.update(walk(self, descriptor).reached)
            garbage = set(self.blob_digests()) - keep
            return self._delete(garbage, sweep=True)

    def remove(self, names: Iterable[str], *, prune: bool = False) -> Removed:
        """Forget ``names``; with ``prune``, also delete the blobs only they reached.

        Nothing is removed when one of the names is not in the cache.
        """
        keys = list(dict.fromkeys(ref_key(name) for name in names))
        with self.exclusive() if prune else self.index_lock():
            roots = self.read_index()
            by_name = {ref_name(d): d for d in roots}
            unknown = [key for key in keys if key not in by_name]
            if unknown:
                raise CacheError(
                    f"not in the cache: {', '.join(unknown)}",
                    hint="`kitdsl cache ls` lists the cached names",
                )
            remaining = [d for d in roots if ref_name(d) not in keys]
            self.write_index(remaining)
            if not prune:
                return Removed(tuple(keys), Freed())
            candidates: set[str] = set()
            for key in keys:
                candidates.update(walk(self, by_name[key]).reached)
            for descriptor in remaining:
                candidates.difference_update(walk(self, descriptor).reached)
            return Removed(tuple(keys), self._delete(candidates, sweep=False))

    def export(
        self,
        name: str,
        output: Path | BinaryIO,
        *,
        format: ArchiveFormat = "oci",
        platform: Platform | str | None = None,
    ) -> Exported:
        """Write ``name`` as an OCI layout tar or a ``docker load`` tar; see
        :func:`kitdsl.oci.archive.export_image`."""
        return export_image(self, name, output, format=format, platform=platform)

    def import_archive(
        self, path: Path | str, *, name: str | None = None, record: bool = True
    ) -> list[Imported]:
        """Add the images of an OCI layout tar or docker archive; see
        :func:`kitdsl.oci.archive_import.import_archive`."""
        return import_archive(self, path, name=name, record=record)

    def _hash_all(self) -> list[tuple[str, str | None]]:
        """(name, actual digest or None when unreadable) for every blob, hashed in parallel
        (hashlib releases the GIL on large buffers)."""
        digests = self.blob_digests()
        workers = max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(zip(digests, pool.map(self._hash_blob, digests), strict=True))

    def _hash_blob(self, digest: str) -> str | None:
        hasher = hashlib.sha256()
        try:
            with self.open_blob(digest) as handle:
                while chunk := handle.read(1 << 20):
                    hasher.update(chunk)
        except OSError:
            return None
        return f"{ALGORITHM}:{hasher.hexdigest()}"

    def _delete(self, digests: Iterable[str], *, sweep: bool) -> Freed:
        blobs = temporary = freed = 0
        for digest in sorted(digests):
            path = self.blob_path(digest)
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
                blobs += 1
        if sweep:
            # Under the exclusive lock no write is in progress: every temporary file is a
            # leftover of a process that was killed.
            for folder in (self.root, self.blobs):
                for path in folder.glob(f"{TEMP_PREFIX}*"):
                    with contextlib.suppress(FileNotFoundError):
                        freed += path.stat().st_size
                        path.unlink()
                        temporary += 1
        return Freed(blobs=blobs, temporary=temporary, bytes=freed)


class _Without:
    """The cache as a walk should see it: corrupt blobs count as missing."""

    def __init__(self, store: ContentStore, excluded: set[str]) -> None:
        self.store = store
        self.excluded = excluded

    def has_blob(self, digest: str) -> bool:
        return digest not in self.excluded and self.store.has_blob(digest)

    def read_blob(self, digest: str) -> bytes:
        return self.store.read_blob(digest)


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
