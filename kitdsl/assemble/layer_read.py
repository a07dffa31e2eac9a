"""Reading one layer blob: decompress it, verify it, and index its tar headers.

A layer is read once, front to back. Its uncompressed tar goes to an anonymous temporary file
(the *spool*) while its digests are computed; then only the tar headers are parsed, seeking
over file contents. File contents are read later, at any offset, with ``pread`` on the spool,
so files can be emitted in sorted order whatever layer they come from, without holding any of
them in memory. An uncompressed layer that is already a local file is not copied: the blob
itself is read at offsets.

The spool costs disk space equal to the uncompressed size of the layer (never memory: the file
is unlinked as soon as it is created, so nothing is left behind if the process dies).

Compression is recognised by the blob's first bytes, not by its media type, as Docker and
containerd do, because registries serve mislabelled layers. gzip is read with ISA-L
(``isal``), about three times as fast as zlib, when it is installed; zstd needs the optional
``zstandard`` package. Decompression runs in a short-lived thread of its own: once ISA-L's
vector code has run in a thread, zlib's deflate runs about a fifth slower in that thread *and in
every thread it starts afterwards* (measured on the EPYC of docs/performance.md; most likely
the vector registers' state, which a new thread inherits), and the thread that reads layers is
the one that compresses the initrd and starts its compression workers. Interrupted, the caller
tells that thread to stop at its next read.

The uncompressed tar is hashed and checked against the ``diff_id`` of the image
configuration, once per blob: the store remembers the blobs it checked (they are immutable),
and a later read skips the hash. The compressed blob was checked against its digest when it
entered the cache; it is hashed again here only for a layer without a ``diff_id``.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import os
import re
import stat
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from kitdsl.errors import ImageError

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
ZERO_BLOCK = bytes(BLOCK)
MAX_HEADER_READ = 16 << 20
"""No honest long name, link target or PAX header is this large; tarfile would read it whole."""
MAX_ENTRIES = 1_000_000
"""Per layer; each entry costs memory for its header until the image is flattened."""
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

try:  # ISA-L's gzip reader: the same bytes out, about three times as fast as zlib's
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib

    _GzipFile: Any = _igzip.GzipFile
    _GZIP_ERRORS: tuple[type[BaseException], ...] = (
        cast(type[BaseException], _isal_zlib.error),
        zlib.error,
    )
except ImportError:  # pragma: no cover - isal is a dependency, but wheels are not everywhere
    _GzipFile = gzip.GzipFile
    _GZIP_ERRORS = (zlib.error,)

LAYER_MEDIA_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
"""The media types of layers that hold a (possibly compressed) tar of file system changes."""


class LayerError(ImageError):
    """A layer of an image is corrupt, or holds something that must not be unpacked."""


@dataclass(frozen=True)
class LayerSource:
    """One layer of an image: where to read its blob and what it must hash to."""

    digest: str
    """The digest of the blob as stored (compressed)."""
    media_type: str
    """The descriptor's media type; compression is checked from the content too."""
    open: Callable[[], BinaryIO]
    """Opens the blob for reading from its start (a file of the content store, usually)."""
    diff_id: str | None = None
    """The digest of the uncompressed tar (the image config's ``rootfs.diff_ids``), if known."""
    size: int | None = None
    """The blob's size from its descriptor, if known."""
    checked: bool = False
    """The blob is known to uncompress to ``diff_id`` (checked before): no need to hash it."""
    on_checked: Callable[[], None] | None = None
    """Called once the uncompressed blob was found to match ``diff_id``."""


@dataclass(frozen=True)
class LayerLabel:
    """Which layer of which image is being read, for error messages."""

    image: str
    index: int
    count: int
    digest: str

    def error(self, problem: str, entry: str | None = None, **extra: Any) -> LayerError:
        """A :class:`LayerError` naming the image, the layer and, when given, the entry."""
        where = f"image {self.image}, layer {self.index + 1} of {self.count} ({self.digest})"
        if entry is not None:
            where += f", entry {entry!r}"
        return LayerError(f"{where}: {problem}", **extra)


class LayerData:
    """A layer's uncompressed tar on disk, readable at any offset (and by many readers)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.fd = handle.fileno()
        self.size = size

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at the end of the tar)."""
        return os.pread(self.fd, size, offset)

    def close(self) -> None:
        """Release the file (a spool disappears with it)."""
        self.handle.close()


