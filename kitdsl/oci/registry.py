"""The OCI distribution client: resolve references, fetch blobs, push images.

A build planner runs the steps of a pull separately, in parallel threads::

    client = RegistryClient(mirrors={"docker.io": "http://127.0.0.1:5000"})
    resolved = client.resolve("alpine:3.20", Platform.parse("linux/arm64"), store)
    for layer in resolved.layers:          # each in its own thread, with its own progress
        client.fetch_blob(resolved.reference, layer, store, progress)

:meth:`RegistryClient.resolve` leaves the index, the platform's manifest and its config in the
store; :meth:`RegistryClient.fetch_blob` one blob. Everything is verified against its digest
and size while it streams and reaches the store whole or not at all. :meth:`RegistryClient.pull`
does both, and :meth:`RegistryClient.push` sends an image or index from a store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from kitdsl.errors import ImageError, UsageError
from kitdsl.oci import push as _push
from kitdsl.oci.auth import CredentialSource, DockerConfig, TokenCache, config_key_host
from kitdsl.oci.download import Progress
from kitdsl.oci.failures import NotFoundError, RegistryAuthError, RegistryError, RetryPolicy
from kitdsl.oci.media import Descriptor, Platform
from kitdsl.oci.resolve import PlatformError, Resolved, fetch_on, resolve_on
from kitdsl.oci.store import ContentStore
from kitdsl.oci.transport import Endpoint, Sessions, TrustStore, quiet_insecure_warnings
from kitdsl.reference import DEFAULT_DOMAIN, Reference, ReferenceSyntaxError, parse

__all__ = [
    "NotFoundError",
    "PlatformError",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "Resolved",
    "RetryPolicy",
    "as_platform",
    "as_reference",
    "pull",
    "registry_host",
]

DOCKER_HUB_REGISTRY = "registry-1.docker.io"
MIRROR_ATTEMPTS = 2
"""A mirror gets fewer tries than the origin: falling back is the better retry."""

T = TypeVar("T")


def registry_host(domain: str) -> str:
    """The host serving a reference's domain: Docker Hub's API is not at ``docker.io``."""
    return DOCKER_HUB_REGISTRY if domain == DEFAULT_DOMAIN else domain


class RegistryClient:
    """Talks to registries; safe to share between threads. Close it (or use ``with``) to
    release connections.

    ``mirrors`` maps a reference domain to mirror URLs tried before it, for reads only
    (``{"docker.io": "http://127.0.0.1:5000"}``). ``insecure`` lists hosts reached without
    certificate checks or over plain HTTP (loopback hosts always may use plain HTTP).
    ``ca_certs`` adds trusted CAs (files, or folders of ``*.crt``/``*.pem``). ``credentials``
    defaults to the docker CLI's configuration (:class:`~kitdsl.oci.auth.DockerConfig`).
    """

    def __init__(
        self,
        *,
        mirrors: Mapping[str, str | Sequence[str]] | None = None,
        insecure: Iterable[str] = (),
        ca_certs: str | Path | Sequence[str | Path] = (),
        credentials: CredentialSource | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        chunk_size: int = 8 * 1024 * 1024,
    ) -> None:
        self.mirrors = {
            config_key_host(domain): [urls] if isinstance(urls, str) else list(urls)
            for domain, urls in (mirrors or {}).items()
        }
        self.insecure = frozenset(insecure)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.credentials = credentials if credentials is not None else DockerConfig()
        self._sessions = Sessions(TrustStore(ca_certs))
        self._tokens = TokenCache()
        self._lock = threading.Lock()
        self._endpoints: dict[tuple[str, str | None], Endpoint] = {}
        if self.insecure:
            quiet_insecure_warnings()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection (of every thread)."""
        self._sessions.close()

    # --- endpoints ------------------------------------------------------------------------

    def endpoint(self, host: str, url: str | None = None, *, mirror: bool = False) -> Endpoint:
        """The shared :class:`Endpoint` for ``host`` (at ``url`` if given)."""
        with self._lock:
            key = (host, url)
            if key not in self._endpoints:
                retry = self.retry
                if mirror:
                    retry = replace(retry, attempts=min(retry.attempts, MIRROR_ATTEMPTS))
                self._endpoints[key] = Endpoint(
                    host,
                    url=url,
                    sessions=self._sessions,
                    credentials=self.credentials,
                    tokens=self._tokens,
                    retry=retry,
                    insecure=host in self.insecure,
                    timeout=self.timeout,
                )
            return self._endpoints[key]

    def read_endpoints(self, domain: str) -> list[Endpoint]:
        """Where to read ``domain``'s content from: its mirrors, then the registry itself."""
        endpoints = []
        for url in self.mirrors.get(config_key_host(domain), []):
            # "http://host:port", or a bare "host:port" whose scheme is found as for any host.
            parts = urlsplit(url if "://" in url else f"//{url}")
            if parts.path.strip("/"):
                # The registry API lives at /v2/ of the host: a path would be silently lost.
                raise UsageError(
                    f"mirror {url!r} has a path; a mirror is a registry host (scheme://host:port)"
                )
            base = f"{parts.scheme}://{parts.netloc}" if parts.scheme else None
            endpoints.append(self.endpoint(parts.netloc, base, mirror=True))
        endpoints.append(self.origin(domain))
        return endpoints

    def origin(self, domain: str) -> Endpoint:
        """The registry serving ``domain`` (where pushes go)."""
        host = registry_host(domain)
        return self.endpoint(host)

    def _each(self, ref: Reference, action: Callable[[Endpoint], T]) -> T:
        """``action`` on the first endpoint that succeeds: mirrors, then the origin."""
        endpoints = self.read_endpoints(ref.domain)
        skipped: list[str] = []
        for endpoint in endpoints[:-1]:
            if endpoint.unreachable is not None:
                continue
            try:
                return action(endpoint)
            except ImageError as error:
                skipped.append(f"mirror {endpoint.host}: {error.message}")
        try:
            return action(endpoints[-1])
        except ImageError as error:
            error.details = (*error.details, *skipped)
            raise

    # --- pulling ---------------------------------------------------------------------------

    def resolve(
        self, ref: Reference | str, platform: Platform | str, store: ContentStore
    ) -> Resolved:
        """Find the manifest of ``ref`` for ``platform`` and store it, its index and config.

        A digest reference whose manifest is already stored needs no network at all.
        Raises :class:`PlatformError` when the image is not built for ``platform``.
        """
        reference = as_reference(ref).with_default_tag()
        wanted = as_platform(platform)
        return self._each(reference, lambda ep: resolve_on(ep, reference, wanted, store))

    def fetch_blob(
        self,
        ref: Reference | str,
        descriptor: Descriptor,
        store: ContentStore,
        progress: Progress | None = None,
    ) -> Path:
        """Make sure the blob is in the store (a no-op if it is) and return its path.

        ``progress`` is called with the bytes received so far (back to 0 if a download has to
        start again); when the blob is already stored, once with its size.
        """
        if not store.has_blob(descriptor.digest, descriptor.size):
            reference = as_reference(ref)
            self._each(reference, lambda ep: fetch_on(ep, reference, descriptor, store, progress))
        elif progress is not None:
            progress(descriptor.size)
        return store.blob_path(descriptor.digest)

    def pull(
        self,
        ref: Reference | str,
        platform: Platform | str,
        store: ContentStore,
        *,
        progress: Callable[[Descriptor, int], None] | None = None,
        workers: int = 4,
    ) -> Resolved:
        """Resolve ``ref`` and fetch its layers, ``workers`` at a time."""
        resolved = self.resolve(ref, platform, store)

        def fetch(layer: Descriptor) -> None:
            report = (lambda done: progress(layer, done)) if progress is not None else None
            self.fetch_blob(resolved.reference, layer, store, report)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(fetch, layer) for layer in resolved.layers]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return resolved

    # --- pushing ---------------------------------------------------------------------------

    def push_blob(
        self,
        ref: Reference | str,
        descriptor: Descriptor,
        store: ContentStore,
        *,
        mount_from: Sequence[str] = (),
    ) -> str:
        """Upload one stored blob to ``ref``'s repository unless it is there already.

        ``mount_from`` names repositories of the same registry that may hold the blob, to mount
        it from instead of uploading. Returns ``"exists"``, ``"mounted"`` or ``"uploaded"``.
        """
        reference = as_reference(ref)
        return _push.push_blob(
            self.origin(reference.domain),
            reference.path,
            descriptor,
            store,
            mount_from=mount_from,
            chunk_size=self.chunk_size,
        )

    def push_manifest(
        self, ref: Reference | str, data: bytes, media_type: str, *, tag: str | None = None
    ) -> str:
        """Upload a manifest or index under ``tag`` (default: ``ref``'s tag, else its digest);
        return its digest."""
        reference = as_reference(ref)
        return _push.push_manifest(
            self.origin(reference.domain), reference.path, data, media_type, tag or reference.tag
        )

    def push(
        self,
        ref: Reference | str,
        store: ContentStore,
        root: Descriptor,
        *,
        mount_from: Sequence[str] = (),
        workers: int = 4,
    ) -> Descriptor:
        """Push the image or index ``root`` and everything it reaches from ``store`` to ``ref``
        (tagged with ``ref``'s tag when it has one)."""
        reference = as_reference(ref)
        return _push.push_tree(
            self.origin(reference.domain),
            reference.path,
            store,
            root,
            tag=reference.tag,
            mount_from=mount_from,
            chunk_size=self.chunk_size,
            workers=workers,
        )


def pull(
    ref: Reference | str,
    platform: Platform | str,
    store: ContentStore,
    *,
    client: RegistryClient | None = None,
) -> Resolved:
    """Pull ``ref`` for ``platform`` into ``store`` (with a default client if none is given)."""
    if client is not None:
        return client.pull(ref, platform, store)
    with RegistryClient() as own:
        return own.pull(ref, platform, store)


def as_platform(platform: Platform | str) -> Platform:
    """``platform`` parsed (``linux/arm64/v8``), or an :class:`ImageError` saying why not."""
    if isinstance(platform, Platform):
        return platform
    try:
        return Platform.parse(platform)
    except ValueError as error:
        raise ImageError(f"invalid platform: {error}") from None


def as_reference(ref: Reference | str) -> Reference:
    """``ref`` parsed and normalised, or an :class:`ImageError` saying what is wrong with it."""
    if isinstance(ref, Reference):
        return ref
    try:
        return parse(ref)
    except ReferenceSyntaxError as error:
        raise ImageError(f"invalid image reference {ref!r}: {error}") from None
