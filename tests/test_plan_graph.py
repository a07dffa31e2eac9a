"""The plan graph: merging steps, a stable topological order, cycles, and rendering."""

from __future__ import annotations

import json

import pytest

from kitdsl.plan import CycleError, Plan, PlanError, Step, plan_json, render_plan, render_plan_json


def step(
    key: str,
    *deps: str,
    components: tuple[str, ...] = (),
    size: int | None = None,
    pending: str | None = None,
) -> Step:
    return Step(
        key=key,
        kind="test",
        label=f"do {key}",
        deps=deps,
        components=components,
        size=size,
        pending=pending,
    )


def plan_of(*steps: Step) -> Plan:
    plan = Plan()
    for each in steps:
        plan.add(each)
    return plan


def keys(plan: Plan) -> list[str]:
    return [each.key for each in plan.order()]


def test_order_puts_dependencies_first_and_breaks_ties_by_insertion() -> None:
    plan = plan_of(step("a", "c", "b"), step("b"), step("c"), step("d", "e"), step("e", "c"))
    assert keys(plan) == ["b", "c", "a", "e", "d"]
    # Insertion order is the only tie-breaker: reversing independent steps reverses them.
    assert keys(plan_of(step("z"), step("y"), step("x"))) == ["z", "y", "x"]


def test_a_cycle_is_named_in_the_error() -> None:
    plan = plan_of(step("x"), step("a", "c"), step("b", "a"), step("c", "b"), step("d", "a"))
    with pytest.raises(CycleError) as caught:
        plan.order()
    assert caught.value.cycle == ("a", "c", "b", "a")
    assert "a -> c -> b -> a" in caught.value.message
    assert caught.value.exit_code == 1


def test_a_step_needing_itself_is_a_cycle() -> None:
    with pytest.raises(CycleError) as caught:
        plan_of(step("a", "a")).order()
    assert caught.value.cycle == ("a", "a")


def test_a_missing_dependency_is_reported() -> None:
    with pytest.raises(PlanError, match="'do a' needs 'ghost', which is not planned"):
        plan_of(step("a", "ghost")).order()


def test_adding_an_existing_key_merges_components_deps_and_rows() -> None:
    calls: list[str] = []
    plan = plan_of(step("base"), step("other"))
    first = Step(
        key="fetch-blob x",
        kind="fetch-blob",
        label="fetch x of one",
        run=lambda _: calls.append("first"),
        components=("services/getty",),
        deps=("base",),
        rows=("one",),
        size=10,
    )
    second = Step(
        key="fetch-blob x",
        kind="fetch-blob",
        label="fetch x of two",
        run=lambda _: calls.append("second"),
        components=("services/sshd", "services/getty"),
        deps=("other",),
        rows=("two",),
        size=10,
    )
    plan.add(first)
    merged = plan.add(second)
    assert len(plan) == 3
    assert merged.components == ("services/getty", "services/sshd")
    assert merged.deps == ("base", "other")
    assert merged.rows == ("one", "two")
    assert merged.label == "fetch x of one"  # the first step defines the work
    assert merged.run is first.run
    assert merged.title == "services/getty, services/sshd: fetch x of one"


def test_merging_steps_of_different_kinds_is_refused() -> None:
    plan = plan_of(step("a"))
    with pytest.raises(PlanError, match="two different steps have the key 'a'"):
        plan.add(Step(key="a", kind="other", label="a"))


def test_expansion_is_ordered_by_parent_not_by_arrival() -> None:
    """Two parents adding the same child: whichever finishes first, the plan ends the same."""

    def expanded(first: str, second: str) -> tuple[list[Step], str]:
        plan = plan_of(step("p1", components=("one",)), step("p2", components=("two",)))
        children = {
            "p1": [step("shared", "p1", components=("one",)), step("only1", "p1")],
            "p2": [step("only2", "p2"), step("shared", "p2", components=("two",))],
        }
        plan.expand(first, children[first])
        plan.expand(second, children[second])
        return plan.order(), render_plan(plan)

    assert expanded("p1", "p2") == expanded("p2", "p1")
    order, _ = expanded("p2", "p1")
    # "shared" needs both parents; among ready steps it ranks as the first parent's child.
    assert [each.key for each in order] == ["p1", "only1", "p2", "shared", "only2"]
    assert order[3].components == ("one", "two")
    assert order[3].deps == ("p1", "p2")


def test_expanding_clears_the_pending_note() -> None:
    plan = plan_of(step("resolve", pending="layers: known after resolve"))
    assert plan["resolve"].pending == "layers: known after resolve"
    plan.expand("resolve", [step("layer", "resolve")])
    assert plan["resolve"].pending is None


def small_plan() -> Plan:
    return plan_of(
        step("resolve a", components=("kernel",), pending="layers: known after resolve"),
        step("image a", "resolve a", components=("kernel",)),
        step("resolve b", components=("services/getty",)),
        step("fetch", "resolve b", "resolve a", components=("kernel", "services/getty"), size=2048),
        step("image b", "fetch", "resolve b", components=("services/getty",)),
    )


def test_render_plan_groups_by_component_and_numbers_dependencies() -> None:
    assert render_plan(small_plan()) == (
        "5 steps, 2.0 KiB to fetch so far; 1 step will add more when they run\n"
        "\n"
        "kernel\n"
        "  1. do resolve a\n"
        "     (layers: known after resolve)\n"
        "  2. do image a  [after 1]\n"
        "\n"
        "services/getty\n"
        "  3. do resolve b\n"
        "  4. do image b  [after 3, 5]\n"
        "\n"
        "kernel, services/getty\n"
        "  5. do fetch (2.0 KiB)  [after 1, 3]\n"
    )


def test_plan_json_lists_steps_in_order_with_keys() -> None:
    data = plan_json(small_plan())
    assert [each["key"] for each in data["steps"]] == [
        "resolve a",
        "image a",
        "resolve b",
        "fetch",
        "image b",
    ]
    assert data["steps"][3] == {
        "key": "fetch",
        "kind": "test",
        "label": "do fetch",
        "components": ["kernel", "services/getty"],
        "deps": ["resolve b", "resolve a"],
        "size": 2048,
        "pending": None,
    }
    assert json.loads(render_plan_json(small_plan())) == data
