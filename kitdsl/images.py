"""Getting a system's images: one call each for ``kitdsl pull`` and ``kitdsl lock``.

These tie the pieces together — the planner runs the fetch as a DAG of steps in parallel, the
resolver decides between lockfile pins, the cache, a local Docker engine and registries, and
the lockfile records what tags meant — so the command line stays a thin shell over them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kitdsl.dsl.system import System
from kitdsl.image_resolver import ImageResolver, lock_digests
from kitdsl.lockfile import Lockfile, check_frozen, lock_system
from kitdsl.oci.cache import Cache
from kitdsl.oci.docker_source import DockerSource
from kitdsl.oci.media import Platform
from kitdsl.oci.registry import RegistryClient
from kitdsl.pkg.build import package_builder
from kitdsl.pkg.context import package_context
from kitdsl.pkg.system import context_for, lock_packages
from kitdsl.plan import Reporter, fetch_images, host_platform
from kitdsl.plan.images import ResolvedImage


@dataclass(frozen=True)
class ImageOptions:
    """How images are got; each field is a command-line option."""

    cache_dir: Path | None = None
    """The cache (default: ``$KITDSL_CACHE`` or the user's cache folder)."""
    platform: Platform | None = None
    """Target platform (default: this machine's)."""
    pull: bool = False
    """Ask registries again what tags mean, even when the cache knows."""
    docker: bool = False
    """Use images the local Docker engine has."""
    jobs: int | None = None
    """Steps run at once."""
    insecure: tuple[str, ...] = ()
    """Registries reached over plain HTTP or without certificate checks."""
    mirrors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Mirrors tried first for a registry domain (``docker.io``)."""
    ca_certs: tuple[Path, ...] = ()
    """Extra trusted CA certificates."""
    debian_mirror: str | None = None
    """The Debian archive packages are built from (default: ``$KITDSL_DEBIAN_MIRROR``, this
    machine's apt sources, or Debian's own)."""
    debian_keyring: Path | None = None
    """Keys the Debian archive is signed with, when it is not Debian's."""

    def client(self) -> RegistryClient:
        """A registry client configured from these options."""
        return RegistryClient(
            mirrors=self.mirrors, insecure=self.insecure, ca_certs=tuple(self.ca_certs)
        )


@dataclass(frozen=True)
class Pulled:
    """What ``pull`` did."""

    images: Mapping[str, tuple[ResolvedImage, ...]]
    """Component → its image(s)."""
    recorded: tuple[str, ...]
    """Names newly recorded in the cache."""


def pull_system(
    system: System,
    options: ImageOptions,
    *,
    lock: Lockfile | None = None,
    frozen_lock: Path | None = None,
    reporter: Reporter | None = None,
) -> Pulled:
    """Fetch every image of ``system`` into the cache.

    ``lock`` pins win over everything. With ``frozen_lock`` (the lockfile's path) the system
    must match the lockfile exactly, or nothing is fetched.
    """
    platform = options.platform or _host()
    if frozen_lock is not None:
        lock = check_frozen(lock, system, [str(platform)], frozen_lock)
    cache = Cache.open(options.cache_dir)
    packages = context_for(
        platform,
        cache_dir=cache.root,
        lock=lock,
        frozen=frozen_lock is not None,
        mirror=options.debian_mirror,
        keyring=options.debian_keyring,
    )
    # The lease keeps a concurrent `kitdsl cache prune` from deleting what this pull has
    # fetched before it records the names.
    with cache.lease(), options.client() as client, package_context(packages):
        resolver = ImageResolver(
            cache,
            client,
            pull=options.pull,
            docker=DockerSource(cache) if options.docker else None,
            pins=lock.pin if lock is not None else None,
        )
        try:
            images = fetch_images(
                system,
                resolver,
                platform=platform,
                jobs=options.jobs,
                reporter=reporter,
                builder=package_builder(cache, packages),
            )
        finally:
            packages.close()
        recorded = resolver.commit()
    return Pulled(images=images, recorded=tuple(recorded))


def lock_images(
    system: System,
    options: ImageOptions,
    *,
    previous: Lockfile | None = None,
    update: Iterable[str] | None = None,
    platforms: Iterable[Platform] = (),
) -> Lockfile:
    """Resolve every image of ``system`` to digests for each platform (default: the target)."""
    wanted = [str(p) for p in platforms] or [str(options.platform or _host())]
    cache = Cache.open(options.cache_dir)
    with options.client() as client:

        def resolve(ref: str, platform: str) -> tuple[str | None, str]:
            if not options.pull:
                known = lock_digests(cache, ref, Platform.parse(platform))
                if known is not None:
                    return known
            resolved = client.resolve(ref, platform, cache)
            index = resolved.index.digest if resolved.index is not None else None
            return index, resolved.manifest.digest

        locked = lock_system(system, resolve, platforms=wanted, previous=previous, update=update)
    packages = lock_packages(
        system,
        [Platform.parse(platform) for platform in wanted],
        cache_dir=cache.root,
        previous=previous,
        update=update,
        mirror=options.debian_mirror,
        keyring=options.debian_keyring,
    )
    return dataclasses.replace(locked, packages=packages)


def _host() -> Platform:
    return host_platform()


def cached_source(system_file: str, cache_dir: Path | None) -> ImageResolver:
    """An image source that answers only from the cache and the lockfile of ``system_file``
    (for ``kitdsl plan``: what is known without any network)."""
    from kitdsl.lockfile import lock_path

    lock = Lockfile.read(lock_path(system_file))
    return ImageResolver(Cache.open(cache_dir), None, pins=lock.pin if lock is not None else None)
