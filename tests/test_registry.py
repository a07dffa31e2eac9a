"""The registry client against the real reference registry: pull, push, mirrors, TLS, and
interoperability with skopeo."""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kitdsl.errors import ImageError
from kitdsl.oci.failures import parse_retry_after
from kitdsl.oci.media import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, Descriptor
from kitdsl.oci.registry import (
    NotFoundError,
    PlatformError,
    RegistryError,
    RetryPolicy,
    registry_host,
)
from kitdsl.oci.store import ContentStore
from kitdsl.oci.transport import is_loopback
from tests.images import add_image, add_index, gzip_bytes, random_bytes
from tests.registry import (  # noqa: F401  (pytest fixtures)
    FaultProxy,
    RegistryServer,
    make_client,
    proxy_fixture,
    registry_fixture,
    store_fixture,
    tls_registry_fixture,
    unverified_blobs,
)


@pytest.fixture
def source(tmp_path: Path) -> ContentStore:
    """Where test images are built before they are pushed."""
    return ContentStore(tmp_path / "source")


def _multi(source: ContentStore, *, docker: bool = False) -> tuple[Descriptor, dict[str, str]]:
    amd64 = add_image(source, platform="linux/amd64", docker=docker)
    arm64 = add_image(source, platform="linux/arm64/v8", docker=docker)
    root = add_index(source, [amd64, arm64], docker=docker)
    return root, {"amd64": amd64.manifest.digest, "arm64": arm64.manifest.digest}


# --- pure rules ----------------------------------------------------------------------------


def test_docker_hub_is_served_by_its_registry_host() -> None:
    assert registry_host("docker.io") == "registry-1.docker.io"
    assert registry_host("ghcr.io") == "ghcr.io"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.1.2.3:80", True),
        ("[::1]:5000", True),
        ("registry.example:5000", False),
        ("10.0.0.1", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_and_respects_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0)
    assert 0.5 <= policy.delay(1) <= 1.0
    assert 2.0 <= policy.delay(3) <= 4.0
    assert 2.0 <= policy.delay(10) <= 4.0
    assert policy.delay(1, retry_after=7.0) == 7.0


# --- pulling -------------------------------------------------------------------------------


def test_pull_single_platform_image(
    registry: RegistryServer, source: ContentStore, store: ContentStore
) -> None:
    image = add_image(source, layers=[{"a": b"one"}, gzip_bytes(random_bytes(300_000))])
    ref = f"{registry.host}/single/app:1"
    with make_client() as client:
        client.push(ref, source, image.manifest)
        resolved = client.pull(ref, "linux/amd64", store)
    assert resolved.index is None
    assert resolved.manifest.digest == image.manifest.digest
    assert resolved.pinned.digest == image.manifest.digest
    assert [layer.digest for layer in resolved.layers] == [d.digest for d in image.layers]
    for layer, data in zip(resolved.layers, image.layer_data, strict=True):
        assert store.read_blob(layer.digest) == data
    assert store.has_blob(resolved.config.digest)
    assert unverified_blobs(store) == []


def test_resolve_picks_the_platform_and_stores_only_documents(
    registry: RegistryServer, source: ContentStore, store: ContentStore
) -> None:
    root, manifests = _multi(source)
    ref = f"{registry.host}/multi/app:2"
    with make_client() as client:
        client.push(ref, source, root)
        resolved = client.resolve(ref, "linux/arm64", store)
        assert resolved.index is not None and resolved.index.digest == root.digest
        assert resolved.index.media_type == OCI_INDEX
        assert resolved.manifest.digest == manifests["arm64"]
        assert str(resolved.platform) == "linux/arm64/v8"
        assert store.has_blob(root.digest) and store.has_blob(resolved.config.digest)
        assert not any(store.has_blob(layer.digest) for layer in resolved.layers)
        seen: list[int] = []
        client.fetch_blob(ref, resolved.layers[0], store, seen.append)
        assert seen[-1] == resolved.layers[0].size and seen == sorted(seen)
        assert client.resolve(ref, "linux/amd64", store).manifest.digest == manifests["amd64"]


def test_missing_platform_lists_the_ones_there_are(
    registry: RegistryServer, source: ContentStore, store: ContentStore
) -> None:
    root, _ = _multi(source)
    ref = f"{registry.host}/multi/listed:1"
    with make_client() as client:
        client.push(ref, source, root)
        with pytest.raises(PlatformError) as caught:
            client.resolve(ref, "linux/s390x", store)
    message = str(caught.value)
    assert "linux/s390x" in message
    assert "linux/amd64, linux/arm64/v8" in message
    assert "unknown" not in message  # attestations are not platforms


def test_single_platform_image_of_another_architecture_is_refused(
    registry: RegistryServer, source: ContentStore, store: ContentStore
) -> None:
    image = add_image(source, platform="linux/arm64")
    ref = f"{registry.host}/single/arm:1"
    with make_client() as client:
        client.push(ref, source, image.manifest)
        with pytest.raises(PlatformError, match="built for linux/arm64, not linux/amd64"):
            client.resolve(ref, "linux/amd64", store)


