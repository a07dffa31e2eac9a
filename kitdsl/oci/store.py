"""The content-addressed image cache: an OCI image layout on disk.

Blobs live at ``blobs/sha256/<hex>`` and are only ever created whole: bytes go to a temporary
file in the same folder, are verified against the expected digest and size, fsync'd, and renamed
into place. A process killed at any instant leaves at most a temporary file, which is never
read and is swept by ``prune``. Names (``docker.io/library/alpine:3.20``) are recorded in
``index.json`` with the ``org.opencontainers.image.ref.name`` annotation, so ``skopeo`` and
``umoci`` can read the cache as they read any OCI layout.

Several processes share one cache through two ``flock`` files:

* ``.lock`` serialises every read-modify-write of ``index.json``. Plain reads need no lock:
  the file is replaced by an atomic rename, so a reader sees the old or the new version.
* ``.gc.lock`` keeps garbage collection away from content being added. Blob writes and
  :meth:`ContentStore.lease` hold it shared (writers never wait for each other); ``prune``,
  ``rm`` and ``verify --repair`` hold it exclusively, so they never delete a blob a pull has
  written but not yet named, nor a temporary file still being written.

The lock order is always ``.gc.lock`` then ``.lock``, so the two cannot deadlock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from kitdsl.errors import CacheError
from kitdsl.fsutil import atomic_write_bytes, fsync_dir
from kitdsl.oci.digest import DigestError, Verifier, hex_of, is_digest
from kitdsl.oci.media import OCI_INDEX, REF_NAME_ANNOTATION, Descriptor, Platform
from kitdsl.oci.walk import format_platforms, parse_platforms, walk
from kitdsl.reference import Reference, ReferenceSyntaxError, parse

LAYOUT_VERSION = '{"imageLayoutVersion":"1.0.0"}'
TEMP_PREFIX = ".tmp-"
CACHE_ENV = "KITDSL_CACHE"
PLATFORMS_ANNOTATION = "dev.kitdsl.cache.platforms"
"""On a ref's descriptor: the platforms fetched (``linux/amd64,linux/arm64``)."""
FETCHED_ANNOTATION = "dev.kitdsl.cache.fetched"
"""On a ref's descriptor: when the name was last resolved (UTC, ISO 8601), so a caller can
decide when a tag is worth checking again."""
DIFF_IDS = "diff_ids"
"""Folder of the layout recording, per layer blob, the ``diff_id`` it was checked against."""
REPAIR_HINT = "run `kitdsl cache verify --repair`, then pull again what it removed"


