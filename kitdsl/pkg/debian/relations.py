"""Package relationship fields (Policy §7.1): ``Depends``, ``Pre-Depends``, ``Provides``.

A field is a comma-separated list of groups that must all hold; a group is ``|``-separated
alternatives; an alternative is ``name[:qualifier] [(op version)] [[arch ...]] [<profile>]``.
Architecture restrictions and build profiles only appear in source packages' build
dependencies, but are understood so a field that carries them still parses.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from kitdsl.pkg.debian.version import satisfies

_RELATION = re.compile(
    r"""\s*(?P<name>[a-zA-Z0-9][a-zA-Z0-9+.\-]*)
        (?::(?P<qualifier>[a-zA-Z0-9][a-zA-Z0-9\-]*))?
        \s*(?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^\s)<>=][^\s)]*)\s*\))?
        \s*(?:\[(?P<arches>[^\]]*)\])?
        \s*(?:<[^>]*>\s*)*$""",
    re.VERBOSE,
)


class RelationError(ValueError):
    """A relationship field that does not parse."""


@dataclass(frozen=True, slots=True)
class Relation:
    """One alternative: a package name, optionally an architecture qualifier and a version
    constraint."""

    name: str
    operator: str | None = None
    version: str | None = None
    qualifier: str | None = None
    """``any``, ``native`` or an architecture name after the colon."""
    architectures: tuple[str, ...] = ()
    """An ``[amd64 !i386]`` restriction, as written."""

    def __str__(self) -> str:
        text = self.name + (f":{self.qualifier}" if self.qualifier else "")
        if self.operator:
            text += f" ({self.operator} {self.version})"
        return text

    def allows(self, version: str) -> bool:
        """Whether a package of ``version`` meets the version constraint."""
        if self.operator is None or self.version is None:
            return True
        return satisfies(version, self.operator, self.version)

    def applies_to(self, architecture: str) -> bool:
        """Whether an ``[arch ...]`` restriction keeps this alternative on ``architecture``
        (``linux-any``-style wildcards are matched on their architecture half)."""
        if not self.architectures:
            return True
        negated = [a[1:] for a in self.architectures if a.startswith("!")]
        if negated:
            return not any(_arch_matches(a, architecture) for a in negated)
        return any(_arch_matches(a, architecture) for a in self.architectures)


def _arch_matches(pattern: str, architecture: str) -> bool:
    if pattern in (architecture, "any"):
        return True
    os_part, _, cpu = pattern.partition("-")
    return os_part in ("any", "linux") and cpu in (architecture, "any")


Group = tuple[Relation, ...]
"""Alternatives, any one of which satisfies the group."""


@functools.lru_cache(maxsize=16384)
def parse_relations(text: str) -> tuple[Group, ...]:
    """A ``Depends``-like field: groups (all needed) of alternatives (one needed)."""
    groups: list[Group] = []
    for chunk in text.split(","):
        if not chunk.strip():
            continue  # a trailing comma is tolerated, as dpkg tolerates it
        groups.append(tuple(_parse_one(part) for part in chunk.split("|")))
    return tuple(groups)


def _parse_one(text: str) -> Relation:
    match = _RELATION.match(text)
    if not match:
        raise RelationError(f"cannot parse relation {text.strip()!r}")
    return Relation(
        name=match["name"].lower(),
        operator=match["op"],
        version=match["version"],
        qualifier=match["qualifier"],
        architectures=tuple((match["arches"] or "").split()),
    )


def parse_provides(text: str) -> tuple[Relation, ...]:
    """A ``Provides`` field: each entry a name, optionally ``(= version)``."""
    provided: list[Relation] = []
    for group in parse_relations(text):
        if len(group) != 1 or group[0].operator not in (None, "="):
            raise RelationError(f"Provides entries must be 'name' or 'name (= version)': {text!r}")
        provided.append(group[0])
    return tuple(provided)
