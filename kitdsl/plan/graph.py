"""The build plan: steps, the keys they depend on, and one stable order.

A :class:`Plan` is a DAG of :class:`Step` objects, each known by a stable key such as
``fetch-blob sha256:…``. Adding a step whose key is already there *merges* it: a layer shared by
two images is fetched once, and the merged step remembers every component that needs it.

Steps may add steps when they run (a resolve step learns an image's layers). To keep everything
that comes out of a plan independent of thread scheduling, each step has a *rank*: steps added
up front are ranked in the order they were added, steps added by a running step rank right after
it, in the order it added them. Ties in the topological order, and the order of the components
of a merged step, follow rank, never the order in which work happened to finish.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kitdsl.errors import KitError

if TYPE_CHECKING:
    from kitdsl.plan.executor import StepContext

StepFunction = Callable[["StepContext"], Any]
"""The work of a step; it gets a context to report bytes, read its dependencies' results and
add steps, and returns the step's result."""

Rank = tuple[int, ...]


class PlanError(KitError):
    """A plan is not a DAG that can run: a dependency is missing, or steps clash."""


class CycleError(PlanError):
    """Steps depend on each other in a cycle; :attr:`cycle` names it, first step repeated."""

    def __init__(self, cycle: tuple[str, ...]) -> None:
        super().__init__(
            "steps depend on each other in a cycle (each needs the next): " + " -> ".join(cycle),
            hint="a step cannot need, directly or not, a step that needs it",
        )
        self.cycle = cycle


@dataclass(frozen=True)
class Step:
    """One unit of work in a plan."""

    key: str
    """Stable identity, e.g. ``fetch-blob sha256:…``; equal keys mean the same work."""
    kind: str
    """What sort of work: ``resolve``, ``fetch-blob``, ``image``, ``build``..."""
    label: str
    """For people: ``fetch layer sha256:0123456789ab of docker.io/linuxkit/getty:v1``."""
    run: StepFunction | None = None
    """The work; ``None`` for a step that only joins its dependencies."""
    components: tuple[str, ...] = ()
    """The parts of the system that need it, e.g. ``("services/getty",)``."""
    deps: tuple[str, ...] = ()
    """Keys of the steps that must finish first."""
    size: int | None = None
    """Estimated bytes the step moves, for progress; ``None`` when unknown."""
    rows: tuple[str, ...] = ()
    """Progress rows (one per image) whose totals include this step's bytes."""
    pending: str | None = None
    """Said in a rendered plan while the step has not run: what it will add, e.g.
    ``layers: known after resolve``."""

    @property
    def title(self) -> str:
        """``services/getty: fetch layer …``: the label prefixed with the components."""
        return f"{', '.join(self.components)}: {self.label}" if self.components else self.label


@dataclass
class _Entry:
    definer: Step
    """The first contribution: it fixes the work (kind, label, run, size)."""
    rank: Rank
    contributions: list[tuple[Rank, Step]] = field(default_factory=list)
    expanded: bool = False
    view: Step | None = None


def _union(parts: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for part in parts for item in part))


