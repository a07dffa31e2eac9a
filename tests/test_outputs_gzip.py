"""The parallel gzip: standard output, identical bytes whatever the thread count."""

from __future__ import annotations

import gzip
import random
import shutil
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitdsl.outputs.pgzip import WINDOW, GzipWriter, compress, crc32_combine

SMALL_BLOCK = 2 * WINDOW  # the smallest allowed: many blocks from little data


def realistic(size: int, seed: int = 1) -> bytes:
    """A third random bytes, two thirds text-like words: what binaries and configs look like
    to a compressor."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(3000)]
    text = bytearray()
    while len(text) < size - size // 3:
        text += b" ".join(rng.choices(words, k=64)) + b"\n"
    return rng.randbytes(size // 3) + bytes(text[: size - size // 3])


@given(st.binary(max_size=300), st.binary(max_size=300))
def test_crc32_combine_matches_zlib(first: bytes, second: bytes) -> None:
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


def test_crc32_combine_of_long_blocks() -> None:
    first, second = random.Random(2).randbytes(3 << 20), b"\xff" * (1 << 20)
    combined = crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second))
    assert combined == zlib.crc32(first + second)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 5 * SMALL_BLOCK),
    st.lists(st.integers(1, 3 * SMALL_BLOCK), min_size=1, max_size=8),
    st.integers(1, 4),
)
def test_same_bytes_whatever_the_threads_and_write_sizes(
    size: int, writes: list[int], threads: int
) -> None:
    data = realistic(size, seed=size)
    reference = compress(data, threads=1, block_size=SMALL_BLOCK)
    chunks = []

    class Collect:
        def write(self, piece: bytes, /) -> None:
            chunks.append(piece)

    with GzipWriter(Collect(), threads=threads, block_size=SMALL_BLOCK) as writer:
        position, turn = 0, 0
        while position < size:
            step = writes[turn % len(writes)]
            writer.write(data[position : position + step])
            position, turn = position + step, turn + 1
    assert b"".join(chunks) == reference
    assert gzip.decompress(reference) == data


def test_header_has_no_name_and_no_time() -> None:
    member = compress(b"x")
    assert member[:10] == bytes.fromhex("1f8b0800000000000003")
    assert compress(b"x", level=9)[8] == 2  # extra flags: maximum compression
    assert compress(b"x", level=1)[8] == 4  # fastest
    assert gzip.decompress(compress(b"")) == b""


@pytest.mark.parametrize(
    "size", [0, SMALL_BLOCK - 1, SMALL_BLOCK, 3 * SMALL_BLOCK, 3 * SMALL_BLOCK + 5]
)
def test_block_edges(size: int) -> None:
    data = realistic(size)
    member = compress(data, threads=2, block_size=SMALL_BLOCK)
    assert gzip.decompress(member) == data
    assert zlib.decompress(member, wbits=31) == data


@pytest.mark.skipif(shutil.which("gzip") is None, reason="needs gzip")
def test_gzip_reads_it_and_the_ratio_stays_close_to_one_stream() -> None:
    data = realistic(6 << 20)
    ours = compress(data, level=6, threads=2)
    subprocess.run(["gzip", "-t"], input=ours, check=True)
    assert (
        subprocess.run(["gzip", "-dc"], input=ours, capture_output=True, check=True).stdout == data
    )
    theirs = subprocess.run(["gzip", "-6", "-n", "-c"], input=data, capture_output=True).stdout
    assert len(ours) <= len(theirs) * 1.01


def test_an_aborted_writer_stops_and_writes_no_trailer() -> None:
    chunks: list[bytes] = []

    class Collect:
        def write(self, piece: bytes, /) -> None:
            chunks.append(piece)

    data = realistic(4 * SMALL_BLOCK)
    with pytest.raises(RuntimeError), GzipWriter(Collect(), threads=2, block_size=SMALL_BLOCK) as w:
        w.write(data)
        raise RuntimeError("interrupted")
    with pytest.raises(EOFError):
        gzip.decompress(b"".join(chunks))
    with pytest.raises(ValueError, match="closed"):
        w.write(b"more")


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="level must be 0 to 9"):
        compress(b"", level=10)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        compress(b"", threads=0)
    with pytest.raises(ValueError, match="block size"):
        compress(b"", block_size=1024)
