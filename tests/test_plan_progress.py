"""Progress reporting: figures per image row and overall, plain lines, the live display."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from kitdsl.errors import ImageError
from kitdsl.plan import (
    LiveReporter,
    PlainReporter,
    Plan,
    Step,
    StepContext,
    Tally,
    choose_reporter,
    execute,
)

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def fetch(key: str, size: int, rows: tuple[str, ...], report: int | None = None) -> Step:
    """A step moving ``size`` bytes, reporting ``report`` of them in chunks of 10."""

    def run(context: StepContext) -> None:
        for _ in range((size if report is None else report) // 10):
            context.advance(10)

    return Step(key=key, kind="fetch", label=f"fetch {key}", run=run, size=size, rows=rows)


def test_a_shared_step_fills_every_row_but_counts_once_overall() -> None:
    tally = Tally()
    tally.track(Step(key="base", kind="fetch", label="base", size=100, rows=("getty",)))
    tally.track(Step(key="top", kind="fetch", label="top", size=50, rows=("getty",)))
    base = Step(key="base", kind="fetch", label="base", size=100, rows=("getty", "sshd"))
    tally.advance(base, 40)
    assert tally.track(base) == ("sshd",)  # the merge brings the done bytes along
    assert tally.rows == {"getty": [40, 150], "sshd": [40, 100]}
    tally.advance(base, 1000)  # never beyond the step's size
    assert tally.rows["sshd"] == [100, 100]
    # A cache hit reports nothing; finishing counts its bytes anyway.
    tally.finish(Step(key="top", kind="fetch", label="top", size=50, rows=("getty",)))
    assert (tally.bytes_done, tally.bytes_total) == (150, 150)
    assert tally.summary() == "1/2 steps, 150 B/150 B"


def test_plain_lines_have_figures_and_no_control_characters() -> None:
    plan = Plan()
    plan.add(fetch("a", 2048, ("one",)))
    plan.add(fetch("b", 100, ("one",), report=0))
    stream = io.StringIO()
    execute(plan, jobs=1, reporter=PlainReporter(stream))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "plan: 0/2 steps, 0 B/2.1 KiB"
    assert lines[1] == "start  fetch a (2.0 KiB)"
    assert re.fullmatch(
        r"done   fetch a: 2\.0 KiB in \d+\.\d\ds \[1/2 steps, 2\.0 KiB/2\.1 KiB\]", lines[2]
    )
    assert lines[3] == "start  fetch b (100 B)"
    assert re.fullmatch(r"done   fetch b: 100 B in \S+ \[2/2 steps, 2\.1 KiB/2\.1 KiB\]", lines[4])
    assert lines[5] == "total: 2/2 steps, 2.1 KiB/2.1 KiB"
    assert not CONTROL.search(stream.getvalue())


def test_plain_lines_report_failure_and_cancellation_on_one_line() -> None:
    def fail(_: StepContext) -> None:
        raise ImageError("bad\x1b[31m gateway\nsecond line")

    plan = Plan()
    plan.add(Step(key="x", kind="fetch", label="fetch x", run=fail, components=("kernel",)))
    plan.add(fetch("y", 10, ()))
    stream = io.StringIO()
    with pytest.raises(ImageError):
        execute(plan, jobs=1, reporter=PlainReporter(stream))
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(r"failed kernel: fetch x: bad\?\[31m gateway \(after \S+\)", lines[2])
    assert lines[3] == "cancelled 1 step that had not started"
    assert not CONTROL.search(stream.getvalue())


def test_the_live_display_shows_a_row_per_image_and_a_total() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    plan = Plan()
    plan.add(fetch("a", 2048, ("linuxkit/getty:v1",)))
    plan.add(fetch("b", 1024, ("linuxkit/getty:v1", "linuxkit/sshd:v1")))
    execute(plan, jobs=2, reporter=LiveReporter(console))
    text = out.getvalue()
    assert "linuxkit/getty:v1" in text
    assert "linuxkit/sshd:v1" in text
    assert "total (2/2 steps)" in text
    assert "3.0/3.0 KiB" in text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_reporter_is_chosen_by_whether_the_stream_is_a_terminal() -> None:
    assert isinstance(choose_reporter(io.StringIO()), PlainReporter)
    assert isinstance(choose_reporter(Terminal()), LiveReporter)
    assert isinstance(choose_reporter(Terminal(), live=False), PlainReporter)
    assert isinstance(choose_reporter(io.StringIO(), live=True), LiveReporter)
