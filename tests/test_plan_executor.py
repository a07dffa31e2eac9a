"""The executor: real parallelism within ``jobs``, stopping at the first failure, determinism."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from kitdsl.errors import ImageError, KitError, UsageError
from kitdsl.plan import (
    CycleError,
    Plan,
    PlanError,
    Step,
    StepCancelled,
    StepContext,
    StepFunction,
    default_jobs,
    execute,
)

TIMEOUT = 5.0  # seconds a step waits for another before the test counts it as not parallel


def step(
    key: str,
    run: StepFunction | None = None,
    *deps: str,
    components: tuple[str, ...] = (),
) -> Step:
    return Step(key=key, kind="test", label=f"do {key}", run=run, deps=deps, components=components)


def plan_of(*steps: Step) -> Plan:
    plan = Plan()
    for each in steps:
        plan.add(each)
    return plan


def test_two_steps_run_at_once_with_two_jobs() -> None:
    a_started, b_started = threading.Event(), threading.Event()

    def a(_: StepContext) -> str:
        a_started.set()
        assert b_started.wait(TIMEOUT), "b never ran while a was running"
        return "a"

    def b(_: StepContext) -> str:
        b_started.set()
        assert a_started.wait(TIMEOUT), "a never ran while b was running"
        return "b"

    assert execute(plan_of(step("a", a), step("b", b)), jobs=2) == {"a": "a", "b": "b"}


@pytest.mark.parametrize("jobs", [1, 3])
def test_exactly_jobs_steps_run_at_once(jobs: int) -> None:
    # Each wave of `jobs` steps meets at a barrier: fewer at once would time out, and the
    # counter catches more at once.
    barrier = threading.Barrier(jobs, timeout=TIMEOUT)
    lock = threading.Lock()
    now, most = [0], [0]

    def work(_: StepContext) -> None:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        barrier.wait()
        with lock:
            now[0] -= 1

    execute(plan_of(*(step(f"s{i}", work) for i in range(4 * jobs))), jobs=jobs)
    assert most[0] == jobs


def test_dependencies_finish_before_dependents_start_and_pass_results() -> None:
    seen: list[str] = []

    def record(key: str) -> StepFunction:
        def run(context: StepContext) -> str:
            seen.append(key)
            return key + "".join(context.result(dep) for dep in context.step.deps)

        return run

    plan = plan_of(step("c", record("c"), "b"), step("b", record("b"), "a"), step("a", record("a")))
    assert execute(plan, jobs=4) == {"a": "a", "b": "ba", "c": "cba"}
    assert seen == ["a", "b", "c"]


def test_a_failure_cancels_steps_not_started_and_names_step_and_component() -> None:
    started: list[str] = []
    stopped = threading.Event()
    running = threading.Event()

    def fail(_: StepContext) -> None:
        assert running.wait(TIMEOUT)
        started.append("fail")
        raise ImageError("connection reset by peer", hint="try again")

    def long(context: StepContext) -> None:
        started.append("long")
        running.set()
        try:
            while True:  # a download reporting progress until told to stop
                context.advance(1)
                time.sleep(0.001)
        except StepCancelled:
            stopped.set()
            raise

    def later(_: StepContext) -> None:
        started.append("later")

    plan = plan_of(
        step("layer", fail, components=("services/getty",)),
        step("long", long),
        step("later", later),
        step("after-layer", later, "layer"),
    )
    with pytest.raises(ImageError) as caught:
        execute(plan, jobs=2)
    error = caught.value
    assert error.message == "services/getty: do layer: connection reset by peer"
    assert error.exit_code == 7
    assert error.hint == "try again"
    assert isinstance(error.__cause__, ImageError)
    assert stopped.is_set()
    assert sorted(started) == ["fail", "long"]


def test_other_exceptions_become_kit_errors_naming_the_step() -> None:
    def broken(_: StepContext) -> None:
        raise ValueError("bad value")

    with pytest.raises(KitError) as caught:
        execute(plan_of(step("x", broken, components=("onboot/a", "services/b"))))
    assert type(caught.value) is KitError
    assert caught.value.message == "onboot/a, services/b: do x: bad value"
    assert isinstance(caught.value.__cause__, ValueError)


def test_when_several_fail_the_first_in_plan_order_is_raised() -> None:
    barrier = threading.Barrier(2, timeout=TIMEOUT)

    def fail(message: str, wait_first: bool) -> StepFunction:
        def run(_: StepContext) -> None:
            barrier.wait()
            if wait_first:
                time.sleep(0.05)  # the second step fails first: order must not matter
            raise ImageError(message)

        return run

    plan = plan_of(step("one", fail("first", True)), step("two", fail("second", False)))
    with pytest.raises(ImageError) as caught:
        execute(plan, jobs=2)
    assert caught.value.message == "do one: first"
    assert caught.value.details == ("also failed: do two: second",)


def test_steps_can_add_steps_and_results_do_not_depend_on_scheduling() -> None:
    def results(jobs: int, seed: int) -> tuple[list[tuple[str, Any]], list[str]]:
        pause = random.Random(seed)
        delays = {f"{parent}-{n}": pause.random() / 500 for parent in "ab" for n in range(4)}

        def leaf(key: str) -> StepFunction:
            def run(_: StepContext) -> str:
                time.sleep(delays.get(key, 0))
                return key.upper()

            return run

        def parent(name: str) -> StepFunction:
            def run(context: StepContext) -> str:
                time.sleep(pause.random() / 500)
                for n in range(4):
                    context.add(step(f"{name}-{n}", leaf(f"{name}-{n}"), context.step.key))
                context.add(step("shared", leaf("shared"), context.step.key))
                return name

            return run

        plan = plan_of(step("a", parent("a")), step("b", parent("b")))
        got = execute(plan, jobs=jobs)
        return list(got.items()), [each.key for each in plan.order()]

    first = results(1, 0)
    assert [key for key, _ in first[0]] == first[1]
    assert len(first[1]) == 11
    for jobs, seed in [(2, 1), (4, 2), (8, 3), (8, 4)]:
        assert results(jobs, seed) == first


def test_a_cycle_is_reported_before_anything_runs() -> None:
    ran: list[str] = []
    plan = plan_of(step("a", lambda _: ran.append("a"), "b"), step("b", None, "a"))
    with pytest.raises(CycleError):
        execute(plan)
    assert ran == []


def test_a_started_step_cannot_gain_unfinished_dependencies() -> None:
    def late(context: StepContext) -> None:
        context.add(step("early", None, "never"))
        context.add(step("never", None))

    # "early" has already run when "late" (which depends on it) adds a dependency to it.
    plan = plan_of(step("early"), step("late", late, "early"))
    with pytest.raises(PlanError, match="'early' gained dependencies after it had started"):
        execute(plan)


def test_jobs_must_be_positive_and_default_is_bounded() -> None:
    with pytest.raises(UsageError):
        execute(Plan(), jobs=0)
    assert 1 <= default_jobs() <= 8
    assert execute(Plan()) == {}
