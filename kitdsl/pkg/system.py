"""A system's packages: finding them, the context they resolve in, and their lockfile pins."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kitdsl.dsl.system import System
from kitdsl.dsl.types import ImageProvider
from kitdsl.errors import ConfigError, KitError, LockError, PackageError
from kitdsl.lockfile import LockedPackage, Lockfile
from kitdsl.oci.media import Platform
from kitdsl.oci.store import default_cache_dir
from kitdsl.pkg.context import (
    DEFAULT_SECURITY_URL,
    PackageContext,
    PinnedPackage,
    package_context,
)
from kitdsl.pkg.debian import Mirror, PackageLock
from kitdsl.pkg.debian.mirror import DEFAULT_URL
from kitdsl.pkg.package import Package

__all__ = [
    "MIRROR_ENV",
    "add_package",
    "check_packages_frozen",
    "context_for",
    "debian_mirrors",
    "lock_packages",
    "lockfile_context",
    "package_drift",
    "system_packages",
]


def system_packages(system: System) -> list[Package]:
    """Every package the system uses, base packages first, each once (by repository)."""
    found: dict[str, Package] = {}

    def visit(package: Package) -> None:
        for base in package.base:
            visit(base)
        add_package(found, package)

    for image in _images(system):
        if isinstance(image, Package):
            visit(image)
    return list(found.values())


def add_package(found: dict[str, Package], package: Package) -> None:
    """Add ``package`` to ``found`` (by repository), refusing a different package of the same
    name: the lockfile and the cache know a package by its repository."""
    known = found.setdefault(package.repository, package)
    if known is not package and known.model_dump() != package.model_dump():
        where = f"{known.origin}" if known.origin else "elsewhere"
        raise ConfigError(
            f"two different packages are named {package.repository} (the other is defined "
            f"at {where})",
            location=package.origin,
            hint="give one of them another name (or org)",
        )


def _images(system: System) -> Iterator[str | ImageProvider]:
    if system.kernel is not None and system.kernel.image is not None:
        yield system.kernel.image
    yield from system.init
    for _, _, container in system.containers():
        yield container.image
    for volume in system.volumes:
        if volume.image is not None:
            yield volume.image


MIRROR_ENV = "KITDSL_DEBIAN_MIRROR"
"""The Debian archive to use, when no option names one."""


def debian_mirrors(mirror: str | None = None, *, root: str = "/") -> tuple[str, str]:
    """The Debian archive and its security archive: ``mirror`` when given, else
    ``$KITDSL_DEBIAN_MIRROR``, else the Debian archives this machine's apt sources use (below
    ``root``), else Debian's own."""
    main, security = mirror or os.environ.get(MIRROR_ENV), None
    if main is None:
        with contextlib.suppress(OSError, ValueError, KitError):
            for source in Mirror.from_apt_sources(root):
                if not _is_debian(source):
                    continue  # Ubuntu's or a third party's archive: not where Debian's are
                if source.suite.endswith("-security"):
                    security = security or source.url
                elif not source.url.endswith("-security"):
                    main = main or source.url
    return main or DEFAULT_URL, security or DEFAULT_SECURITY_URL


DEBIAN_SUITES = frozenset(
    {
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
    }
)


def _is_debian(source: Mirror) -> bool:
    """Whether an apt source is one of Debian's archives (or a mirror of one)."""
    return source.suite.split("-", 1)[0] in DEBIAN_SUITES


def context_for(
    platform: Platform,
    *,
    cache_dir: Path | None = None,
    lock: Lockfile | None = None,
    frozen: bool = False,
    mirror: str | None = None,
    keyring: Path | None = None,
) -> PackageContext:
    """The context a build for ``platform`` resolves packages in: ``lock``'s pins first, the
    archive of :func:`debian_mirrors` then."""
    pins = {
        name: PinnedPackage(locked.request, _closures(name, locked))
        for name, locked in (lock.packages if lock is not None else {}).items()
    }
    main, security = debian_mirrors(mirror)
    return PackageContext(
        cache_dir=cache_dir or default_cache_dir(),
        platform=platform,
        mirror=main,
        security_mirror=security,
        pins=pins,
        frozen=frozen,
        keyring=keyring,
    )


