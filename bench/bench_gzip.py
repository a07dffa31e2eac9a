"""Compressing an initrd: our parallel gzip against zlib, gzip and pigz on the same data.

The data is ~150 MB that looks like a root file system to a compressor: a third random bytes
(compressed binaries, images) and two thirds text-like words (scripts, configs, symbol
tables). Each contender compresses the same bytes at level 6; we print MB/s of input and the
ratio (compressed / input). A last row writes a whole initrd (newc cpio + our gzip) from the
same data cut into 64 KiB files, to show what the cpio layer costs on top.

Run with ``just bench-gzip`` (pigz is used when installed). Figures go to docs/performance.md.
"""

from __future__ import annotations

import gzip
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kitdsl.outputs import Compression, Entry, write_initrd
from kitdsl.outputs.pgzip import GzipWriter, available_cpus, compress

SIZE = 150 * 1000 * 1000
LEVEL = 6
RUNS = 3
FILE_SIZE = 64 * 1024


def realistic(size: int, seed: int = 1) -> bytes:
    """A third random bytes, two thirds text-like lines of words."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(3000)]
    lines = []
    length = 0
    while length < size - size // 3:
        line = b" ".join(rng.choices(words, k=64)) + b"\n"
        lines.append(line)
        length += len(line)
    return rng.randbytes(size // 3) + b"".join(lines)[: size - size // 3]


class Counter:
    """A sink that only counts what it is given."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes, /) -> None:
        self.size += len(data)


def ours(data: bytes, threads: int) -> int:
    sink = Counter()
    with GzipWriter(sink, level=LEVEL, threads=threads) as writer:
        for start in range(0, len(data), 1 << 20):  # as a stream arrives: 1 MiB writes
            writer.write(data[start : start + (1 << 20)])
    return sink.size


def single_zlib(data: bytes) -> int:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)
    size = 0
    for start in range(0, len(data), 1 << 20):
        size += len(compressor.compress(data[start : start + (1 << 20)]))
    return size + len(compressor.flush())


def tool(command: list[str], source: Path) -> Callable[[bytes], int]:
    def run(_: bytes) -> int:
        with source.open("rb") as stdin, tempfile.TemporaryFile() as stdout:
            subprocess.run(command, stdin=stdin, stdout=stdout, check=True)
            return stdout.tell()

    return run


def initrd(data: bytes) -> int:
    def entries() -> Iterator[Entry]:
        yield Entry.directory("data")
        for number, start in enumerate(range(0, len(data), FILE_SIZE)):
            yield Entry.file(f"data/{number:06d}", data[start : start + FILE_SIZE])

    sink = Counter()
    write_initrd(entries(), sink, Compression(level=LEVEL))
    return sink.size


def best_of(function: Callable[[bytes], int], data: bytes) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(RUNS):
        start = time.perf_counter()
        size = function(data)
        times.append(time.perf_counter() - start)
    return min(times), size


def main() -> None:
    data = realistic(SIZE)
    cpus = available_cpus()
    contenders: list[tuple[str, Callable[[bytes], int]]] = [
        (f"kitdsl pgzip, {cpus} threads", lambda d: ours(d, cpus)),
        ("kitdsl pgzip, 1 thread", lambda d: ours(d, 1)),
        ("zlib, one stream", single_zlib),
    ]
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "data"
        source.write_bytes(data)
        contenders.append((f"gzip -{LEVEL}", tool(["gzip", f"-{LEVEL}", "-n", "-c"], source)))
        if shutil.which("pigz"):
            pigz = ["pigz", f"-{LEVEL}", "-n", "-p", str(cpus), "-c"]
            contenders.append((" ".join(pigz[:-1]), tool(pigz, source)))
        contenders.append((f"kitdsl initrd ({FILE_SIZE // 1024} KiB files)", initrd))
        print(f"{len(data) / 1e6:.0f} MB, a third random, two thirds text-like; level {LEVEL}")
        print(f"{'':38} {'MB/s':>7} {'ratio':>7}")
        for name, function in contenders:
            seconds, size = best_of(function, data)
            print(f"{name:38} {len(data) / seconds / 1e6:7.1f} {size / len(data):7.4f}")
    sample = data[: 4 << 20]
    assert gzip.decompress(compress(sample, level=LEVEL)) == sample  # a sanity check
    print(
        f"machine: {cpus} CPUs usable ({os.cpu_count()} in all), {platform.machine()}, "
        f"Python {sys.version.split()[0]}, zlib {zlib.ZLIB_RUNTIME_VERSION}; best of {RUNS}"
    )


if __name__ == "__main__":
    main()
