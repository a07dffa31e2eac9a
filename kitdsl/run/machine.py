"""Driving a booted guest from tests, in the manner of NixOS's test driver.

::

    with Machine(BootSpec.from_output(Path("out/edge")), forward=[80]) as machine:
        machine.wait_for_console(r"bootkit: ready")
        response = machine.wait_for_http("/", guest_port=80)
        status, output = machine.execute("uname -r")
        assert machine.poweroff().outcome is Outcome.POWEROFF

Guest ports in ``forward`` are published on free host ports (:meth:`Machine.host_port`).
Every wait polls with short timeouts until its deadline and fails early, with the console's
last lines, when the guest stops. Times (``at``) count seconds from qemu's start.

:meth:`Machine.execute` needs a shell on the guest's virtio port ``org.kitdsl.shell``
(:mod:`kitdsl.run.shell`); without one it raises :class:`NoGuestShell`.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from kitdsl.run.accel import AccelChoice
from kitdsl.run.boot import kvm_hint, prepare
from kitdsl.run.console import ConsoleMatch
from kitdsl.run.errors import GuestExited, MachineError, MachineTimeout, NoGuestShell, RunError
from kitdsl.run.process import QemuProcess, RunResult
from kitdsl.run.qemu import SHELL_PORT_ID, SHELL_PORT_NAME
from kitdsl.run.shell import GuestShell, ShellClosed, ShellTimeout
from kitdsl.run.spec import BootSpec, Publish, RunOptions

_PORT_ATTEMPTS = 3


def _attempt_timeout(timeouts: int) -> float:
    """Seconds one HTTP or TCP attempt may take, after ``timeouts`` attempts in a row timed
    out. qemu's user network accepts connections before the guest's network is up, and such a
    connection hangs until the attempt times out: short attempts keep the time of the first
    answer close to when the guest could first give it; growing ones let a slow server answer.
    """
    return min(5.0, 0.5 + 0.25 * timeouts)


@dataclass(frozen=True)
class HttpResponse:
    """The response a wait ended with."""

    status: int
    body: bytes
    at: float
    """Seconds from qemu's start to this response."""


@dataclass(frozen=True)
class TcpBanner:
    """The first bytes a guest's TCP service sent."""

    data: bytes
    at: float


SHELL_OPTION = "kitdsl.shell=1"
"""The kernel command line option that makes kitdsl's init run a shell on the command port."""


