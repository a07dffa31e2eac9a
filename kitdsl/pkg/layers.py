"""Writing image layers into the content store: gzip'd tars, built from entries as they come.

A :class:`LayerWriter` takes tar entries (a header and, for a file, a reader) and streams them
as a PAX tar, compressed with kitdsl's deterministic gzip, straight into a blob of the store;
the uncompressed bytes are hashed on the way for the layer's ``diff_id``. Nothing is held in
memory, and an interrupted layer leaves no blob behind (the store publishes a blob only when it
is complete).

:func:`deb_entries` gives the files of ``.deb`` packages as such entries, filtered the way a
:class:`~kitdsl.pkg.package.Package` asks (``keep``, ``drop``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kitdsl.errors import PackageError
from kitdsl.log import warn
from kitdsl.oci.media import OCI_LAYER_GZIP, Descriptor
from kitdsl.oci.store import BlobWriter, ContentStore
from kitdsl.outputs.entry import Entry
from kitdsl.outputs.pgzip import GzipWriter
from kitdsl.outputs.tar import TarWriter

__all__ = ["Layer", "LayerWriter", "deb_entries", "matches"]


@dataclass(frozen=True)
class Layer:
    """A layer written to the store."""

    descriptor: Descriptor
    diff_id: str


class _Hashing:
    """Passes bytes on to a sink, hashing them."""

    def __init__(self, sink: GzipWriter) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()

    def write(self, data: bytes, /) -> None:
        self.hash.update(data)
        self.sink.write(data)


class LayerWriter:
    """A layer being written; a context manager whose result is :attr:`layer`."""

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        self._blob = store.write_blob(what="layer")
        self._writer: BlobWriter | None = None
        self._gzip: GzipWriter | None = None
        self._tar: TarWriter | None = None
        self._hashing: _Hashing | None = None
        self.layer: Layer | None = None
        self.entries = 0

    def __enter__(self) -> LayerWriter:
        self._writer = self._blob.__enter__()
        self._gzip = GzipWriter(self._writer)
        self._hashing = _Hashing(self._gzip)
        self._tar = TarWriter(self._hashing)
        return self

    def add(self, entry: Entry) -> None:
        """Append one entry."""
        assert self._tar is not None, "use LayerWriter in a with block"
        self._tar.add(entry.info, entry.data)
        self.entries += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._gzip is not None and self._tar is not None and self._hashing is not None
        if kind is None:
            self._tar.close()
            self._gzip.close()
        else:
            self._gzip.abort()
        self._blob.__exit__(kind, error, traceback)
        if kind is None:
            assert self._writer is not None
            digest = self._writer.verifier.digest
            descriptor = Descriptor(
                media_type=OCI_LAYER_GZIP, digest=digest, size=self._writer.size
            )
            self.layer = Layer(descriptor, f"sha256:{self._hashing.hash.hexdigest()}")


def matches(path: str, patterns: Sequence[str]) -> bool:
    """Whether ``path`` (or a folder above it) matches one of the glob ``patterns``."""
    parts = path.split("/")
    candidates = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(c, p) for c in candidates for p in patterns)


def deb_entries(
    debs: Iterable[tuple[str, Path]],
    *,
    keep: Sequence[str] | None,
    drop: Sequence[str],
    package: str,
) -> Iterator[Entry]:
    """The files of the ``.deb`` files ``debs`` (name, path), in order, filtered.

    A file is left out when it matches ``drop``, or when ``keep`` is given and it matches none
    of its globs; a directory is written only when something in it is. The first package to
    ship a path wins (dpkg refuses two packages shipping one file); a later one is warned
    about. ``package`` names the package being built, for messages.
    """
    from kitdsl.pkg.debian import DebFile

    written: set[str] = set()
    for deb_name, path in debs:
        pending: dict[str, tarfile.TarInfo] = {}  # directories not written yet
        for member in DebFile(path).members():
            info, name = member.info, member.name
            if info.isdir():
                if name not in written:
                    pending[name] = info
                continue
            if matches(name, drop) or (keep is not None and not matches(name, keep)):
                continue
            if name in written:
                warn(f"package {package}: {deb_name} also ships {name}; the first one is kept")
                continue
            if info.islnk() and info.linkname not in written:
                raise PackageError(
                    f"package {package}: {name} in {deb_name} is a hard link to "
                    f"{info.linkname}, which is not kept",
                    hint=f"keep {info.linkname} too",
                )
            yield from _parents(name, pending, written)
            written.add(name)
            yield Entry(info, member.reader)
        if keep is None:  # empty directories are part of the package too
            for name in list(pending):
                # A folder whose contents would all be dropped is dropped with them.
                if not matches(f"{name}/-", drop) and name in pending:
                    yield from _parents(f"{name}/-", pending, written)


def _parents(name: str, pending: dict[str, tarfile.TarInfo], written: set[str]) -> Iterator[Entry]:
    """The directories above ``name`` not written yet, outermost first."""
    parts = name.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        parent = "/".join(parts[:depth])
        if parent in written:
            continue
        info = pending.pop(parent, None)
        if info is None:  # a folder the package does not list: made as dpkg makes it
            info = tarfile.TarInfo(parent)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        written.add(parent)
        yield Entry(info)
