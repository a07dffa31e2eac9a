"""Where packages are resolved: the archive to ask, the cache, the target, the lockfile's pins.

Resolving a :class:`~kitdsl.pkg.package.Package` means finding the exact ``.deb`` files its
Debian packages and their dependencies are (for the target architecture) and, from them and
the definition, its tag. A :class:`PackageContext` does it once per package and remembers the
answer; the one in effect is set with :func:`package_context` (a build sets it from its
options; otherwise a default one is made: Debian's mirror, the default cache, this machine's
architecture).

A package pinned in the lockfile with the same *request* (its Debian packages, exclusions,
suite, components and security updates: what resolution depends on) is resolved from the pin,
without any network; otherwise the archive is asked (its ``Packages`` index is cached, so this
costs one small signed download). Changing a package's files, scripts or base packages changes
its tag but keeps its pin.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from kitdsl.errors import ConfigError, PackageError
from kitdsl.fsutil import file_sha256, files_digest, json_digest
from kitdsl.load.file_sources import source_path
from kitdsl.oci.media import Platform
from kitdsl.oci.store import default_cache_dir
from kitdsl.pkg.debian import Archive, Keyring, Mirror, PackageLock
from kitdsl.pkg.debian.mirror import DEFAULT_URL
from kitdsl.pkg.package import Package

__all__ = [
    "DEFAULT_SECURITY_URL",
    "PackageContext",
    "PinnedPackage",
    "ResolvedPackage",
    "current_context",
    "package_context",
]

DEFAULT_SECURITY_URL = "http://deb.debian.org/debian-security"
TAG_LENGTH = 20
"""Hex digits of a package tag (80 bits)."""
_DEBIAN_ARCH = {"amd64": "amd64", "arm64": "arm64", "arm": "armhf", "386": "i386"}
_BUILDER = (
    "pkg",  # the builder, and the reading of .deb files
    "outputs/tar.py",  # layers are written as tar
    "outputs/pgzip.py",  # and compressed
    "outputs/entry.py",
    "load/linuxkit_yaml.py",  # the org.mobyproject.config label
    "dsl/models.py",
    "dsl/types.py",
)
"""The code (below ``kitdsl/``) that decides the bytes of a package's image: part of every
tag, so a kitdsl that builds differently never finds another's image under the same tag."""


@dataclass(frozen=True)
class PinnedPackage:
    """A package as the lockfile holds it: the digest of its request (what resolving it
    depends on) and, per platform, its closure."""

    request: str
    closures: Mapping[str, PackageLock]


@dataclass(frozen=True)
class ResolvedPackage:
    """A package with everything that decides its image."""

    package: Package
    tag: str
    request: str
    """Digest of what resolution depends on (what a lockfile pin is checked against)."""
    closure: PackageLock | None
    """The ``.deb`` files, or ``None`` for a package without Debian packages."""
    sources: Mapping[str, Path]
    """Path in the image → the host file of each ``source`` file."""
    source_digests: Mapping[str, str]
    """Path in the image → the SHA-256 its source had when the tag was computed."""
    base: tuple[ResolvedPackage, ...]

    @property
    def reference(self) -> str:
        """``<org>/<name>:<tag>``."""
        return f"{self.package.repository}:{self.tag}"


