"""Where a build gets each image: lockfile pins, digests, the cache, a Docker engine, registries.

For each reference and platform, in this order:

1. a lockfile pin always wins, and so does a digest written in the reference: the content is
   taken from the cache if it is there, else fetched *by digest* — no tag is asked about;
2. a tag the cache has resolved before is not asked about again (unless ``pull``); another
   platform of a cached index is fetched by the index's digest, so the tag keeps its meaning;
3. with ``docker``, an image the local engine has is used (never recorded as what a tag means);
4. otherwise the registry is asked, and the answer fetched into the cache.

A name is recorded in the cache only once everything it needs is there (:meth:`commit`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from kitdsl import reference
from kitdsl.errors import CacheError
from kitdsl.oci.cache import Cache
from kitdsl.oci.docker_source import DockerSource
from kitdsl.oci.media import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    document_kind,
)
from kitdsl.oci.registry import PlatformError, RegistryClient, Resolved
from kitdsl.oci.store import ref_key
from kitdsl.plan.images import ResolvedImage

M = TypeVar("M", bound=BaseModel)
Pins = Callable[[str, Platform], str | None]
"""``(image key, platform) → pinned manifest digest``, from a lockfile."""


@dataclass(frozen=True)
class _Pending:
    name: str
    root: Descriptor
    platform: Platform


class ImageResolver:
    """The planner's image source. Safe to use from the planner's threads."""

    def __init__(
        self,
        cache: Cache,
        client: RegistryClient | None,
        *,
        pull: bool = False,
        docker: DockerSource | None = None,
        pins: Pins | None = None,
    ) -> None:
        self.cache = cache
        self._client = client
        self.pull = pull
        self.docker = docker
        self.pins = pins
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> RegistryClient:
        if self._client is None:
            raise CacheError("this image is not in the cache, and no registry may be asked")
        return self._client

    # --- the planner's interface --------------------------------------------------------------

    def resolve(self, image: str, platform: Platform) -> ResolvedImage:
        """The manifest, config and layers of ``image`` for ``platform``."""
        key = reference.image_key(image)
        ref = reference.parse(key)
        pinned = self._pinned_digest(key, ref, platform)
        if pinned is not None:
            known = self._known(ref, pinned, platform)
            if known is not None:
                # Recorded by digest, never as what the tag means (a pin may be old).
                self._add(f"{ref.name}@{pinned}", known[1], platform)
                return known[0]
            by_digest = reference.Reference(ref.domain, ref.path, None, pinned)
            resolved = self.client.resolve(by_digest, platform, self.cache)
            return self._remember(f"{ref.name}@{pinned}", resolved)
        if not self.pull:
            root = self.cache.get_ref(ref_key(key))
            if root is not None:
                found = self._from_root(key, root, platform)
                if found is not None:
                    return found
                if _is_index(self.cache, root):
                    # Another platform of an index the tag already means: ask by digest.
                    by_digest = reference.Reference(ref.domain, ref.path, None, root.digest)
                    resolved = self.client.resolve(by_digest, platform, self.cache)
                    return self._remember(ref_key(key), resolved, root=root)
        if self.docker is not None:
            manifest = self.docker.lookup(key, platform)
            if manifest is not None:
                found = self._from_root(key, manifest, platform)
                if found is not None:
                    return found
        return self._remember(ref_key(key), self.client.resolve(key, platform, self.cache))

    def cached(self, image: str, platform: Platform) -> ResolvedImage | None:
        """What :meth:`resolve` will answer, when it can be known without any network."""
        key = reference.image_key(image)
        ref = reference.parse(key)
        pinned = self._pinned_digest(key, ref, platform)
        if pinned is not None:
            known = self._known(ref, pinned, platform)
            return known[0] if known is not None else None
        if self.pull or self.docker is not None:
            return None
        root = self.cache.get_ref(ref_key(key))
        return self._from_root(key, root, platform) if root is not None else None

    def fetch_blob(
        self, image: str, descriptor: Descriptor, progress: Callable[[int], None]
    ) -> None:
        """Make sure one blob is in the cache, reporting bytes as they arrive."""
        seen = 0

        def report(total: int) -> None:
            nonlocal seen
            if total < seen:  # a download that had to start again
                seen = 0
            progress(total - seen)
            seen = total

        self.client.fetch_blob(reference.image_key(image), descriptor, self.cache, report)

    def commit(self) -> list[str]:
        """Record in the cache the names resolved from registries, now that their content is
        all there; returns them."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for _, item in sorted(pending.items()):
            self.cache.set_ref(item.name, item.root, platforms=[item.platform])
        return sorted({name for name, _ in pending})

    # --- helpers ----------------------------------------------------------------------------

    def _pinned_digest(self, key: str, ref: reference.Reference, platform: Platform) -> str | None:
        if self.pins is not None:
            pin = self.pins(key, platform)
            if pin is not None:
                return pin
        return ref.digest

    def _known(
        self, ref: reference.Reference, digest: str, platform: Platform
    ) -> tuple[ResolvedImage, Descriptor] | None:
        """A pinned digest (a manifest, or an index) found whole in the cache, and its root."""
        if not self.cache.has_blob(digest):
            return None
        size = self.cache.blob_path(digest).stat().st_size
        root = Descriptor(
            media_type=_media_type(_read(self.cache, digest)), digest=digest, size=size
        )
        found = self._from_root(str(ref), root, platform)
        return (found, root) if found is not None else None

    def _from_root(self, key: str, root: Descriptor, platform: Platform) -> ResolvedImage | None:
        found = lookup(self.cache, root, platform)
        if found is None:
            return None
        manifest, document = found
        return ResolvedImage(key, manifest, document.config, tuple(document.layers))

    def _add(self, name: str, root: Descriptor, platform: Platform) -> None:
        with self._lock:
            self._pending[(name, str(platform))] = _Pending(name, root, platform)

    def _remember(
        self, name: str, resolved: Resolved, *, root: Descriptor | None = None
    ) -> ResolvedImage:
        self._add(name, root or resolved.root, resolved.platform)
        return ResolvedImage(
            str(resolved.reference), resolved.manifest, resolved.config, resolved.layers
        )