class _Hashing:
    """A readable stream that hashes what passes through (unless ``hashing`` is false) and can
    give back a peeked prefix."""

    def __init__(
        self, raw: BinaryIO, *, hashing: bool = True, stop: threading.Event | None = None
    ) -> None:
        self.raw = raw
        self.hash = hashlib.sha256() if hashing else None
        self.size = 0
        self.stop = stop
        self._pending = b""

    def _pull(self, size: int) -> bytes:
        if self.stop is not None and self.stop.is_set():
            raise _Stopped
        data = self.raw.read(size)
        if self.hash is not None:
            self.hash.update(data)
        self.size += len(data)
        return data

    def peek(self, size: int) -> bytes:
        while len(self._pending) < size:
            data = self._pull(size - len(self._pending))
            if not data:
                break
            self._pending += data
        return self._pending[:size]

    def read(self, size: int = -1, /) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return self._pull(size)

    def readinto(self, buffer: Any, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, /) -> int:
        """Only for the interface gzip expects; a layer is read once, forwards."""
        raise OSError("a layer stream cannot seek")

    @property
    def digest(self) -> str | None:
        return f"sha256:{self.hash.hexdigest()}" if self.hash is not None else None


class _Stopped(Exception):
    """The reader of a layer was told to stop (the build was interrupted)."""


class _BoundedReads:
    """The file tarfile parses headers from; refuses the huge reads a hostile header asks for."""

    def __init__(self, handle: BinaryIO, label: LayerLabel) -> None:
        self.handle = handle
        self.label = label

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > MAX_HEADER_READ:
            raise self.label.error(f"a tar header claims {size} bytes of names or attributes")
        return self.handle.read(size)

    def write(self, data: bytes) -> int:
        """Part of the interface tarfile expects; it never writes here."""
        raise OSError("read only")

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def close(self) -> None:
        """The handle belongs to :class:`LayerData`."""


def read_layer(
    source: LayerSource, label: LayerLabel, workdir: Path | None
) -> tuple[LayerData, list[tarfile.TarInfo]]:
    """The layer's tar, ready for random access, and its headers in archive order.

    Raises :class:`LayerError` when the blob is not a valid (compressed) tar, is truncated, or
    does not match its digest or ``diff_id``.
    """
    if source.media_type not in LAYER_MEDIA_TYPES:
        raise label.error(f"has media type {source.media_type!r}, which is not a layer")
    try:
        raw = source.open()
    except OSError as error:
        raise label.error(f"cannot be read: {error.strerror or error}") from None
    try:
        data = _decompress(raw, source, label, workdir)
    finally:
        raw.close()
    try:
        return data, list(_headers(data, label))
    except BaseException:
        data.close()
        raise


def _decompress(
    raw: BinaryIO, source: LayerSource, label: LayerLabel, workdir: Path | None
) -> LayerData:
    """:func:`_uncompressed` run in a new thread (see the module documentation for why): its
    result is returned and its exception raised here. Interrupted here (Ctrl-C), the thread
    stops at its next read and what it wrote is dropped."""
    stop = threading.Event()
    executor = ThreadPoolExecutor(1, thread_name_prefix="kitdsl-layer")
    future = executor.submit(_uncompressed, raw, source, label, workdir, stop)
    try:
        data = future.result()
    except BaseException:
        stop.set()
        executor.shutdown(wait=True)
        if future.exception() is None:  # done by now: it finished as we were interrupted
            future.result().close()
        raise
    executor.shutdown(wait=True)
    return data


