"""The guest's serial console: collected in a thread, passed on raw, kept and logged clean.

The console carries ANSI escapes (colours, a shell's cursor queries) and ``\\r\\n`` line ends.
The terminal gets the bytes as the guest sent them; the log and the text tests search get
them cleaned: escapes, carriage returns and NUL bytes removed. Each line's arrival time,
counted from qemu's start, is kept so tests can report boot times.
"""

from __future__ import annotations

import bisect
import codecs
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

# CSI sequences (ESC [ ... final), OSC strings (ESC ] ... BEL or ESC \), and the other
# escapes: ESC, intermediate bytes, one final byte (ESC c, ESC ( B, ESC 7, ...).
RECENT = 200
"""Lines a console that does not keep everything keeps (for error messages)."""
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]")


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences, carriage returns and NUL bytes."""
    return _ANSI.sub("", text).replace("\r", "").replace("\x00", "")


@dataclass(frozen=True)
class ConsoleMatch:
    """Where a pattern was found on the console."""

    match: re.Match[str]
    at: float
    """Seconds from qemu's start to the arrival of the matched text."""

    @property
    def text(self) -> str:
        """The matched text."""
        return self.match.group(0)


class Console:
    """Collects a console stream: feed it bytes (or let :meth:`pump` read a pipe)."""

    def __init__(
        self,
        *,
        started: float,
        sink: IO[bytes] | None = None,
        log: IO[str] | None = None,
        keep: bool = True,
    ) -> None:
        """``keep=False`` keeps only the last :data:`RECENT` lines (for :meth:`text` and
        :meth:`tail`), so a long run needs no more memory than a short one; :meth:`search` and
        :meth:`lines` are then of no use (``kitdsl run`` needs neither)."""
        self.started = started
        """``time.monotonic()`` when qemu was started."""
        self._sink = sink
        self._log = log
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lock = threading.Condition()
        self._text = ""  # clean, complete lines
        self._partial = ""  # the line being received, not yet cleaned
        self._line_ends: list[int] = []
        self._line_times: list[float] = []
        self._last_feed = started
        self._closed = False
        self._listeners: list[Callable[[str], None]] = []
        self._keep = keep
        self._recent: deque[str] = deque(maxlen=RECENT)

    def on_line(self, listener: Callable[[str], None]) -> None:
        """Call ``listener`` with each clean line (without its newline) as it completes."""
        self._listeners.append(listener)

    def feed(self, data: bytes) -> None:
        """Take more console bytes."""
        now = time.monotonic()
        if self._sink is not None:
            self._sink.write(data)
            self._sink.flush()
        completed = []
        with self._lock:
            self._last_feed = now
            self._partial += self._decoder.decode(data)
            while "\n" in self._partial:
                raw, self._partial = self._partial.split("\n", 1)
                line = strip_ansi(raw)
                completed.append(line)
                if not self._keep:
                    self._recent.append(line)
                    continue
                self._text += line + "\n"
                self._line_ends.append(len(self._text))
                self._line_times.append(now - self.started)
            self._lock.notify_all()
        for line in completed:
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()
            for listener in self._listeners:
                listener(line)

    def close(self) -> None:
        """The stream ended: log the last, unfinished line and wake every waiter."""
        with self._lock:
            self._partial += self._decoder.decode(b"", final=True)
            rest = strip_ansi(self._partial)
            self._closed = True
            self._lock.notify_all()
        if rest and self._log is not None:
            self._log.write(rest + "\n")
            self._log.flush()

    def pump(self, fd: int) -> None:
        """Read ``fd`` to its end, feeding every chunk, then :meth:`close` (a thread body)."""
        try:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.feed(data)
        finally:
            self.close()

    @property
    def closed(self) -> bool:
        """Whether the stream has ended (qemu exited)."""
        return self._closed

    def text(self) -> str:
        """Everything received so far, cleaned (the line being received included)."""
        with self._lock:
            kept = self._text if self._keep else "".join(f"{line}\n" for line in self._recent)
            return kept + strip_ansi(self._partial)

    def lines(self) -> list[tuple[float, str]]:
        """Every complete line with its arrival time (seconds from qemu's start)."""
        with self._lock:
            starts = [0, *self._line_ends[:-1]]
            return [
                (at, self._text[start : end - 1])
                for start, end, at in zip(starts, self._line_ends, self._line_times, strict=True)
            ]

    def tail(self, count: int = 15) -> str:
        """The last ``count`` lines, for error messages."""
        return "\n".join(self.text().rstrip("\n").splitlines()[-count:])

    def search(
        self, pattern: re.Pattern[str], start: int, timeout: float
    ) -> tuple[ConsoleMatch | None, int]:
        """Wait up to ``timeout`` seconds for ``pattern`` at or after offset ``start`` of
        :meth:`text`; return the match (or ``None``) and the offset searching may resume at."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                text = self._text + strip_ansi(self._partial)
                match = pattern.search(text, start)
                if match is not None:
                    return ConsoleMatch(match, self._arrival(match.end())), match.end()
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None, start
                self._lock.wait(remaining)

    def _arrival(self, offset: int) -> float:
        index = bisect.bisect_left(self._line_ends, offset)
        if index < len(self._line_times):
            return self._line_times[index]
        return self._last_feed - self.started
