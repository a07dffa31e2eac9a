"""Segments: encoded once, kept, and spliced into later outputs with the same bytes."""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitdsl.outputs import Entry, write_initrd, write_tar
from kitdsl.outputs.pgzip import WINDOW, GzipWriter
from kitdsl.outputs.segments import Segment, SegmentCache, SegmentedStream, key_of
from tests.test_outputs_gzip import realistic

SMALL_BLOCK = 2 * WINDOW


class Collect:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, piece: bytes, /) -> None:
        self.chunks.append(piece)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def compress_in_segments(
    pieces: list[bytes], kept: dict[int, tuple[Path, int, int]], folder: Path, threads: int
) -> bytes:
    """Compress ``pieces``: even ones as segments (spliced from ``kept`` when there, kept
    otherwise), odd ones as plain data between them."""
    out = Collect()
    with GzipWriter(out, threads=threads, block_size=SMALL_BLOCK) as gz:
        for number, piece in enumerate(pieces):
            if number % 2:
                gz.write(piece)
            elif number in kept:
                gz.append_compressed(*kept[number])
            else:
                path = folder / f"segment{number}"
                tap = path.open("wb")

                def done(crc: int, length: int, number: int = number, tap: BinaryIO = tap) -> None:
                    tap.close()  # called once the segment's last bytes are written
                    kept[number] = (Path(tap.name), crc, length)

                gz.begin_segment(tap, done)
                gz.write(piece)
                gz.end_segment()
    return out.data


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.integers(0, 3 * SMALL_BLOCK), min_size=1, max_size=7),
    st.integers(1, 3),
    st.integers(1, 3),
)
def test_spliced_segments_give_the_same_bytes(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], first: int, second: int
) -> None:
    folder = tmp_path_factory.mktemp("segments")
    pieces = [realistic(size, seed=n) for n, size in enumerate(sizes)]
    kept: dict[int, tuple[Path, int, int]] = {}
    fresh = compress_in_segments(pieces, kept, folder, first)
    assert gzip.decompress(fresh) == b"".join(pieces)
    assert sorted(kept) == list(range(0, len(pieces), 2))
    # Every segment is now kept: the second run copies them all, with other thread counts.
    assert compress_in_segments(pieces, kept, folder, second) == fresh


def entries_of(names: Iterable[str], size: int = 3000) -> list[Entry]:
    out: list[Entry] = []
    for name in names:
        if name.endswith("/"):
            out.append(Entry.directory(name.rstrip("/")))
        else:
            out.append(Entry.file(name, realistic(size, seed=len(name)), mode=0o755))
    return out


class Counting:
    """Segments that count how often each is produced (read rather than reused)."""

    def __init__(self, parts: dict[str, list[str]], keyed: bool = True) -> None:
        self.parts = parts
        self.keyed = keyed
        self.produced: list[str] = []

    def stream(self) -> SegmentedStream:
        def produce() -> Iterator[Segment]:
            for label, names in self.parts.items():

                @contextlib.contextmanager
                def entries(label: str = label, names: list[str] = names) -> Iterator[list[Entry]]:
                    self.produced.append(label)
                    yield entries_of(names)

                key = key_of(label=label, names=names) if self.keyed else None
                yield Segment(entries, key, label)

        return SegmentedStream(produce)


PARTS = {
    "modules": ["lib/", "lib/modules/", "lib/modules/a.ko"],
    "web": ["srv/", "srv/index.html", "srv/big.bin"],
    "files": ["etc/", "etc/motd"],
}


