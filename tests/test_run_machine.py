"""The test-driver API: one booted test system shared by the tests that only look at it,
and short-lived ones for the tests that end it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitdsl.run import (
    BootSpec,
    Disk,
    GuestExited,
    Machine,
    MachineError,
    MachineTimeout,
    NoGuestShell,
    Outcome,
    RunError,
    RunOptions,
)
from tests.bootkit import BootFiles, bootkit  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow


class Booted:
    """The shared machine, what it was given, and what it printed raw."""

    def __init__(self, machine: Machine, log: Path, disk: Path, raw: io.BytesIO) -> None:
        self.machine, self.log, self.disk, self.raw = machine, log, disk, raw


@pytest.fixture(scope="module")
def booted(
    bootkit: BootFiles,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Booted]:
    folder = tmp_path_factory.mktemp("machine")
    disk = folder / "data.qcow2"
    options = RunOptions(accel="tcg", disks=(Disk(disk, size_mib=64),))
    raw = io.BytesIO()
    spec = BootSpec.from_output(bootkit.prefix)
    with Machine(spec, options, forward=[80, 22], console_log=folder / "log", sink=raw) as m:
        yield Booted(m, folder / "log", disk, raw)


def test_console_waits_resume_where_the_last_one_ended(booted: Booted) -> None:
    machine = booted.machine
    first = machine.wait_for_console(r"^\[ *[\d.]+\] Linux version")
    ready = machine.wait_for_console(r"bootkit: ready")
    assert 0 < first.at <= ready.at <= machine.elapsed()
    # "ready" is printed once: a second wait for it does not find the first one again.
    with pytest.raises(MachineTimeout) as error:
        machine.wait_for_console(r"bootkit: ready", timeout=0.5)
    assert "console (last lines):" in error.value.details


def test_http_through_a_published_port(booted: Booted) -> None:
    response = booted.machine.wait_for_http("/", guest_port=80)
    assert response.status == 200 and response.body == b"hello from bootkit\n"
    assert response.at > 0
    with pytest.raises(RunError, match="not published"):
        booted.machine.wait_for_http("/", guest_port=8080)


def test_tcp_banner(booted: Booted) -> None:
    banner = booted.machine.wait_for_tcp_banner(22, prefix=b"SSH-2.0")
    assert banner.data == b"SSH-2.0-bootkit\n"


def test_execute_returns_status_and_output(booted: Booted) -> None:
    machine = booted.machine
    assert machine.execute("echo out; echo err >&2; exit 3") == (3, "out\nerr\n")
    assert machine.execute("printf 'no newline'") == (0, "no newline")
    assert machine.execute('echo "it\'s $((6 * 7))"\necho two') == (0, "it's 42\ntwo\n")
    # A command cannot read the lines meant for the shell.
    assert machine.execute("cat") == (0, "")
    assert machine.succeed("cat /proc/sys/kernel/osrelease").startswith("6.")
    with pytest.raises(MachineError, match="exited with status 1") as error:
        machine.succeed("echo why; false")
    assert error.value.details == ("why",)


def test_disk_is_created_and_attached(booted: Booted) -> None:
    assert booted.disk.read_bytes()[:4] == b"QFI\xfb"
    # 64 MiB in 512-byte sectors.
    assert booted.machine.succeed("cat /sys/block/vda/size") == "131072\n"


def test_console_log_and_text_are_clean(booted: Booted) -> None:
    booted.machine.execute("true")  # the guest is up
    assert b"\x1b[1;32mbootkit: ready\x1b[0m\r\n" in booted.raw.getvalue()
    log = booted.log.read_text()
    assert "\nbootkit: ready\n" in log and "\x1b" not in log and "\r" not in log
    assert "\x1b" not in booted.machine.console


def test_poweroff_is_clean(booted: Booted) -> None:
    machine = booted.machine
    machine.execute("true")  # the guest's shell is up, so it gets the request
    result = machine.poweroff()
    assert result.outcome is Outcome.POWEROFF and result.exit_code == 0
    assert "bootkit: powering off" in machine.console
    with pytest.raises(GuestExited, match="poweroff"):
        machine.execute("true")


@pytest.fixture
def spec(bootkit: BootFiles) -> BootSpec:  # noqa: F811
    return BootSpec.from_output(bootkit.prefix)


def test_execute_without_a_guest_shell(spec: BootSpec) -> None:
    options = RunOptions(accel="tcg", append="bootkit.shell=0")
    with Machine(spec, options) as machine:
        machine.wait_for_console("bootkit: ready")
        with pytest.raises(NoGuestShell) as error:
            machine.execute("true", timeout=2)
        assert "never opened the port" in error.value.message
        assert error.value.hint is not None and "docs/running.md" in error.value.hint
        # Nothing in the guest acts on a power-off request: it is killed after the timeout.
        result = machine.poweroff(timeout=1)
        assert result.outcome is Outcome.STOPPED and result.exit_code == 130


def test_waits_fail_early_when_the_guest_stops(spec: BootSpec) -> None:
    with Machine(spec, RunOptions(accel="tcg", append="bootkit.mode=panic")) as machine:
        with pytest.raises(GuestExited, match="panic: Kernel panic - not syncing"):
            machine.wait_for_console("never printed", timeout=120)
        assert machine.wait_for_exit(0).outcome is Outcome.PANIC