def test_docker_manifest_lists(
    registry: RegistryServer, source: ContentStore, store: ContentStore
) -> None:
    root, manifests = _multi(source, docker=True)
    ref = f"{registry.host}/docker/app:1"
    with make_client() as client:
        client.push(ref, source, root)
        resolved = client.pull(ref, "linux/amd64", store)
    assert resolved.index is not None and resolved.index.media_type == DOCKER_LIST
    assert resolved.manifest.media_type == DOCKER_MANIFEST
    assert resolved.manifest.digest == manifests["amd64"]


def test_unknown_tag_names_registry_repository_and_tag(
    registry: RegistryServer, store: ContentStore
) -> None:
    with make_client() as client, pytest.raises(NotFoundError) as caught:
        client.resolve(f"{registry.host}/nothing/here:7", "linux/amd64", store)
    text = str(caught.value)
    assert registry.url in text and "nothing/here" in text and "tag 7" in text
    assert "MANIFEST_UNKNOWN" in text


def test_a_stored_digest_needs_no_network(
    proxy: FaultProxy, source: ContentStore, store: ContentStore
) -> None:
    root, _ = _multi(source)
    ref = f"{proxy.host}/offline/app:1"
    with make_client() as client:
        client.push(ref, source, root)
        client.pull(ref, "linux/amd64", store)
        proxy.seen.clear()
        client.resolve(f"{proxy.host}/offline/app@{root.digest}", "linux/amd64", store)
        assert proxy.seen == []
        # By tag, one HEAD says the tag still names what we have: no manifest is downloaded.
        client.resolve(ref, "linux/amd64", store)
    assert [(s.method, s.path) for s in proxy.seen] == [("HEAD", "/v2/offline/app/manifests/1")]


def test_parallel_fetches_share_one_client(
    registry: RegistryServer, source: ContentStore, store: ContentStore
) -> None:
    layers = [gzip_bytes(random_bytes(200_000, seed=n), level=1) for n in range(4)]
    image = add_image(source, layers=layers)
    ref = f"{registry.host}/parallel/app:1"
    with make_client() as client:
        client.push(ref, source, image.manifest)
        resolved = client.resolve(ref, "linux/amd64", store)
        # Every layer twice, eight threads at once: duplicates are harmless no-ops or races
        # that end with the same verified file.
        wanted = [*resolved.layers, *resolved.layers]
        with ThreadPoolExecutor(max_workers=8) as pool:
            paths = list(pool.map(lambda d: client.fetch_blob(ref, d, store), wanted))
    assert [p.read_bytes() for p in paths[:4]] == layers
    assert unverified_blobs(store) == []


# --- pushing -------------------------------------------------------------------------------


def test_push_skips_mounts_and_uploads_in_chunks(
    proxy: FaultProxy, source: ContentStore, store: ContentStore
) -> None:
    image = add_image(source, layers=[random_bytes(5000, seed=7)])
    layer = image.layers[0]
    with make_client(chunk_size=1024) as client:
        assert client.push_blob(f"{proxy.host}/push/a", layer, source) == "uploaded"
        assert len(proxy.requests("PATCH", "/v2/push/a/blobs/uploads/")) == 5
        assert client.push_blob(f"{proxy.host}/push/a", layer, source) == "exists"
        mounted = client.push_blob(f"{proxy.host}/push/b", layer, source, mount_from=["push/a"])
        assert mounted == "mounted"
        client.push(f"{proxy.host}/push/b", source, image.manifest)  # untagged: by digest
        pulled = client.pull(f"{proxy.host}/push/b@{image.manifest.digest}", "linux/amd64", store)
    assert store.read_blob(pulled.layers[0].digest) == image.layer_data[0]


# --- mirrors -------------------------------------------------------------------------------


def test_mirror_first_then_origin(
    registry: RegistryServer, tmp_path: Path, source: ContentStore, store: ContentStore
) -> None:
    only_on_mirror = add_image(source, files={"where": b"mirror"})
    only_on_origin = add_image(source, files={"where": b"origin"})
    hub_image = add_image(source, files={"where": b"hub"})
    with RegistryServer(tmp_path / "mirror") as mirror, make_client() as client:
        client.push(f"{mirror.host}/mirrored/app:1", source, only_on_mirror.manifest)
        client.push(f"{mirror.host}/library/alpine:3", source, hub_image.manifest)
        client.push(f"{registry.host}/fallback/app:1", source, only_on_origin.manifest)
        mirrors = {registry.host: mirror.url, "docker.io": [mirror.url]}
        with make_client(mirrors=mirrors) as mirrored:
            got = mirrored.pull(f"{registry.host}/mirrored/app:1", "linux/amd64", store)
            assert got.manifest.digest == only_on_mirror.manifest.digest
            got = mirrored.pull(f"{registry.host}/fallback/app:1", "linux/amd64", store)
            assert got.manifest.digest == only_on_origin.manifest.digest
            # Docker Hub names are normalised before the mirror is asked.
            got = mirrored.pull("alpine:3", "linux/amd64", store)
            assert got.manifest.digest == hub_image.manifest.digest
            assert str(got.reference) == "docker.io/library/alpine:3"