@pytest.mark.parametrize("encode", ["initrd", "tar"])
def test_a_changed_segment_is_the_only_one_encoded_again(tmp_path: Path, encode: str) -> None:
    cache = SegmentCache(tmp_path / "cache")

    def write(parts: dict[str, list[str]]) -> tuple[bytes, list[str], set[str]]:
        source = Counting(parts)
        stream = source.stream()
        out = io.BytesIO()
        if encode == "initrd":
            write_initrd(stream, out, cache=cache)
        else:
            write_tar(stream, None, out, cache)
        return out.getvalue(), source.produced, set(stream.directories)

    first, produced, directories = write(PARTS)
    assert produced == ["modules", "web", "files"]
    assert directories == {"lib", "lib/modules", "srv", "etc"}
    again, produced, directories_again = write(PARTS)
    assert (again, produced) == (first, [])
    assert directories_again == directories  # known from the cache without reading

    changed = {**PARTS, "web": ["srv/", "srv/index.html", "srv/new.bin"]}
    incremental, produced, _ = write(changed)
    assert produced == ["web"]
    plain = io.BytesIO()  # the same stream written without any cache
    stream = Counting(changed, keyed=False).stream()
    if encode == "initrd":
        write_initrd(stream, plain)
    else:
        write_tar(stream, None, plain)
    assert incremental == plain.getvalue()


def test_tar_bytes_are_tarfiles(tmp_path: Path) -> None:
    entries = [
        Entry.directory("etc"),
        Entry.file("etc/motd", b"hi\n", uid=5, gid=6, mode=0o600),
        Entry.symlink("etc/mtab", "/proc/mounts"),
        Entry.hardlink("etc/motd2", "etc/motd"),
        Entry.device("dev/null", "char", 1, 3, mode=0o666),
        Entry.fifo("run/fifo"),
        Entry.file("x" * 150 + "/ünïcödé", b"long name\n"),
    ]
    entries[1].info.pax_headers = {"LINUXKIT.source": "linuxkit.files"}
    ours = io.BytesIO()
    write_tar(entries, None, ours)
    theirs = io.BytesIO()
    with tarfile.open(fileobj=theirs, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            data = io.BytesIO(entry.info.size * b"") if entry.data is None else None
            if entry.info.isreg():
                data = io.BytesIO(
                    {"etc/motd": b"hi\n", "x" * 150 + "/ünïcödé": b"long name\n"}[entry.info.name]
                )
            tar.addfile(entry.info, data)
    assert ours.getvalue() == theirs.getvalue()


def test_damaged_or_unwritable_cache_entries_are_encoded_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SegmentCache(tmp_path / "cache")
    out = io.BytesIO()
    write_initrd(Counting(PARTS).stream(), out, cache=cache)
    reference = out.getvalue()
    segments = sorted((tmp_path / "cache").rglob("*.seg"))
    assert len(segments) == 3
    with segments[0].open("r+b") as handle:  # truncated: ignored, encoded again
        handle.truncate(5)
    source = Counting(PARTS)
    out = io.BytesIO()
    write_initrd(source.stream(), out, cache=cache)
    assert out.getvalue() == reference
    assert len(source.produced) == 1

    # A cache that cannot be written (here a file stands where its folder should be): the
    # build goes on, with a warning, and keeps nothing.
    (tmp_path / "blocked").write_text("not a folder")
    out = io.BytesIO()
    write_initrd(Counting(PARTS).stream(), out, cache=SegmentCache(tmp_path / "blocked"))
    assert out.getvalue() == reference
    assert "cannot keep an assembled segment" in caplog.text


def test_reuse_off_encodes_everything_but_keeps_it(tmp_path: Path) -> None:
    SegmentCache(tmp_path / "c").get("x", None)
    write_initrd(Counting(PARTS).stream(), io.BytesIO(), cache=SegmentCache(tmp_path / "c"))
    source = Counting(PARTS)
    write_initrd(source.stream(), io.BytesIO(), cache=SegmentCache(tmp_path / "c", reuse=False))
    assert source.produced == ["modules", "web", "files"]
    count, size = SegmentCache(tmp_path / "c").size()
    assert count == 3 and size > 0
    assert SegmentCache(tmp_path / "c").prune(older_than=3600) == (0, 0)
    assert SegmentCache(tmp_path / "c").prune()[0] == 3
    assert SegmentCache(tmp_path / "c").size() == (0, 0)