def _uncompressed(
    raw: BinaryIO,
    source: LayerSource,
    label: LayerLabel,
    workdir: Path | None,
    stop: threading.Event | None = None,
) -> LayerData:
    """The uncompressed tar in a file we can ``pread``, its digests checked (``stop``, once
    set, ends the reading with :class:`_Stopped`)."""
    stream = _Hashing(raw, hashing=source.diff_id is None, stop=stop)
    magic = stream.peek(4)
    if magic[:2] == GZIP_MAGIC:
        kind = "gzip"
        reader: Any = _GzipFile(fileobj=stream, mode="rb")
        errors: tuple[type[BaseException], ...] = (gzip.BadGzipFile, EOFError, *_GZIP_ERRORS)
    elif magic == ZSTD_MAGIC:
        kind = "zstd"
        reader, errors = _zstd_reader(stream, source, label)
    elif _is_local_file(raw):
        # Uncompressed and already on disk: hash it and read it in place.
        raw.seek(0)
        stream = _Hashing(raw, stop=stop)
        while stream.read(CHUNK):
            pass
        digest = stream.digest
        assert digest is not None
        _check_digests(stream, digest, source, label)
        handle = os.fdopen(os.dup(raw.fileno()), "rb")
        return LayerData(handle, stream.size)
    else:
        kind, reader, errors = "tar", stream, ()
    # Not a `with`: the spool outlives this function, in the LayerData that closes it.
    spool: BinaryIO = tempfile.TemporaryFile(dir=workdir, prefix=".kitdsl-layer-")  # noqa: SIM115
    try:
        tar_hash = None if source.checked else hashlib.sha256()
        size = 0
        try:
            while chunk := reader.read(CHUNK):
                if tar_hash is not None:
                    tar_hash.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            while stream.read(CHUNK):  # whatever follows the compressed stream counts too
                pass
        except errors as error:
            raise label.error(f"is not valid {kind} data: {_reason(error)}") from None
        spool.flush()
        if tar_hash is not None:
            _check_digests(stream, f"sha256:{tar_hash.hexdigest()}", source, label)
            if source.on_checked is not None and source.diff_id is not None:
                source.on_checked()
        else:
            _check_digests(stream, None, source, label)
        return LayerData(spool, size)
    except BaseException:
        spool.close()
        raise


def _reason(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return "it is truncated"
    return str(error) or type(error).__name__


def _zstd_reader(
    stream: _Hashing, source: LayerSource, label: LayerLabel
) -> tuple[Any, tuple[type[BaseException], ...]]:
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError:
        raise label.error(
            f"is compressed with zstd ({source.media_type}), which needs the Python package "
            "'zstandard'",
            hint="pip install zstandard, or use an image with gzip layers",
        ) from None
    reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    return reader, (zstandard.ZstdError,)


def _is_local_file(raw: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(raw.fileno()).st_mode) and raw.seekable()
    except (OSError, AttributeError, ValueError):
        return False


def _check_digests(
    stream: _Hashing, diff_id: str | None, source: LayerSource, label: LayerLabel
) -> None:
    hint = "the image content is corrupt; remove it from the cache and pull it again"
    if source.size is not None and stream.size != source.size:
        raise label.error(f"is {stream.size} bytes, not the {source.size} announced", hint=hint)
    if stream.digest is not None and stream.digest != source.digest:
        raise label.error(f"does not match its digest: it is {stream.digest}", hint=hint)
    if diff_id is not None and source.diff_id is not None and diff_id != source.diff_id:
        raise label.error(
            f"uncompressed, is {diff_id}, not the diff_id {source.diff_id} of the image "
            "configuration",
            hint=hint,
        )


def _headers(data: LayerData, label: LayerLabel) -> Iterator[tarfile.TarInfo]:
    """Every header of the tar, in order; contents are skipped, never read.

    The end of the archive is checked as Go's ``archive/tar`` (which Docker uses) checks it:
    the tar may simply end after an entry, or end with zero blocks; anything else there (a
    partial header, garbage, contents cut short) is corruption. tarfile alone would stop
    silently at the first header it cannot parse.
    """
    if data.size == 0:
        return  # an empty stream is an empty layer, as for Go's reader
    data.handle.seek(0)
    bounded = _BoundedReads(data.handle, label)
    try:
        tar = tarfile.TarFile(fileobj=bounded, mode="r", encoding="utf-8", errors="surrogateescape")
    except (tarfile.TarError, ValueError, EOFError, RecursionError) as error:
        raise label.error(f"is not a tar archive ({error})") from None
    offset, count, last = 0, 0, None
    while True:
        block = data.pread(BLOCK, offset)
        if not block:
            return
        if block == ZERO_BLOCK:
            following = data.pread(BLOCK, offset + BLOCK)
            if following.strip(b"\0") or 0 < len(following) < BLOCK:
                raise _corrupt(label, last, offset + BLOCK, "data after an end-of-archive block")
            return
        if len(block) < BLOCK:
            raise _corrupt(label, last, offset, "a header cut short")
        try:
            info, offset = _parse(tar, data, block, offset)
        except (tarfile.HeaderError, ValueError, EOFError, RecursionError) as error:
            raise _corrupt(label, last, offset, f"an invalid header ({error})") from None
        if offset > data.size:
            raise label.error("is truncated: its contents end early", entry=info.name)
        count += 1
        if count > MAX_ENTRIES:
            raise label.error(f"has more than {MAX_ENTRIES} entries")
        last = info.name
        yield info


_EXTENDED = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.GNUTYPE_SPARSE,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)
"""Header types that say something about the next header, or span more blocks."""


