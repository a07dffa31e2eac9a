"""Running commands in a guest through a shell on a virtio serial port.

The guest runs ``sh`` with its standard input and output on the port named
``org.kitdsl.shell`` (see docs/running.md for the lines an init needs). A virtio port, unlike
the serial console, is a clean byte stream: no terminal echo, no kernel messages mixed in, no
login. Each command is sent as one line::

    sh -c '<command>' </dev/null 2>&1; printf '\\n%s %d\\n' <marker> "$?"

and its output is everything up to the marker line, which carries the exit status. Standard
input is ``/dev/null`` so a command cannot eat the lines that follow it.
"""

from __future__ import annotations

import re
import shlex
import socket
import threading
import time
import uuid


class ShellTimeout(Exception):
    """The shell did not answer in time (internal: :class:`Machine` words the error)."""


class ShellClosed(Exception):
    """The guest closed the port, or qemu exited."""


class GuestShell:
    """The host end of the command port."""

    def __init__(self, connection: socket.socket) -> None:
        self._socket = connection
        self._buffer = bytearray()
        self._lock = threading.Condition()
        self._busy = threading.Lock()
        self._closed = False
        self.answered = False
        """Whether the guest's shell has answered once (it exists)."""
        self._reader = threading.Thread(target=self._read, name="kitdsl-shell", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._socket.recv(65536)
            except OSError:
                data = b""
            with self._lock:
                if not data:
                    self._closed = True
                else:
                    self._buffer += data
                self._lock.notify_all()
            if not data:
                return

    def _send(self, line: str) -> None:
        try:
            self._socket.sendall(line.encode() + b"\n")
        except OSError as error:
            raise ShellClosed(str(error)) from error

    def _expect(self, pattern: re.Pattern[bytes], timeout: float) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                match = pattern.search(self._buffer)
                if match is not None:
                    return match
                if self._closed:
                    raise ShellClosed("the guest closed the command port")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ShellTimeout
                self._lock.wait(remaining)

    def _consume(self, end: int) -> bytes:
        with self._lock:
            taken = bytes(self._buffer[:end])
            del self._buffer[:end]
            return taken

    def wait_ready(self, timeout: float) -> None:
        """Wait until the guest's shell answers (raises :class:`ShellTimeout`)."""
        if self.answered:
            return
        with self._busy:
            marker = f"__kitdsl_ready_{uuid.uuid4().hex}"
            self._send(f"printf '%s\\n' {marker}")
            match = self._expect(re.compile(re.escape(marker.encode()) + rb"\n"), timeout)
            self._consume(match.end())
            self.answered = True

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """Run ``command`` with ``sh -c``; return its exit status and output (standard output
        and standard error together)."""
        with self._busy:
            marker = f"__kitdsl_done_{uuid.uuid4().hex}"
            self._send(
                f"sh -c {shlex.quote(command)} </dev/null 2>&1; "
                f"printf '\\n%s %d\\n' {marker} \"$?\""
            )
            pattern = re.compile(rb"\n" + re.escape(marker.encode()) + rb" (\d+)\n")
            match = self._expect(pattern, timeout)
            # Read the match before the buffer it points into is cut.
            status, start, end = int(match.group(1)), match.start(), match.end()
            output = self._consume(end)[:start]
            return status, output.decode(errors="replace")

    def send(self, line: str) -> None:
        """Send a line without waiting for anything (``poweroff``, whose answer never
        comes)."""
        self._send(line)

    def close(self) -> None:
        """Stop reading (the socket belongs to the caller)."""
        self._reader.join(timeout=1)
