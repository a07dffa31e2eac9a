"""The registry client when things go wrong: a fault-injecting proxy in front of the real
registry drops connections, truncates and corrupts blobs, answers 500 and 429; a registry is
stopped in the middle of a pull. After every failure the store holds only verified blobs."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest

from kitdsl.oci.digest import DigestError
from kitdsl.oci.registry import NotFoundError, RegistryError, RetryPolicy
from kitdsl.oci.store import TEMP_PREFIX, ContentStore
from tests.images import Image, add_image, random_bytes
from tests.registry import (  # noqa: F401  (pytest fixtures)
    FaultProxy,
    RegistryServer,
    make_client,
    proxy_fixture,
    registry_fixture,
    store_fixture,
    unverified_blobs,
)

LAYER_SIZE = 1_000_000


@pytest.fixture
def image(tmp_path: Path, proxy: FaultProxy) -> Image:
    """An image with one 1 MB layer, pushed through the proxy (before any fault is added)."""
    source = ContentStore(tmp_path / "source")
    built = add_image(source, layers=[random_bytes(LAYER_SIZE, seed=len(str(tmp_path)))])
    with make_client() as client:
        client.push(f"{proxy.host}/faults/app:1", source, built.manifest)
    proxy.seen.clear()
    return built


def _ref(proxy: FaultProxy) -> str:
    return f"{proxy.host}/faults/app:1"


def _assert_clean(store: ContentStore) -> None:
    assert unverified_blobs(store) == []
    assert not list(store.blobs.glob(f"{TEMP_PREFIX}*"))


def test_dropped_connection_resumes_with_a_range(
    proxy: FaultProxy, image: Image, store: ContentStore
) -> None:
    layer = image.layers[0].digest
    proxy.add(f"/blobs/{layer}", drop_after=300_000)
    with make_client() as client:
        client.pull(_ref(proxy), "linux/amd64", store)
    assert store.read_blob(layer) == image.layer_data[0]
    first, second = proxy.requests("GET", f"/blobs/{layer}")
    assert "Range" not in first.headers
    resumed_at = int(second.headers["Range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= 300_000  # what had arrived (whole read chunks) was kept
    _assert_clean(store)


def test_dropped_connection_restarts_without_range_support(
    proxy: FaultProxy, image: Image, store: ContentStore
) -> None:
    layer = image.layers[0].digest
    proxy.add(f"/blobs/{layer}", drop_after=300_000, no_ranges=True)
    proxy.add(f"/blobs/{layer}", no_ranges=True, times=None)
    progress: list[int] = []
    with make_client() as client:
        client.fetch_blob(_ref(proxy), image.layers[0], store, progress.append)
    assert store.read_blob(layer) == image.layer_data[0]
    assert progress[-1] == LAYER_SIZE
    assert any(later < earlier for earlier, later in itertools.pairwise(progress))
    _assert_clean(store)


def test_truncated_blob_is_an_error_and_nothing_is_stored(
    proxy: FaultProxy, image: Image, store: ContentStore
) -> None:
    layer = image.layers[0].digest
    proxy.add(f"/blobs/{layer}", truncate_to=1000, times=None)
    with make_client() as client, pytest.raises(DigestError, match="truncated"):
        client.pull(_ref(proxy), "linux/amd64", store)
    assert not store.has_blob(layer)
    _assert_clean(store)


def test_wrong_bytes_are_refused(proxy: FaultProxy, image: Image, store: ContentStore) -> None:
    layer = image.layers[0].digest
    proxy.add(f"/blobs/{layer}", corrupt=True, times=None)
    with make_client() as client, pytest.raises(DigestError) as caught:
        client.pull(_ref(proxy), "linux/amd64", store)
    assert layer in str(caught.value) and "faults/app" in str(caught.value)
    assert not store.has_blob(layer)
    _assert_clean(store)


def test_corrupt_mirror_falls_back_to_the_origin(
    registry: RegistryServer, proxy: FaultProxy, image: Image, store: ContentStore
) -> None:
    proxy.add("/blobs/", corrupt=True, times=None)
    mirrors = {registry.host: f"http://{proxy.host}"}
    with make_client(mirrors=mirrors) as client:
        client.pull(f"{registry.host}/faults/app:1", "linux/amd64", store)
    assert proxy.requests("GET", "/blobs/")  # the mirror was asked first
    assert store.read_blob(image.layers[0].digest) == image.layer_data[0]
    _assert_clean(store)


def test_manifest_by_tag_is_checked_against_the_announced_digest(
    proxy: FaultProxy, image: Image, store: ContentStore
) -> None:
    # Without a usable HEAD the manifest is fetched by tag; its bytes must still match the
    # Docker-Content-Digest the registry announces.
    proxy.add("/manifests/1", method="HEAD", status=405, times=None)
    proxy.add("/manifests/1", corrupt=True)
    with make_client() as client, pytest.raises(DigestError, match="does not match"):
        client.resolve(_ref(proxy), "linux/amd64", store)
    _assert_clean(store)
    with make_client() as client:
        resolved = client.resolve(_ref(proxy), "linux/amd64", store)
    assert resolved.manifest.digest == image.manifest.digest


def test_server_errors_are_retried(proxy: FaultProxy, image: Image, store: ContentStore) -> None:
    proxy.add("/manifests/1", method="HEAD", status=500, times=2)
    proxy.add(f"/blobs/{image.layers[0].digest}", status=503, times=2)
    with make_client() as client:
        client.pull(_ref(proxy), "linux/amd64", store)
    assert len(proxy.requests("HEAD", "/manifests/1")) == 3
    assert len(proxy.requests("GET", f"/blobs/{image.layers[0].digest}")) == 3
    _assert_clean(store)


def test_persistent_server_error_names_registry_repository_and_digest(
    proxy: FaultProxy, image: Image, store: ContentStore
) -> None:
    layer = image.layers[0].digest
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "disk on fire"}]}).encode()
    proxy.add(f"/blobs/{layer}", status=500, body=body, times=None)
    with make_client() as client, pytest.raises(RegistryError) as caught:
        client.pull(_ref(proxy), "linux/amd64", store)
    text = str(caught.value)
    for part in (f"http://{proxy.host}", "faults/app", layer, "HTTP 500", "disk on fire"):
        assert part in text
    assert caught.value.status == 500 and caught.value.codes == ("UNKNOWN",)
    assert len(proxy.requests("GET", f"/blobs/{layer}")) == 4  # FAST_RETRY.attempts
    _assert_clean(store)


def test_rate_limit_waits_for_retry_after(
    proxy: FaultProxy, image: Image, store: ContentStore
) -> None:
    proxy.add("/manifests/", method="GET", status=429, headers={"Retry-After": "1"})
    with make_client() as client:
        start = time.monotonic()
        client.resolve(_ref(proxy), "linux/amd64", store)
        waited = time.monotonic() - start
    assert waited >= 1.0


def test_retry_after_beyond_the_limit_fails_at_once(
    proxy: FaultProxy, image: Image, store: ContentStore
) -> None:
    proxy.add("/manifests/", method="GET", status=429, headers={"Retry-After": "3600"})
    retry = RetryPolicy(attempts=4, base_delay=0.05, max_retry_after=5)
    with make_client(retry=retry) as client, pytest.raises(RegistryError) as caught:
        client.resolve(_ref(proxy), "linux/amd64", store)
    assert "HTTP 429" in str(caught.value) and "rate" in (caught.value.hint or "")


def test_missing_blob_is_not_found_with_its_digest(
    proxy: FaultProxy, image: Image, store: ContentStore, tmp_path: Path
) -> None:
    stranger = add_image(ContentStore(tmp_path / "other"), files={"never": b"pushed"})
    with make_client() as client, pytest.raises(NotFoundError) as caught:
        client.fetch_blob(_ref(proxy), stranger.layers[0], store)
    text = str(caught.value)
    assert stranger.layers[0].digest in text and "BLOB_UNKNOWN" in text
    assert f"http://{proxy.host}/v2/faults/app/blobs/" in text
    _assert_clean(store)


@pytest.mark.slow
def test_registry_stopped_mid_pull(tmp_path: Path, store: ContentStore) -> None:
    source = ContentStore(tmp_path / "source")
    # Larger than the loopback socket buffers, so stopping the server interrupts the body.
    image = add_image(source, layers=[random_bytes(24_000_000, seed=3)])
    with RegistryServer(tmp_path / "doomed") as server:
        ref = f"{server.host}/doomed/app:1"
        with make_client() as client:
            client.push(ref, source, image.manifest)
            resolved = client.resolve(ref, "linux/amd64", store)
            stopped = threading.Event()

            def stop_once(done: int) -> None:
                if not stopped.is_set():
                    stopped.set()
                    server.stop()

            with pytest.raises(RegistryError) as caught:
                client.fetch_blob(ref, resolved.layers[0], store, stop_once)
    text = str(caught.value)
    assert server.host in text and resolved.layers[0].digest in text
    assert not store.has_blob(resolved.layers[0].digest)
    _assert_clean(store)
