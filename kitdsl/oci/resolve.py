"""Resolving a reference on one registry endpoint: the document it names, the platform's
manifest in it, and that image's configuration, all verified into the store.

:class:`~kitdsl.oci.registry.RegistryClient` calls these for each endpoint in turn (mirrors, then
the origin); they never choose endpoints themselves.

Differences from LinuxKit on purpose: a single-platform image whose configuration names another
architecture is an error (LinuxKit silently uses it), and a missing platform lists the ones the
index has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeVar

from pydantic import ValidationError

from kitdsl.errors import ImageError
from kitdsl.oci.auth import pull_scope
from kitdsl.oci.digest import is_digest
from kitdsl.oci.download import Download, Progress
from kitdsl.oci.image_config import ImageConfig
from kitdsl.oci.media import (
    ACCEPT,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    document_kind,
)
from kitdsl.oci.store import ContentStore
from kitdsl.oci.transport import Endpoint
from kitdsl.reference import Reference

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
"""Registries refuse larger manifests; a larger answer is a broken or hostile server."""


class PlatformError(ImageError):
    """The image is not built for the platform asked for."""


@dataclass(frozen=True)
class Resolved:
    """A reference resolved for one platform; the documents named here are in the store."""

    reference: Reference
    """The normalised reference (``:latest`` added when it named neither tag nor digest)."""
    platform: Platform
    """The image's platform, as its configuration states it (``linux/arm64/v8`` when
    ``linux/arm64`` was asked for)."""
    manifest: Descriptor
    """The platform's image manifest."""
    index: Descriptor | None
    """The index (or Docker manifest list) the reference named, if it named one."""
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def root(self) -> Descriptor:
        """What the reference names: the index, or the manifest when there is no index."""
        return self.index if self.index is not None else self.manifest

    @property
    def pinned(self) -> Reference:
        """The reference pinned to the root digest (what a lockfile records)."""
        ref = self.reference
        return Reference(ref.domain, ref.path, ref.tag, self.root.digest)


def resolve_on(ep: Endpoint, ref: Reference, wanted: Platform, store: ContentStore) -> Resolved:
    """Resolve ``ref`` for ``wanted`` on one endpoint; see :meth:`RegistryClient.resolve`."""
    root, data = _root(ep, ref, store)
    index: Descriptor | None = None
    manifest_descriptor = root
    if root.media_type in INDEX_TYPES:
        index = root
        manifest_descriptor = _select(_parse(Index, data, ref, root), wanted, ref)
        data = _document(ep, ref, manifest_descriptor, store)
    manifest = _parse(Manifest, data, ref, manifest_descriptor)
    fetch_on(ep, ref, manifest.config, store, None)
    config = ImageConfig.parse(store.read_blob(manifest.config.digest), image=str(ref))
    actual = manifest_descriptor.platform or wanted
    if config.architecture:
        actual = Platform(
            os=config.os, architecture=config.architecture, variant=config.variant or None
        )
        if not actual.matches(wanted):
            raise PlatformError(
                f"image {ref} is built for {actual}, not {wanted}",
                hint=f"use an image built for {wanted}, or a multi-platform one",
            )
    return Resolved(
        ref, actual, manifest_descriptor, index, manifest.config, tuple(manifest.layers)
    )


def _root(ep: Endpoint, ref: Reference, store: ContentStore) -> tuple[Descriptor, bytes]:
    """The document ``ref`` names, from the store when its digest is known and stored."""
    if ref.digest is not None:
        if store.has_blob(ref.digest):
            return _stored(store, ref.digest, None), store.read_blob(ref.digest)
        return _get_manifest(ep, ref, ref.digest, None, store)
    tag = ref.tag or "latest"
    # HEAD first: it costs nothing against Docker Hub's pull limits and tells whether the
    # tag still names a manifest we have.
    head = ep.request(
        "HEAD",
        f"/v2/{ref.path}/manifests/{tag}",
        scopes=[pull_scope(ref.path)],
        what=f"tag {tag} of repository {ref.path}",
        headers={"Accept": ACCEPT},
    )
    head.close()
    digest = head.headers.get("Docker-Content-Digest", "")
    if head.status_code == 200 and is_digest(digest):
        if store.has_blob(digest):
            media_type = _content_type(head.headers.get("Content-Type"))
            return _stored(store, digest, media_type), store.read_blob(digest)
        return _get_manifest(ep, ref, digest, None, store)
    return _get_manifest(ep, ref, tag, None, store)