def lookup(
    cache: Cache, root: Descriptor, platform: Platform
) -> tuple[Descriptor, Manifest] | None:
    """The manifest of ``root`` for ``platform`` and its document, when the cache has them and
    the config; ``None`` when something is not cached yet. A single-platform image built for
    another platform is a :class:`PlatformError`, as the registry path reports it."""
    if not cache.has_blob(root.digest):
        return None
    data = _read(cache, root.digest)
    manifest = root
    if document_kind(root.media_type, data) == "index":
        selected = _parse(Index, cache, root.digest).select(platform)
        if selected is None or not cache.has_blob(selected.digest):
            return None
        manifest = selected
    document = _parse(Manifest, cache, manifest.digest)
    if not cache.has_blob(document.config.digest):
        return None
    config = _read(cache, document.config.digest)
    found = Platform(
        os=str(config.get("os", "linux")),
        architecture=str(config.get("architecture", "")),
        variant=str(config["variant"]) if config.get("variant") else None,
    )
    if not found.matches(platform):
        if manifest is root:
            raise PlatformError(
                f"the cached image {root.digest} is for {found}, not {platform}",
                hint="build or pull an image for this platform, or choose another --arch",
            )
        return None
    return manifest, document


def lock_digests(cache: Cache, key: str, platform: Platform) -> tuple[str | None, str] | None:
    """(index digest, manifest digest) of a name the cache has resolved before, if it has the
    platform; ``None`` otherwise."""
    root = cache.get_ref(ref_key(key))
    if root is None or not cache.has_blob(root.digest):
        return None
    if document_kind(root.media_type, _read(cache, root.digest)) == "index":
        selected = _parse(Index, cache, root.digest).select(platform)
        return (root.digest, selected.digest) if selected is not None else None
    found = lookup(cache, root, platform)
    return (None, root.digest) if found is not None else None


def _is_index(cache: Cache, root: Descriptor) -> bool:
    return cache.has_blob(root.digest) and (
        document_kind(root.media_type, _read(cache, root.digest)) == "index"
    )


def _read(cache: Cache, digest: str) -> dict[str, object]:
    try:
        data = json.loads(cache.read_blob(digest))
    except (ValueError, OSError) as exc:
        raise _damaged(digest, exc) from None
    if not isinstance(data, dict):
        raise _damaged(digest, ValueError("not a JSON object"))
    return data


def _parse(model: type[M], cache: Cache, digest: str) -> M:
    try:
        return model.model_validate_json(cache.read_blob(digest))
    except (ValidationError, OSError) as exc:
        raise _damaged(digest, exc) from None


def _media_type(data: dict[str, object]) -> str:
    value = data.get("mediaType")
    if isinstance(value, str):
        return value
    return OCI_INDEX if "manifests" in data else OCI_MANIFEST


def _damaged(digest: str, exc: Exception) -> CacheError:
    return CacheError(
        f"the cached document {digest} is damaged: {str(exc).splitlines()[0]}",
        hint="run 'kitdsl cache verify --repair', then build again",
    )