def test_unreachable_mirror_falls_back_and_is_reported(
    registry: RegistryServer, tmp_path: Path, source: ContentStore, store: ContentStore
) -> None:
    image = add_image(source)
    dead = f"http://127.0.0.1:{RegistryServer(tmp_path / 'dead').port}"
    with make_client() as client:
        client.push(f"{registry.host}/dead/mirror:1", source, image.manifest)
    with make_client(mirrors={registry.host: dead}) as client:
        got = client.pull(f"{registry.host}/dead/mirror:1", "linux/amd64", store)
        assert got.manifest.digest == image.manifest.digest
        with pytest.raises(NotFoundError) as caught:
            client.resolve(f"{registry.host}/dead/missing:1", "linux/amd64", store)
    assert caught.value.message.startswith("cannot get tag 1")


# --- TLS -----------------------------------------------------------------------------------


def test_tls_with_extra_ca_file_or_folder(
    tls_registry: RegistryServer, source: ContentStore, tmp_path: Path
) -> None:
    assert tls_registry.ca_file is not None
    image = add_image(source)
    ref = f"{tls_registry.host}/tls/app:1"
    with make_client(ca_certs=tls_registry.ca_file) as client:
        client.push(ref, source, image.manifest)
        got = client.pull(ref, "linux/amd64", ContentStore(tmp_path / "a"))
        assert got.manifest.digest == image.manifest.digest
    with make_client(ca_certs=[tls_registry.ca_file.parent]) as client:
        client.pull(ref, "linux/amd64", ContentStore(tmp_path / "b"))


def test_tls_without_the_ca_is_refused_unless_insecure(
    tls_registry: RegistryServer, source: ContentStore, tmp_path: Path
) -> None:
    image = add_image(source, files={"insecure": b"yes"})
    ref = f"{tls_registry.host}/tls/insecure:1"
    with make_client() as client, pytest.raises(RegistryError) as caught:
        client.pull(ref, "linux/amd64", ContentStore(tmp_path / "a"))
    assert "certificate" in str(caught.value).lower()
    assert tls_registry.host in str(caught.value)
    with make_client(insecure=[tls_registry.host]) as client:
        client.push(ref, source, image.manifest)
        client.pull(ref, "linux/amd64", ContentStore(tmp_path / "b"))


# --- other tools ---------------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


def _run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


def test_skopeo_reads_what_we_push(registry: RegistryServer, source: ContentStore) -> None:
    skopeo = _tool("skopeo")
    root, _ = _multi(source)
    ref = f"{registry.host}/interop/ours:1"
    with make_client() as client:
        client.push(ref, source, root)
    raw = _run(skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert raw.encode() == source.read_blob(root.digest)
    info = json.loads(
        _run(skopeo, "inspect", "--tls-verify=false", "--override-arch=arm64", f"docker://{ref}")
    )
    assert info["Digest"] == root.digest
    assert info["Architecture"] == "arm64"  # read through our index, manifest and config


@pytest.mark.slow
def test_we_pull_what_skopeo_pushes(
    registry: RegistryServer, tmp_path: Path, store: ContentStore
) -> None:
    skopeo, umoci = _tool("skopeo"), _tool("umoci")
    layout = tmp_path / "layout"
    _run(umoci, "init", "--layout", str(layout))
    _run(umoci, "new", "--image", f"{layout}:latest")
    (tmp_path / "hello").write_text("hello from umoci\n")
    _run(umoci, "insert", "--image", f"{layout}:latest", str(tmp_path / "hello"), "/hello")
    oci_ref = f"{registry.host}/interop/umoci:1"
    docker_ref = f"{registry.host}/interop/umoci-docker:1"
    flags = ["--dest-tls-verify=false"]
    _run(skopeo, "copy", *flags, f"oci:{layout}:latest", f"docker://{oci_ref}")
    _run(skopeo, "copy", *flags, "--src-tls-verify=false", "--format=v2s2", f"docker://{oci_ref}",
         f"docker://{docker_ref}")  # fmt: skip
    info = json.loads(_run(skopeo, "inspect", "--tls-verify=false", f"docker://{oci_ref}"))
    platform = f"{info['Os']}/{info['Architecture']}"
    with make_client() as client:
        ours = client.pull(oci_ref, platform, store)
        theirs = client.pull(docker_ref, platform, store)
    assert ours.manifest.digest == info["Digest"]
    assert theirs.manifest.media_type == DOCKER_MANIFEST
    assert unverified_blobs(store) == []
    assert len(ours.layers) == len(theirs.layers) >= 1


def test_invalid_reference_is_an_image_error(store: ContentStore) -> None:
    with make_client() as client, pytest.raises(ImageError, match="invalid image reference"):
        client.resolve("UPPER/Case", "linux/amd64", store)