def _document(ep: Endpoint, ref: Reference, descriptor: Descriptor, store: ContentStore) -> bytes:
    if not store.has_blob(descriptor.digest, descriptor.size):
        _get_manifest(ep, ref, descriptor.digest, descriptor, store)
    return store.read_blob(descriptor.digest)


def _get_manifest(
    ep: Endpoint,
    ref: Reference,
    reference: str,
    descriptor: Descriptor | None,
    store: ContentStore,
) -> tuple[Descriptor, bytes]:
    """GET a manifest or index by tag or digest, verified, into the store."""
    download = Download(
        ep,
        f"/v2/{ref.path}/manifests/{reference}",
        what=f"{'manifest' if is_digest(reference) else 'tag'} {reference} of repository "
        f"{ref.path}",
        scopes=[pull_scope(ref.path)],
        digest=descriptor.digest if descriptor else reference if is_digest(reference) else None,
        size=descriptor.size if descriptor else None,
        limit=MAX_MANIFEST_SIZE,
        headers={"Accept": ACCEPT},
    )
    digest = download.run(store)
    return _stored(store, digest, _content_type(download.content_type)), store.read_blob(digest)


def fetch_on(
    ep: Endpoint,
    ref: Reference,
    descriptor: Descriptor,
    store: ContentStore,
    progress: Progress | None,
) -> None:
    if store.has_blob(descriptor.digest, descriptor.size):
        return
    Download(
        ep,
        f"/v2/{ref.path}/blobs/{descriptor.digest}",
        what=f"blob {descriptor.digest} of repository {ref.path}",
        scopes=[pull_scope(ref.path)],
        digest=descriptor.digest,
        size=descriptor.size,
        progress=progress,
    ).run(store)


def _content_type(header: str | None) -> str | None:
    return header.split(";", 1)[0].strip() if header else None


def _stored(store: ContentStore, digest: str, content_type: str | None) -> Descriptor:
    """A descriptor of a stored document, its media type from the document when it says."""
    data = store.read_blob(digest)
    try:
        document = json.loads(data)
    except ValueError:
        raise ImageError(f"manifest {digest} is not JSON") from None
    if not isinstance(document, dict):
        raise ImageError(f"manifest {digest} is not a JSON object")
    media_type = document.get("mediaType") or content_type
    if media_type not in INDEX_TYPES and media_type not in MANIFEST_TYPES:
        if document.get("schemaVersion") == 1:
            raise ImageError(
                f"manifest {digest} uses Docker's schema 1, which is no longer supported",
                hint="push the image again with a current tool (docker, buildah, skopeo)",
            )
        try:
            kind = document_kind(None, document)
        except ValueError as error:
            raise ImageError(f"manifest {digest}: {error}") from None
        media_type = OCI_INDEX if kind == "index" else OCI_MANIFEST
    return Descriptor(media_type=media_type, digest=digest, size=len(data))


M = TypeVar("M", Index, Manifest)


def _parse(model: type[M], data: bytes, ref: Reference, descriptor: Descriptor) -> M:
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ImageError(
            f"the {model.__name__.lower()} {descriptor.digest} of {ref} is invalid: "
            f"{where}: {first['msg']}"
        ) from None


def _select(index: Index, wanted: Platform, ref: Reference) -> Descriptor:
    chosen = index.select(wanted)
    if chosen is None:
        available = sorted(
            {str(d.platform) for d in index.manifests if d.platform and not d.is_attestation}
        )
        listing = ", ".join(available) or "none"
        raise PlatformError(
            f"image {ref} has no manifest for {wanted}; it has: {listing}",
            hint="choose one of those platforms (--arch), or an image built for " + str(wanted),
        )
    if chosen.media_type in INDEX_TYPES:
        raise ImageError(f"image {ref}: nested indexes are not supported ({chosen.digest})")
    return chosen
