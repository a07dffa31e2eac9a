"""A root file system stream cut into segments, and a cache of their encoded bytes.

Building the same system again mostly repeats work: the same images are flattened into the
same entries, which are encoded into the same bytes. A :class:`SegmentedStream` is a root file
system stream cut into :class:`Segment` runs (the modules, each image's files under its bundle,
each bundle's configuration, the files section), each with a *key*: a digest of everything its
entries depend on. An encoder that can encode a segment independently of what comes before it
(the initrd's cpio and gzip, see :mod:`kitdsl.outputs.pgzip`; the tar) keeps the bytes of each
keyed segment in a :class:`SegmentCache`, and the next build copies them instead of flattening
and compressing again: a changed service costs its own segments and the copying of the rest.

Iterating a :class:`SegmentedStream` gives its entries, as any stream, so a consumer that knows
nothing of segments still works.

The cache is a folder: ``<encoding>/<key[:2]>/<key>.seg`` holds the bytes, and ``<key>.json``
beside it what else a reuse needs (the size of the bytes, the length and CRC-32 of the input
for compressed encodings, the directories the segment holds); a segment whose bytes are not
the size recorded is ignored, and encoded again. Both are written under temporary names and
renamed, the data first: a segment with its ``.json`` is complete. Reading a segment touches
its ``.json``, so :meth:`SegmentCache.prune` can drop those not used for a while. A segment
that cannot be written (a full disk) is warned about and skipped: the build still succeeds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitdsl.fsutil import files_digest, json_digest
from kitdsl.log import warn
from kitdsl.outputs.entry import Entry

__all__ = [
    "CachedSegment",
    "Segment",
    "SegmentCache",
    "SegmentTap",
    "SegmentedStream",
    "code_digest",
    "key_of",
]

TEMP_PREFIX = ".tmp-"
FOLDERS = "folders"


CODE = ("assemble", "outputs")
"""The parts of kitdsl that decide the bytes of a segment."""


@functools.cache
def code_digest() -> str:
    """A digest of the code that assembles and encodes (:data:`CODE`): part of every key, so
    that a kitdsl that flattens or encodes differently never reuses what another one kept."""
    package = Path(__file__).resolve().parent.parent
    return files_digest(
        package, sorted(path for part in CODE for path in (package / part).rglob("*.py"))
    )


def key_of(**parts: Any) -> str:
    """A segment key: the SHA-256 of ``parts`` as canonical JSON."""
    return json_digest(parts)


@dataclass(frozen=True)
class Segment:
    """A run of entries; the same ``key`` always means the same entries."""

    open: Callable[[], contextlib.AbstractContextManager[Iterable[Entry]]]
    """Produces the entries (valid inside the ``with`` block)."""
    key: str | None = None
    """What the entries depend on; ``None`` for a segment never cached (it is cheap, or
    depends on something outside any key)."""
    label: str = ""
    """What the segment is, for messages (``services[1]: docker.io/library/nginx:1``)."""


class SegmentedStream:
    """A root file system stream made of segments, read as often as needed.

    ``produce`` gives the segments, afresh for each pass. ``directories`` is emptied at the
    start of a pass and updated with every directory of the stream as its segments are read or
    reused, so a later segment can depend on what came before (the files section only makes
    the parent directories nothing made).
    """

    def __init__(
        self, produce: Callable[[], Iterable[Segment]], directories: set[str] | None = None
    ) -> None:
        self._produce = produce
        self.directories = directories if directories is not None else set()

    def segments(self) -> Iterator[Segment]:
        """A pass over the segments, in order; each must be read (:meth:`read`) or reused
        (:meth:`reused`) before the next is taken."""
        self.directories.clear()
        yield from self._produce()

    @contextlib.contextmanager
    def read(self, segment: Segment, seen: list[str] | None = None) -> Iterator[Iterator[Entry]]:
        """The entries of ``segment``; its directories are noted (and added to ``seen``)."""
        with segment.open() as entries:
            yield self._note(entries, seen)

    def reused(self, directories: Iterable[str]) -> None:
        """A segment was taken from a cache: note the directories it holds."""
        self.directories.update(directories)

    def _note(self, entries: Iterable[Entry], seen: list[str] | None) -> Iterator[Entry]:
        for entry in entries:
            if entry.info.isdir():
                name = "/".join(p for p in entry.info.name.split("/") if p not in ("", "."))
                self.directories.add(name)
                if seen is not None:
                    seen.append(name)
            yield entry

    def __iter__(self) -> Iterator[Entry]:
        for segment in self.segments():
            with self.read(segment) as entries:
                yield from entries


@dataclass(frozen=True)
class CachedSegment:
    """A segment's encoded bytes in the cache."""

    path: Path
    """The bytes, as the encoder wrote them."""
    length: int
    """Bytes of input the encoder was given (the uncompressed size, for compressed ones)."""
    crc: int
    """CRC-32 of that input (compressed encodings), else 0."""
    directories: tuple[str, ...]
    """The directories among the segment's entries."""