class Machine:
    """A guest booted under qemu for a test; use it as a context manager (leaving kills qemu;
    :meth:`poweroff` first for a clean stop)."""

    def __init__(
        self,
        spec: BootSpec,
        options: RunOptions | None = None,
        *,
        forward: Iterable[int | str] = (),
        console_log: Path | None = None,
        sink: IO[bytes] | None = None,
    ) -> None:
        """``forward`` lists guest ports (``80``, ``"53/udp"``) to publish on free host
        ports; ``console_log`` overrides ``options.console_log``; ``sink`` receives the
        console's raw bytes (``sys.stdout.buffer`` to watch a test boot)."""
        self.spec = spec
        self.options = options or RunOptions()
        if SHELL_OPTION not in self.options.append.split():
            # The port is attached to every Machine; this asks the guest's init to serve it.
            append = f"{self.options.append} {SHELL_OPTION}".strip()
            self.options = replace(self.options, append=append)
        if console_log is not None:
            self.options = replace(self.options, console_log=console_log)
        self._forward = [_guest_port(port) for port in forward]
        self._sink = sink
        self._process: QemuProcess | None = None
        self._shell: GuestShell | None = None
        self._log: IO[str] | None = None
        self._cursor = 0
        self.accel: AccelChoice | None = None
        """The accelerator chosen, once started."""
        self.ports: dict[tuple[int, str], int] = {}
        """Host port of each published ``(guest port, protocol)``."""

    # Starting and stopping.

    def start(self) -> Machine:
        """Boot the guest (it runs in the background)."""
        qemu, disks, self.accel = prepare(self.spec, self.options)
        if self.options.console_log is not None:
            self.options.console_log.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.options.console_log.open("w", encoding="utf-8", newline="\n")
        for attempt in range(_PORT_ATTEMPTS):
            chosen = [Publish(_free_port(proto), guest, proto) for guest, proto in self._forward]
            options = replace(self.options, publish=(*self.options.publish, *chosen))
            try:
                self._process = QemuProcess.start(
                    qemu,
                    self.spec,
                    options,
                    accel=self.accel.accel,
                    disks=disks,
                    serial="pipe",
                    stdin=subprocess.PIPE,
                    sink=self._sink,
                    log=self._log,
                    shell=True,
                )
            except RunError as error:
                # Another program may have taken a free port before qemu did: choose again.
                if "host forwarding" in str(error) and attempt + 1 < _PORT_ATTEMPTS:
                    continue
                self._close_log()
                if self.accel.accel == "kvm" and error.hint is None:
                    error.hint = kvm_hint(self.accel)
                raise
            break
        self.ports = {(p.guest, p.protocol): p.host for p in options.publish}
        assert self._process is not None and self._process.shell is not None
        self._shell = GuestShell(self._process.shell)
        return self

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill qemu if it still runs and release its resources."""
        if self._process is not None:
            self._process.close()
        if self._shell is not None:
            self._shell.close()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def process(self) -> QemuProcess:
        """The running qemu (after :meth:`start`)."""
        if self._process is None:
            raise RunError("the machine has not been started: use `with Machine(...)`")
        return self._process

    @property
    def running(self) -> bool:
        """Whether qemu still runs."""
        return self.process.running

    def elapsed(self) -> float:
        """Seconds since qemu started."""
        return self.process.elapsed()

    def wait_for_exit(self, timeout: float = 60.0) -> RunResult:
        """Wait for the guest to stop by itself; how it ended."""
        result = self.process.wait(timeout)
        if result is None:
            raise self._timeout(f"the guest was still running after {timeout:g} s")
        return result

    def kill(self) -> RunResult:
        """Stop qemu at once (the outcome is ``STOPPED``)."""
        return self.process.kill()

    def poweroff(self, timeout: float = 30.0) -> RunResult:
        """Ask the guest to power off and wait for it; kill qemu after ``timeout`` seconds.

        Two requests are made: the ACPI power button (QMP ``system_powerdown``; the guest
        acts on it if it runs ``acpid`` or similar) and, when the guest has opened its command
        port, ``poweroff`` through the shell there.
        """
        process = self.process
        if not process.running:
            return self.wait_for_exit(0)
        with contextlib.suppress(RunError):
            assert process.qmp is not None
            process.qmp.execute("system_powerdown")
        if self._shell is not None and (self._shell.answered or self._port_opened()):
            with contextlib.suppress(ShellClosed):
                self._shell.send("poweroff")
        result = process.wait(timeout)
        if result is None:
            result = replace(
                process.kill(), detail=f"the guest did not power off within {timeout:g} s"
            )
        return result

    def _port_opened(self) -> bool:
        qmp = self.process.qmp
        return qmp is not None and any(
            event["event"] == "VSERPORT_CHANGE"
            and event.get("data", {}).get("id") == SHELL_PORT_ID
            and event["data"].get("open")
            for event in list(qmp.events)
        )

    # The console.

    @property
    def console(self) -> str:
        """The console so far, without ANSI escapes."""
        return self.process.console.text()

    def console_lines(self) -> list[tuple[float, str]]:
        """The complete console lines with their arrival times."""
        return self.process.console.lines()

    def wait_for_console(
        self, pattern: str | re.Pattern[str], timeout: float = 60.0
    ) -> ConsoleMatch:
        """Wait for ``pattern`` (a regular expression, multi-line) on the console.

        The search starts where the previous successful wait ended, so waiting twice for the
        same text waits for it to be printed twice.
        """
        compiled = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        found, self._cursor = self.process.console.search(compiled, self._cursor, timeout)
        if found is None:
            what = f"{compiled.pattern!r} did not appear on the console"
            # The console ends when qemu exits (a moment before qemu is seen to have).
            if self.process.console.closed or not self.running:
                raise self._exited(what)
            raise self._timeout(f"{what} within {timeout:g} s")
        return found

    def send_console(self, text: str) -> None:
        """Type ``text`` on the serial console."""
        stdin = self.process.process.stdin
        if stdin is None:
            raise RunError("the console of this machine takes no input")
        stdin.write(text.encode())
        stdin.flush()

    # The network.

    def host_port(self, guest_port: int, protocol: str = "tcp") -> int:
        """The host port (on 127.0.0.1) that reaches ``guest_port``."""
        try:
            return self.ports[(guest_port, protocol)]
        except KeyError:
            raise RunError(
                f"guest port {guest_port}/{protocol} is not published",
                hint=f"add it to forward=: Machine(..., forward=[{guest_port}])",
            ) from None

    def wait_for_http(
        self, path: str = "/", guest_port: int = 80, timeout: float = 60.0, *, status: int = 200
    ) -> HttpResponse:
        """Poll ``http://127.0.0.1:<host port><path>`` until it answers ``status``."""
        port = self.host_port(guest_port)
        deadline = time.monotonic() + timeout
        last, timeouts = "no answer", 0
        while True:
            limit = _attempt_timeout(timeouts)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=limit)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                if response.status == status:
                    return HttpResponse(response.status, body, self.elapsed())
                last, timeouts = f"status {response.status}", 0
            except TimeoutError:
                last, timeouts = f"no answer in {limit:g} s", timeouts + 1
            except (OSError, http.client.HTTPException) as error:
                last, timeouts = type(error).__name__, 0
            finally:
                connection.close()
            self._check_deadline(deadline, f"GET {path} on guest port {guest_port} ({last})")

    def wait_for_tcp_banner(
        self, guest_port: int, timeout: float = 60.0, *, prefix: bytes = b""
    ) -> TcpBanner:
        """Poll a guest TCP port until a connection sends data starting with ``prefix``
        (``b"SSH-2.0"`` for sshd)."""
        port = self.host_port(guest_port)
        deadline = time.monotonic() + timeout
        last, timeouts = "no answer", 0
        while True:
            limit = _attempt_timeout(timeouts)
            try:
                with socket.create_connection(("127.0.0.1", port), limit) as connection:
                    data = connection.recv(4096)
                if data and data.startswith(prefix):
                    return TcpBanner(data, self.elapsed())
                last, timeouts = (f"received {data[:40]!r}" if data else "closed at once"), 0
            except TimeoutError:
                last, timeouts = f"no data in {limit:g} s", timeouts + 1
            except OSError as error:
                last, timeouts = type(error).__name__, 0
            self._check_deadline(deadline, f"a banner on guest port {guest_port} ({last})")

    def _check_deadline(self, deadline: float, what: str) -> None:
        if not self.running:
            raise self._exited(f"waiting for {what}")
        if time.monotonic() >= deadline:
            raise self._timeout(f"gave up waiting for {what}")
        time.sleep(0.1)

    # Commands.

    def execute(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run ``command`` with ``sh -c`` in the guest; its exit status and output
        (standard output and error together). Waits up to ``timeout`` seconds in all,
        including for the guest's shell to appear."""
        shell = self._shell
        if shell is None:
            raise RunError("the machine has not been started: use `with Machine(...)`")
        deadline = time.monotonic() + timeout
        try:
            shell.wait_ready(timeout)
            return shell.run(command, max(0.0, deadline - time.monotonic()))
        except ShellTimeout:
            if not shell.answered:
                raise self._no_shell(timeout) from None
            raise self._timeout(f"{command!r} did not finish within {timeout:g} s") from None
        except ShellClosed:
            raise self._exited(f"running {command!r}") from None

    def succeed(self, command: str, timeout: float = 60.0) -> str:
        """:meth:`execute`, failing unless the command exits 0; its output."""
        status, output = self.execute(command, timeout)
        if status != 0:
            lines = output.rstrip("\n").splitlines()[-15:]
            raise MachineError(f"{command!r} exited with status {status}", details=tuple(lines))
        return output

    # Errors, with the console's end attached.

    def _details(self) -> tuple[str, ...]:
        tail = self.process.console.tail()
        return ("console (last lines):", *(f"  {line}" for line in tail.splitlines()))

    def _timeout(self, message: str) -> MachineTimeout:
        return MachineTimeout(message, details=self._details())

    def _exited(self, what: str) -> GuestExited:
        result = self.process.wait(5)
        how = f"{result.outcome.value}: {result.detail}" if result else "it stopped"
        return GuestExited(f"the guest stopped ({how}) while {what}", details=self._details())

    def _no_shell(self, timeout: float) -> NoGuestShell:
        opened = self._port_opened()
        why = (
            "it opened the port but no shell answered"
            if opened
            else "the guest never opened the port"
        )
        return NoGuestShell(
            f"no shell answered on the virtio port {SHELL_PORT_NAME} within {timeout:g} s: {why}",
            hint="the guest must run `sh` on that port (see docs/running.md, 'The command port')",
            details=self._details(),
        )


def _guest_port(port: int | str) -> tuple[int, Literal["tcp", "udp"]]:
    number, _, protocol = str(port).partition("/")
    if not number.isdigit() or protocol not in ("", "tcp", "udp"):
        raise RunError(f"forward={port!r}: write a port number, or PORT/tcp or PORT/udp")
    return int(number), "udp" if protocol == "udp" else "tcp"


def _free_port(protocol: str) -> int:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