@contextlib.contextmanager
def lockfile_context(
    system_file: str, platform: Platform, *, cache_dir: Path | None = None
) -> Iterator[PackageContext]:
    """Resolve packages, inside the block, with the pins of ``system_file``'s lockfile (what a
    build of it would use), so showing a system needs no network once it is locked."""
    from kitdsl.lockfile import lock_path

    context = context_for(platform, cache_dir=cache_dir, lock=Lockfile.read(lock_path(system_file)))
    try:
        with package_context(context):
            yield context
    finally:
        context.close()


def _closures(name: str, locked: LockedPackage) -> dict[str, PackageLock]:
    """The pinned closures of package ``name``, checked: a lockfile edited by hand or written
    by a newer kitdsl is a :class:`LockError`, not a traceback."""
    closures = {}
    for platform, data in locked.closures.items():
        try:
            closures[platform] = PackageLock.model_validate(data)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise LockError(
                f"the lockfile's pin of package {name} for {platform} is not valid: "
                f"{where}: {problem['msg']}",
                hint="regenerate it with 'kitdsl lock --update " + name.rsplit("/", 1)[-1] + "'",
            ) from None
    return closures


def lock_packages(
    system: System,
    platforms: Iterable[Platform],
    *,
    cache_dir: Path | None = None,
    previous: Lockfile | None = None,
    update: Iterable[str] | None = None,
    mirror: str | None = None,
    keyring: Path | None = None,
) -> dict[str, LockedPackage]:
    """The pins of every package of ``system`` for each platform.

    A previous pin is kept when the package's request has not changed, unless ``update``
    names it (its name or repository; an empty ``update`` re-resolves every package).
    """
    packages = system_packages(system)
    refresh = _to_refresh(packages, update)
    kept = previous if previous is not None else None
    closures: dict[str, dict[str, dict[str, Any]]] = {}
    requests: dict[str, str] = {}
    for platform in platforms:
        context = context_for(
            platform, cache_dir=cache_dir, lock=kept, mirror=mirror, keyring=keyring
        )
        context.pins = {k: v for k, v in context.pins.items() if k not in refresh}
        try:
            for package in packages:
                resolved = context.resolved(package)
                requests[package.repository] = resolved.request
                if resolved.closure is not None:
                    closures.setdefault(package.repository, {})[str(platform)] = (
                        resolved.closure.model_dump(mode="json")
                    )
        finally:
            context.close()
    return {name: LockedPackage(requests[name], closures[name]) for name in sorted(closures)}


def _to_refresh(packages: list[Package], update: Iterable[str] | None) -> set[str]:
    if update is None:
        return set()
    names = list(update)
    if not names:
        return {package.repository for package in packages}
    refresh: set[str] = set()
    for name in names:
        matched = {p.repository for p in packages if name in (p.name, p.repository)}
        refresh |= matched
    return refresh


def package_drift(
    lock: Lockfile, system: System, platforms: Iterable[Platform], *, cache_dir: Path | None
) -> list[str]:
    """What no longer matches between the lockfile's package pins and ``system``."""
    problems: list[str] = []
    packages = system_packages(system)
    for platform in platforms:
        context = context_for(platform, cache_dir=cache_dir, lock=lock, frozen=True)
        for package in packages:
            if not package.debian:
                continue
            try:
                context.resolved(package)
            except PackageError as error:
                problems.append(error.message)
    used = {package.repository for package in packages if package.debian}
    problems += [
        f"package {name} is locked but no longer used" for name in lock.packages if name not in used
    ]
    return problems


def check_packages_frozen(
    lock: Lockfile | None,
    system: System,
    platforms: Iterable[Platform],
    path: Path,
    *,
    cache_dir: Path | None,
) -> None:
    """A :class:`LockError` listing every package drift (``--frozen``)."""
    if lock is None:
        return
    problems = package_drift(lock, system, platforms, cache_dir=cache_dir)
    if problems:
        raise LockError(
            f"the system's packages no longer match {path}",
            details=tuple(problems),
            hint="run 'kitdsl lock' (or 'kitdsl lock --update NAME') and commit the result",
        )
