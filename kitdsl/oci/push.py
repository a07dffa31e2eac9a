"""Pushing to a registry: blobs first, then manifests, then the index, so a registry never sees
a document that names content it does not have.

A blob is skipped when ``HEAD`` finds it, mounted from another repository of the same registry
when the caller names one, and uploaded otherwise: in one ``PUT`` when it fits in a chunk, in
``PATCH`` chunks when larger (memory stays bounded by the chunk size, and every request body can
be sent again when a retry needs it).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import requests
from pydantic import ValidationError

from kitdsl.errors import ImageError
from kitdsl.oci.auth import pull_scope, push_scope
from kitdsl.oci.digest import DigestError, digest_of, is_digest
from kitdsl.oci.failures import RegistryError
from kitdsl.oci.media import INDEX_TYPES, Descriptor, Index, Manifest
from kitdsl.oci.store import ContentStore
from kitdsl.oci.transport import Endpoint

OCTETS = {"Content-Type": "application/octet-stream"}
M = TypeVar("M", Index, Manifest)


def push_blob(
    endpoint: Endpoint,
    repository: str,
    descriptor: Descriptor,
    store: ContentStore,
    *,
    mount_from: Sequence[str] = (),
    chunk_size: int = 8 * 1024 * 1024,
) -> str:
    """Make sure the registry has the blob; ``"exists"``, ``"mounted"`` or ``"uploaded"``."""
    digest = descriptor.digest
    sources = [source for source in mount_from if source != repository]
    scopes = [push_scope(repository), *(pull_scope(source) for source in sources)]
    what = f"blob {digest} of repository {repository}"
    if not store.has_blob(digest):
        raise ImageError(f"cannot push {what}: it is not in the cache {store.root}")
    head = endpoint.request("HEAD", f"/v2/{repository}/blobs/{digest}", scopes=scopes, what=what)
    head.close()
    if head.status_code == 200:
        return "exists"
    uploads = f"/v2/{repository}/blobs/uploads/"
    location = None
    for source in sources:
        response = endpoint.request(
            "POST", uploads, scopes=scopes, what=what, params={"mount": digest, "from": source}
        )
        if response.status_code == 201:
            response.close()
            return "mounted"
        if response.status_code != 202:
            raise endpoint.fail(response, what, verb="push")
        # 202: the registry could not mount, and opened an upload session instead.
        location = _location(response)
        break
    if location is None:
        response = endpoint.request("POST", uploads, scopes=scopes, what=what, headers=OCTETS)
        if response.status_code != 202:
            raise endpoint.fail(response, what, verb="push")
        location = _location(response)
    _upload(endpoint, location, descriptor, store, chunk_size, scopes, what)
    return "uploaded"


def _upload(
    endpoint: Endpoint,
    location: str,
    descriptor: Descriptor,
    store: ContentStore,
    chunk_size: int,
    scopes: list[str],
    what: str,
) -> None:
    with store.blob_path(descriptor.digest).open("rb") as handle:
        body = b""
        if descriptor.size <= chunk_size:
            body = handle.read()
        else:
            offset = 0
            while chunk := handle.read(chunk_size):
                headers = {**OCTETS, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                response = endpoint.request(
                    "PATCH", location, scopes=scopes, what=what, headers=headers, data=chunk
                )
                if response.status_code != 202:
                    raise endpoint.fail(response, what, verb="push")
                location = _location(response)
                offset += len(chunk)
    response = endpoint.request(
        "PUT",
        _with_query(location, digest=descriptor.digest),
        scopes=scopes,
        what=what,
        headers=OCTETS,
        data=body,
    )
    if response.status_code != 201:
        raise endpoint.fail(response, what, verb="push")
    response.close()
    announced = response.headers.get("Docker-Content-Digest", "")
    if is_digest(announced) and announced != descriptor.digest:
        raise DigestError(f"the registry stored {what} as {announced}")


def push_manifest(
    endpoint: Endpoint, repository: str, data: bytes, media_type: str, tag: str | None = None
) -> str:
    """Upload a manifest or index under ``tag`` (else its digest); return its digest."""
    digest = digest_of(data)
    target = tag or digest
    what = f"manifest {target} of repository {repository}"
    response = endpoint.request(
        "PUT",
        f"/v2/{repository}/manifests/{target}",
        scopes=[push_scope(repository)],
        what=what,
        headers={"Content-Type": media_type},
        data=data,
    )
    if response.status_code not in (200, 201):
        raise endpoint.fail(response, what, verb="push")
    response.close()
    announced = response.headers.get("Docker-Content-Digest", "")
    if is_digest(announced) and announced != digest:
        raise DigestError(f"the registry stored {what} as {announced}, not {digest}")
    return digest


def push_tree(
    endpoint: Endpoint,
    repository: str,
    store: ContentStore,
    root: Descriptor,
    *,
    tag: str | None,
    mount_from: Sequence[str] = (),
    chunk_size: int = 8 * 1024 * 1024,
    workers: int = 4,
) -> Descriptor:
    """Push ``root`` (an image manifest or an index) and everything it names."""
    children: list[Descriptor] = []
    if root.media_type in INDEX_TYPES:
        children = _load(Index, store, root, repository).manifests
    blobs: dict[str, Descriptor] = {}
    for manifest_descriptor in children or [root]:
        if manifest_descriptor.media_type in INDEX_TYPES:
            raise ImageError(f"cannot push {root.digest}: nested indexes are not supported")
        manifest = _load(Manifest, store, manifest_descriptor, repository)
        for blob in [manifest.config, *manifest.layers]:
            if blob.urls and not store.has_blob(blob.digest):
                continue  # a non-distributable layer: registries fetch it from its URLs
            blobs.setdefault(blob.digest, blob)

    def send(blob: Descriptor) -> str:
        return push_blob(
            endpoint, repository, blob, store, mount_from=mount_from, chunk_size=chunk_size
        )

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(send, blobs.values()))
    for child in children:
        push_manifest(
            endpoint, repository, store.read_blob(child.digest), child.media_type, child.digest
        )
    push_manifest(endpoint, repository, store.read_blob(root.digest), root.media_type, tag)
    return root


def _load(model: type[M], store: ContentStore, descriptor: Descriptor, repo: str) -> M:
    if not store.has_blob(descriptor.digest):
        raise ImageError(
            f"cannot push {descriptor.digest} to {repo}: it is not in the cache {store.root}",
            hint="pull every platform of the image first",
        )
    try:
        return model.model_validate_json(store.read_blob(descriptor.digest))
    except ValidationError as error:
        raise ImageError(f"cannot push {descriptor.digest}: not a valid document") from error


def _location(response: requests.Response) -> str:
    """The absolute upload URL a registry answered with (it may be relative)."""
    response.close()
    location = response.headers.get("Location")
    if not location:
        raise RegistryError(
            f"the registry answered an upload without a Location header (HTTP "
            f"{response.status_code})",
            url=urlsplit(response.url)._replace(query="").geturl(),
        )
    return urljoin(response.url, location)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return parts._replace(query=urlencode(query)).geturl()
