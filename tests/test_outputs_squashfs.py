"""The ``kernel+squashfs`` format, checked with the real squashfs-tools (``unsquashfs``)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitdsl.errors import OutputError
from kitdsl.outputs import (
    DEFAULT_MTIME,
    Boot,
    Compression,
    Entry,
    Needs,
    Target,
    get,
    write_outputs,
)
from kitdsl.outputs.squashfs import write_squashfs
from tests.test_outputs_gzip import realistic

pytestmark = pytest.mark.skipif(
    shutil.which("mksquashfs") is None or shutil.which("unsquashfs") is None,
    reason="needs squashfs-tools (apt-get install squashfs-tools)",
)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking owners and devices needs root")

KERNEL = b"MZ not really a kernel" * 100
UNICODE = "etc/ünïcødé name"
LONG = "usr/share/" + "l" * 120
NEWEST = 1_700_000_000
CAPABILITY = "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12  # cap_net_raw, as ping has
ROOT_MODE = 0o750


def with_pax(entry: Entry, records: dict[str, str]) -> Entry:
    entry.info.pax_headers = dict(records)
    return entry


def make_rootfs() -> list[Entry]:
    """Every entry type, odd modes, owners and names, duplicates, ``boot/`` and LinuxKit's
    PAX records; about 3 MB of data."""
    source = {"LINUXKIT.source": "example/image:1", "LINUXKIT.location": "init"}
    named = Entry.file("etc/owned", b"numeric ids win\n", uid=1234, gid=4321)
    named.info.uname, named.info.gname = "root", "root"  # must not be looked up
    return [
        Entry.directory("./", mode=ROOT_MODE, mtime=1_500_000_000),
        with_pax(Entry.directory("bin"), source),
        with_pax(Entry.file("bin/busybox", realistic(2 << 20, seed=7), mode=0o755), source),
        Entry.hardlink("bin/sh", "bin/busybox"),
        Entry.symlink("bin/ls", "busybox"),
        Entry.directory("boot"),
        Entry.file("boot/stray", b"not in the image"),
        Entry.directory("dev"),
        Entry.device("dev/null", "char", 1, 3, mode=0o666),
        Entry.device("dev/sda", "block", 8, 0, mode=0o660, gid=6),
        Entry.directory("etc"),
        Entry.file("etc/empty", b""),
        Entry.file("etc/hostname", b"first\n"),
        Entry.file("etc/hostname", b"second\n", mode=0o600),  # the last one wins
        Entry.hardlink("etc/hostname.link", "./etc/hostname"),  # written before its target's last
        Entry.directory("etc", mode=0o751, uid=2, gid=3, mtime=1_600_000_000),  # so does this one
        Entry.symlink("etc/mtab", "/proc/mounts"),
        Entry.symlink("etc/far", "../" + "t" * 200),
        Entry.file(UNICODE, b"odd\n"),
        named,
        with_pax(
            Entry.file("bin/ping", b"\x7fELF", mode=0o755),
            {"SCHILY.xattr.security.capability": CAPABILITY, "SCHILY.xattr.user.note": "hi"},
        ),
        Entry.directory("run"),
        Entry.fifo("run/initctl", mode=0o600),
        Entry.directory("tmp", mode=0o1777),
        Entry.file("usr/bin/sudo", b"#!/bin/sh\n", mode=0o4755, gid=27),  # parents undeclared
        Entry.file(LONG, realistic(1 << 20, seed=8), uid=3_000_000, gid=100, mtime=NEWEST + 0.75),
        Entry.file("var/ancient", b"", mode=0o000, mtime=-86_400),
    ]


Row = tuple[str, int, int, str, str, str]
"""(mode, uid, gid, size or "major,minor" or "" for directories, UTC minute, link target)"""


def expected(entries: list[Entry]) -> dict[str, Row]:
    """What unsquashfs should list for ``entries``: the last entry of each path, hard links as
    the file they name, undeclared parents 0755 root, the root directory from ``./``."""
    final: dict[str, tarfile.TarInfo] = {}
    for entry in entries:
        name = "/".join(part for part in entry.info.name.split("/") if part not in ("", "."))
        if name.split("/")[0] != "boot":
            final[name] = entry.info
    rows: dict[str, Row] = {}
    for name, info in final.items():
        for depth in range(1, name.count("/") + 1):
            parent = "/".join(name.split("/")[:depth])
            if parent not in final:
                rows[parent] = ("drwxr-xr-x", 0, 0, "", minute(DEFAULT_MTIME), "")
        if info.islnk():
            info = final[info.linkname.removeprefix("./")]
        kinds = {b"0": stat.S_IFREG, b"5": stat.S_IFDIR, b"2": stat.S_IFLNK, b"6": stat.S_IFIFO}
        kinds |= {b"3": stat.S_IFCHR, b"4": stat.S_IFBLK}
        size = "" if info.isdir() else str(len(info.linkname) if info.issym() else info.size)
        if info.ischr() or info.isblk():
            size = f"{info.devmajor},{info.devminor}"
        mtime = NEWEST if not name else max(0, int(info.mtime))
        mode = stat.filemode(kinds[info.type] | info.mode)
        rows[name] = (mode, info.uid, info.gid, size, minute(mtime), info.linkname * info.issym())
    return rows


def minute(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))


LISTING = re.compile(
    r"(?P<mode>\S{10}) (?P<uid>\d+)/(?P<gid>\d+)\s+(?P<size>\d+,\s*\d+|\d+) "
    r"(?P<minute>\d{4}-\d\d-\d\d \d\d:\d\d) squashfs-root/?(?P<rest>.*)"
)


def listing(image: Path) -> dict[str, Row]:
    """``unsquashfs -lln``, parsed."""
    output = subprocess.run(
        ["unsquashfs", "-lln", str(image)],
        capture_output=True,
        check=True,
        env={**os.environ, "TZ": "UTC"},
    ).stdout.decode()
    rows: dict[str, Row] = {}
    for line in output.splitlines():
        match = LISTING.fullmatch(line)
        assert match, line
        name, target = match["rest"], ""
        if match["mode"].startswith("l"):
            name, target = name.split(" -> ", 1)
        size = "" if match["mode"].startswith("d") else re.sub(r"\s", "", match["size"])
        row = (match["mode"], int(match["uid"]), int(match["gid"]), size, match["minute"], target)
        rows[name] = row
    return rows


def build(folder: Path, *, boot: Boot | None = None, threads: int | None = None) -> list[Path]:
    boot = boot or Boot(kernel=KERNEL, cmdline="console=ttyS0 root=/dev/vda")
    target = Target(folder, "box", Compression(threads=threads))
    return write_outputs(["kernel+squashfs"], iter(make_rootfs()), boot, target)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("squashfs")
    written = build(folder)
    assert [path.name for path in written] == ["box-kernel", "box-cmdline", "box-squashfs.img"]
    assert sorted(os.listdir(folder)) == ["box-cmdline", "box-kernel", "box-squashfs.img"]
    assert (folder / "box-kernel").read_bytes() == KERNEL
    assert (folder / "box-cmdline").read_bytes() == b"console=ttyS0 root=/dev/vda"
    assert stat.S_IMODE((folder / "box-squashfs.img").stat().st_mode) == 0o644
    return folder / "box-squashfs.img"


def test_unsquashfs_lists_exactly_the_expected_entries(image: Path) -> None:
    rows = listing(image)
    want = expected(make_rootfs())
    assert rows.keys() == want.keys()
    assert rows == want
    assert rows[""][0] == "drwxr-x---"  # from ./
    assert "boot" not in rows


def test_the_image_is_gzip_compressed_with_a_fixed_creation_time(image: Path) -> None:
    result = subprocess.run(
        ["unsquashfs", "-s", str(image)], capture_output=True, text=True, env={"TZ": "UTC"}
    )
    assert "Compression gzip" in result.stdout
    assert time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(NEWEST)) in result.stdout


@as_root
def test_unpacked_tree_has_exact_times_owners_links_and_xattrs(image: Path, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    subprocess.run(["unsquashfs", "-d", str(tree), str(image)], capture_output=True, check=True)
    assert stat.S_IMODE(tree.stat().st_mode) == ROOT_MODE
    assert (tree.stat().st_uid, tree.stat().st_gid, tree.stat().st_mtime) == (0, 0, NEWEST)
    busybox, sh = (tree / "bin/busybox").stat(), (tree / "bin/sh").stat()
    assert (busybox.st_ino, busybox.st_nlink) == (sh.st_ino, 2)
    assert (tree / "bin/busybox").read_bytes() == realistic(2 << 20, seed=7)
    hostname, link = (tree / "etc/hostname").stat(), (tree / "etc/hostname.link").stat()
    assert hostname.st_ino == link.st_ino
    assert (tree / "etc/hostname.link").read_bytes() == b"second\n"
    assert os.getxattr(tree / "bin/ping", "security.capability") == CAPABILITY.encode("latin-1")
    assert os.getxattr(tree / "bin/ping", "user.note") == b"hi"
    sda = (tree / "dev/sda").lstat()
    assert stat.S_ISBLK(sda.st_mode) and (os.major(sda.st_rdev), os.minor(sda.st_rdev)) == (8, 0)
    assert stat.S_ISFIFO((tree / "run/initctl").lstat().st_mode)
    assert (tree / LONG).stat().st_mtime == NEWEST  # whole seconds
    assert (tree / "var/ancient").stat().st_mtime == 0  # before 1970: clamped
    assert os.readlink(tree / "etc/far") == "../" + "t" * 200
    assert (tree / "etc/owned").stat().st_uid == 1234


def test_same_bytes_whatever_the_umask_processors_and_clock(image: Path, tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        for threads in (1, 3):
            time.sleep(1.1)  # a second later: nothing may depend on the clock
            build(tmp_path / str(threads), threads=threads)
            again = tmp_path / str(threads) / "box-squashfs.img"
            assert again.read_bytes() == image.read_bytes()
            assert stat.S_IMODE(again.stat().st_mode) == 0o644
    finally:
        os.umask(previous)


@as_root
def test_a_builder_who_is_not_root_gets_the_same_bytes(image: Path) -> None:
    """mksquashfs 4.5 gives the root directory the builder's ids unless it runs as root."""
    with tempfile.TemporaryDirectory() as name:
        Path(name).chmod(0o777)  # where "nobody" may write
        built = built_by_nobody(Path(name))
    assert built == image.read_bytes()


