"""Deterministic gzip that uses every core, in the way pigz does.

The input is cut into fixed-size blocks (1 MiB). Each block is deflated on its own in a thread
pool; ``zlib`` releases the GIL while it works, so the threads really run in parallel. To keep
the ratio close to a single stream, each block's compressor is primed with the last 32 KiB of
the block before it (deflate's whole window), and every block but the last ends with a sync
flush, which byte-aligns the output so the pieces can simply be concatenated into one deflate
stream. The CRC-32 of each block is computed by the same worker and the pieces are combined in
order (:func:`crc32_combine`).

The output is one ordinary gzip member that ``gzip -d``, Python's :mod:`gzip` and the Linux
kernel's initramfs decompressor all read. It depends only on the input bytes, the level and
the block size: never on the number of threads or on timing, because block boundaries are
fixed byte offsets and each block's compressed form depends only on that block and the 32 KiB
before it. The header carries no file name and no time (mtime 0) and a fixed OS byte (3, Unix,
as ``gzip -n`` writes), so the same input gives the same bytes every run with the same zlib
(a different zlib version may deflate differently, as it would for ``gzip`` itself).

Memory stays bounded: at most :data:`IN_FLIGHT` blocks per thread are in flight before
:meth:`write` waits for the oldest one and writes it out.

**Segments.** A caller can mark runs of input as segments (:meth:`GzipWriter.begin_segment`,
:meth:`~GzipWriter.end_segment`). A segment starts a fresh block with an empty dictionary and
ends with a sync flush, so its compressed bytes depend only on its own input: they can be kept
(a *tap* receives them, and the segment's CRC-32 and length when it is complete) and spliced
into a later member unchanged (:meth:`GzipWriter.append_compressed`), which gives exactly the
bytes compressing the same input again would give. This is what lets a rebuild recompress only
the parts of an initrd that changed.

The default level is 6, zlib's and gzip's own default (LinuxKit's pgzip also uses its default
level). Level 9 costs about twice the time for an initrd one or two per cent smaller.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

DEFAULT_LEVEL = 6
BLOCK_SIZE = 1 << 20
WINDOW = 32 * 1024  # deflate's window: the most a block can refer back to
IN_FLIGHT = 8
"""Blocks per thread handed to the workers before :meth:`GzipWriter.write` waits: enough
that they keep compressing while the writer's caller is busy elsewhere for a while (reading
the next image's layers, say), at the cost of at most ``IN_FLIGHT`` MiB of input per thread."""
OS_UNIX = 3

_CRC_POLY = 0xEDB88320  # CRC-32 (IEEE 802.3), reflected, as gzip uses


Buffer = bytes | bytearray | memoryview
"""A block of input: handed to a worker as it is, never changed afterwards."""


