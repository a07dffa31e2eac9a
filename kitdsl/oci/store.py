"""The content-addressed image cache: an OCI image layout on disk.

Blobs live at ``blobs/sha256/<hex>`` and are only ever created whole: bytes go to a temporary
file in the same folder, are verified against the expected digest and size, fsync'd, and renamed
into place. A process killed at any instant leaves at most a temporary file, which is never
read and is swept by ``prune``. Names (``docker.io/library/alpine:3.20``) are recorded in
``index.json`` with the ``org.opencontainers.image.ref.name`` annotation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kitdsl.oci.digest import Verifier, hex_of

LAYOUT_VERSION = '{"imageLayoutVersion":"1.0.0"}'
TEMP_PREFIX = ".tmp-"


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


class ContentStore:
    """An OCI image layout used as a cache of blobs (the refs in ``index.json`` come on top)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"

    def ensure(self) -> None:
        """Create the layout's skeleton if it is not there yet."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            _atomic_write(layout, LAYOUT_VERSION.encode())

    def blob_path(self, digest: str) -> Path:
        """Where the blob with ``digest`` is (or would be)."""
        return self.blobs / hex_of(digest)

    def has_blob(self, digest: str) -> bool:
        """True when the blob is in the store."""
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        """The whole blob (for small documents: manifests, configs)."""
        return self.blob_path(digest).read_bytes()

    @contextlib.contextmanager
    def write_blob(
        self, *, digest: str | None = None, size: int | None = None, what: str = "blob"
    ) -> Iterator[BlobWriter]:
        """Write a blob; on leaving the block it is verified and published atomically.

        Any exception (including a digest or size mismatch) removes the temporary file and
        leaves the store as it was. When ``digest`` is ``None`` the blob is stored under the
        digest of what was written (``writer.verifier.digest``).
        """
        self.ensure()
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
            _fsync_dir(self.blobs)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def put_blob(self, data: bytes, *, digest: str | None = None) -> str:
        """Store ``data`` (verified against ``digest`` if given) and return its digest."""
        with self.write_blob(digest=digest, size=len(data) if digest else None) as writer:
            writer.write(data)
        return writer.verifier.digest


def _atomic_write(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
