"""The newc cpio writer, checked byte by byte against the format's rules."""

from __future__ import annotations

import io
import stat
import tarfile
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitdsl.errors import OutputError
from kitdsl.outputs import Entry
from kitdsl.outputs.cpio import CpioWriter, archive_name, hardlink_target, newc_header

FIELDS = ["ino", "mode", "uid", "gid", "nlink", "mtime", "size"]
FIELDS += ["devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check"]


@dataclass
class Record:
    """One newc entry as read back."""

    fields: dict[str, int]
    name: str
    data: bytes
    offset: int


def read_newc(archive: bytes) -> list[Record]:
    """Parse a newc archive strictly: magic, 4-byte alignment of every header and body,
    zero padding, NUL-terminated names, up to and including ``TRAILER!!!``."""
    records = []
    offset = 0
    while True:
        assert offset % 4 == 0
        assert archive[offset : offset + 6] == b"070701", f"bad magic at {offset}"
        values = [int(archive[offset + 6 + 8 * i : offset + 14 + 8 * i], 16) for i in range(13)]
        fields = dict(zip(FIELDS, values, strict=True))
        name_start = offset + 110
        name_end = name_start + fields["namesize"]
        assert archive[name_end - 1] == 0, "name without its NUL"
        name = archive[name_start : name_end - 1].decode("utf-8", "surrogateescape")
        data_start = name_end + (-name_end % 4)
        assert archive[name_end:data_start] == bytes(data_start - name_end)
        data_end = data_start + fields["size"]
        data = archive[data_start:data_end]
        next_offset = data_end + (-data_end % 4)
        assert archive[data_end:next_offset] == bytes(next_offset - data_end)
        records.append(Record(fields, name, data, offset))
        offset = next_offset
        if name == "TRAILER!!!":
            assert offset == len(archive)
            return records


def to_cpio(*entries: Entry) -> bytes:
    out = io.BytesIO()
    writer = CpioWriter(out)
    for entry in entries:
        writer.add(entry)
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("name_length", range(1, 9))
@pytest.mark.parametrize("size", range(8))
def test_padding_follows_the_newc_rules(name_length: int, size: int) -> None:
    name = "n" * name_length
    archive = to_cpio(Entry.file(name, b"d" * size), Entry.file("x", b"y"))
    first, second, trailer = read_newc(archive)
    assert (first.name, first.data) == (name, b"d" * size)
    # Header + name + NUL padded to 4, then the data padded to 4.
    assert second.offset == _round4(110 + name_length + 1) + _round4(size)
    assert trailer.fields["namesize"] == len("TRAILER!!!") + 1


def _round4(value: int) -> int:
    return (value + 3) // 4 * 4


def test_header_fields_carry_the_tar_entry() -> None:
    entry = Entry.file("./usr/bin/sudo", b"#!", mode=0o4755, uid=1000, gid=27, mtime=1600000000.9)
    (record, _) = read_newc(to_cpio(entry))
    assert record.name == "usr/bin/sudo"
    assert record.fields | {"ino": 1} == {
        "ino": 1,
        "mode": stat.S_IFREG | 0o4755,
        "uid": 1000,
        "gid": 27,
        "nlink": 1,
        "mtime": 1600000000,
        "size": 2,
        "devmajor": 0,
        "devminor": 0,
        "rdevmajor": 0,
        "rdevminor": 0,
        "namesize": len("usr/bin/sudo") + 1,
        "check": 0,
    }
    assert newc_header(b"x", ino=1, mode=0)[:14] == b"07070100000001"