def built_by_nobody(tmp_path: Path) -> bytes:
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tests.test_outputs_squashfs import build\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "build(Path(sys.argv[1]))\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    folder = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    return (folder / "box-squashfs.img").read_bytes()


def test_kernel_and_command_line_files(tmp_path: Path) -> None:
    assert [path.name for path in build(tmp_path, boot=Boot(kernel=KERNEL))] == [
        "box-kernel",
        "box-cmdline",  # written even when empty, as LinuxKit does
        "box-squashfs.img",
    ]
    assert (tmp_path / "box-cmdline").read_bytes() == b""
    assert [path.name for path in build(tmp_path, boot=Boot())] == ["box-squashfs.img"]
    assert os.listdir(tmp_path) == ["box-squashfs.img"]  # the earlier kernel is not left behind
    fmt = get("kernel+squashfs")
    assert fmt.needs is Needs.SPOOL
    assert fmt.filenames("x", Boot(cmdline="quiet")) == ["x-cmdline", "x-squashfs.img"]


def test_no_mksquashfs_is_an_output_error_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(OutputError, match="needs mksquashfs") as caught:
        build(tmp_path / "out")
    assert "apt-get install squashfs-tools" in str(caught.value.hint)
    assert [path.name for path in (tmp_path / "out").iterdir()] == []