def default_cache_dir() -> Path:
    """``$KITDSL_CACHE``, else ``$XDG_CACHE_HOME/kitdsl``, else ``~/.cache/kitdsl``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "kitdsl"
    return Path.home() / ".cache" / "kitdsl"


def ref_key(name: str) -> str:
    """The name a ref is recorded under: canonical, with ``:latest`` when no tag is given.

    ``alpine`` → ``docker.io/library/alpine:latest``; ``x@sha256:..`` stays pinned by digest;
    ``x:tag@sha256:..`` is recorded as ``x:tag`` (the digest is checked, not stored in the key).
    """
    reference = parse_name(name)
    if reference.tag is None and reference.digest is not None:
        return f"{reference.name}@{reference.digest}"
    return f"{reference.name}:{reference.tag or 'latest'}"


def ref_name(descriptor: Descriptor) -> str | None:
    """The name a descriptor of ``index.json`` is recorded under, if any."""
    return (descriptor.annotations or {}).get(REF_NAME_ANNOTATION)


def recorded_platforms(descriptor: Descriptor) -> list[Platform] | None:
    """The platforms recorded as fetched for a ref, or ``None`` when none were recorded."""
    text = (descriptor.annotations or {}).get(PLATFORMS_ANNOTATION)
    return None if text is None else parse_platforms(text)


class BlobWriter:
    """Receives a blob's bytes; the blob appears in the store only if they verify."""

    def __init__(self, handle: BinaryIO, verifier: Verifier) -> None:
        self._handle = handle
        self.verifier = verifier

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (checked against the announced size as it comes)."""
        self.verifier.update(chunk)
        self._handle.write(chunk)

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self.verifier.size


# Exclusive locks taken by a thread that already holds a lease on the same cache would wait for
# itself forever; this lets us refuse instead.
_leases = threading.local()


class ContentStore:
    """An OCI image layout used as a cache: verified blobs plus named refs in ``index.json``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.index_path = self.root / "index.json"

    def ensure(self) -> None:
        """Create the layout's skeleton if it is not there yet."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            atomic_write_bytes(layout, LAYOUT_VERSION.encode(), prefix=TEMP_PREFIX)

    # -- blobs -----------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where the blob with ``digest`` is (or would be)."""
        return self.blobs / hex_of(digest)

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        """True when the blob is in the store (with ``size`` bytes, when given: a blob
        damaged to another length is then fetched again, which replaces it atomically)."""
        try:
            stat = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or stat.st_size == size

    def read_blob(self, digest: str) -> bytes:
        """The whole blob (for small documents: manifests, configs)."""
        return self.blob_path(digest).read_bytes()

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob, open for streaming (layers)."""
        return self.blob_path(digest).open("rb")

    def blob_digests(self) -> list[str]:
        """Every blob in the store, sorted; temporary files are not blobs."""
        if not self.blobs.is_dir():
            return []
        names = (entry.name for entry in os.scandir(self.blobs) if entry.is_file())
        return sorted(f"sha256:{name}" for name in names if is_digest(f"sha256:{name}"))

    @contextlib.contextmanager
    def write_blob(
        self, *, digest: str | None = None, size: int | None = None, what: str = "blob"
    ) -> Iterator[BlobWriter]:
        """Write a blob; on leaving the block it is verified and published atomically.

        Any exception (including a digest or size mismatch) removes the temporary file and
        leaves the store as it was. When ``digest`` is ``None`` the blob is stored under the
        digest of what was written (``writer.verifier.digest``). Two writers of the same blob
        are fine: both rename identical, verified bytes into place.
        """
        self.ensure()
        with self.lease():
            fd, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.blobs)
            try:
                with os.fdopen(fd, "wb") as handle:
                    writer = BlobWriter(handle, Verifier(digest, size, what))
                    yield writer
                    handle.flush()
                    os.fsync(handle.fileno())
                final = writer.verifier.finish()
                os.chmod(temporary, 0o444)
                os.replace(temporary, self.blob_path(final))
                fsync_dir(self.blobs)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
                raise

    def put_blob(self, data: bytes, *, digest: str | None = None) -> str:
        """Store ``data`` (verified against ``digest`` if given) and return its digest."""
        with self.write_blob(digest=digest, size=len(data) if digest else None) as writer:
            writer.write(data)
        return writer.verifier.digest

    # -- layers ----------------------------------------------------------------------------

    def diff_id_checked(self, digest: str, diff_id: str) -> bool:
        """True when the layer blob ``digest`` was found to uncompress to ``diff_id`` before.

        Blobs are immutable and verified when written, so the check never needs repeating;
        flattening an image again then skips hashing its uncompressed layers.
        """
        try:
            return (self.root / DIFF_IDS / hex_of(digest)).read_text() == diff_id
        except (OSError, ValueError):
            return False

    def note_diff_id(self, digest: str, diff_id: str) -> None:
        """Remember that the layer blob ``digest`` uncompresses to ``diff_id``."""
        with contextlib.suppress(OSError):  # only a shortcut is lost
            atomic_write_bytes(
                self.root / DIFF_IDS / hex_of(digest), diff_id.encode(), prefix=TEMP_PREFIX
            )

    # -- locks -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self) -> Iterator[None]:
        """Keep ``prune`` away while the block adds content (blobs first, then the ref).

        A pull that finds a blob already present and skips it relies on the blob still being
        there when it records the ref; holding a lease across the pull guarantees it.
        """
        self.ensure()
        key = str(self.root.resolve())
        held = _held()
        with _flock(self.root / ".gc.lock", shared=True):
            held[key] = held.get(key, 0) + 1
            try:
                yield
            finally:
                held[key] -= 1

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the whole cache: no writer, no other collector, no index update meanwhile."""
        self.ensure()
        if _held().get(str(self.root.resolve()), 0):
            raise CacheError(
                f"cannot collect garbage in {self.root} while this thread is adding content"
            )
        with _flock(self.root / ".gc.lock", shared=False), self.index_lock():
            yield

    @contextlib.contextmanager
    def index_lock(self) -> Iterator[None]:
        """Serialise read-modify-write cycles of ``index.json``."""
        self.ensure()
        with _flock(self.root / ".lock", shared=False):
            yield

    # -- refs ------------------------------------------------------------------------------

    def read_index(self) -> list[Descriptor]:
        """Every descriptor of ``index.json`` (an absent file is an empty cache)."""
        try:
            data = json.loads(self.index_path.read_bytes())
            manifests = data["manifests"] if isinstance(data, dict) else None
            if not isinstance(manifests, list):
                raise ValueError("it has no 'manifests' list")
            return [Descriptor.model_validate(item) for item in manifests]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, ValidationError, DigestError) as error:
            reason = str(error).splitlines()[0]
            raise CacheError(
                f"the cache index {self.index_path} is unreadable: {reason}", hint=REPAIR_HINT
            ) from None

    def write_index(self, descriptors: Iterable[Descriptor]) -> None:
        """Replace ``index.json`` atomically; call under :meth:`index_lock`."""
        ordered = sorted(descriptors, key=lambda d: (ref_name(d) or "", d.digest))
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor.to_json() for descriptor in ordered],
        }
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        atomic_write_bytes(self.index_path, text.encode(), prefix=TEMP_PREFIX)

    def refs(self) -> dict[str, Descriptor]:
        """Every named ref, sorted by name."""
        named = {ref_name(d): d for d in self.read_index()}
        return {name: named[name] for name in sorted(n for n in named if n is not None)}

    def get_ref(self, name: str) -> Descriptor | None:
        """The root descriptor recorded for ``name``, or ``None``.

        A name pinned by digest (``alpine@sha256:..``) is found by digest, preferring a ref of
        the same repository, since any name for the same root is the same content.
        """
        reference = parse_name(name)
        if reference.digest is None:
            return self.refs().get(ref_key(name))
        matches = [(key, d) for key, d in self.refs().items() if d.digest == reference.digest]
        matches.sort(key=lambda item: not _same_repository(item[0], reference.name))
        return matches[0][1] if matches else None

    def find_digest(self, digest: str) -> list[str]:
        """The names whose root is ``digest``."""
        return [name for name, d in self.refs().items() if d.digest == digest]

    def set_ref(
        self,
        name: str,
        descriptor: Descriptor,
        *,
        platforms: Iterable[Platform | str] | None = None,
    ) -> Descriptor:
        """Record ``descriptor`` as the root of ``name`` and return what was recorded.

        ``platforms`` are those fetched when the root is an index (only they must be
        present); fetching another platform of the root already recorded adds to them. The
        ref is recorded only when every blob it needs is in the store, so a ref never points
        at content that is not there.
        """
        key = ref_key(name)
        pinned = parse_name(name).digest
        if pinned is not None and pinned != descriptor.digest:
            raise CacheError(f"{name} is pinned to {pinned}, not {descriptor.digest}")
        with self.index_lock():
            descriptors = self.read_index()
            previous = next((d for d in descriptors if ref_name(d) == key), None)
            annotations = dict(descriptor.annotations or {})
            annotations[REF_NAME_ANNOTATION] = key
            annotations[FETCHED_ANNOTATION] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if platforms is not None:
                fetched = [*platforms]
                if previous is not None and previous.digest == descriptor.digest:
                    fetched += recorded_platforms(previous) or []
                annotations[PLATFORMS_ANNOTATION] = format_platforms(fetched)
            recorded = descriptor.model_copy(update={"annotations": annotations})
            wanted = recorded_platforms(recorded)
            result = walk(self, recorded, wanted)
            absent = [p for p in wanted or [] if not any(h.matches(p) for h in result.platforms)]
            if not result.complete or absent:
                raise CacheError(
                    f"cannot record {key}: content it needs is not in the cache",
                    details=(
                        *(f"no image for {p} in {descriptor.digest}" for p in absent),
                        *(str(m) for m in result.missing[:10]),
                    ),
                )
            self.write_index([*(d for d in descriptors if ref_name(d) != key), recorded])
        return recorded

    def remove_ref(self, name: str) -> Descriptor | None:
        """Forget ``name`` (its blobs stay until ``prune``); the removed descriptor, if any."""
        key = ref_key(name)
        with self.index_lock():
            descriptors = self.read_index()
            removed = [d for d in descriptors if ref_name(d) == key]
            if removed:
                self.write_index(d for d in descriptors if ref_name(d) != key)
        return removed[0] if removed else None


def _same_repository(key: str, repository: str) -> bool:
    return key.startswith(repository) and key[len(repository) : len(repository) + 1] in (":", "@")


def _held() -> dict[str, int]:
    """Leases this thread holds, by cache root."""
    held: dict[str, int] = _leases.__dict__.setdefault("held", {})
    return held


def parse_name(name: str) -> Reference:
    """``name`` parsed, or a :class:`CacheError` saying why it is not an image name."""
    try:
        return parse(name)
    except ReferenceSyntaxError as error:
        raise CacheError(f"invalid image name {name!r}: {error}") from None


@contextlib.contextmanager
def _flock(path: Path, *, shared: bool) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
