"""A running qemu: started paused, connected to QMP, let run, watched, and told apart at exit.

How a run ends (:class:`Outcome`) is decided from three witnesses, so a panic is never
mistaken for success whatever the guest provides:

* QMP's ``SHUTDOWN`` event says why qemu stopped: ``guest-shutdown`` (power off),
  ``guest-reset`` (a reboot, which ``-no-reboot`` turns into an exit), ``guest-panic``
  (the pvpanic device), or ``host-*`` (a signal, Ctrl-A x, a QMP ``quit``);
* ``GUEST_PANICKED`` comes when the guest's pvpanic-pci driver reports a panic;
* the console: a ``Kernel panic - not syncing`` line marks a panic even when the guest has no
  pvpanic driver (it then reboots because of ``panic=-1`` and qemu exits 0). When qemu has not
  exited a few seconds after that line (the command line set ``panic=0``), it is killed.
"""

from __future__ import annotations

import contextlib
import enum
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from kitdsl.run.console import Console
from kitdsl.run.errors import RunError
from kitdsl.run.qemu import PreparedDisk, SerialMode, Sockets, qemu_argv
from kitdsl.run.qmp import Qmp, QmpError
from kitdsl.run.spec import BootSpec, RunOptions

PANIC_LINE = re.compile(
    r"(?:<\d>)?(?:\[\s*\d+\.\d+\]\s*)?(?P<panic>Kernel panic - not syncing: ?.*)"
)
"""The kernel's own panic line, at the start of a console line (after its log level and time
stamp, when it prints them): a program printing those words elsewhere is not a panic."""
PANIC_GRACE = 3.0
"""Seconds qemu gets to exit by itself after the console shows a panic."""
START_TIMEOUT = 30.0
QUIT_GRACE = 5.0


class Outcome(enum.Enum):
    """How a guest's run ended; :attr:`exit_code` is what ``kitdsl run`` exits with."""

    POWEROFF = "poweroff"
    PANIC = "panic"
    REBOOT = "reboot"
    TIMEOUT = "timeout"
    STOPPED = "stopped"

    @property
    def exit_code(self) -> int:
        """0 power off, 11 kernel panic, 12 reboot, 124 timeout, 130 stopped from the host."""
        return _EXIT_CODES[self]


_EXIT_CODES = {
    Outcome.POWEROFF: 0,
    Outcome.PANIC: 11,
    Outcome.REBOOT: 12,
    Outcome.TIMEOUT: 124,
    Outcome.STOPPED: 130,
}


@dataclass(frozen=True)
class RunResult:
    """What became of a boot."""

    outcome: Outcome
    seconds: float
    """From qemu's start to its exit."""
    accel: str
    detail: str = ""
    """Why, in words: the panic message, the signal, ..."""

    @property
    def exit_code(self) -> int:
        """The exit code ``kitdsl run qemu`` gives for this result."""
        return self.outcome.exit_code


StopReason = Literal["timeout", "stop"]


