"""Dependency closure: the packages a list of names needs on one architecture.

The rules, chosen to be predictable rather than clever:

- ``Depends`` and ``Pre-Depends`` are followed; ``Recommends`` and ``Suggests`` are not.
- Packages are visited breadth first, in the order asked for, each one's ``Pre-Depends`` then
  ``Depends`` in field order; so the same inputs always give the same closure.
- A group of alternatives (``a | b``) that something already chosen satisfies adds nothing.
  Otherwise its first alternative that can be satisfied is taken.
- A name is satisfied by a real package of that name (the newest version that fits the
  constraint), else by a package that provides it (a versioned constraint needs a versioned
  ``Provides``, Policy §7.5); among several providers the one with the smallest name wins.
- Only packages of the target architecture or ``all`` count. ``:any`` and ``:native`` name the
  same packages here, since one architecture is resolved; another architecture's qualifier
  cannot be met.
- ``Essential: yes`` packages come only when something depends on them: nothing is added
  because a full system would have it.
- Names in ``exclude`` are assumed present: a dependency they (or packages providing through
  them) would satisfy is satisfied, and they are never added. Use it to keep ``libc-bin`` or
  ``debconf`` out of an image that only needs shared libraries.
- Once a package of a name is chosen, that version is final; a later constraint it does not
  meet is an error naming both (no backtracking: archives are built to be co-installable).
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from kitdsl.pkg.debian.errors import ResolveError
from kitdsl.pkg.debian.index import Package, PackageIndex
from kitdsl.pkg.debian.relations import (
    Group,
    Relation,
    RelationError,
    parse_provides,
    parse_relations,
)

ARROW = " → "


@dataclass(frozen=True)
class Resolution:
    """The closure of the requested names."""

    packages: tuple[Package, ...]
    """Every package needed, sorted by name."""
    architecture: str
    requested: tuple[str, ...]
    excluded: tuple[str, ...] = ()
    reasons: Mapping[str, str] = field(default_factory=dict)
    """Package name → the chain that pulled it in (``runc → libseccomp2``)."""

    def names(self) -> list[str]:
        """The package names, sorted."""
        return [package.name for package in self.packages]

    def __iter__(self) -> Iterator[Package]:
        return iter(self.packages)

    def __len__(self) -> int:
        return len(self.packages)

    def __getitem__(self, name: str) -> Package:
        for package in self.packages:
            if package.name == name:
                return package
        raise KeyError(name)


def resolve(
    index: PackageIndex,
    names: Iterable[str],
    *,
    architecture: str,
    exclude: Iterable[str] = (),
) -> Resolution:
    """The closure of ``names`` in ``index`` for ``architecture`` (see the module's rules).
    Raises :class:`~kitdsl.pkg.debian.errors.ResolveError` for an unknown name or a
    dependency that cannot be met, showing the chain that led to it."""
    return _Resolver(index, architecture, exclude).run(list(names))


class _Resolver:
    def __init__(self, index: PackageIndex, architecture: str, exclude: Iterable[str]) -> None:
        self.index = index
        self.architecture = architecture
        self.exclude = frozenset(exclude)
        self.chosen: dict[str, Package] = {}
        self.reasons: dict[str, str] = {}
        self.provided: dict[str, list[tuple[Package, Relation]]] = {}
        """Virtual name → chosen packages that provide it."""

    def run(self, names: list[str]) -> Resolution:
        queue: deque[Package] = deque()
        for name in names:
            if name in self.exclude:
                raise ResolveError(
                    f"{name} is both asked for and excluded", hint=f"remove {name} from exclude"
                )
            package = self._requested(name)
            if self._choose(package, name):
                queue.append(package)
        while queue:
            package = queue.popleft()
            chain = self.reasons[package.name]
            for group in self._groups(package):
                chosen = self._satisfy(group, chain)
                if chosen is not None and self._choose(chosen, chain + ARROW + chosen.name):
                    queue.append(chosen)
        return Resolution(
            packages=tuple(sorted(self.chosen.values(), key=lambda p: p.name)),
            architecture=self.architecture,
            requested=tuple(names),
            excluded=tuple(sorted(self.exclude)),
            reasons=dict(sorted(self.reasons.items())),
        )

    def _fits(self, package: Package) -> bool:
        return package.architecture in (self.architecture, "all")

    def _requested(self, name: str) -> Package:
        real = [p for p in self.index.get(name) if self._fits(p)]
        if real:
            return real[0]
        providers = sorted({p.name for p, _ in self.index.providers(name) if self._fits(p)})
        if len(providers) == 1:
            return self._providers(Relation(name))[0]
        if providers:
            raise ResolveError(
                f"{name} is a virtual package provided by {', '.join(providers)}",
                hint="ask for one of them by name",
            )
        other = self.index.get(name)
        if other:
            arches = ", ".join(sorted({p.architecture for p in other}))
            raise ResolveError(
                f"package {name} is not available for {self.architecture} (only {arches})"
            )
        close = difflib.get_close_matches(name, self.index.names(), n=3)
        raise ResolveError(
            f"unknown package {name}",
            hint=f"did you mean {' or '.join(close)}?"
            if close
            else "check the name, the suite and the components of the mirror",
        )

    def _choose(self, package: Package, chain: str) -> bool:
        """Add ``package``; ``False`` if it was already there."""
        if package.name in self.chosen:
            return False
        self.chosen[package.name] = package
        self.reasons[package.name] = chain
        if package.provides:
            for entry in _provides_of(package):
                self.provided.setdefault(entry.name, []).append((package, entry))
        return True

    def _groups(self, package: Package) -> list[Group]:
        groups: list[Group] = []
        for label, text in (("Pre-Depends", package.pre_depends), ("Depends", package.depends)):
            if not text:
                continue
            try:
                groups += parse_relations(text)
            except RelationError as exc:
                raise ResolveError(f"package {package}: its {label} field: {exc}") from None
        return groups

    def _satisfy(self, group: Group, chain: str) -> Package | None:
        """``None`` when the group is met already (or by an excluded package); else the
        package to add for it."""
        alternatives = [r for r in group if r.applies_to(self.architecture)]
        if not alternatives:
            return None  # restricted to other architectures
        for relation in alternatives:
            if self._excluded(relation) or self._already(relation):
                return None
        reasons: list[str] = []
        for relation in alternatives:
            candidates, reason = self._candidates(relation)
            if candidates:
                return candidates[0]
            reasons.append(f"{relation.name}: {reason}" if len(alternatives) > 1 else reason)
        wanted = " | ".join(map(str, alternatives))
        raise ResolveError(
            f"{chain}{ARROW}{wanted} : {'; '.join(reasons)}",
            hint="the package cannot be installed from this archive; check the suite "
            "and components, or exclude the dependency if the image provides it otherwise",
        )

    def _excluded(self, relation: Relation) -> bool:
        if relation.name in self.exclude:
            return True
        return any(p.name in self.exclude for p, _ in self.index.providers(relation.name))

    def _already(self, relation: Relation) -> bool:
        if not self._qualifier_ok(relation):
            return False
        chosen = self.chosen.get(relation.name)
        if chosen is not None and relation.allows(chosen.version):
            return True
        return any(
            _provide_allows(relation, entry) for _, entry in self.provided.get(relation.name, ())
        )

    def _qualifier_ok(self, relation: Relation) -> bool:
        return relation.qualifier in (None, "any", "native", self.architecture)

    def _candidates(self, relation: Relation) -> tuple[list[Package], str]:
        """Packages that could satisfy ``relation``, best first, or why there are none."""
        if not self._qualifier_ok(relation):
            return [], f"qualifier :{relation.qualifier} names another architecture"
        real = [p for p in self.index.get(relation.name) if self._fits(p)]
        chosen = self.chosen.get(relation.name)
        if chosen is not None:
            # That name is settled; a second version of it cannot join the closure.
            real = []
            if not self._providers(relation):
                return [], (
                    f"{relation.name} {chosen.version} was already chosen "
                    f"(for {self.reasons[relation.name]})"
                )
        fitting = [p for p in real if relation.allows(p.version)]
        if fitting:
            return fitting[:1], ""
        providers = self._providers(relation)
        if providers:
            return providers, ""
        if real:
            versions = ", ".join(p.version for p in real)
            return [], f"only {versions} available"
        if self.index.get(relation.name):
            return [], f"not available for {self.architecture}"
        if self.index.providers(relation.name) and relation.operator:
            return [], "no package provides a version that fits"
        return [], "no such package"

    def _providers(self, relation: Relation) -> list[Package]:
        found: dict[str, Package] = {}
        for package, entry in self.index.providers(relation.name):
            if self._fits(package) and _provide_allows(relation, entry):
                found.setdefault(package.name, package)  # newest version of each comes first
        return [found[name] for name in sorted(found)]


def _provide_allows(relation: Relation, entry: Relation) -> bool:
    """Whether a ``Provides`` entry meets ``relation`` (unversioned provides meet only
    unversioned dependencies)."""
    if relation.operator is None:
        return True
    return entry.version is not None and relation.allows(entry.version)


def _provides_of(package: Package) -> tuple[Relation, ...]:
    try:
        return parse_provides(package.provides)
    except RelationError as exc:
        raise ResolveError(f"package {package}: its Provides field: {exc}") from None