class Plan:
    """A DAG of steps with merge-on-add and a stable topological order.

    Not thread-safe: the executor changes it only from the thread that runs the plan.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._added = 0

    # --- building ----------------------------------------------------------------------------

    def add(self, step: Step) -> Step:
        """Add ``step``, or merge it into the step with the same key; return the merged step.

        Merging keeps the first step's work (kind, label, run, size) and adds this one's
        components, dependencies and progress rows.
        """
        rank = (self._added,)
        self._added += 1
        return self._merge(step, rank)

    def expand(self, parent: str, steps: Iterable[Step]) -> list[Step]:
        """Add the steps ``parent`` learned while it ran; they rank right after it.

        Clears the parent's ``pending`` note: what it stood for is now in the plan.
        """
        entry = self._entries[parent]
        entry.expanded = True
        entry.view = None
        return [self._merge(step, (*entry.rank, i)) for i, step in enumerate(steps)]

    def _merge(self, step: Step, rank: Rank) -> Step:
        entry = self._entries.get(step.key)
        if entry is None:
            entry = self._entries[step.key] = _Entry(step, rank)
        elif step.kind != entry.definer.kind:
            raise PlanError(
                f"two different steps have the key {step.key!r}: "
                f"a {entry.definer.kind!r} and a {step.kind!r} step"
            )
        entry.rank = min(entry.rank, rank)
        entry.contributions.append((rank, step))
        entry.contributions.sort(key=lambda contribution: contribution[0])
        entry.view = None
        return self[step.key]

    # --- reading -----------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Step:
        entry = self._entries[key]
        if entry.view is None:
            steps = [step for _, step in entry.contributions]
            entry.view = replace(
                entry.definer,
                components=_union(step.components for step in steps),
                deps=_union(step.deps for step in steps),
                rows=_union(step.rows for step in steps),
                pending=None if entry.expanded else entry.definer.pending,
            )
        return entry.view

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Step]:
        """Steps by rank (the order they were planned), not yet topologically sorted."""
        for key in sorted(self._entries, key=self.rank):
            yield self[key]

    def rank(self, key: str) -> Rank:
        """The stable position of step ``key``; ties everywhere are broken by it."""
        return self._entries[key].rank

    def ready(self, done: Collection[str], exclude: Collection[str]) -> list[Step]:
        """Steps not in ``exclude`` whose dependencies are all in ``done``, by rank."""
        return [
            step
            for step in self
            if step.key not in exclude and all(dep in done for dep in step.deps)
        ]

    def order(self) -> list[Step]:
        """Every step after its dependencies; ties broken by rank.

        Raises :class:`PlanError` for a dependency on a missing step and :class:`CycleError`
        naming a cycle.
        """
        steps = {step.key: step for step in self}
        dependents: dict[str, list[str]] = {key: [] for key in steps}
        waiting: dict[str, int] = {}
        for key, step in steps.items():
            for dep in step.deps:
                if dep not in steps:
                    raise PlanError(f"step {step.label!r} needs {dep!r}, which is not planned")
                dependents[dep].append(key)
            waiting[key] = len(set(step.deps))
        heap = [(self.rank(key), key) for key, count in waiting.items() if count == 0]
        heapq.heapify(heap)
        ordered: list[Step] = []
        while heap:
            _, key = heapq.heappop(heap)
            ordered.append(steps[key])
            for dependent in dict.fromkeys(dependents[key]):
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    heapq.heappush(heap, (self.rank(dependent), dependent))
        if len(ordered) < len(steps):
            remaining = {key for key, count in waiting.items() if count > 0}
            raise CycleError(self._cycle(remaining))
        return ordered

    def _cycle(self, remaining: set[str]) -> tuple[str, ...]:
        """A cycle among steps left unsorted; each has an unsorted dependency, so following
        the lowest-ranked one from the lowest-ranked step must come back on itself."""
        node = min(remaining, key=self.rank)
        path = [node]
        seen = {node: 0}
        while True:
            node = min((dep for dep in self[node].deps if dep in remaining), key=self.rank)
            if node in seen:
                return (*path[seen[node] :], node)
            seen[node] = len(path)
            path.append(node)


# --- rendering --------------------------------------------------------------------------------


def format_bytes(size: int) -> str:
    """``1536`` → ``1.5 KiB``: binary units, one decimal above bytes."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def count(number: int, noun: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def render_plan(plan: Plan) -> str:
    """The plan as text for people, without running it: steps grouped by the components
    that need them, numbered, each with the numbers of the steps it waits for.

    The same plan always renders the same text.
    """
    ordered = plan.order()
    groups: dict[tuple[str, ...], list[Step]] = {}
    for step in ordered:
        groups.setdefault(step.components, []).append(step)
    shown = [step for steps in groups.values() for step in steps]
    number = {step.key: index for index, step in enumerate(shown, start=1)}
    known = sum(step.size or 0 for step in ordered)
    pending = sum(1 for step in ordered if step.pending)
    head = f"{count(len(ordered), 'step')}, {format_bytes(known)} to fetch"
    if pending:
        head += f" so far; {count(pending, 'step')} will add more when they run"
    lines = [head]
    width = len(str(len(shown)))
    for components, steps in groups.items():
        lines.extend(["", ", ".join(components) or "(no component)"])
        for step in steps:
            text = f"  {number[step.key]:>{width}}. {step.label}"
            if step.size is not None:
                text += f" ({format_bytes(step.size)})"
            if step.deps:
                after = sorted(number[dep] for dep in step.deps)
                text += "  [after " + ", ".join(map(str, after)) + "]"
            lines.append(text)
            if step.pending:
                lines.append(f"  {'':>{width}}  ({step.pending})")
    return "\n".join(lines) + "\n"


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data: steps in topological order, with their keys."""
    return {
        "steps": [
            {
                "key": step.key,
                "kind": step.kind,
                "label": step.label,
                "components": list(step.components),
                "deps": list(step.deps),
                "size": step.size,
                "pending": step.pending,
            }
            for step in plan.order()
        ]
    }


def render_plan_json(plan: Plan) -> str:
    """:func:`plan_json` as indented JSON text (what ``kitdsl plan --json`` prints)."""
    return json.dumps(plan_json(plan), indent=2) + "\n"
