"""Run a plan: ready steps in parallel on a bounded thread pool, stopping at the first failure.

Threads rather than processes: the work is fetching over the network and writing files, which
releases the GIL, and steps share the image cache and the plan.

**How many at once.** ``jobs`` defaults to :func:`default_jobs`: ``min(8, CPUs + 4)``. Fetches
wait on the network, not the CPU, so more threads than CPUs keep the link busy (the ``+ 4`` is
the rule :class:`concurrent.futures.ThreadPoolExecutor` uses for I/O). The cap of 8 keeps us
under the 10 connections ``requests`` pools per host, so connections are reused rather than
dropped, and is polite to registries that throttle clients opening many connections; Docker
pulls 3 layers at a time by default, containerd more.

**Failures.** When a step fails, steps not yet started never start; running steps are told to
stop (:attr:`StepContext.cancelled`, and :meth:`StepContext.advance` raises
:class:`StepCancelled`) and are waited for. The failure is raised as a
:class:`~kitdsl.errors.KitError` of the original's class (so its exit code is kept) whose message
names the components and the step: ``services/getty: fetch layer sha256:… of …: <cause>``.

**Determinism.** Steps are started in rank order, finished steps are taken in rank order, the
results come back in the plan's topological order, and when several steps fail the one raised is
the first in that order: nothing returned depends on which thread finished first.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from kitdsl.errors import KitError, UsageError
from kitdsl.plan.graph import Plan, PlanError, Step
from kitdsl.plan.progress import NullReporter, Reporter

MAX_DEFAULT_JOBS = 8


def default_jobs() -> int:
    """Steps run at once when not told: ``min(8, CPUs + 4)`` (see the module's notes)."""
    return min(MAX_DEFAULT_JOBS, (os.cpu_count() or 1) + 4)


class StepCancelled(Exception):
    """Raised inside a step that reports progress after the run was told to stop."""


class StepContext:
    """What a running step can use: its dependencies' results, progress, cancellation, and
    adding steps to the plan."""

    def __init__(
        self,
        step: Step,
        results: Mapping[str, Any],
        cancel: threading.Event,
        reporter: Reporter,
    ) -> None:
        self.step = step
        self._results = results
        self._cancel = cancel
        self._reporter = reporter
        self.added: list[Step] = []

    @property
    def cancelled(self) -> bool:
        """True once the run is stopping; long steps should check it and return early."""
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`StepCancelled` if the run is stopping."""
        if self._cancel.is_set():
            raise StepCancelled(self.step.key)

    def advance(self, nbytes: int) -> None:
        """Report ``nbytes`` more bytes done. Safe from any thread; raises
        :class:`StepCancelled` when the run is stopping, so a step that reports progress stops
        at its next report without checking anything itself."""
        self.check_cancelled()
        if nbytes:
            self._reporter.advance(self.step, nbytes)

    def result(self, key: str) -> Any:
        """The result of dependency ``key``."""
        try:
            return self._results[key]
        except KeyError:
            raise KeyError(f"{key!r} is not a dependency of {self.step.key!r}") from None

    def add(self, step: Step) -> None:
        """Add ``step`` to the plan (merging it with an equal key) once this step succeeds."""
        self.added.append(step)


@dataclass
class _Running:
    step: Step
    context: StepContext
    started: float


def execute(
    plan: Plan, *, jobs: int | None = None, reporter: Reporter | None = None
) -> dict[str, Any]:
    """Run every step of ``plan``, at most ``jobs`` at once, and return each step's result
    by key, in the plan's topological order.

    Steps added while running are merged into ``plan``, so afterwards it holds the whole
    graph. Raises the first failure (see the module's notes) after running steps have
    stopped.
    """
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"jobs must be at least 1, not {jobs}")
    reporter = reporter or NullReporter()
    plan.order()  # a missing dependency or a cycle is reported before anything runs
    results: dict[str, Any] = {}
    started: set[str] = set()
    running: dict[Future[Any], _Running] = {}
    failures: list[tuple[Step, BaseException]] = []
    cancel = threading.Event()
    reporter.start(plan)
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kitdsl-step") as pool:
            try:
                while True:
                    if not failures:
                        for step in _by_priority(plan.ready(results, started))[
                            : jobs - len(running)
                        ]:
                            started.add(step.key)
                            context = StepContext(
                                step, {dep: results[dep] for dep in step.deps}, cancel, reporter
                            )
                            reporter.step_started(step)
                            future = pool.submit(_call, step, context)
                            running[future] = _Running(step, context, time.monotonic())
                    if not running:
                        break
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in sorted(finished, key=lambda f: plan.rank(running[f].step.key)):
                        _finish(
                            plan, running.pop(future), future, started, results, failures, reporter
                        )
                    if failures:
                        cancel.set()
            except BaseException:
                # Interrupted (Ctrl-C) while waiting: tell running steps to stop before the
                # pool waits for them on the way out.
                cancel.set()
                raise
        # By rank, not plan.order(): a failed expansion may have left the plan unsortable.
        not_started = [step for step in plan if step.key not in started]
        if failures and not_started:
            reporter.cancelled(not_started)
        if failures:
            raise _failure(plan, failures)
        if not_started:
            raise PlanError("steps could not start: " + ", ".join(step.key for step in not_started))
        return {step.key: results[step.key] for step in plan.order()}
    finally:
        reporter.stop()


def _call(step: Step, context: StepContext) -> Any:
    return None if step.run is None else step.run(context)


def _finish(
    plan: Plan,
    entry: _Running,
    future: Future[Any],
    started: set[str],
    results: dict[str, Any],
    failures: list[tuple[Step, BaseException]],
    reporter: Reporter,
) -> None:
    """Record a finished step: its result and the steps it added, or its failure."""
    step, seconds = entry.step, time.monotonic() - entry.started
    error = future.exception()
    if isinstance(error, StepCancelled) and entry.context.cancelled:
        reporter.step_stopped(step, seconds)
        return
    if error is None:
        try:
            added = _expand(plan, step, entry.context.added, started, results)
        except PlanError as exc:
            error = exc
        else:
            results[step.key] = future.result()
            reporter.step_finished(plan[step.key], seconds)
            if added:
                reporter.added(step, added)
            return
    failures.append((plan[step.key], error))
    reporter.step_failed(plan[step.key], error, seconds)


def _expand(
    plan: Plan, parent: Step, steps: list[Step], started: set[str], done: Mapping[str, Any]
) -> list[Step]:
    """Merge what ``parent`` added; a step that already started cannot gain dependencies
    that are not done (``parent`` counts as done), since it would have run too early."""
    if not steps:
        return []
    before = {step.key: set(plan[step.key].deps) for step in steps if step.key in plan}
    added = plan.expand(parent.key, steps)
    plan.order()
    for step in added:
        new = set(step.deps) - before.get(step.key, set()) - {parent.key}
        if step.key in started and any(dep not in done for dep in new):
            raise PlanError(f"{step.key!r} gained dependencies after it had started")
    return added


def _failure(plan: Plan, failures: list[tuple[Step, BaseException]]) -> KitError:
    """The error to raise: the first failure in plan order, naming the others too."""
    failures.sort(key=lambda failure: plan.rank(failure[0].key))
    (step, cause), others = failures[0], failures[1:]
    error = step_error(step, cause)
    error.details = (
        *error.details,
        *(f"also failed: {step_error(other, exc).message}" for other, exc in others),
    )
    return error


def step_error(step: Step, cause: BaseException) -> KitError:
    """``cause`` as a :class:`KitError` whose message names the step and its components.

    A :class:`KitError` keeps its class (and so its exit code), location and hint; anything
    else becomes a plain :class:`KitError`. The original is the ``__cause__``.
    """
    if isinstance(cause, KitError):
        error = copy.copy(cause)
        error.message = f"{step.title}: {cause.message}"
        error.args = (error.message,)
    else:
        error = KitError(f"{step.title}: {str(cause) or type(cause).__name__}")
    error.__cause__ = cause
    return error


def _by_priority(steps: list[Step]) -> list[Step]:
    """Resolve steps first, then the rest in plan order: every resolve adds the blobs it
    finds, so starting them early keeps the pool full (otherwise the first image's layers
    take every worker while later images wait to be resolved). Only scheduling changes:
    results and the plan do not depend on it."""
    return sorted(steps, key=lambda step: step.kind != "resolve")
