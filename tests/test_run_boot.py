"""``kitdsl run qemu`` and :func:`kitdsl.run.boot`, booting the test system under qemu: how a
run ends (power off, panic, reboot, timeout, stop), the console and its log, published ports,
and the KVM probe."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kitdsl.run import BootSpec, Outcome, RunError, RunOptions, boot, choose_accel
from kitdsl.run.accel import kvm_device_problem
from kitdsl.run.qemu import find_qemu
from tests.bootkit import BootFiles, bootkit  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow


@pytest.fixture
def kit(bootkit: BootFiles) -> BootFiles:  # noqa: F811
    """The test system's boot files."""
    return bootkit


def kitdsl_run(*args: str, cache: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitdsl", "run", "qemu", *args],
        cwd=cwd,
        env={**os.environ, "KITDSL_CACHE": str(cache)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_poweroff_panic_console_log_and_probe_once(kit: BootFiles, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = kitdsl_run(
        str(kit.prefix), "--append", "bootkit.mode=poweroff", cache=cache, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert "the guest powered off" in first.stderr
    # The terminal gets the console as the guest wrote it; the log gets it clean.
    assert "\x1b[1;32mbootkit: ready\x1b[0m" in first.stdout
    log = kit.prefix.with_name("bk-console.log").read_text()
    assert "\nbootkit: ready\nbootkit: powering off\n" in log
    assert "\x1b" not in log and "\r" not in log
    accel_line = first.stderr.splitlines()[0]
    if kvm_device_problem() is None:
        # --accel auto probed KVM, said so, and cached the verdict it booted with.
        assert "probe took" in accel_line and "verdict cached" in accel_line
        [cached] = (cache / "run").glob("kvm-probe-*.json")
        verdict = json.loads(cached.read_text())
        chosen = "kvm" if verdict["works"] else "tcg"
        assert accel_line.startswith(f"kitdsl: accelerator: {chosen} (KVM probe: ")
    else:
        assert accel_line.startswith("kitdsl: accelerator: tcg (/dev/kvm")

    second = kitdsl_run(
        str(kit.prefix),
        "--append",
        "bootkit.mode=panic",
        "--console-log",
        "panic.log",
        cache=cache,
        cwd=tmp_path,
    )
    assert second.returncode == 11, second.stderr
    assert "kernel panicked" in second.stderr and "Attempted to kill init" in second.stderr
    assert "probe took" not in second.stderr  # the cached verdict was used
    assert "bootkit: init exits" in (tmp_path / "panic.log").read_text()


def test_cli_timeout(kit: BootFiles, tmp_path: Path) -> None:
    result = kitdsl_run(
        "--kernel",
        str(kit.kernel),
        "--initrd",
        str(kit.initrd),
        "--append",
        "bootkit.mode=hang",
        "--accel",
        "tcg",
        "--timeout",
        "2",
        cache=tmp_path,
        cwd=tmp_path,
    )
    assert result.returncode == 124, result.stderr
    assert "still running after 2 s, so qemu was stopped" in result.stderr


def test_cli_publish_and_stop(kit: BootFiles, tmp_path: Path) -> None:
    port = _free_port()
    argv = [sys.executable, "-m", "kitdsl", "run", "qemu", str(kit.prefix), "--accel", "tcg"]
    process = subprocess.Popen(
        [*argv, "--publish", f"{port}:80", "--console-log", str(tmp_path / "log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = _http_get(port, deadline=time.monotonic() + 60)
        assert body == b"hello from bootkit\n"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "qemu was stopped" in stderr


def test_panic_is_caught_without_pvpanic_or_reboot(kit: BootFiles) -> None:
    # No pvpanic driver and panic=0: the kernel would hang forever after its panic.
    spec = BootSpec(kit.kernel, initrd=kit.initrd, cmdline=kit.cmdline)
    options = RunOptions(
        accel="tcg", append="bootkit.mode=panic bootkit.pvpanic=0 panic=0", timeout=60
    )
    result = boot(spec, options)
    assert result.outcome is Outcome.PANIC and result.exit_code == 11
    assert result.detail.startswith("Kernel panic - not syncing: Attempted to kill init!")


def test_reboot_ends_the_run(kit: BootFiles) -> None:
    spec = BootSpec.from_output(kit.prefix)
    result = boot(spec, RunOptions(accel="tcg", append="bootkit.mode=reboot", timeout=60))
    assert result.outcome is Outcome.REBOOT and result.exit_code == 12


def test_accel_auto_probes_once_per_kernel(kit: BootFiles, tmp_path: Path) -> None:
    if (problem := kvm_device_problem()) is not None:
        pytest.skip(f"no KVM to probe: {problem}")
    qemu = find_qemu()
    first = choose_accel("auto", kit.kernel, qemu, cache_dir=tmp_path)
    assert first.probed and first.verdict is not None
    assert first.accel == ("kvm" if first.verdict.works else "tcg")
    second = choose_accel("auto", kit.kernel, qemu, cache_dir=tmp_path)
    assert not second.probed and second.verdict == first.verdict
    assert second.accel == first.accel
    # Another kernel is another question.
    other = tmp_path / "other-kernel"
    other.write_bytes(kit.kernel.read_bytes() + b"\0")
    assert choose_accel("auto", other, qemu, cache_dir=tmp_path).probed


def test_accel_kvm_on_broken_kvm_fails_naming_the_probe(kit: BootFiles, tmp_path: Path) -> None:
    if (problem := kvm_device_problem()) is not None:
        pytest.skip(f"no KVM: {problem}")
    verdict = choose_accel("auto", kit.kernel, find_qemu(), cache_dir=tmp_path).verdict
    assert verdict is not None
    if verdict.works:
        pytest.skip("KVM works on this host")
    result = kitdsl_run(
        str(kit.prefix), "--accel", "kvm", "--timeout", "15", cache=tmp_path, cwd=tmp_path
    )
    # qemu aborts (exit 10) or the guest hangs (exit 124); either way the probe is named.
    assert result.returncode in (13, 124), result.stderr
    assert f"the KVM probe on this host found: {verdict.reason}" in result.stderr


def test_missing_qemu_is_a_clear_error(kit: BootFiles) -> None:
    spec = BootSpec.from_output(kit.prefix)
    with pytest.raises(RunError, match="qemu was not found"):
        boot(spec, RunOptions(qemu="/nonexistent/qemu-system-x86_64"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _http_get(port: int, deadline: float) -> bytes:
    """Poll with short timeouts: slirp accepts connections before the guest listens."""
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            if response.status == 200:
                return response.read()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        assert time.monotonic() < deadline, f"no HTTP 200 on port {port}"
        time.sleep(0.1)
