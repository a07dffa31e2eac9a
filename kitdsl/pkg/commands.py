"""The work behind ``kitdsl pkg``: each command is one call here, returning its lines."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from kitdsl import reference
from kitdsl.lockfile import LockedPackage, Lockfile, lock_path
from kitdsl.oci.cache import Cache
from kitdsl.oci.media import Platform
from kitdsl.oci.registry import RegistryClient
from kitdsl.pkg.build import build_package
from kitdsl.pkg.context import PackageContext
from kitdsl.pkg.package import Package
from kitdsl.pkg.system import add_package, context_for
from kitdsl.pkg.targets import packages_of

__all__ = ["build_packages", "push_packages", "show_tags"]


def _packages(targets: Sequence[str]) -> list[Package]:
    found: dict[str, Package] = {}
    for target in targets:
        for package in packages_of(target):
            add_package(found, package)
    return list(found.values())


def _context(
    targets: Sequence[str],
    platform: Platform,
    cache: Path | None,
    mirror: str | None,
    keyring: Path | None,
) -> tuple[Cache, PackageContext]:
    """The cache, and a context resolving with the pins of the targets' lockfiles (what
    ``kitdsl build`` of those files would use)."""
    pins: dict[str, LockedPackage] = {}
    for target in targets:
        path = target.split(".py:", 1)[0] + (".py" if ".py:" in target else "")
        if path.endswith(".py"):
            lock = Lockfile.read(lock_path(target))
            pins.update(lock.packages if lock is not None else {})
    store = Cache.open(cache)
    context = context_for(
        platform,
        cache_dir=store.root,
        mirror=mirror,
        keyring=keyring,
        lock=Lockfile(packages=pins) if pins else None,
    )
    return store, context


def show_tags(
    targets: Sequence[str],
    *,
    platform: Platform,
    cache: Path | None = None,
    mirror: str | None = None,
    keyring: Path | None = None,
) -> Iterator[str]:
    """``ORG/NAME:TAG`` of each package of ``targets``."""
    _, context = _context(targets, platform, cache, mirror, keyring)
    try:
        for package in _packages(targets):
            yield context.resolved(package).reference
    finally:
        context.close()


def build_packages(
    targets: Sequence[str],
    *,
    platform: Platform,
    cache: Path | None = None,
    mirror: str | None = None,
    keyring: Path | None = None,
    force: bool = False,
) -> Iterator[str]:
    """Build each package of ``targets`` into the cache; yield its reference and what
    happened (``built``, or ``cached`` when the tag was there)."""
    store, context = _context(targets, platform, cache, mirror, keyring)
    try:
        with store.lease():
            for package in _packages(targets):
                resolved = context.resolved(package)
                name = reference.image_key(resolved.reference)
                was_there = store.get_ref(name) is not None
                build_package(resolved, store, context, force=force)
                state = "cached" if was_there and not force else "built"
                yield f"{resolved.reference} {state}"
    finally:
        context.close()


def push_packages(
    targets: Sequence[str],
    *,
    platform: Platform,
    org: str | None = None,
    cache: Path | None = None,
    mirror: str | None = None,
    keyring: Path | None = None,
    insecure: tuple[str, ...] = (),
    ca_certs: tuple[Path, ...] = (),
) -> Iterator[str]:
    """Build (if needed) and push each package of ``targets`` to ``ORG/NAME:TAG``, ``ORG``
    being ``org`` or the package's own; yield where each went."""
    store, context = _context(targets, platform, cache, mirror, keyring)
    try:
        with store.lease(), RegistryClient(insecure=insecure, ca_certs=ca_certs) as client:
            for package in _packages(targets):
                resolved = context.resolved(package)
                image = build_package(resolved, store, context)
                where = f"{(org or package.org).rstrip('/')}/{package.name}:{resolved.tag}"
                root = image.manifest.model_copy(update={"platform": None, "annotations": None})
                client.push(where, store, root)
                yield f"pushed {resolved.reference} to {where}"
    finally:
        context.close()
