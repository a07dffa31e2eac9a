"""Lockfiles: every image reference of a system pinned to digests, per platform, and every
package built from Debian pinned to its exact ``.deb`` files.

``kitdsl lock systems/edge.py`` writes ``systems/edge.lock``. A build reads it when present and
uses the pinned digests instead of asking registries what a tag means today; ``--frozen`` fails
when the system no longer matches the lockfile, naming what drifted. The file is JSON with a
versioned schema, sorted keys and a checksum of the resolved inputs, so a review shows exactly
which pins changed and a hand edit that breaks it is caught.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitdsl import reference
from kitdsl.dsl.system import System
from kitdsl.dsl.types import ImageProvider, image_reference
from kitdsl.errors import Location, LockError
from kitdsl.fsutil import atomic_write_text
from kitdsl.oci.media import Platform

LOCK_VERSION = 1
LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class LockedImage:
    """One image reference and what it resolved to."""

    index: str | None
    """The digest of the image index the tag pointed at, if it was an index."""
    manifests: Mapping[str, str]
    """Platform (``linux/amd64``) → manifest digest."""
    used_by: tuple[str, ...] = ()
    """The components that use the image (``services/getty``), for people reading the file."""

    def to_data(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "index": self.index,
            "manifests": dict(sorted(self.manifests.items())),
            "used_by": sorted(self.used_by),
        }


@dataclass(frozen=True)
class LockedPackage:
    """A package built from Debian: the digest of its request (Debian packages, exclusions,
    suite...) when it was locked, and per platform the ``.deb`` files it resolved to
    (:class:`kitdsl.pkg.debian.PackageLock` data)."""

    request: str
    closures: Mapping[str, Mapping[str, Any]]

    def to_data(self) -> dict[str, Any]:
        """The JSON form."""
        return {"request": self.request, "closures": dict(sorted(self.closures.items()))}


@dataclass(frozen=True)
class Lockfile:
    """The pins of a system: canonical image reference → :class:`LockedImage`, and package
    repository (``kitdsl/httpd``) → :class:`LockedPackage`."""

    images: Mapping[str, LockedImage] = field(default_factory=dict)
    platforms: tuple[str, ...] = ("linux/amd64",)
    packages: Mapping[str, LockedPackage] = field(default_factory=dict)

    def pin(self, ref: str, platform: Platform | str) -> str | None:
        """The pinned manifest digest of ``ref`` for ``platform``, if any (``arm64`` and
        ``arm64/v8`` are the same platform here, as for registries)."""
        locked = self.images.get(reference.image_key(ref))
        return _for_platform(locked.manifests, platform) if locked else None

    def checksum(self) -> str:
        """A digest of the resolved inputs (what the pins say, not who uses them)."""
        pins = {
            name: {"index": image.index, "manifests": dict(sorted(image.manifests.items()))}
            for name, image in sorted(self.images.items())
        }
        document: dict[str, Any] = {"platforms": sorted(self.platforms), "images": pins}
        if self.packages:
            document["packages"] = {
                name: package.to_data() for name, package in sorted(self.packages.items())
            }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> str:
        """The file's text: deterministic, sorted, one trailing newline."""
        data = {
            "version": LOCK_VERSION,
            "platforms": sorted(self.platforms),
            "checksum": self.checksum(),
            "images": {name: image.to_data() for name, image in sorted(self.images.items())},
        }
        if self.packages:
            data["packages"] = {
                name: package.to_data() for name, package in sorted(self.packages.items())
            }
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, *, path: Path) -> Lockfile:
        """Read a lockfile; anything malformed or edited by hand is a :class:`LockError`."""
        where = Location(str(path))
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LockError(
                f"{path} is not valid JSON: {exc.msg}",
                location=Location(str(path), exc.lineno, exc.colno),
                hint="regenerate it with 'kitdsl lock'",
            ) from None
        if not isinstance(data, dict) or data.get("version") != LOCK_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise LockError(
                f"{path} has lockfile version {version!r}; this kitdsl reads version "
                f"{LOCK_VERSION}",
                location=where,
                hint="regenerate it with 'kitdsl lock'",
            )
        try:
            lock = cls(
                images={
                    name: LockedImage(
                        index=entry["index"],
                        manifests=dict(entry["manifests"]),
                        used_by=tuple(entry.get("used_by", ())),
                    )
                    for name, entry in data["images"].items()
                },
                platforms=tuple(data["platforms"]),
                packages={
                    name: LockedPackage(entry["request"], dict(entry["closures"]))
                    for name, entry in data.get("packages", {}).items()
                },
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise LockError(
                f"{path} is not a valid lockfile (missing or wrong {exc})",
                location=where,
                hint="regenerate it with 'kitdsl lock'",
            ) from None
        if data.get("checksum") != lock.checksum():
            raise LockError(
                f"{path}: the checksum does not match the pins (the file was edited by hand)",
                location=where,
                hint="regenerate it with 'kitdsl lock' rather than editing it",
            )
        return lock

    @classmethod
    def read(cls, path: Path) -> Lockfile | None:
        """The lockfile at ``path``, or ``None`` when there is none."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return cls.from_json(text, path=path)

    def write(self, path: Path) -> None:
        """Write atomically: a reader sees the old lockfile or the new one."""
        atomic_write_text(path, self.to_json())


def lock_path(system_file: str) -> Path:
    """``systems/edge.py`` → ``systems/edge.lock``; ``edge.py:debug`` → ``edge.debug.lock``."""
    path, _, variant = system_file.partition(".py:")
    if variant:
        return Path(f"{path}.{variant}{LOCK_SUFFIX}")
    return Path(system_file).with_suffix(LOCK_SUFFIX)


def system_images(system: System) -> dict[str, tuple[str, ...]]:
    """Every image the system fetches (canonical reference) → the components using it."""
    uses: dict[str, list[str]] = {}

    def add(image: str | ImageProvider, component: str) -> None:
        if not isinstance(image, str):
            return  # built here, not fetched: packages are pinned by what they are made of
        ref = reference.image_key(image_reference(image))
        uses.setdefault(ref, []).append(component)

    if system.kernel is not None and system.kernel.image is not None:
        add(system.kernel.image, "kernel")
    for index, image in enumerate(system.init):
        add(image, f"init[{index}]")
    for section, _, container in system.containers():
        add(container.image, f"{section}/{container.name}")
    for volume in system.volumes:
        if volume.image is not None:
            add(volume.image, f"volumes/{volume.name}")
    return {ref: tuple(components) for ref, components in sorted(uses.items())}


Resolver = Callable[[str, str], tuple[str | None, str]]
"""``(reference, platform) → (index digest or None, manifest digest)``, asking the registry."""


def lock_system(
    system: System,
    resolve: Resolver,
    *,
    platforms: Iterable[str] = ("linux/amd64",),
    previous: Lockfile | None = None,
    update: Iterable[str] | None = None,
) -> Lockfile:
    """Resolve every image of ``system`` for every platform.

    With a ``previous`` lockfile, its pins are kept and only new references are resolved,
    unless ``update`` names what to re-resolve: component names (``getty``,
    ``services/getty``), image references, or nothing (an empty ``update`` re-resolves all).
    """
    wanted = tuple(sorted(set(platforms)))
    uses = system_images(system)
    refresh = _to_refresh(uses, update)
    images: dict[str, LockedImage] = {}
    for ref, components in uses.items():
        kept = previous.images.get(ref) if previous else None
        if kept is not None and ref not in refresh and set(wanted) <= set(kept.manifests):
            images[ref] = LockedImage(
                kept.index, {p: kept.manifests[p] for p in wanted}, components
            )
            continue
        index: str | None = None
        manifests: dict[str, str] = {}
        for platform in wanted:
            index, manifests[platform] = resolve(ref, platform)
        images[ref] = LockedImage(index, manifests, components)
    return Lockfile(images=images, platforms=wanted)


def _to_refresh(uses: Mapping[str, tuple[str, ...]], update: Iterable[str] | None) -> set[str]:
    if update is None:
        return set()
    names = list(update)
    if not names:
        return set(uses)
    refresh: set[str] = set()
    for name in names:
        matched = {
            ref
            for ref, components in uses.items()
            if name in components
            or any(component.rpartition("/")[2] == name for component in components)
            or _same_reference(name, ref)
        }
        if not matched:
            known = sorted({c for components in uses.values() for c in components})
            raise LockError(
                f"nothing named {name!r} uses an image in this system",
                hint=f"components: {', '.join(known)}",
            )
        refresh |= matched
    return refresh


def _for_platform(manifests: Mapping[str, str], platform: Platform | str) -> str | None:
    wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    if str(wanted) in manifests:
        return manifests[str(wanted)]
    for locked, digest in sorted(manifests.items()):
        other = Platform.parse(locked)
        if other.matches(wanted) and wanted.matches(other):
            return digest
    return None


def _same_reference(name: str, ref: str) -> bool:
    try:
        return reference.image_key(name) == ref
    except reference.ReferenceSyntaxError:
        return False


def drift(lock: Lockfile, system: System, platforms: Iterable[str]) -> list[str]:
    """What no longer matches between ``lock`` and ``system``: one line each, empty if none."""
    problems: list[str] = []
    uses = system_images(system)
    for ref, components in uses.items():
        locked = lock.images.get(ref)
        if locked is None:
            problems.append(f"{ref} (used by {', '.join(components)}) is not in the lockfile")
            continue
        for platform in sorted(set(platforms)):
            if _for_platform(locked.manifests, platform) is None:
                problems.append(f"{ref} is not locked for {platform}")
    for ref, locked in sorted(lock.images.items()):
        if ref not in uses:
            was = f" (was used by {', '.join(locked.used_by)})" if locked.used_by else ""
            problems.append(f"{ref} is locked but no longer used{was}")
    return problems


def check_frozen(
    lock: Lockfile | None, system: System, platforms: Iterable[str], path: Path
) -> Lockfile:
    """The lockfile, or a :class:`LockError` listing every drift (``--frozen``)."""
    if lock is None:
        raise LockError(
            f"--frozen needs a lockfile, and {path} does not exist",
            hint="create it with 'kitdsl lock' and commit it",
        )
    problems = drift(lock, system, platforms)
    if problems:
        raise LockError(
            f"the system no longer matches {path}",
            location=Location(str(path)),
            details=tuple(problems),
            hint="run 'kitdsl lock' (or 'kitdsl lock --update NAME') and commit the result",
        )
    return lock
