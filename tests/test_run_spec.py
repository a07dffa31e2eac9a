"""Booting, the parts that need no guest: boot files, options, the qemu command line, the
console's cleaning and timing, disk images."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest

from kitdsl.errors import UsageError
from kitdsl.run import BootSpec, Disk, Publish, RunError, RunOptions, kernel_cmdline, qemu_argv
from kitdsl.run.console import Console, strip_ansi
from kitdsl.run.qemu import PreparedDisk, Sockets, find_qemu, prepare_disk


def _files(folder: Path, *names: str, cmdline: str | None = None) -> Path:
    for name in names:
        (folder / name).write_bytes(b"x")
    if cmdline is not None:
        (folder / "edge-cmdline").write_text(cmdline + "\n")
    return folder / "edge"


def test_from_output_finds_kernel_initrd_and_cmdline(tmp_path: Path) -> None:
    prefix = _files(tmp_path, "edge-kernel", "edge-initrd.img", cmdline="console=ttyS0 quiet")
    spec = BootSpec.from_output(prefix)
    assert spec == BootSpec(
        tmp_path / "edge-kernel", initrd=tmp_path / "edge-initrd.img", cmdline="console=ttyS0 quiet"
    )
    # Naming one of the files works as well as naming the prefix.
    assert BootSpec.from_output(tmp_path / "edge-initrd.img") == spec


def test_from_output_boots_squashfs_when_there_is_no_initrd(tmp_path: Path) -> None:
    spec = BootSpec.from_output(_files(tmp_path, "edge-kernel", "edge-squashfs.img"))
    assert spec.squashfs == tmp_path / "edge-squashfs.img"
    assert spec.initrd is None and spec.cmdline == ""


def test_from_output_says_how_to_get_missing_files(tmp_path: Path) -> None:
    with pytest.raises(RunError) as missing:
        BootSpec.from_output(tmp_path / "edge")
    assert "edge-kernel does not exist" in missing.value.message
    assert missing.value.hint is not None and "kitdsl build" in missing.value.hint
    with pytest.raises(RunError, match=r"no edge-initrd\.img or edge-squashfs\.img"):
        BootSpec.from_output(_files(tmp_path, "edge-kernel"))


def test_publish_parse() -> None:
    assert Publish.parse("8080:80") == Publish(8080, 80, "tcp")
    assert Publish.parse("5353:53/udp").hostfwd() == "udp:127.0.0.1:5353-:53"
    for bad in ("80", "a:80", "8080:80/sctp", "70000:80"):
        with pytest.raises(UsageError):
            Publish.parse(bad)


def test_disk_parse() -> None:
    assert Disk.parse("data.img") == Disk(Path("data.img"))
    assert Disk.parse("file=d.qcow2,size=2G,format=qcow2") == Disk(Path("d.qcow2"), 2048, "qcow2")
    assert Disk.parse("d.img,size=64,format=raw") == Disk(Path("d.img"), 64, "raw")
    for bad in ("size=1G", "d.img,size=1T", "d.img,format=vmdk", "d.img,bus=ide"):
        with pytest.raises(UsageError):
            Disk.parse(bad)


def test_run_options_refuse_nonsense() -> None:
    for options in ({"mem": 0}, {"cpus": 0}, {"timeout": 0.0}):
        with pytest.raises(UsageError):
            RunOptions(**options)  # type: ignore[arg-type]


def test_kernel_cmdline_adds_console_and_panic_only_when_unset() -> None:
    spec = BootSpec(Path("k"), initrd=Path("i"), cmdline="quiet")
    assert kernel_cmdline(spec, "") == "quiet console=ttyS0 panic=-1"
    assert kernel_cmdline(spec, "console=hvc0 panic=5") == "quiet console=hvc0 panic=5"
    squashfs = BootSpec(Path("k"), squashfs=Path("s"), cmdline="console=ttyS0")
    assert kernel_cmdline(squashfs, "") == "console=ttyS0 panic=-1 root=/dev/vda"


def _argv(spec: BootSpec, options: RunOptions, **kwargs: object) -> list[str]:
    return qemu_argv(
        "qemu",
        spec,
        options,
        accel="tcg",
        disks=[PreparedDisk(Path("/d/a,b.img"), "raw")],
        sockets=Sockets(Path("/t/qmp"), Path("/t/shell")),
        serial="pipe",
        **kwargs,  # type: ignore[arg-type]
    )


def _value(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, item in enumerate(argv) if item == flag]


def test_qemu_argv() -> None:
    spec = BootSpec(Path("/o/k"), squashfs=Path("/o/s.img"))
    options = RunOptions(mem=512, cpus=2, publish=(Publish(8080, 80), Publish(5353, 53, "udp")))
    argv = _argv(spec, options)
    assert "-S" in argv and "-no-reboot" in argv
    assert _value(argv, "-m") == ["512"] and _value(argv, "-smp") == ["2"]
    assert _value(argv, "-accel") == ["tcg"]
    assert _value(argv, "-netdev") == [
        "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:53"
    ]
    # The squashfs root is the first disk (/dev/vda); commas in paths are doubled for qemu.
    assert _value(argv, "-drive") == [
        "file=/o/s.img,format=raw,if=virtio,readonly=on",
        "file=/d/a,,b.img,format=raw,if=virtio",
    ]
    assert "panic=exit-failure" in _value(argv, "-action")
    assert _value(argv, "-qmp") == ["unix:/t/qmp"]
    assert "socket,id=shell,path=/t/shell" in _value(argv, "-chardev")


def test_strip_ansi() -> None:
    raw = "\x1bc\x1b[?7l\x1b[2J\x1b[1;32mready\x1b[0m\r\n/ # \x1b[6n\x1b]0;title\x07x\x00"
    assert strip_ansi(raw) == "ready\n/ # x"


def test_console_cleans_lines_and_keeps_their_times(tmp_path: Path) -> None:
    sink = io.BytesIO()
    log = io.StringIO()
    console = Console(started=0.0, sink=sink, log=log)
    seen: list[str] = []
    console.on_line(seen.append)
    # Chunks split inside an escape sequence, a UTF-8 character and a line end.
    for chunk in (b"\x1b[1;3", b"2mboot\xc3", b"\xa9\x1b[0m\r", b"\nsecond line\r\n", b"/ # "):
        console.feed(chunk)
    assert sink.getvalue().startswith(b"\x1b[1;32mboot\xc3\xa9")
    assert seen == ["boot\u00e9", "second line"]
    assert console.text() == "boot\u00e9\nsecond line\n/ # "
    assert [text for _, text in console.lines()] == ["boot\u00e9", "second line"]
    found, cursor = console.search(re.compile("line"), 0, timeout=0)
    assert found is not None and found.text == "line" and found.at > 0
    # Searching again from the cursor does not find the same text twice.
    assert console.search(re.compile("line"), cursor, timeout=0)[0] is None
    # An unfinished last line reaches the log when the stream ends.
    console.close()
    assert log.getvalue() == "boot\u00e9\nsecond line\n/ # \n"


def test_find_qemu_names_what_is_missing() -> None:
    with pytest.raises(RunError) as error:
        find_qemu("/nonexistent/qemu-system-x86_64")
    assert "/nonexistent/qemu-system-x86_64" in error.value.message
    assert error.value.hint is not None and "--qemu" in error.value.hint


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
def test_prepare_disk_creates_once_and_detects_formats(tmp_path: Path) -> None:
    created = prepare_disk(Disk(tmp_path / "new.img", size_mib=8), "qemu-system-x86_64")
    assert created == PreparedDisk(tmp_path / "new.img", "qcow2")
    assert (tmp_path / "new.img").read_bytes()[:4] == b"QFI\xfb"
    # An existing image is used as it is, its format read from the file.
    assert prepare_disk(Disk(tmp_path / "new.img", 99), "qemu-system-x86_64").format == "qcow2"
    (tmp_path / "plain.img").write_bytes(bytes(4096))
    assert prepare_disk(Disk(tmp_path / "plain.img"), "qemu").format == "raw"
    raw = prepare_disk(Disk(tmp_path / "r.img", 4, "raw"), "qemu-system-x86_64")
    assert raw.format == "raw" and (tmp_path / "r.img").stat().st_size == 4 << 20
    with pytest.raises(UsageError, match="does not exist"):
        prepare_disk(Disk(tmp_path / "absent.img"), "qemu")


@pytest.mark.parametrize(
    ("line", "panic"),
    [
        ("[    2.345678] Kernel panic - not syncing: Attempted to kill init!", True),
        ("Kernel panic - not syncing: VFS: Unable to mount root fs", True),
        ("<0>[    1.000000] Kernel panic - not syncing: Fatal exception", True),
        ("[000-job] grep found: Kernel panic - not syncing: in a log", False),
        ("echo Kernel panic - not syncing", False),
    ],
)
def test_only_the_kernels_own_panic_line_counts(line: str, panic: bool) -> None:
    from kitdsl.run.process import PANIC_LINE

    assert (PANIC_LINE.match(line) is not None) is panic


def test_a_console_that_keeps_little_stays_small() -> None:
    import time

    from kitdsl.run.console import RECENT, Console

    seen: list[str] = []
    console = Console(started=time.monotonic(), keep=False)
    console.on_line(seen.append)
    for number in range(5 * RECENT):
        console.feed(f"\x1b[1mline {number}\x1b[0m\r\n".encode())
    assert len(seen) == 5 * RECENT  # every line still reaches listeners (the log, panics)
    kept = console.text().splitlines()
    assert len(kept) == RECENT and kept[-1] == f"line {5 * RECENT - 1}"
