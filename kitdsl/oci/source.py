"""Where a build gets its images: lockfile pins, the cache, a local Docker engine, registries.

For each reference and platform, in this order:

1. a lockfile pin always wins: the pinned manifest digest is used, from the cache if it is
   there, else fetched by digest — a tag is never asked about;
2. a tag the cache has resolved before is not asked about again (unless ``pull``);
3. with ``docker``, an image the local engine has is copied from it;
4. otherwise the registry is asked, and the answer fetched into the cache.

A name is recorded in the cache only once everything it needs is there (:meth:`commit`), so an
interrupted build never leaves a name pointing at missing content.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kitdsl.oci.cache import Cache
from kitdsl.oci.docker_source import DockerSource
from kitdsl.oci.media import Descriptor, Index, Manifest, Platform, document_kind
from kitdsl.oci.registry import RegistryClient, Resolved, as_reference
from kitdsl.oci.store import ref_key
from kitdsl.plan.images import ResolvedImage
from kitdsl.reference import Reference

Pins = Callable[[str, str], str | None]
"""``(canonical reference, platform) → pinned manifest digest``, from a lockfile."""


@dataclass(frozen=True)
class _Pending:
    name: str
    root: Descriptor
    platform: Platform


class ImageResolver:
    """The planner's image source, backed by the cache, a registry client and optionally a
    Docker engine. Safe to use from the planner's threads."""

    def __init__(
        self,
        cache: Cache,
        client: RegistryClient,
        *,
        pull: bool = False,
        docker: DockerSource | None = None,
        pins: Pins | None = None,
    ) -> None:
        self.cache = cache
        self.client = client
        self.pull = pull
        self.docker = docker
        self.pins = pins
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._lock = threading.Lock()

    def resolve(self, reference: str, platform: Platform) -> ResolvedImage:
        """The manifest, config and layers of ``reference`` for ``platform``."""
        name = ref_key(reference)
        pin = self.pins(name, str(platform)) if self.pins else None
        if pin is not None:
            tagged = as_reference(name)
            by_digest = Reference(tagged.domain, tagged.path, None, pin)
            return self._remember(name, self.client.resolve(by_digest, platform, self.cache))
        if not self.pull:
            cached = self.cached(name, platform)
            if cached is not None:
                return cached
        if self.docker is not None:
            root = self.docker.lookup(name, platform)
            if root is not None:
                found = self._from_cache(name, root, platform)
                if found is not None:
                    return found
        return self._remember(name, self.client.resolve(name, platform, self.cache))

    def cached(self, reference: str, platform: Platform) -> ResolvedImage | None:
        """What the cache already knows of ``reference`` for ``platform``; no network."""
        name = ref_key(reference)
        root = self.cache.get_ref(name)
        return self._from_cache(name, root, platform) if root is not None else None

    def fetch_blob(
        self, reference: str, descriptor: Descriptor, progress: Callable[[int], None]
    ) -> None:
        """Make sure one blob is in the cache, reporting bytes as they arrive."""
        seen = 0

        def report(total: int) -> None:
            nonlocal seen
            if total < seen:  # a download that had to start again
                seen = 0
            progress(total - seen)
            seen = total

        self.client.fetch_blob(reference, descriptor, self.cache, report)

    def commit(self) -> list[str]:
        """Record in the cache the names resolved from a registry, now that their content is
        all there; returns them."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for _, item in sorted(pending.items()):
            self.cache.set_ref(item.name, item.root, platforms=[item.platform])
        return sorted({name for name, _ in pending})

    # ---------------------------------------------------------------------------------------

    def _remember(self, name: str, resolved: Resolved) -> ResolvedImage:
        with self._lock:
            key = (name, str(resolved.platform))
            self._pending[key] = _Pending(name, resolved.root, resolved.platform)
        return ResolvedImage(name, resolved.manifest, resolved.config, resolved.layers)

    def _from_cache(self, name: str, root: Descriptor, platform: Platform) -> ResolvedImage | None:
        manifest = root
        if not self.cache.has_blob(root.digest):
            return None
        data = self.cache.read_blob(root.digest)
        if document_kind(root.media_type, _json_keys(data)) == "index":
            selected = Index.model_validate_json(data).select(platform)
            if selected is None or not self.cache.has_blob(selected.digest):
                return None  # this platform was not fetched yet: ask the registry
            manifest = selected
        document = Manifest.model_validate_json(self.cache.read_blob(manifest.digest))
        if not self.cache.has_blob(document.config.digest):
            return None
        return ResolvedImage(name, manifest, document.config, tuple(document.layers))


def _json_keys(data: bytes) -> dict[str, Any]:
    parsed = json.loads(data)
    return parsed if isinstance(parsed, dict) else {}