@dataclass
class SegmentTap:
    """Where an encoder writes a segment's bytes while it encodes them; :meth:`commit` keeps
    them, :meth:`discard` (or an error while writing) drops them."""

    cache: SegmentCache
    encoding: str
    key: str
    directories: list[str] = field(default_factory=list)
    """Filled by :meth:`SegmentedStream.read` while the segment is read."""
    _handle: Any = None
    _written: int = 0
    _temporary: str = ""
    _failed: bool = False
    _committed: bool = False

    def __post_init__(self) -> None:
        folder = self.cache.path(self.encoding, self.key).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, self._temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
            self._handle = os.fdopen(fd, "wb")
        except OSError as error:
            self._fail(error)

    def write(self, data: bytes, /) -> None:
        """Keep ``data`` (the encoder's next bytes of the segment)."""
        if self._failed:
            return
        try:
            self._handle.write(data)
            self._written += len(data)
        except OSError as error:
            self._fail(error)

    def commit(self, crc: int, length: int) -> None:
        """The segment is complete (``length`` bytes of input, whose CRC-32 is ``crc`` for a
        compressed encoding): publish it, data first, then its description."""
        if self._failed or self._committed:
            return
        self._committed = True
        path = self.cache.path(self.encoding, self.key)
        meta = {
            "bytes": self._written,
            "length": length,
            "crc": crc,
            "directories": self.directories,
        }
        try:
            self._handle.close()
            os.replace(self._temporary, path)
            fd, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
            with os.fdopen(fd, "w") as handle:
                json.dump(meta, handle, separators=(",", ":"))
            os.replace(temporary, path.with_suffix(".json"))
        except OSError as error:
            self._fail(error)

    def discard(self) -> None:
        """Drop what was written, unless it was committed."""
        if not self._committed:
            self._failed = True
            self._close()

    def _fail(self, error: OSError) -> None:
        if not self._failed:
            warn(
                f"cannot keep an assembled segment in {self.cache.root}: "
                f"{error.strerror or error}; the next build will redo its work"
            )
        self._failed = True
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self._handle.close()
        if self._temporary:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)


class SegmentCache:
    """Encoded segments kept in ``root``, by encoding and key.

    With ``reuse=False`` nothing is read from the cache (every segment is encoded again, as
    ``kitdsl build --rebuild`` wants) but what is encoded is still kept.
    """

    def __init__(self, root: Path, *, reuse: bool = True) -> None:
        self.root = root
        self.reuse = reuse

    def path(self, encoding: str, key: str) -> Path:
        """Where the bytes of a segment are kept."""
        return self.root / encoding / key[:2] / f"{key}.seg"

    def get(self, encoding: str, key: str | None) -> CachedSegment | None:
        """The cached segment, if it is there, complete and reuse is on."""
        if key is None or not self.reuse:
            return None
        path = self.path(encoding, key)
        meta_path = path.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
            segment = CachedSegment(
                path,
                int(meta["length"]),
                int(meta["crc"]),
                tuple(str(name) for name in meta["directories"]),
            )
            if path.stat().st_size != int(meta["bytes"]):
                return None  # damaged: encode it again (and replace it)
            os.utime(meta_path)  # recently used: kept by prune
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return segment

    def folder(self, key: str) -> Path:
        """A folder for files extracted once and kept (a kernel image's parts): complete once
        it holds a file named ``complete``, which :meth:`prune` also goes by."""
        return self.root / FOLDERS / key

    def tap(self, encoding: str, key: str | None) -> SegmentTap | None:
        """A tap to keep a segment being encoded (``None`` for a segment without a key)."""
        return SegmentTap(self, encoding, key) if key is not None else None

    def size(self) -> tuple[int, int]:
        """(segments, bytes) kept."""
        count = total = 0
        for path in self.root.glob("*/*/*.seg"):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
                count += 1
        return count, total

    def prune(self, *, older_than: float = 0.0) -> tuple[int, int]:
        """Delete segments and folders not used for ``older_than`` seconds (all with 0) and
        leftovers of interrupted writes; return (segments and folders, bytes) freed."""
        limit = time.time() - older_than
        count = total = 0
        for meta in self.root.glob("*/*/*.json"):
            if meta.parent.parent.name == FOLDERS:
                continue  # a file of a kept folder, which goes by its marker (below)
            with contextlib.suppress(OSError):
                if meta.stat().st_mtime <= limit:
                    data = meta.with_suffix(".seg")
                    size = data.stat().st_size if data.exists() else 0
                    meta.unlink()
                    data.unlink(missing_ok=True)
                    count, total = count + 1, total + size
        for path in self.root.glob("*/*/*"):
            stale = path.name.startswith(TEMP_PREFIX) or (
                path.suffix == ".seg" and not path.with_suffix(".json").exists()
            )
            if stale and path.parent.parent.name != FOLDERS:
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
                    path.unlink()
        for folder in self.root.glob(f"{FOLDERS}/*"):
            marker = folder / "complete"
            with contextlib.suppress(OSError):
                old = not marker.exists() or marker.stat().st_mtime <= limit
                if folder.name.startswith(TEMP_PREFIX) or old:
                    total += sum(f.stat().st_size for f in folder.iterdir())
                    shutil.rmtree(folder)
                    count += 0 if folder.name.startswith(TEMP_PREFIX) else 1
        return count, total
