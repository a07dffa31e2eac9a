"""Output formats end to end, checked with the real tools: GNU cpio, bsdtar, gzip, tar."""

from __future__ import annotations

import gzip
import io
import itertools
import os
import random
import re
import shutil
import stat
import subprocess
import tarfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from kitdsl.errors import OutputError, UsageError
from kitdsl.outputs import (
    DEFAULT_MTIME,
    Boot,
    Compression,
    Entry,
    Needs,
    Target,
    TarSource,
    get,
    names,
    open_linuxkit_tar,
    read_tar,
    write_outputs,
)
from kitdsl.outputs import files as files_module
from kitdsl.outputs.cpio import CpioWriter
from kitdsl.outputs.files import AtomicFiles, identity, written_identity
from tests.test_outputs_cpio import read_newc
from tests.test_outputs_gzip import realistic

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="needs GNU cpio")
needs_bsdtar = pytest.mark.skipif(shutil.which("bsdtar") is None, reason="needs bsdtar")
KERNEL = b"MZ not really a kernel" * 100
UNICODE = "etc/ünïcødé name"
LONG = "usr/share/" + "l" * 120


def make_rootfs() -> list[Entry]:
    """Every entry type, duplicates, odd names, ``boot/`` and about 5 MB of data."""
    binary = realistic(3 << 20, seed=3)
    return [
        Entry.directory("./"),
        Entry.directory("bin"),
        Entry.file("bin/busybox", binary, mode=0o755),
        Entry.hardlink("bin/sh", "bin/busybox"),
        Entry.symlink("bin/ls", "busybox"),
        Entry.directory("boot"),
        Entry.file("boot/stray", b"left out of the initrd"),
        Entry.directory("dev"),
        Entry.device("dev/null", "char", 1, 3, mode=0o666),
        Entry.device("dev/sda", "block", 8, 0, mode=0o660, gid=6),
        Entry.directory("etc"),
        Entry.file("etc/empty", b""),
        Entry.file("etc/hostname", b"first\n"),
        Entry.file("etc/hostname", b"second\n", mode=0o600),  # last one wins
        Entry.symlink("etc/mtab", "/proc/mounts"),
        Entry.file(UNICODE, b"odd\n"),
        Entry.directory("run"),
        Entry.fifo("run/initctl", mode=0o600),
        Entry.directory("tmp", mode=0o1777),
        Entry.directory("usr"),
        Entry.directory("usr/bin"),
        Entry.file("usr/bin/sudo", b"#!/bin/sh\n", mode=0o4755, uid=0, gid=27),
        Entry.hardlink("usr/bin/sh2", "./bin/busybox"),
        Entry.directory("usr/share", mtime=1_600_000_000),
        Entry.file(LONG, realistic(2 << 20, seed=4), uid=1000, gid=100, mtime=1_600_000_000.5),
    ]


def expected_listing(entries: list[Entry]) -> list[tuple[str, str, int, int, str, str]]:
    """(mode, name, uid, gid, size or "major,minor", link target) for each initrd entry."""
    rows = []
    for entry in entries:
        info = entry.info
        name = info.name.strip("/").removeprefix("./") or "."
        if name == "boot" or name.startswith("boot/"):
            continue
        target, size = "", str(info.size)
        kind = {b"0": stat.S_IFREG, b"5": stat.S_IFDIR, b"3": stat.S_IFCHR, b"4": stat.S_IFBLK}
        mode = kind.get(info.type, stat.S_IFIFO) | info.mode
        if info.issym() or info.islnk():
            target = (
                info.linkname
                if info.issym()
                else os.path.relpath(os.path.normpath(info.linkname), os.path.dirname(name))
            )
            mode, size = stat.S_IFLNK | 0o777, str(len(target))
        elif info.isdir() or info.isfifo():
            size = "0"
        elif info.ischr() or info.isblk():
            size = f"{info.devmajor},{info.devminor}"
        rows.append((stat.filemode(mode), name, info.uid, info.gid, size, target))
    return rows


