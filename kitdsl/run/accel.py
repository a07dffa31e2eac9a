"""Choosing between KVM and TCG, with a probe boot for ``--accel auto``.

``/dev/kvm`` opening is no proof that KVM works: in some nested virtual machines it opens,
qemu starts, and the guest then hangs in its first instructions (or qemu aborts setting up
the CPU). qemu's own ``-accel kvm -accel tcg`` fallback only covers KVM failing to
initialise. So ``auto`` boots the kernel once under KVM with no initrd and no disk and waits
:data:`PROBE_TIMEOUT` seconds for the panic that ends that boot ("Unable to mount root fs").
Working KVM gets there well within a second; a kernel that cannot get there in that time
under KVM would boot slower than under TCG anyway.

The verdict is cached in ``<kitdsl cache>/run/`` keyed by the host's boot id, the qemu
binary and version, and the kernel's SHA-256, so the probe is paid once per host boot,
qemu and kernel. Verdicts of earlier host boots are removed when a new one is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from kitdsl.fsutil import atomic_write_text, file_sha256
from kitdsl.oci.store import default_cache_dir
from kitdsl.run.console import Console
from kitdsl.run.errors import RunError
from kitdsl.run.qemu import accel_args, qemu_version
from kitdsl.run.spec import Accel

PROBE_TIMEOUT = 5.0
_PROBE_FORMAT = 1
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# No initrd, no disk, and no init either way: every kernel ends this boot in a panic.
UNSETTLED_FOR = 3600.0
"""Seconds an unsettled verdict (a probe that ran out of time) is kept."""
_PROBE_CMDLINE = "console=ttyS0 panic=-1 rdinit=/kitdsl-probe init=/kitdsl-probe"
_PROBE_DONE = re.compile(r"Kernel panic - not syncing")


@dataclass(frozen=True)
class KvmVerdict:
    """What the probe boot found."""

    works: bool
    reason: str
    seconds: float
    """How long the probe took."""
    settled: bool = True
    """Whether the verdict holds until the host reboots: a guest that booted, or qemu that
    failed; a guest that only ran out of time (a busy host?) is probed again within the hour."""


@dataclass(frozen=True)
class AccelChoice:
    """The accelerator a boot uses, and why."""

    accel: Literal["kvm", "tcg"]
    reason: str
    verdict: KvmVerdict | None = None
    """The probe's verdict, when there is one (run now or cached)."""
    probed: bool = False
    """Whether the probe ran for this choice (``False``: cached or not needed)."""


def kvm_device_problem() -> str | None:
    """Why ``/dev/kvm`` cannot be used, or ``None`` when it opens."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return "/dev/kvm does not exist"
    except PermissionError:
        return "/dev/kvm cannot be opened: permission denied (join the kvm group)"
    except OSError as error:
        return f"/dev/kvm cannot be opened: {error.strerror}"
    os.close(fd)
    return None


def choose_accel(
    requested: Accel, kernel: Path, qemu: str, *, cache_dir: Path | None = None
) -> AccelChoice:
    """The accelerator to boot ``kernel`` with: ``tcg`` and ``kvm`` as asked; ``auto``
    probes KVM (once, see the module documentation) and falls back to TCG."""
    if requested == "tcg":
        return AccelChoice("tcg", "asked for with --accel tcg")
    problem = kvm_device_problem()
    if requested == "kvm":
        if problem is not None:
            raise RunError(f"--accel kvm: {problem}", hint="use --accel tcg or --accel auto")
        cache = _VerdictCache(qemu, kernel, cache_dir)
        return AccelChoice("kvm", "asked for with --accel kvm", cache.read())
    if problem is not None:
        return AccelChoice("tcg", problem)
    cache = _VerdictCache(qemu, kernel, cache_dir)
    verdict = cache.read()
    probed = verdict is None
    if verdict is None:
        verdict = probe_kvm(qemu, kernel)
        cache.write(verdict)
    return AccelChoice(
        "kvm" if verdict.works else "tcg", f"KVM probe: {verdict.reason}", verdict, probed
    )


def probe_kvm(qemu: str, kernel: Path, timeout: float = PROBE_TIMEOUT) -> KvmVerdict:
    """Boot ``kernel`` under KVM and see whether it gets to the end of its boot in time."""
    argv = [qemu, "-nodefaults", "-no-user-config", "-display", "none", "-machine", "q35"]
    argv += [*accel_args("kvm"), "-m", "256", "-kernel", str(kernel)]
    argv += ["-append", _PROBE_CMDLINE, "-serial", "stdio", "-no-reboot"]
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError as error:
        raise RunError(f"cannot start {qemu}: {error.strerror or error}") from error
    assert process.stdout is not None and process.stderr is not None
    console = Console(started=started)
    reader = threading.Thread(target=console.pump, args=(process.stdout.fileno(),), daemon=True)
    reader.start()
    try:
        found, _ = console.search(_PROBE_DONE, 0, timeout)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join(timeout=5)
        errors = process.stderr.read().decode(errors="replace").strip()
        process.stdout.close()
        process.stderr.close()
    seconds = time.monotonic() - started
    if found is not None:
        return KvmVerdict(True, f"a guest booted under KVM in {found.at:.2f} s", seconds)
    text = console.text().strip()
    if process.returncode not in (0, -9):
        first = errors.splitlines()[0] if errors else f"exit status {process.returncode}"
        reason = f"qemu failed under KVM: {first}"
    elif not text:
        reason = f"a guest printed nothing in {timeout:.0f} s under KVM"
    else:
        reason = f"a guest did not finish booting in {timeout:.0f} s under KVM"
    return KvmVerdict(False, reason, seconds, settled=False)


class _VerdictCache:
    """One cached verdict per host boot, qemu and kernel."""

    def __init__(self, qemu: str, kernel: Path, cache_dir: Path | None) -> None:
        self.folder = (cache_dir or default_cache_dir()) / "run"
        self.boot_id = _BOOT_ID.read_text().strip() if _BOOT_ID.exists() else "unknown"
        self.key = {
            "format": _PROBE_FORMAT,
            "boot_id": self.boot_id,
            "qemu": os.path.realpath(qemu),
            "qemu_version": qemu_version(qemu),
            "kernel_sha256": file_sha256(kernel),
        }
        name = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        self.path = self.folder / f"kvm-probe-{name[:32]}.json"

    def read(self) -> KvmVerdict | None:
        try:
            data = json.loads(self.path.read_text())
            if data.get("key") != self.key:
                return None
            settled = bool(data.get("settled", True))
            if not settled and time.time() - self.path.stat().st_mtime > UNSETTLED_FOR:
                return None
            return KvmVerdict(
                bool(data["works"]), str(data["reason"]), float(data["seconds"]), settled
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, verdict: KvmVerdict) -> None:
        try:
            self._forget_other_boots()
            text = json.dumps({"key": self.key, **asdict(verdict)}, indent=2, sort_keys=True)
            atomic_write_text(self.path, text + "\n")
        except OSError:
            pass  # without a cache the probe simply runs again next time

    def _forget_other_boots(self) -> None:
        for path in self.folder.glob("kvm-probe-*.json"):
            try:
                if json.loads(path.read_text())["key"]["boot_id"] != self.boot_id:
                    path.unlink()
            except (OSError, ValueError, KeyError, TypeError):
                continue
