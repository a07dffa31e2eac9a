"""A small client of QMP, qemu's JSON machine protocol, over a Unix socket.

QMP is one JSON object per line: a greeting, then commands (``{"execute": ..., "id": ...}``)
answered by ``{"return": ...}`` or ``{"error": ...}`` with the same id, and events
(``{"event": "SHUTDOWN", "data": {...}}``) at any time. A reader thread files answers by id
and keeps every event, so callers can ask what happened after qemu has gone.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
from typing import Any

from kitdsl.run.errors import RunError

Message = dict[str, Any]


class QmpError(RunError):
    """qemu refused a QMP command, or the QMP connection broke."""


class Qmp:
    """A connected QMP session (after :meth:`negotiate`, commands can be sent)."""

    def __init__(self, connection: socket.socket) -> None:
        self._socket = connection
        self._lock = threading.Condition()
        self._answers: dict[int, Message] = {}
        self._greeting: Message | None = None
        self._closed = False
        self._ids = itertools.count(1)
        self.events: list[Message] = []
        """Every event received, oldest first."""
        self._reader = threading.Thread(target=self._read, name="kitdsl-qmp", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            with self._socket.makefile("rb") as stream:
                for line in stream:
                    self._file(line)
        except OSError:
            pass  # qemu went away: the same as the end of the stream
        finally:
            with self._lock:
                self._closed = True
                self._lock.notify_all()

    def _file(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        with self._lock:
            if "QMP" in message:
                self._greeting = message
            elif "event" in message:
                self.events.append(message)
            elif isinstance(message.get("id"), int):
                self._answers[message["id"]] = message
            self._lock.notify_all()

    def negotiate(self, timeout: float = 30.0) -> None:
        """Wait for the greeting and leave capabilities negotiation (events flow after it)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._greeting or self._closed, timeout):
                raise QmpError(f"qemu sent no QMP greeting within {timeout:.0f} s")
        self.execute("qmp_capabilities", timeout=timeout)

    def execute(
        self, command: str, arguments: Message | None = None, *, timeout: float = 30.0
    ) -> Any:
        """Run a command and return its ``return`` value."""
        ident = next(self._ids)
        request: Message = {"execute": command, "id": ident}
        if arguments:
            request["arguments"] = arguments
        try:
            self._socket.sendall(json.dumps(request).encode() + b"\n")
        except OSError as error:
            raise QmpError(f"QMP {command}: qemu closed the connection ({error})") from error
        with self._lock:
            done = self._lock.wait_for(lambda: ident in self._answers or self._closed, timeout)
            answer = self._answers.pop(ident, None)
        if answer is None:
            reason = "closed the connection" if done else f"did not answer in {timeout:.0f} s"
            raise QmpError(f"QMP {command}: qemu {reason}")
        if "error" in answer:
            raise QmpError(f"QMP {command}: {answer['error'].get('desc', answer['error'])}")
        return answer.get("return")

    def wait_closed(self, timeout: float) -> bool:
        """Wait until qemu closes the connection (it exits); True when it did."""
        with self._lock:
            return self._lock.wait_for(lambda: self._closed, timeout)

    def find(self, name: str) -> Message | None:
        """The first event called ``name``, if one came."""
        with self._lock:
            return next((event for event in self.events if event["event"] == name), None)

    def wait_event(self, name: str, timeout: float) -> Message | None:
        """The first event called ``name``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = next((e for e in self.events if e["event"] == name), None)
                remaining = deadline - time.monotonic()
                if found is not None or self._closed or remaining <= 0:
                    return found
                self._lock.wait(remaining)

    def close(self) -> None:
        """Close the connection and wait for the reader to finish."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._reader.join(timeout=5)