LISTING = re.compile(
    r"(?P<mode>\S{10})\s+\d+\s+(?P<uid>\d+)\s+(?P<gid>\d+)\s+(?P<size>\d+,\s*\d+|\d+)"
    r"\s+\w{3}\s+\d+\s+\S+ (?P<rest>.*)"
)


def parse_listing(text: str) -> list[tuple[str, str, int, int, str, str]]:
    """``ls -l``-like lines from ``cpio -tvn`` or ``bsdtar -tv --numeric-owner``."""
    rows = []
    for line in text.splitlines():
        match = LISTING.fullmatch(line)
        assert match, line
        name, target = match["rest"], ""
        if match["mode"].startswith("l"):
            name, target = name.split(" -> ")
        size = re.sub(r"\s", "", match["size"])
        rows.append((match["mode"], name, int(match["uid"]), int(match["gid"]), size, target))
    return rows


def build(
    folder: Path,
    formats: list[str],
    *,
    boot: Boot | None = None,
    rootfs: Iterable[Entry] | None = None,
    threads: int | None = None,
) -> list[Path]:
    """Write ``formats`` of the test system (or of ``rootfs``) as ``folder/box*``."""
    boot = boot or Boot(kernel=KERNEL, cmdline="console=ttyS0 quiet")
    rootfs = make_rootfs() if rootfs is None else rootfs
    target = Target(folder, "box", Compression(threads=threads))
    return write_outputs(formats, rootfs, boot, target)


@pytest.fixture(scope="module")
def initrd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kit")
    written = build(folder, ["kernel+initrd"])
    assert [path.name for path in written] == ["box-kernel", "box-initrd.img", "box-cmdline"]
    assert (folder / "box-kernel").read_bytes() == KERNEL
    assert (folder / "box-cmdline").read_bytes() == b"console=ttyS0 quiet"
    assert sorted(os.listdir(folder)) == ["box-cmdline", "box-initrd.img", "box-kernel"]
    return folder / "box-initrd.img"


def test_the_initrd_is_a_padded_gzip_of_the_expected_cpio(initrd: Path) -> None:
    data = initrd.read_bytes()
    assert len(data) % 4 == 0
    subprocess.run(["gzip", "-t", str(initrd)], check=True)
    records = read_newc(gzip.decompress(data))
    names_ = [record.name for record in records]
    assert names_ == [row[1] for row in expected_listing(make_rootfs())] + ["TRAILER!!!"]
    for record in records[:-1]:  # the inode number depends on the name alone
        assert record.fields["ino"] == zlib.crc32(record.name.encode())
    assert records[names_.index("bin/busybox")].data == realistic(3 << 20, seed=3)


@needs_cpio
def test_gnu_cpio_lists_exactly_the_expected_entries(initrd: Path) -> None:
    listing = subprocess.run(
        f"zcat {initrd} | cpio -t -v -n --quiet", shell=True, capture_output=True, check=True
    ).stdout.decode()
    assert parse_listing(listing) == expected_listing(make_rootfs())


@needs_bsdtar
def test_bsdtar_agrees(initrd: Path) -> None:
    listing = subprocess.run(
        ["bsdtar", "-tvf", str(initrd), "--numeric-owner"], capture_output=True, check=True
    ).stdout.decode()
    assert parse_listing(listing) == expected_listing(make_rootfs())