def _parse(
    tar: tarfile.TarFile, data: LayerData, block: bytes, offset: int
) -> tuple[tarfile.TarInfo, int]:
    """The entry whose header block at ``offset`` is ``block``, and the offset of the next.

    A plain header (most of every layer) is parsed from the block already read, as tarfile
    would parse it; extended headers (PAX, GNU long names, sparse files) and archives with
    PAX global headers go through tarfile itself, which reads what follows.
    """
    info = _ustar(block) or tarfile.TarInfo.frombuf(block, tar.encoding, tar.errors)
    if info.type in _EXTENDED or tar.pax_headers:
        data.handle.seek(offset)
        tar.offset = offset
        return tarfile.TarInfo.fromtarfile(tar), tar.offset
    # As tarfile's _proc_builtin: the contents follow the header, whole blocks.
    info.offset = offset
    info.offset_data = offset + BLOCK
    following = info.offset_data
    if info.isreg() or info.type not in tarfile.SUPPORTED_TYPES:
        following += -(-info.size // BLOCK) * BLOCK
    if info.isdir():
        info.name = info.name.rstrip("/")
    return info, following


_POSIX_MAGIC = b"ustar\x0000"
_OCTAL_FIELDS = re.compile(rb"[0-7 \0]*")
"""What ustar's numeric fields hold (mode to checksum: bytes 100-156; devices: 329-345)."""
_NUMBERS: tuple[tuple[int, int], ...] = (
    (100, 108),
    (108, 116),
    (116, 124),
    (124, 136),
    (136, 148),
    (148, 156),
    (329, 337),
    (337, 345),
)
"""mode, uid, gid, size, mtime, checksum, devmajor, devminor: where ustar keeps them."""


def _ustar(block: bytes) -> tarfile.TarInfo | None:
    """A POSIX ustar header parsed as :meth:`tarfile.TarInfo.frombuf` parses it, faster; or
    ``None`` for anything else (GNU or old headers, base-256 numbers, a bad checksum), which
    :meth:`~tarfile.TarInfo.frombuf` then reads, or refuses, itself."""
    if block[257:265] != _POSIX_MAGIC or block[156:157] == tarfile.GNUTYPE_SPARSE:
        return None
    if _OCTAL_FIELDS.fullmatch(block, 100, 156) is None:
        return None
    if _OCTAL_FIELDS.fullmatch(block, 329, 345) is None:
        return None
    mode, uid, gid, size, mtime, checksum, major, minor = [
        int(block[start:end].split(b"\0", 1)[0].strip() or b"0", 8) for start, end in _NUMBERS
    ]
    if checksum != 256 + sum(block) - sum(block[148:156]):
        return None  # tarfile tries the signed sum too, and names a bad one
    info = tarfile.TarInfo(_text(block[0:100]))
    info.mode, info.uid, info.gid, info.size, info.mtime = mode, uid, gid, size, mtime
    info.chksum = checksum
    info.type = block[156:157]
    info.linkname = _text(block[157:257])
    info.uname, info.gname = _text(block[265:297]), _text(block[297:329])
    info.devmajor, info.devminor = major, minor
    if info.type == tarfile.AREGTYPE and info.name.endswith("/"):
        info.type = tarfile.DIRTYPE  # as tarfile reads old V7 directories
    if info.isdir():
        info.name = info.name.rstrip("/")
    prefix = _text(block[345:500])
    if prefix:
        info.name = f"{prefix}/{info.name}"
    return info


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _corrupt(label: LayerLabel, last: str | None, offset: int, what: str) -> LayerError:
    after = f"after entry {last!r}" if last is not None else "at its start"
    return label.error(f"is corrupt or truncated {after}: {what} at byte {offset}")
