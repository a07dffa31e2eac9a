"""Progress of a running plan: a live display on a terminal, plain log lines elsewhere.

The executor calls a :class:`Reporter`; :func:`choose_reporter` picks the live display when the
stream is a terminal and plain lines otherwise (CI logs, files), and either can be asked for.
Every method is called from the thread running the plan except :meth:`Reporter.advance`, which
steps call from their own threads as bytes arrive.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)

from kitdsl.errors import KitError
from kitdsl.plan.graph import Plan, Step, count, format_bytes


class Reporter(Protocol):
    """What the executor tells about a run."""

    def start(self, plan: Plan) -> None:
        """The run begins with the steps now in ``plan``."""

    def added(self, parent: Step, steps: Sequence[Step]) -> None:
        """``parent`` finished and added (or merged) ``steps``."""

    def step_started(self, step: Step) -> None:
        """``step`` starts."""

    def advance(self, step: Step, nbytes: int) -> None:
        """``step`` moved ``nbytes`` more bytes; called from the step's thread."""

    def step_finished(self, step: Step, seconds: float) -> None:
        """``step`` succeeded; its bytes count as done even if it reported fewer (a cache
        hit reports none)."""

    def step_failed(self, step: Step, error: BaseException, seconds: float) -> None:
        """``step`` failed with ``error``; the run is stopping."""

    def step_stopped(self, step: Step, seconds: float) -> None:
        """``step`` stopped early because the run is stopping."""

    def cancelled(self, steps: Sequence[Step]) -> None:
        """``steps`` will not run because another failed."""

    def stop(self) -> None:
        """The run is over, whatever the outcome."""


class NullReporter:
    """Reports nothing."""

    def start(self, plan: Plan) -> None:
        """Nothing to show."""

    def added(self, parent: Step, steps: Sequence[Step]) -> None:
        """Nothing to show."""

    def step_started(self, step: Step) -> None:
        """Nothing to show."""

    def advance(self, step: Step, nbytes: int) -> None:
        """Nothing to show."""

    def step_finished(self, step: Step, seconds: float) -> None:
        """Nothing to show."""

    def step_failed(self, step: Step, error: BaseException, seconds: float) -> None:
        """Nothing to show."""

    def step_stopped(self, step: Step, seconds: float) -> None:
        """Nothing to show."""

    def cancelled(self, steps: Sequence[Step]) -> None:
        """Nothing to show."""

    def stop(self) -> None:
        """Nothing to show."""


class Tally:
    """Bytes and steps done and known, overall and per progress row; thread-safe.

    A step's bytes count once overall and once in each of its rows, so a layer shared by two
    images fills both images' rows.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, Step] = {}
        self._moved: dict[str, int] = {}
        self._finished: set[str] = set()
        self.rows: dict[str, list[int]] = {}
        """Row name → ``[bytes done, bytes known]``, rows in the order they appeared."""
        self.bytes_done = 0
        self.bytes_total = 0

    @property
    def steps_done(self) -> int:
        """Steps finished."""
        return len(self._finished)

    @property
    def steps_total(self) -> int:
        """Steps known."""
        return len(self._steps)

    def track(self, step: Step) -> tuple[str, ...]:
        """Learn ``step``, or the rows a merge added to it; return the rows that changed."""
        with self._lock:
            size = step.size or 0
            old = self._steps.get(step.key)
            if old is None:
                self.bytes_total += size
                self._moved[step.key] = 0
            self._steps[step.key] = step
            changed = tuple(row for row in step.rows if old is None or row not in old.rows)
            for row in changed:
                counts = self.rows.setdefault(row, [0, 0])
                counts[0] += self._moved[step.key]
                counts[1] += size
            return changed

    def advance(self, step: Step, nbytes: int) -> tuple[str, ...]:
        """Count ``nbytes`` more for ``step`` (never beyond its size); return its rows."""
        with self._lock:
            known = self._steps.get(step.key, step)
            moved = self._moved.get(step.key, 0)
            if known.size is not None:
                nbytes = max(0, min(nbytes, known.size - moved))
            self._moved[step.key] = moved + nbytes
            self.bytes_done += nbytes
            for row in known.rows:
                self.rows.setdefault(row, [0, 0])[0] += nbytes
            return known.rows

    def finish(self, step: Step) -> tuple[str, ...]:
        """``step`` is done: count the bytes it did not report; return its rows."""
        rows = self.advance(step, max(0, (step.size or 0) - self._moved.get(step.key, 0)))
        with self._lock:
            self._finished.add(step.key)
        return rows

    def moved(self, step: Step) -> int:
        """Bytes counted for ``step``."""
        with self._lock:
            return self._moved.get(step.key, 0)

    def summary(self) -> str:
        """``3/12 steps, 1.5 MiB/10.0 MiB``."""
        with self._lock:
            done, total = self.bytes_done, self.bytes_total
        return f"{self.steps_done}/{self.steps_total} steps, {format_bytes(done)}/" + (
            format_bytes(total)
        )


def _clean(text: str) -> str:
    """Printable characters only: labels and errors may carry text from registries, and a
    log line must not move the cursor or change colours."""
    return "".join(char if char.isprintable() else "?" for char in text)


def _reason(error: BaseException) -> str:
    """The first line of what went wrong; the full error is raised at the end anyway."""
    text = error.message if isinstance(error, KitError) else str(error)
    return (text.splitlines() or [type(error).__name__])[0]


class PlainReporter:
    """One line per step start and finish, with figures; no colour or cursor movement."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tally = Tally()
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            self._stream.write(_clean(text) + "\n")
            self._stream.flush()

    def start(self, plan: Plan) -> None:
        """Count the planned steps."""
        for step in plan:
            self._tally.track(step)
        self._line(f"plan: {self._tally.summary()}")

    def added(self, parent: Step, steps: Sequence[Step]) -> None:
        """Say how much the finished step added."""
        before = (self._tally.steps_total, self._tally.bytes_total)
        for step in steps:
            self._tally.track(step)
        number = self._tally.steps_total - before[0]
        if number:
            size = format_bytes(self._tally.bytes_total - before[1])
            self._line(f"added  {count(number, 'step')} ({size}) from {parent.label}")

    def step_started(self, step: Step) -> None:
        """``start  <components>: <label> (<size>)``."""
        size = f" ({format_bytes(step.size)})" if step.size is not None else ""
        self._line(f"start  {step.title}{size}")

    def advance(self, step: Step, nbytes: int) -> None:
        """Count the bytes; plain output prints at the end of the step only."""
        self._tally.advance(step, nbytes)

    def step_finished(self, step: Step, seconds: float) -> None:
        """``done   <components>: <label>: <bytes> in <s> [<k/n steps, bytes>]``."""
        self._tally.track(step)
        self._tally.finish(step)
        moved = f": {format_bytes(step.size)}" if step.size is not None else ""
        self._line(f"done   {step.title}{moved} in {seconds:.2f}s [{self._tally.summary()}]")

    def step_failed(self, step: Step, error: BaseException, seconds: float) -> None:
        """``failed <components>: <label>: <why>``."""
        self._line(f"failed {step.title}: {_reason(error)} (after {seconds:.2f}s)")

    def step_stopped(self, step: Step, seconds: float) -> None:
        """``stopped <components>: <label>``."""
        self._line(f"stopped {step.title} after {seconds:.2f}s")

    def cancelled(self, steps: Sequence[Step]) -> None:
        """One line for all the steps that will not start."""
        self._line(f"cancelled {count(len(steps), 'step')} that had not started")

    def stop(self) -> None:
        """A closing summary."""
        self._line(f"total: {self._tally.summary()}")