@needs_cpio
@pytest.mark.skipif(os.geteuid() != 0, reason="making devices and setting owners needs root")
def test_gnu_cpio_extracts_the_same_tree(initrd: Path, tmp_path: Path) -> None:
    subprocess.run(
        f"zcat {initrd} | cpio -i -d -m -u --quiet --no-absolute-filenames",
        shell=True,
        cwd=tmp_path,
        check=True,
    )
    final: dict[str, Entry] = {}
    for entry in make_rootfs():  # the last entry of a name wins
        name = entry.info.name.strip("/").removeprefix("./") or "."
        if not (name == "boot" or name.startswith("boot/")):
            final[name] = entry
    found = {str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")} | {"."}
    assert found == set(final)
    for name, entry in final.items():
        info, path = entry.info, tmp_path / name
        status = path.lstat()
        if name == ".":  # cpio leaves the folder it extracts into alone
            continue
        if info.islnk():
            assert os.readlink(path) == os.path.relpath(info.linkname, os.path.dirname(name))
            continue
        assert stat.S_IMODE(status.st_mode) == info.mode, name
        assert (status.st_uid, status.st_gid) == (info.uid, info.gid), name
        if info.isreg():
            assert status.st_mtime == int(info.mtime), name
            fresh = next(e for e in reversed(make_rootfs()) if e.info.name == info.name)
            assert fresh.data is not None
            assert path.read_bytes() == fresh.data.read(), name
        elif info.issym():
            assert os.readlink(path) == info.linkname
        elif info.ischr() or info.isblk():
            assert stat.S_ISCHR(status.st_mode) == info.ischr()
            assert (os.major(status.st_rdev), os.minor(status.st_rdev)) == (
                info.devmajor,
                info.devminor,
            )
        elif info.isfifo():
            assert stat.S_ISFIFO(status.st_mode)


def test_same_input_same_bytes_whatever_the_threads(initrd: Path, tmp_path: Path) -> None:
    expected = initrd.read_bytes()
    for threads in (1, 3):
        folder = tmp_path / str(threads)
        build(folder, ["kernel+initrd"], threads=threads)
        assert (folder / "box-initrd.img").read_bytes() == expected


def test_size_is_close_to_gzip_6_of_the_same_cpio(initrd: Path) -> None:
    cpio = io.BytesIO()
    writer = CpioWriter(cpio)
    for entry in make_rootfs():
        if not entry.info.name.startswith("boot"):
            writer.add(entry)
    writer.close()
    reference = subprocess.run(
        ["gzip", "-6", "-n", "-c"], input=cpio.getvalue(), capture_output=True, check=True
    ).stdout
    assert gzip.decompress(initrd.read_bytes()) == cpio.getvalue()
    assert initrd.stat().st_size <= len(reference) * 1.02


def test_ucode_is_prepended_and_an_empty_cmdline_writes_no_file(tmp_path: Path) -> None:
    ucode = io.BytesIO()
    writer = CpioWriter(ucode)
    writer.add(Entry.file("kernel/x86/microcode/GenuineIntel.bin", b"\x01" * 1000))
    writer.close()
    (tmp_path / "box-cmdline").write_text("stale from an earlier build")
    written = build(tmp_path, ["kernel+initrd"], boot=Boot(kernel=KERNEL, ucode=ucode.getvalue()))
    assert [path.name for path in written] == ["box-kernel", "box-initrd.img"]
    assert not (tmp_path / "box-cmdline").exists()
    data = (tmp_path / "box-initrd.img").read_bytes()
    assert data.startswith(ucode.getvalue())
    rest = data[len(ucode.getvalue()) :]
    assert rest[:2] == b"\x1f\x8b"
    assert read_newc(gzip.decompress(rest))[0].name == "."


def test_kernel_from_a_file_and_no_kernel_at_all(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz").write_bytes(KERNEL)
    build(tmp_path / "a", ["kernel+initrd"], boot=Boot(kernel=tmp_path / "vmlinuz"))
    assert (tmp_path / "a" / "box-kernel").read_bytes() == KERNEL
    written = build(tmp_path / "b", ["kernel+initrd"], boot=Boot())
    assert [path.name for path in written] == ["box-initrd.img"]


def test_tar_kernel_initrd(tmp_path: Path, initrd: Path) -> None:
    ucode = b"07070100" * 8
    boot = Boot(kernel=KERNEL, cmdline="console=ttyS0 quiet", ucode=ucode)
    written = build(tmp_path, ["tar-kernel-initrd"], boot=boot)
    assert [path.name for path in written] == ["box-initrd.tar"]
    assert sorted(os.listdir(tmp_path)) == ["box-initrd.tar"]  # no scratch left behind
    with tarfile.open(written[0]) as tar:
        members = tar.getmembers()
        assert [(m.name, m.mode, m.mtime, m.uid) for m in members] == [
            (name, 0o644, DEFAULT_MTIME, 0)
            for name in ("kernel", "initrd.img", "cmdline", "ucode.cpio")
        ]
        contents = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    assert contents["kernel"] == KERNEL
    assert contents["initrd.img"] == initrd.read_bytes()  # the same initrd, without the ucode
    assert contents["cmdline"] == b"console=ttyS0 quiet"
    assert contents["ucode.cpio"] == ucode


def test_tar_round_trip(tmp_path: Path, initrd: Path) -> None:
    (written,) = build(tmp_path, ["tar"])
    assert written.name == "box.tar"
    with written.open("rb") as handle:
        entries = list(_described(read_tar(handle)))
    boot_parts = [
        ("boot", b"5", 0o755, None),
        ("boot/cmdline", b"0", 0o644, b"console=ttyS0 quiet"),
        ("boot/kernel", b"0", 0o644, KERNEL),
    ]
    assert [entry[:4] for entry in entries[:3]] == boot_parts
    assert entries[3:] == list(_described(iter(make_rootfs())))
    # Read back as a LinuxKit tar, it gives the same initrd as the system it was made from.
    boot, source = open_linuxkit_tar(written)
    assert boot == Boot(kernel=KERNEL, cmdline="console=ttyS0 quiet")
    build(tmp_path / "again", ["kernel+initrd"], boot=boot, rootfs=source)
    assert (tmp_path / "again" / "box-initrd.img").read_bytes() == initrd.read_bytes()
    subprocess.run(["tar", "-tf", str(written)], check=True, capture_output=True)


def _described(entries: Iterator[Entry]) -> Iterator[tuple[object, ...]]:
    for entry in entries:
        info = entry.info
        data = entry.data.read() if entry.data is not None else None
        yield (
            info.name.rstrip("/") if info.isdir() else info.name,  # as tarfile reads it
            info.type,
            info.mode,
            data,
            info.uid,
            info.gid,
            info.mtime,
            info.linkname,
            info.devmajor,
            info.devminor,
        )


def test_several_formats_from_one_stream(tmp_path: Path, initrd: Path) -> None:
    rootfs = iter(make_rootfs())  # one pass only: the driver must spool it
    written = build(tmp_path, ["kernel+initrd", "tar", "tar-kernel-initrd", "tar"], rootfs=rootfs)
    assert [path.name for path in written] == [
        "box-kernel",
        "box-initrd.img",
        "box-cmdline",
        "box.tar",
        "box-initrd.tar",
    ]
    assert sorted(os.listdir(tmp_path)) == sorted(path.name for path in written)
    assert (tmp_path / "box-initrd.img").read_bytes() == initrd.read_bytes()


class Interrupted(BaseException):
    """Like Ctrl-C: not an ``Exception``, so only ``finally`` and ``with`` clean-up runs."""


def interrupted_rootfs(after: int) -> Iterator[Entry]:
    for number, entry in enumerate(make_rootfs()):
        if number == after:
            raise Interrupted
        yield entry


@pytest.mark.parametrize("formats", [["kernel+initrd"], ["tar"], ["tar-kernel-initrd", "tar"]])
def test_an_interrupted_build_leaves_no_file_behind(tmp_path: Path, formats: list[str]) -> None:
    (tmp_path / "box-initrd.img").write_bytes(b"from an earlier build")
    with pytest.raises(Interrupted):
        build(tmp_path, formats, rootfs=interrupted_rootfs(after=len(make_rootfs()) - 1))
    assert os.listdir(tmp_path) == ["box-initrd.img"]
    assert (tmp_path / "box-initrd.img").read_bytes() == b"from an earlier build"


def test_the_identity_kept_is_of_the_file_written_not_of_one_that_replaced_it(
    tmp_path: Path,
) -> None:
    # Two builds writing one folder: the other may rename its file over ours before ours is
    # recorded; what is recorded must then not match what is in place.
    with AtomicFiles(tmp_path) as files:
        files.create("box.tar").write(b"ours")
    ours = identity(tmp_path / "box.tar")
    theirs = tmp_path / ".theirs"
    theirs.write_bytes(b"theirs, longer")
    os.replace(theirs, tmp_path / "box.tar")
    assert written_identity(tmp_path / "box.tar") == ours != identity(tmp_path / "box.tar")
    (tmp_path / "notes").write_text("not written by AtomicFiles")
    assert written_identity(tmp_path / "notes") == identity(tmp_path / "notes")


@pytest.mark.parametrize("fadvise", ["real", "recorded", "refused"])
def test_outputs_written_behind_keep_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fadvise: str
) -> None:
    # Writeback is started every WRITE_BEHIND bytes (the kernel's own posix_fadvise, or one
    # that records the ranges asked for); a file system refusing the hint is fine.
    monkeypatch.setattr(files_module, "WRITE_BEHIND", 64 << 10)
    hints: list[tuple[int, int]] = []

    def recording(fd: int, offset: int, length: int, advice: int) -> None:
        hints.append((offset, length))
        if fadvise == "refused":
            raise OSError(95, "Operation not supported")

    if fadvise != "real":
        monkeypatch.setattr(os, "posix_fadvise", recording)
    rng = random.Random(5)
    data = rng.randbytes(1 << 20)
    with AtomicFiles(tmp_path) as files:
        out = files.create("box.img")
        position = 0
        while position < len(data):
            size = rng.choice([1, 100, 5000, 70000, 300000])
            out.write(data[position : position + size])
            position += size
    assert (tmp_path / "box.img").read_bytes() == data
    if fadvise != "real":
        assert hints and hints[0][0] == 0
        assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(hints))


