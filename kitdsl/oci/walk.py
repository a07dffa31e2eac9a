"""Walking an image's graph: root → (index → manifests) → config and layers.

One walk answers the questions the cache asks of a root descriptor: which blobs does it reach
(so ``prune`` keeps them and ``ls`` counts them), which blobs does it *need* that are absent or
unreadable (so ``verify`` can report a dangling ref), and which platforms are complete.

What a root needs: an image manifest needs its config and layers; an index needs the manifests
of the platforms that were fetched (all of them when nothing was recorded), never attestations.
Children that are present but not needed are still reached, so ``prune`` does not throw away
half of a platform that a later pull would complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import ValidationError

from kitdsl.oci.digest import DigestError
from kitdsl.oci.media import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    Index,
    Manifest,
    Platform,
)

MAX_DOCUMENT_SIZE = 8 * 1024 * 1024
"""Manifests, indexes and configs larger than this are refused (registries cap them at 4 MiB);
the walk reads them into memory."""


class BlobSource(Protocol):
    """Where the walk reads blobs: the cache, or an archive being imported."""

    def has_blob(self, digest: str) -> bool:
        """True when the blob is available."""
        ...

    def read_blob(self, digest: str) -> bytes:
        """The whole blob."""
        ...


@dataclass(frozen=True)
class Missing:
    """A blob a root needs that is absent, or present but not a readable document."""

    digest: str
    what: str
    reason: str = "missing"

    def __str__(self) -> str:
        return f"{self.what} {self.digest}: {self.reason}"


@dataclass
class Walk:
    """What a root reaches and needs."""

    reached: dict[str, int] = field(default_factory=dict)
    """Present blobs reachable from the root: digest → size."""
    missing: list[Missing] = field(default_factory=list)
    platforms: list[Platform] = field(default_factory=list)
    """Platforms whose image is complete, in the order the root lists them."""

    @property
    def complete(self) -> bool:
        """True when everything the root needs is present and readable."""
        return not self.missing

    @property
    def size(self) -> int:
        """Bytes of every present blob the root reaches."""
        return sum(self.reached.values())


def walk(
    source: BlobSource,
    root: Descriptor,
    platforms: Sequence[Platform] | None = None,
    *,
    attestations: bool = False,
) -> Walk:
    """Walk ``root``; ``platforms`` are those fetched for an index (``None``: all of them).

    Attestation manifests are needed only with ``attestations`` (an export of a whole index
    must hold everything it lists); otherwise they are kept when present, never required.
    """
    result = Walk()
    _Walker(source, platforms, attestations, result).visit(root, needed=True, what="root", top=True)
    return result


def format_platforms(platforms: Iterable[Platform | str]) -> str:
    """``linux/amd64,linux/arm64/v8``: sorted, without duplicates (for an annotation)."""
    return ",".join(sorted({str(p) for p in platforms}))


def parse_platforms(text: str) -> list[Platform]:
    """The inverse of :func:`format_platforms`."""
    return [Platform.parse(part) for part in text.split(",") if part]


class _Walker:
    def __init__(
        self,
        source: BlobSource,
        wanted: Sequence[Platform] | None,
        attestations: bool,
        result: Walk,
    ) -> None:
        self.source = source
        self.wanted = wanted
        self.attestations = attestations
        self.result = result

    def visit(self, descriptor: Descriptor, *, needed: bool, what: str, top: bool = False) -> bool:
        """Record ``descriptor`` and what it reaches; True when everything it needs is there."""
        if descriptor.digest in self.result.reached:
            return True  # shared by two manifests, or seen through an earlier path
        if not self.source.has_blob(descriptor.digest):
            if needed:
                self.result.missing.append(Missing(descriptor.digest, what))
            return False
        self.result.reached[descriptor.digest] = descriptor.size
        media_type = descriptor.media_type
        if media_type not in INDEX_TYPES and media_type not in MANIFEST_TYPES:
            return True
        try:
            data = self._read(descriptor)
            if media_type in INDEX_TYPES:
                return self._index(Index.model_validate_json(data), needed, what, top)
            manifest = Manifest.model_validate_json(data)
        except (OSError, ValueError, ValidationError, DigestError) as error:
            if needed:
                reason = f"unreadable: {_first_line(error)}"
                self.result.missing.append(Missing(descriptor.digest, what, reason))
            return False
        complete = self._manifest(manifest, needed, what)
        if complete and top:
            platform = descriptor.platform or self._config_platform(manifest.config)
            if platform is not None:
                self.result.platforms.append(platform)
        return complete

    def _read(self, descriptor: Descriptor) -> bytes:
        if descriptor.size > MAX_DOCUMENT_SIZE:
            raise ValueError(f"{descriptor.size} bytes is too large for a document")
        data = self.source.read_blob(descriptor.digest)
        if len(data) != descriptor.size:
            raise ValueError(f"{len(data)} bytes where the descriptor says {descriptor.size}")
        return data

    def _index(self, index: Index, needed: bool, what: str, top: bool) -> bool:
        complete = True
        for position, child in enumerate(index.manifests):
            label = f"manifest {child.platform or position} of {what}"
            child_needed = needed and self._wants(child)
            child_complete = self.visit(child, needed=child_needed, what=label)
            if child_needed and not child_complete:
                complete = False
            image = child.media_type in MANIFEST_TYPES and not child.is_attestation
            if top and child_complete and image and child.platform:
                self.result.platforms.append(child.platform)
        return complete

    def _manifest(self, manifest: Manifest, needed: bool, what: str) -> bool:
        complete = self.visit(manifest.config, needed=needed, what=f"config of {what}")
        for position, layer in enumerate(manifest.layers):
            # A layer with URLs is "non-distributable" (Windows base layers): registries do not
            # serve it, so its absence is expected.
            layer_needed = needed and not layer.urls
            label = f"layer {position + 1} of {what}"
            if not self.visit(layer, needed=layer_needed, what=label) and layer_needed:
                complete = False
        return complete

    def _wants(self, child: Descriptor) -> bool:
        if child.is_attestation:
            return self.attestations
        if self.wanted is None:
            return True
        platform = child.platform
        return platform is not None and any(platform.matches(p) for p in self.wanted)

    def _config_platform(self, config: Descriptor) -> Platform | None:
        """A single-manifest image names its platform only in its config."""
        try:
            data = json.loads(self._read(config))
            return Platform(
                os=data["os"], architecture=data["architecture"], variant=data.get("variant")
            )
        except (OSError, ValueError, KeyError, TypeError, ValidationError):
            return None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