def test_every_supported_type() -> None:
    records = read_newc(
        to_cpio(
            Entry.directory("./", mode=0o755),
            Entry.directory("tmp/", mode=0o1777),
            Entry.symlink("etc/mtab", "/proc/mounts"),
            Entry.device("dev/null", "char", 1, 3, mode=0o666),
            Entry.device("dev/sda", "block", 8, 16, mode=0o660, gid=6),
            Entry.fifo("run/initctl", mode=0o600),
            Entry.file("bin/busybox", b"elf", mode=0o755),
            Entry.hardlink("usr/bin/sh", "bin/busybox"),
        )
    )
    summary = [
        (r.name, stat.filemode(r.fields["mode"]), r.fields["nlink"], r.data) for r in records
    ]
    assert summary == [
        (".", "drwxr-xr-x", 2, b""),
        ("tmp", "drwxrwxrwt", 2, b""),
        ("etc/mtab", "lrwxrwxrwx", 1, b"/proc/mounts"),
        ("dev/null", "crw-rw-rw-", 1, b""),
        ("dev/sda", "brw-rw----", 1, b""),
        ("run/initctl", "prw-------", 1, b""),
        ("bin/busybox", "-rwxr-xr-x", 1, b"elf"),
        ("usr/bin/sh", "lrwxrwxrwx", 1, b"../../bin/busybox"),
        ("TRAILER!!!", "?---------", 1, b""),
    ]
    # Inode numbers depend on the name alone, so a run of entries encodes the same anywhere.
    inodes = [r.fields["ino"] for r in records]
    assert inodes == [zlib.crc32(r.name.encode()) for r in records[:-1]] + [0]
    sda = records[4].fields
    assert (sda["rdevmajor"], sda["rdevminor"], sda["gid"]) == (8, 16, 6)


@pytest.mark.parametrize(
    ("name", "target", "expected"),
    [
        ("bin/sh", "bin/busybox", "busybox"),
        ("sh", "bin/busybox", "bin/busybox"),
        ("usr/bin/sh", "./bin/busybox", "../../bin/busybox"),
        ("./a/b/c", "a/d", "../d"),
        ("/x/y", "/x/y2", "y2"),
    ],
)
def test_hard_links_become_relative_symlinks(name: str, target: str, expected: str) -> None:
    assert hardlink_target(name, target) == expected


@given(st.lists(st.sampled_from(["a", "b", "..."]), min_size=1, max_size=4), st.booleans())
def test_names_are_normalised(parts: list[str], dot_slash: bool) -> None:
    name = ("./" if dot_slash else "/") + "//".join(parts) + "/"
    assert archive_name(name) == "/".join(parts)


def test_names_that_go_up_are_refused() -> None:
    with pytest.raises(OutputError, match=r"'\.\./etc/passwd'.*goes up"):
        to_cpio(Entry.file("../etc/passwd", b""))


def test_an_unconvertible_type_names_the_entry_and_its_image() -> None:
    info = tarfile.TarInfo("label")
    info.type = b"V"
    info.pax_headers = {
        "LINUXKIT.source": "docker.io/library/odd:1",
        "LINUXKIT.location": "init[0]",
    }
    with pytest.raises(OutputError) as caught:
        to_cpio(Entry(info))
    text = caught.value.render()
    assert "cannot put 'label' in an initrd: tar entry type 'V' (GNU volume label)" in text
    assert "from image: docker.io/library/odd:1" in text
    assert "section: init[0]" in text
    assert "hint:" in text


def test_values_newc_cannot_hold() -> None:
    with pytest.raises(OutputError, match="uid 4294967296 does not fit"):
        to_cpio(Entry.file("x", b"", uid=1 << 32))
    with pytest.raises(OutputError, match="name is longer than the kernel's 4095 bytes"):
        to_cpio(Entry.file("d/" * 2049, b""))
    # newc holds unsigned 32-bit seconds: times outside are clamped, not refused.
    (old, _) = read_newc(to_cpio(Entry.file("old", b"", mtime=-5)))
    assert old.fields["mtime"] == 0


def test_data_shorter_than_its_size_is_an_error() -> None:
    entry = Entry.file("x", b"abc")
    entry.info.size = 10
    with pytest.raises(OutputError, match="ended 7 bytes short of its size 10"):
        to_cpio(entry)