def test_an_entry_that_cannot_be_converted(tmp_path: Path) -> None:
    odd = tarfile.TarInfo("dev/tape-label")
    odd.type = b"V"
    with pytest.raises(OutputError, match="'dev/tape-label' in an initrd: tar entry type 'V'"):
        build(tmp_path, ["kernel+initrd"], rootfs=[*make_rootfs(), Entry(odd)])
    assert os.listdir(tmp_path) == []


def test_unwritable_folder_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        build(tmp_path / "file" / "out", ["kernel+initrd"])


def test_registry() -> None:
    assert {"kernel+initrd", "tar-kernel-initrd", "tar"} <= set(names())
    assert get("kernel+initrd").needs is Needs.STREAM
    assert get("tar-kernel-initrd").needs is Needs.KIT
    boot = Boot(kernel=KERNEL)
    assert get("kernel+initrd").filenames("x", boot) == ["x-kernel", "x-initrd.img"]
    assert get("tar").filenames("x", boot) == ["x.tar"]
    with pytest.raises(UsageError, match="unknown output format 'iso'") as caught:
        get("iso")
    assert "kernel+initrd" in str(caught.value.hint)


def test_a_tar_source_is_read_once_per_format(tmp_path: Path) -> None:
    rng = random.Random(5)
    with (tmp_path / "in.tar").open("wb") as handle, tarfile.open(fileobj=handle, mode="w") as tar:
        info = tarfile.TarInfo("data")
        payload = rng.randbytes(1000)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    source = TarSource(tmp_path / "in.tar")
    written = write_outputs(["tar", "kernel+initrd"], source, Boot(), Target(tmp_path / "o", "b"))
    assert [path.name for path in written] == ["b.tar", "b-initrd.img"]
    assert sorted(os.listdir(tmp_path / "o")) == ["b-initrd.img", "b.tar"]
    assert read_newc(gzip.decompress(written[1].read_bytes()))[0].data == payload


def test_leftovers_of_killed_builds_are_swept_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old = time.time() - 2 * 3600
    leftovers = [out / ".box-initrd.img.abcd1234.tmp", out / ".box.k9x_2zq1"]
    kept = [out / ".box.build.json", out / ".bashrc", out / ".box-kernel.fresh123.tmp"]
    leftovers[0].write_bytes(b"half")
    leftovers[1].mkdir()
    (leftovers[1] / "rootfs.tar").write_bytes(b"x")
    for path in kept:
        path.write_bytes(b"keep")
    (out / ".ssh").mkdir()
    for path in [*leftovers, *kept[:2], out / ".ssh"]:
        os.utime(path, (old, old))
    write_outputs(["tar"], [Entry.directory("etc")], Boot(), Target(out, "box"))
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in kept) and (out / ".ssh").is_dir()
