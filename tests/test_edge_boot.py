"""Booting what kitdsl builds: systems/edge.py, and systems/faults.py, whose parts fail on
purpose, each built from Debian's archive into a temporary folder and cache, then booted under
qemu (TCG) with the test driver.

The edge system must come up (every onboot container exits 0, every service runs), serve its
page through a published port, answer SSH and power off cleanly. The faults system must report
its failing onboot container with its exit code, restart its crashing service with back-off
without the machine going down, apply runtime.json (a veth pair, a bound network namespace)
and run its onshutdown container on power off.

Times are printed (qemu start to the first HTTP 200, build times, initrd size), not asserted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kitdsl.run import BootSpec, Machine, Outcome, RunOptions
from systems.edge import page
from tests.conftest import REPO

pytestmark = pytest.mark.slow

OPTIONS = RunOptions(accel="tcg", append="kitdsl.shell=1")
"""TCG everywhere (KVM does not work on every machine tests run on), and the command port."""


@dataclass(frozen=True)
class Built:
    prefix: Path
    seconds: float


def build(system: str, output: Path, cache: Path) -> Built:
    """``kitdsl build`` of ``system`` into ``output``, as a user runs it."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "kitdsl", "build", system, "-o", str(output), "--cache", str(cache)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Built(output / Path(system).stem, time.monotonic() - started)


@dataclass(frozen=True)
class Systems:
    edge: Built
    faults: Built


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Systems]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu is not installed (apt-get install qemu-system-x86)")
    folder = tmp_path_factory.mktemp("boot")
    cache = folder / "cache"
    # The first build fills the empty cache from Debian's archive; the second reuses it.
    edge = build("systems/edge.py", folder / "out", cache)
    faults = build("systems/faults.py", folder / "out", cache)
    yield Systems(edge, faults)


def report(capsys: pytest.CaptureFixture[str], text: str) -> None:
    with capsys.disabled():
        print(f"\n{text}")


def onboot_results(console: str) -> dict[str, str]:
    """Each onboot container's line on the console: ``{"000-sysctl": "exited with code 0
    (0.51 s)"}``."""
    return dict(re.findall(r"^kitdsl: onboot (\S+): (.*)$", console, re.MULTILINE))


def test_edge_boots_serves_and_powers_off(
    systems: Systems, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = BootSpec.from_output(systems.edge.prefix)
    with Machine(spec, OPTIONS, forward=[80, 22]) as machine:
        response = machine.wait_for_http("/", guest_port=80, timeout=120)
        assert response.body.decode() == page.contents
        banner = machine.wait_for_tcp_banner(22, prefix=b"SSH-2.0-", timeout=60)
        assert banner.data.startswith(b"SSH-2.0-dropbear")

        machine.wait_for_console(r"^kitdsl: onboot finished")
        onboot = onboot_results(machine.console)
        assert list(onboot) == ["000-sysctl", "001-dhcpcd"]
        assert all(line.startswith("exited with code 0 ") for line in onboot.values()), onboot
        lease = machine.succeed("cat /var/log/onboot.001-dhcpcd.log")
        assert "dhcpcd: eth0: bound 10.0.2.15/24" in lease

        # getty logs root in on the serial console (INSECURE=true in systems/edge.py).
        machine.wait_for_console(r"root login on 'ttyS0'")
        running = machine.succeed("runc list")
        states = dict(re.findall(r"^(\S+)\s+\d+\s+(\S+)", running, re.MULTILINE))
        assert states == {"getty": "running", "httpd": "running", "sshd": "running"}
        # The service's output is in its log; the root is read-only.
        assert "response:200" in machine.succeed("cat /var/log/httpd.log")
        status, output = machine.execute("touch /x")
        assert status != 0 and "Read-only file system" in output
        # The console login sees the host's /etc, but cannot change what init runs.
        status, output = machine.execute(
            "nsenter -t $(pidof rungetty | cut -d' ' -f1) -m sh -c "
            "'echo ::sysinit:/bin/sh >>/hostroot/etc/inittab'"
        )
        assert status != 0 and "Read-only file system" in output

        result = machine.poweroff()
        assert result.outcome is Outcome.POWEROFF and result.exit_code == 0, result.detail
        assert "FAILED" not in machine.console

    initrd = spec.initrd.stat().st_size if spec.initrd else 0
    report(
        capsys,
        f"edge: qemu start to the first HTTP 200 {response.at:.2f} s, SSH banner "
        f"{banner.at:.2f} s; initrd {initrd / 1e6:.1f} MB; built in {systems.edge.seconds:.1f} s "
        f"from an empty cache ({systems.faults.seconds:.1f} s for the faults system after it)",
    )


def test_failures_are_reported_and_the_machine_stays_up(
    systems: Systems, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = BootSpec.from_output(systems.faults.prefix)
    with Machine(spec, OPTIONS) as machine:
        failed = machine.wait_for_console(
            r"^kitdsl: onboot 000-fail: FAILED, exited with code (\d+) .*; "
            r"see /var/log/onboot\.000-fail\.log$",
            timeout=120,
        )
        assert failed.match.group(1) == "3"
        machine.wait_for_console(r"^kitdsl: onboot 001-netns: exited with code 0 ")
        machine.wait_for_console(r"^kitdsl: onboot finished")

        # The crashing service is started again, after 1, 2, 4, 8 and 16 s; the fifth quick
        # exit in a row is called a crash loop.
        exits = [
            machine.wait_for_console(
                r"^kitdsl: service crash: exited with code 1 after [\d.]+ s(.*); "
                r"restarting in (\d+) s$",
                timeout=60,
            )
            for _ in range(5)
        ]
        assert [int(found.match.group(2)) for found in exits] == [1, 2, 4, 8, 16]
        assert [bool(found.match.group(1)) for found in exits] == [False] * 4 + [True]
        assert "crash loop (5 exits within 10 s of starting)" in exits[-1].match.group(1)

        # The machine is up, and the failures are in the logs.
        assert "crashing on purpose" in machine.succeed("cat /var/log/crash.log")
        failing = machine.succeed("cat /var/log/onboot.000-fail.log")
        assert "failing on purpose" in failing and "exited with code 3" in failing

        # runtime.json: the veth pair's ends, the namespace kept by bindNS and a service in it.
        inside = machine.succeed("nsenter --net=/run/netns/faults ip -o addr show veth1")
        assert "192.168.77.2/24" in inside
        machine.succeed("ip -o link show veth0 && test -d /run/faults")
        machine.succeed("test -d /sys/fs/cgroup/faults")
        assert "running" in machine.succeed("runc state inside")

        # Volumes: the read-only one holds its image and refuses writes; the other takes them.
        tools = "/containers/volumes/tools/merged"
        machine.succeed(f"test -x {tools}/bin/busybox && ! touch {tools}/x")
        machine.succeed("touch /containers/volumes/scratch/merged/x")

        result = machine.poweroff()
        assert result.outcome is Outcome.POWEROFF and result.exit_code == 0, result.detail
        assert "[000-goodbye] goodbye" in machine.console
        assert "kitdsl: onshutdown 000-goodbye: exited with code 0" in machine.console

    report(capsys, f"faults: crash-loop exits at {', '.join(f'{e.at:.1f}' for e in exits)} s")