@dataclass
class PackageContext:
    """How packages are resolved (see the module documentation)."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    platform: Platform = field(default_factory=lambda: Platform(os="linux", architecture="amd64"))
    mirror: str = DEFAULT_URL
    """The Debian archive's URL."""
    security_mirror: str = DEFAULT_SECURITY_URL
    pins: Mapping[str, PinnedPackage] = field(default_factory=dict)
    """Repository (``kitdsl/httpd``) → its lockfile pin."""
    frozen: bool = False
    """Refuse to resolve a package the pins do not hold (``--frozen``)."""
    keyring: Path | None = None
    """Keys to verify the archives with, instead of Debian's (a private mirror's)."""
    _resolved: dict[int, tuple[Package, ResolvedPackage]] = field(default_factory=dict)
    _archives: dict[tuple[str, tuple[str, ...], bool], Archive] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def architecture(self) -> str:
        """The Debian name of the target architecture."""
        try:
            return _DEBIAN_ARCH[self.platform.architecture]
        except KeyError:
            raise PackageError(
                f"no Debian architecture for the platform {self.platform}",
                hint="build for linux/amd64, linux/arm64, linux/arm/v7 or linux/386",
            ) from None

    def resolved(self, package: Package) -> ResolvedPackage:
        """``package`` resolved (once per context)."""
        with self._lock:
            known = self._resolved.get(id(package))
            if known is not None:
                return known[1]
            result = self._resolve(package)
            self._resolved[id(package)] = (package, result)  # the package kept alive with it
            return result

    def all_resolved(self) -> list[ResolvedPackage]:
        """Every package resolved so far, in the order they were."""
        return [resolved for _, resolved in self._resolved.values()]

    def archive(self, package: Package) -> Archive:
        """The archive (with its security updates, if asked) ``package`` comes from."""
        key = (package.suite, tuple(package.components), package.security)
        with self._lock:
            if key not in self._archives:
                mirrors = [
                    Mirror(
                        url=self.mirror,
                        suite=package.suite,
                        components=tuple(package.components),
                        architecture=self.architecture,
                    )
                ]
                if package.security:
                    mirrors.append(
                        Mirror(
                            url=self.security_mirror,
                            suite=f"{package.suite}-security",
                            components=tuple(package.components),
                            architecture=self.architecture,
                        )
                    )
                keys = Keyring.load(self.keyring) if self.keyring is not None else None
                self._archives[key] = Archive(mirrors, cache=self.cache_dir, keyring=keys)
            return self._archives[key]

    def close(self) -> None:
        """Close the archives' connections."""
        for archive in self._archives.values():
            archive.close()

    def _resolve(self, package: Package) -> ResolvedPackage:
        base = tuple(self.resolved(parent) for parent in package.base)
        sources = _sources(package)
        digests = {path: file_sha256(host) for path, host in sorted(sources.items())}
        definition = json_digest(
            {
                "definition": package.definition(),
                "base": [parent.tag for parent in base],
                "sources": digests,
            }
        )
        request = json_digest(package.request())
        closure = self._closure(package, request) if package.debian else None
        pinned = [
            [p.name, p.version, p.architecture, p.sha256]
            for p in (closure.packages if closure is not None else ())
        ]
        tag = json_digest(
            {
                "definition": definition,
                "platform": str(self.platform),
                "debs": pinned,
                "builder": _builder_digest(),
            }
        )
        return ResolvedPackage(package, tag[:TAG_LENGTH], request, closure, sources, digests, base)

    def _closure(self, package: Package, request: str) -> PackageLock:
        pin = self.pins.get(package.repository)
        platform = str(self.platform)
        if pin is not None and pin.request == request and platform in pin.closures:
            return self._here(pin.closures[platform])
        if self.frozen:
            if pin is None:
                why = "is not in the lockfile"
            elif pin.request != request:
                why = "changed since it was locked"
            else:
                why = f"is not locked for {platform}"
            raise PackageError(
                f"package {package.repository} {why}",
                location=package.origin,
                hint="run 'kitdsl lock' and commit the lockfile",
            )
        archive = self.archive(package)
        return PackageLock.of(archive.resolve(package.debian, exclude=package.exclude))

    def _here(self, closure: PackageLock) -> PackageLock:
        """A pinned closure fetched from this context's archives: the pins' sha256 say what
        the files are, not where the machine that locked them found them."""
        moved = [
            package.model_copy(
                update={
                    "mirror": self.security_mirror
                    if package.mirror.rstrip("/").endswith("-security")
                    else self.mirror
                }
            )
            for package in closure.packages
        ]
        return closure.model_copy(update={"packages": tuple(moved)})


_current: ContextVar[PackageContext | None] = ContextVar("package_context", default=None)
_default_lock = threading.Lock()
_default: list[PackageContext] = []


def current_context() -> PackageContext:
    """The context in effect (a default one when none was set)."""
    context = _current.get()
    if context is not None:
        return context
    with _default_lock:
        if not _default:
            from kitdsl.plan.images import host_platform

            _default.append(PackageContext(platform=host_platform()))
        return _default[0]


@contextlib.contextmanager
def package_context(context: PackageContext) -> Iterator[PackageContext]:
    """Resolve packages in ``context`` inside the block."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def _sources(package: Package) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for file in package.files:
        path = source_path(file)
        if path is None:
            continue
        if not path.is_file():
            raise ConfigError(
                f"package {package.name}: the source of {file.path!r}, {path}, "
                + ("is not a regular file" if path.exists() else "does not exist"),
                location=file.field_origin("source") or file.origin,
                hint="relative sources are read from the folder of the file defining them",
            )
        found[file.path] = path
    return found


@functools.cache
def _builder_digest() -> str:
    package = Path(__file__).resolve().parent.parent
    paths = []
    for name in _BUILDER:
        found = [package / name] if name.endswith(".py") else package.joinpath(name).rglob("*")
        paths += sorted(p for p in found if p.is_file() and p.suffix in (".py", ".pgp"))
    return files_digest(package, paths)