class QemuProcess:
    """One qemu, from :meth:`start` to :meth:`close` (use it as a context manager)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        folder: Path,
        console: Console,
        accel: str,
    ) -> None:
        self.process = process
        self.console = console
        self.accel = accel
        self._folder = folder
        self.qmp: Qmp | None = None
        self.shell: socket.socket | None = None
        """The host end of the guest's command port, when one was asked for."""
        self._stderr = bytearray()
        self._threads: list[threading.Thread] = []
        self._panic: tuple[float, str] | None = None
        self._stopped_for: StopReason | None = None
        self._result: RunResult | None = None
        console.on_line(self._watch_line)

    @classmethod
    def start(
        cls,
        qemu: str,
        spec: BootSpec,
        options: RunOptions,
        *,
        accel: Literal["kvm", "tcg"],
        disks: list[PreparedDisk],
        serial: SerialMode,
        stdin: int | IO[bytes] | None,
        sink: IO[bytes] | None = None,
        log: IO[str] | None = None,
        shell: bool = False,
        keep_console: bool = True,
    ) -> QemuProcess:
        """Start qemu paused, connect QMP (and the command port), then let the guest run."""
        # Socket paths must stay short (108 bytes), so they live in a fresh folder in /tmp.
        folder = Path(tempfile.mkdtemp(prefix="kitdsl-qemu-"))
        listeners: list[socket.socket] = []
        try:
            sockets = Sockets(folder / "qmp", folder / "shell" if shell else None)
            for path in (sockets.qmp, sockets.shell):
                if path is not None:
                    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    listener.bind(str(path))
                    listener.listen(1)
                    listeners.append(listener)
            argv = qemu_argv(
                qemu, spec, options, accel=accel, disks=disks, sockets=sockets, serial=serial
            )
            started = time.monotonic()
            try:
                process = subprocess.Popen(
                    argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            except OSError as error:
                raise RunError(f"cannot start {qemu}: {error.strerror or error}") from error
        except BaseException:
            for listener in listeners:
                listener.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        console = Console(started=started, sink=sink, log=log, keep=keep_console)
        running = cls(process, folder=folder, console=console, accel=accel)
        try:
            running._follow_output()
            connections = [running._accept(listener) for listener in listeners]
            running.qmp = Qmp(connections[0])
            if shell:
                running.shell = connections[1]
            running.qmp.negotiate()
            running.qmp.execute("cont")
        except QmpError as error:
            # Usually qemu died on its way up (a CPU it cannot set up): say what it said.
            try:
                status = process.wait(5)
            except subprocess.TimeoutExpired:
                running.close()
                raise error from None
            running.close()
            raise running._start_failed(status) from None
        except BaseException:
            running.close()
            raise
        finally:
            for listener in listeners:
                listener.close()
        return running

    def _follow_output(self) -> None:
        assert self.process.stdout is not None and self.process.stderr is not None
        stdout, stderr = self.process.stdout.fileno(), self.process.stderr.fileno()
        for name, target in (("console", self.console.pump), ("stderr", self._read_stderr)):
            fd = stdout if name == "console" else stderr
            thread = threading.Thread(target=target, args=(fd,), name=f"kitdsl-{name}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def _read_stderr(self, fd: int) -> None:
        while data := os.read(fd, 65536):
            self._stderr += data
            # Keep the end: that is where qemu says why it failed.
            del self._stderr[:-65536]

    def _accept(self, listener: socket.socket) -> socket.socket:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([listener], [], [], 0.1)
            if ready:
                connection, _ = listener.accept()
                return connection
            if self.process.poll() is not None:
                raise self._start_failed(self.process.returncode)
        raise RunError(f"qemu did not connect its monitor within {START_TIMEOUT:.0f} s")

    def _start_failed(self, status: int) -> RunError:
        self._join_output()
        return RunError(
            f"qemu stopped as it started ({_status_text(status)})",
            details=tuple(self.stderr_tail().splitlines()),
        )

    def _watch_line(self, line: str) -> None:
        match = PANIC_LINE.match(line)
        if match is not None and self._panic is None:
            self._panic = (time.monotonic(), match.group("panic"))

    def stderr_tail(self, lines: int = 10) -> str:
        """The last lines qemu wrote to its standard error."""
        text = self._stderr.decode(errors="replace").strip()
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        """Whether qemu has not exited yet."""
        return self.process.poll() is None

    def elapsed(self) -> float:
        """Seconds since qemu was started."""
        return time.monotonic() - self.console.started

    def wait(self, timeout: float | None) -> RunResult | None:
        """Wait up to ``timeout`` seconds (``None``: no limit) for the guest to stop; the
        result, or ``None`` when it is still running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.process.poll() is None:
            now = time.monotonic()
            if self._panic is not None and now - self._panic[0] > PANIC_GRACE:
                self.process.kill()
            if deadline is not None and now >= deadline:
                return None
            step = 0.1 if deadline is None else max(0.0, min(0.1, deadline - now))
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(step)
        return self._finish()

    def stop(self, reason: StopReason, grace: float = QUIT_GRACE) -> RunResult:
        """Make qemu quit (QMP ``quit``, then SIGKILL after ``grace`` seconds)."""
        if self._result is not None:
            return self._result
        self._stopped_for = self._stopped_for or reason
        if self.qmp is not None and self.process.poll() is None:
            with contextlib.suppress(QmpError):
                self.qmp.execute("quit", timeout=grace)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self._finish()

    def kill(self, reason: StopReason = "stop") -> RunResult:
        """Kill qemu at once (SIGKILL)."""
        if self._result is None:
            self._stopped_for = self._stopped_for or reason
            self.process.kill()
            self.process.wait()
        return self._finish()

    def _join_output(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)

    def _finish(self) -> RunResult:
        if self._result is not None:
            return self._result
        status = self.process.wait()
        # The console and QMP are read to their end, so nothing qemu said before exiting
        # is missed.
        self._join_output()
        if self.qmp is not None:
            self.qmp.wait_closed(5)
        self._result = self._classify(status)
        return self._result

    def _classify(self, status: int) -> RunResult:
        seconds = self.elapsed()

        def result(outcome: Outcome, detail: str) -> RunResult:
            return RunResult(outcome, seconds, self.accel, detail)

        if self._stopped_for == "timeout":
            return result(Outcome.TIMEOUT, "")
        shutdown = self.qmp.find("SHUTDOWN") if self.qmp else None
        reason = str(shutdown["data"].get("reason", "")) if shutdown else ""
        pvpanic = self.qmp is not None and self.qmp.find("GUEST_PANICKED") is not None
        if self._panic is not None:
            return result(Outcome.PANIC, self._panic[1])
        if pvpanic or reason == "guest-panic":
            return result(Outcome.PANIC, "the guest reported a panic (pvpanic)")
        if reason == "guest-shutdown":
            return result(Outcome.POWEROFF, "the guest powered off")
        if reason == "guest-reset":
            return result(Outcome.REBOOT, "the guest rebooted (qemu runs with -no-reboot)")
        if reason.startswith("host") or self._stopped_for == "stop":
            how = reason or _status_text(status)
            return result(Outcome.STOPPED, f"qemu was stopped from the host ({how})")
        raise RunError(
            f"qemu failed ({_status_text(status)})", details=tuple(self.stderr_tail().splitlines())
        )

    def close(self) -> None:
        """Kill qemu if it still runs and release everything it held."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._join_output()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.qmp is not None:
            self.qmp.close()
        if self.shell is not None:
            with contextlib.suppress(OSError):
                self.shell.shutdown(socket.SHUT_RDWR)
            self.shell.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> QemuProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _status_text(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"