class LiveReporter:
    """A rich live display: a row per image with bytes done and known, and an overall row."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console if console is not None else Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            console=self._console,
        )
        self._tally = Tally()
        self._tasks: dict[str, TaskID] = {}
        self._overall: TaskID | None = None

    def _refresh(self, rows: tuple[str, ...]) -> None:
        # Absolute values rather than increments: merges can change a row's total after it
        # has started moving.
        for row in rows:
            done, total = self._tally.rows[row]
            if row not in self._tasks:
                self._tasks[row] = self._progress.add_task(row, total=None)
            self._progress.update(self._tasks[row], completed=done, total=total or None)
        if self._overall is not None:
            total = self._tally.bytes_total
            self._progress.update(
                self._overall,
                completed=self._tally.bytes_done,
                total=total or None,
                description=f"total ({self._tally.steps_done}/{self._tally.steps_total} steps)",
            )

    def start(self, plan: Plan) -> None:
        """Show the overall row and a row per image known so far."""
        self._overall = self._progress.add_task("total", total=None)
        rows: dict[str, None] = {}
        for step in plan:
            rows.update(dict.fromkeys(self._tally.track(step)))
        self._refresh(tuple(rows))
        self._progress.start()

    def added(self, parent: Step, steps: Sequence[Step]) -> None:
        """Grow the rows' totals."""
        rows: dict[str, None] = {}
        for step in steps:
            rows.update(dict.fromkeys(self._tally.track(step)))
        self._refresh(tuple(rows))

    def step_started(self, step: Step) -> None:
        """Nothing to show until bytes move."""

    def advance(self, step: Step, nbytes: int) -> None:
        """Move the bars of the step's rows (rich serialises updates from threads)."""
        self._refresh(self._tally.advance(step, nbytes))

    def step_finished(self, step: Step, seconds: float) -> None:
        """Fill in what the step did not report."""
        self._tally.track(step)
        self._refresh(self._tally.finish(step))

    def step_failed(self, step: Step, error: BaseException, seconds: float) -> None:
        """Print the failure above the bars."""
        self._progress.console.print(
            f"failed {step.title}: {_reason(error)}", markup=False, highlight=False
        )

    def step_stopped(self, step: Step, seconds: float) -> None:
        """Nothing to show: the failure that caused it was printed."""

    def cancelled(self, steps: Sequence[Step]) -> None:
        """Say how many steps will not start."""
        self._progress.console.print(
            f"cancelled {count(len(steps), 'step')} that had not started",
            markup=False,
            highlight=False,
        )

    def stop(self) -> None:
        """Leave the final figures on screen."""
        self._progress.stop()


def choose_reporter(stream: TextIO | None = None, *, live: bool | None = None) -> Reporter:
    """The live display when ``stream`` (default standard error) is a terminal, plain lines
    otherwise; ``live`` forces one or the other."""
    stream = stream if stream is not None else sys.stderr
    if live is None:
        live = stream.isatty()
    if live:
        return LiveReporter(Console(file=stream))
    return PlainReporter(stream)