class Sink(Protocol):
    """Anything bytes can be written to (a file opened ``"wb"``, :class:`io.BytesIO`, ...)."""

    def write(self, data: bytes, /) -> object: ...


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not just the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        return max(1, os.cpu_count() or 1)


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC polynomial, in the reflected bit order zlib uses."""
    m = 1 << 31
    product = 0
    while True:
        if a & m:
            product ^= b
            if a & (m - 1) == 0:
                return product
        m >>= 1
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1


def _x2n_table() -> tuple[int, ...]:
    """x^(2^k) modulo the polynomial for k = 0..31 (zlib's ``x2n_table``)."""
    value = 1 << 30  # x^1
    table = [value]
    for _ in range(31):
        value = _multmodp(value, value)
        table.append(value)
    return tuple(table)


_X2N = _x2n_table()


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)`` (as zlib's
    ``crc32_combine``, which Python's :mod:`zlib` does not expose)."""
    # Appending len(B) zero bytes multiplies A's CRC by x^(8 * len(B)); B's CRC is then added.
    shift = 1 << 31  # x^0
    n, k = length2, 3  # 2^3 = 8 bits per byte
    while n:
        if n & 1:
            shift = _multmodp(_X2N[k & 31], shift)
        n >>= 1
        k += 1
    return _multmodp(shift, crc1) ^ crc2


def gzip_header(level: int) -> bytes:
    """A gzip member header without name or time: magic, deflate, no flags, mtime 0, the
    extra-flags byte gzip derives from the level, OS Unix."""
    extra_flags = 2 if level == 9 else 4 if level == 1 else 0
    return b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + bytes((extra_flags, OS_UNIX))


@dataclass
class _Segment:
    """A segment being compressed: where its compressed bytes also go, and its CRC so far."""

    tap: Sink | None
    on_end: Callable[[int, int], None] | None
    crc: int = 0
    size: int = 0


@dataclass
class _Block:
    """A block in flight: its compression, input length, and the segment it belongs to."""

    future: Future[tuple[bytes, int]]
    length: int
    segment: _Segment | None


@dataclass
class _Spliced:
    """Compressed bytes of an earlier segment, written in turn (CRC and length known)."""

    path: Path
    crc: int
    length: int


@dataclass
class _Ended:
    """The end of a segment: its ``on_end`` is called once its last block is written."""

    segment: _Segment


_Pending = _Block | _Spliced | _Ended


def _deflate_block(block: Buffer, dictionary: bytes, level: int, final: bool) -> tuple[bytes, int]:
    """Raw deflate of one block primed with ``dictionary``; returns it with the block's CRC."""
    args = (level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    compressor = zlib.compressobj(*args, dictionary) if dictionary else zlib.compressobj(*args)
    body = compressor.compress(block)
    # A sync flush ends on a byte boundary and leaves the stream open for the next block.
    tail = compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return body + tail, zlib.crc32(block)


class GzipWriter:
    """A write-only file object that gzips what it is given into ``sink``, in parallel.

    ``threads`` is how many blocks are compressed at once (default: one more than the CPUs this
    process may use; 1 compresses in the calling thread). The output does not depend on it. Call
    :meth:`close` (or leave the ``with`` block) to write the end of the member; the sink itself
    is not closed. Leaving the ``with`` block through an exception stops the workers and writes
    nothing more, so a caller can discard the half-written sink.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        level: int = DEFAULT_LEVEL,
        threads: int | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        if not 0 <= level <= 9:
            raise ValueError(f"gzip level must be 0 to 9, not {level}")
        if block_size < 2 * WINDOW:
            raise ValueError(f"block size must be at least {2 * WINDOW} bytes")
        self._sink = sink
        self._level = level
        self._block_size = block_size
        # One worker more than CPUs: the caller's own thread needs a CPU at times (reading
        # what it compresses) and waits for the workers at others; the extra worker keeps
        # every CPU compressing through both (measured in bench/bench_build.py).
        self._threads = threads if threads is not None else available_cpus() + 1
        if self._threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 else None
        self._pending: deque[_Pending] = deque()
        self._blocks = 0  # blocks among the pending items
        self._segment: _Segment | None = None
        self._buffer = bytearray()
        self._dictionary = b""
        self._crc = 0
        self._closed = False
        self.size = 0
        """Bytes given to :meth:`write` so far."""
        self.compressed_size = 0
        """Bytes written to the sink so far."""
        self._emit(gzip_header(level))

    def __enter__(self) -> GzipWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def writable(self) -> bool:
        """Always true: this is a write-only stream."""
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue ``data`` for compression; full blocks are handed to the workers at once."""
        if self._closed:
            raise ValueError("write to a closed GzipWriter")
        view = memoryview(data).cast("B")
        length = len(view)
        start = 0
        if self._buffer:
            start = min(length, self._block_size - len(self._buffer))
            self._buffer += view[:start]
            if len(self._buffer) == self._block_size:
                # The full buffer itself goes to the workers; a new one takes its place.
                self._submit(self._buffer, final=False)
                self._buffer = bytearray()
        # Whole blocks straight from the caller's buffer, without going through ours (without
        # a copy when it is immutable).
        immutable = isinstance(data, bytes)
        while length - start >= self._block_size:
            block = view[start : start + self._block_size]
            self._submit(block if immutable else bytes(block), final=False)
            start += self._block_size
        if start < length:
            self._buffer += view[start:]
        self.size += length
        return length

    def flush(self) -> None:
        """Nothing to do: blocks are written as soon as they are compressed, in order."""

    def close(self) -> None:
        """Compress what is left, write the deflate end and the gzip trailer (CRC-32, size)."""
        if self._closed:
            return
        try:
            if self._segment is not None:
                self.end_segment()
            self._submit(bytes(self._buffer), final=True)
            self._buffer.clear()
            while self._pending:
                self._write_oldest()
            self._emit(struct.pack("<II", self._crc, self.size & 0xFFFFFFFF))
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._shutdown()

    def begin_segment(
        self, tap: Sink | None = None, on_end: Callable[[int, int], None] | None = None
    ) -> None:
        """Start a segment (ending one that is open): what is written until
        :meth:`end_segment` is compressed on its own. Its compressed bytes are also written to
        ``tap``, in order; once the last of them is, ``on_end(crc32, length)`` is called."""
        if self._segment is not None:
            self.end_segment()
        self._cut()
        self._segment = _Segment(tap, on_end)

    def end_segment(self) -> None:
        """End the open segment (see :meth:`begin_segment`)."""
        if self._segment is None:
            raise ValueError("no segment is open")
        self._cut()
        self._pending.append(_Ended(self._segment))
        self._segment = None

    def append_compressed(self, path: Path, crc: int, length: int) -> None:
        """Add a segment compressed earlier (the bytes a tap received, in the file ``path``,
        with the CRC-32 and length ``on_end`` reported): the output is the same as if its
        ``length`` bytes of input had been written again inside a segment."""
        if self._closed:
            raise ValueError("append to a closed GzipWriter")
        if self._segment is not None:
            self.end_segment()
        self._cut()
        self._pending.append(_Spliced(path, crc, length))
        self.size += length
        self._drain()

    def _cut(self) -> None:
        """End the current block on a byte boundary; the next starts without a dictionary."""
        if self._buffer:
            self._submit(bytes(self._buffer), final=False)
            self._buffer.clear()
        self._dictionary = b""

    def abort(self) -> None:
        """Stop without finishing the member: pending blocks are dropped, workers stopped."""
        self._closed = True
        for item in self._pending:
            if isinstance(item, _Block):
                item.future.cancel()
        self._pending.clear()
        self._blocks = 0
        self._segment = None
        self._buffer.clear()
        self._shutdown()

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _submit(self, block: Buffer, *, final: bool) -> None:
        dictionary = self._dictionary
        # The next block may refer back at most one window, into this block (>= 2 windows).
        self._dictionary = bytes(block[-WINDOW:])
        if self._pool is None:
            future: Future[tuple[bytes, int]] = Future()
            future.set_result(_deflate_block(block, dictionary, self._level, final))
        else:
            future = self._pool.submit(_deflate_block, block, dictionary, self._level, final)
        self._pending.append(_Block(future, len(block), self._segment))
        self._blocks += 1
        self._drain()

    def _drain(self) -> None:
        # Bounded memory: IN_FLIGHT blocks per thread, then wait for the oldest.
        while self._pending and (
            self._blocks > IN_FLIGHT * self._threads
            or not isinstance(self._pending[0], _Block)
            or self._pending[0].future.done()
        ):
            self._write_oldest()

    def _write_oldest(self) -> None:
        item = self._pending.popleft()
        if isinstance(item, _Block):
            self._blocks -= 1
            compressed, crc = item.future.result()
            self._crc = crc32_combine(self._crc, crc, item.length)
            self._emit(compressed)
            segment = item.segment
            if segment is not None:
                segment.crc = crc32_combine(segment.crc, crc, item.length)
                segment.size += item.length
                if segment.tap is not None:
                    segment.tap.write(compressed)
        elif isinstance(item, _Spliced):
            with item.path.open("rb") as source:
                while chunk := source.read(1 << 20):
                    self._emit(chunk)
            self._crc = crc32_combine(self._crc, item.crc, item.length)
        elif item.segment.on_end is not None:
            item.segment.on_end(item.segment.crc, item.segment.size)

    def _emit(self, data: bytes) -> None:
        self._sink.write(data)
        self.compressed_size += len(data)


def compress(
    data: bytes,
    *,
    level: int = DEFAULT_LEVEL,
    threads: int | None = None,
    block_size: int = BLOCK_SIZE,
) -> bytes:
    """``data`` as one deterministic gzip member (see :class:`GzipWriter`)."""
    chunks: list[bytes] = []

    class _Collect:
        def write(self, piece: bytes, /) -> None:
            chunks.append(piece)

    with GzipWriter(_Collect(), level=level, threads=threads, block_size=block_size) as writer:
        writer.write(data)
    return b"".join(chunks)