def bad_rootfs(entry: Entry) -> Iterator[Entry]:
    yield from make_rootfs()
    yield entry


def volume_label() -> Entry:
    info = tarfile.TarInfo("dev/tape")
    info.type = b"V"
    return Entry(info)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (volume_label(), "'dev/tape' in a squashfs image: tar entry type 'V'"),
        (Entry.file("../outside", b""), "goes up with '..'"),
    ],
)
def test_a_failed_build_keeps_the_previous_files(
    tmp_path: Path, entry: Entry, message: str
) -> None:
    build(tmp_path)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(OutputError, match=message):
        write_outputs(["kernel+squashfs"], bad_rootfs(entry), Boot(), Target(tmp_path, "box"))
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


@pytest.mark.parametrize("compressor", ["xz", "zstd", "lz4", "lzo"])
def test_other_compressors_that_debian_kernels_read(tmp_path: Path, compressor: str) -> None:
    with (tmp_path / "x.img").open("wb") as out:
        write_squashfs(make_rootfs(), out, compressor=compressor)
    info = subprocess.run(["unsquashfs", "-s", str(tmp_path / "x.img")], capture_output=True)
    assert f"Compression {compressor}" in info.stdout.decode()
    assert listing(tmp_path / "x.img") == expected(make_rootfs())


def test_level_zero_stores_data_uncompressed(tmp_path: Path) -> None:
    with (tmp_path / "x.img").open("wb") as out:
        write_squashfs(make_rootfs(), out, Compression(level=0))
    info = subprocess.run(["unsquashfs", "-s", str(tmp_path / "x.img")], capture_output=True)
    assert "Data is uncompressed" in info.stdout.decode()
    assert listing(tmp_path / "x.img") == expected(make_rootfs())


def test_a_stream_that_can_be_read_only_once_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "x.img").open("wb") as out, pytest.raises(TypeError, match="twice"):
        write_squashfs(iter(make_rootfs()), out)
    with (tmp_path / "x.img").open("wb") as out, pytest.raises(ValueError, match="compressor"):
        write_squashfs(make_rootfs(), out, compressor="lzma")
