"""Which image a build uses: pins, digests, cached tags and platforms, against a real registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitdsl import Service, System
from kitdsl.errors import CacheError, LockError
from kitdsl.images import ImageOptions, lock_images, pull_system
from kitdsl.oci.cache import Cache
from kitdsl.oci.media import Platform
from kitdsl.oci.store import ContentStore
from kitdsl.plan import NullReporter
from tests.images import add_image, add_index
from tests.registry import RegistryServer, make_client, registry_fixture  # noqa: F401

AMD64 = Platform.parse("linux/amd64")
ARM64 = Platform.parse("linux/arm64/v8")


def push(registry: RegistryServer, work: Path, name: str, text: bytes) -> dict[str, str]:
    """Push an amd64 + arm64/v8 index; return {platform: manifest digest, "index": digest}."""
    store = ContentStore(work / f"src-{name.replace('/', '-').replace(':', '-')}-{len(text)}")
    images = [
        add_image(store, platform=p, files={"etc/version": text + p.encode()})
        for p in ("linux/amd64", "linux/arm64/v8")
    ]
    root = add_index(store, images)
    with make_client() as client:
        client.push(f"{registry.host}/{name}", store, root)
    return {
        "linux/amd64": images[0].manifest.digest,
        "linux/arm64/v8": images[1].manifest.digest,
        "index": root.digest,
    }


def system(image: str) -> System:
    return System(services=[Service(name="app", image=image)])


def pull(app: System, cache: Path, platform: Platform = AMD64, *, fresh: bool = False) -> str:
    """Pull ``app`` and return the manifest digest its one service got."""
    options = ImageOptions(cache_dir=cache, platform=platform, pull=fresh)
    result = pull_system(app, options, reporter=NullReporter())
    return result.images["services/app"][0].manifest.digest


@pytest.mark.slow
def test_untagged_reference_is_pinned_by_the_lockfile(
    registry: RegistryServer, tmp_path: Path
) -> None:
    first = push(registry, tmp_path, "pins/plain:latest", b"one")
    app = system(f"{registry.host}/pins/plain")
    options = ImageOptions(cache_dir=tmp_path / "c", platform=AMD64)
    lock = lock_images(app, options)
    push(registry, tmp_path, "pins/plain:latest", b"two")
    result = pull_system(app, options, lock=lock, reporter=NullReporter())
    assert result.images["services/app"][0].manifest.digest == first["linux/amd64"]


@pytest.mark.slow
def test_a_digest_in_the_reference_wins_over_the_tag(
    registry: RegistryServer, tmp_path: Path
) -> None:
    first = push(registry, tmp_path, "pins/dig:1", b"one")
    push(registry, tmp_path, "pins/dig:1", b"two")
    app = system(f"{registry.host}/pins/dig:1@{first['index']}")
    assert pull(app, tmp_path / "c") == first["linux/amd64"]
    assert pull(app, tmp_path / "c", ARM64) == first["linux/arm64/v8"]


@pytest.mark.slow
def test_a_locked_pull_does_not_decide_what_the_tag_means(
    registry: RegistryServer, tmp_path: Path
) -> None:
    pushed = push(registry, tmp_path, "pins/poison:1", b"one")
    app = system(f"{registry.host}/pins/poison:1")
    options = ImageOptions(cache_dir=tmp_path / "c", platform=AMD64)
    lock = lock_images(app, options)
    pull_system(app, options, lock=lock, reporter=NullReporter())
    # Without the lockfile, another platform still gets its own image.
    assert pull(app, tmp_path / "c", ARM64) == pushed["linux/arm64/v8"]
    arm_lock = lock_images(app, ImageOptions(cache_dir=tmp_path / "c"), platforms=[ARM64])
    assert arm_lock.pin(f"{registry.host}/pins/poison:1", ARM64) == pushed["linux/arm64/v8"]


@pytest.mark.slow
def test_a_cached_tag_keeps_its_meaning_for_other_platforms(
    registry: RegistryServer, tmp_path: Path
) -> None:
    first = push(registry, tmp_path, "pins/moved:1", b"one")
    app = system(f"{registry.host}/pins/moved:1")
    assert pull(app, tmp_path / "c") == first["linux/amd64"]
    push(registry, tmp_path, "pins/moved:1", b"two")
    assert pull(app, tmp_path / "c", ARM64) == first["linux/arm64/v8"]  # from the same index
    newer = pull(app, tmp_path / "c", ARM64, fresh=True)
    assert newer != first["linux/arm64/v8"]


@pytest.mark.slow
def test_platform_variants_match_lockfile_pins(registry: RegistryServer, tmp_path: Path) -> None:
    first = push(registry, tmp_path, "pins/variant:1", b"one")
    app = system(f"{registry.host}/pins/variant:1")
    options = ImageOptions(cache_dir=tmp_path / "c")
    lock = lock_images(app, options, platforms=[Platform.parse("linux/arm64")])
    push(registry, tmp_path, "pins/variant:1", b"two")
    result = pull_system(
        app,
        ImageOptions(cache_dir=tmp_path / "c2", platform=ARM64),
        lock=lock,
        frozen_lock=tmp_path / "x.lock",
        reporter=NullReporter(),
    )
    assert result.images["services/app"][0].manifest.digest == first["linux/arm64/v8"]
    with pytest.raises(LockError):
        pull_system(
            app,
            ImageOptions(cache_dir=tmp_path / "c2", platform=AMD64),
            lock=lock,
            frozen_lock=tmp_path / "x.lock",
            reporter=NullReporter(),
        )


@pytest.mark.slow
def test_damaged_cache_documents_and_blobs(registry: RegistryServer, tmp_path: Path) -> None:
    push(registry, tmp_path, "pins/damage:1", b"one")
    app = system(f"{registry.host}/pins/damage:1")
    cache_dir = tmp_path / "c"
    manifest = pull(app, cache_dir)
    cache = Cache.open(cache_dir)
    root = cache.get_ref(f"{registry.host}/pins/damage:1")
    assert root is not None
    # A truncated layer is fetched again (its size gives it away).
    document = json.loads(cache.read_blob(manifest))
    blob = cache.blob_path(document["layers"][0]["digest"])
    blob.chmod(0o644)
    blob.write_bytes(b"short")
    assert pull(app, cache_dir) == manifest
    assert cache.verify() == []
    # A damaged document is a clear error with the way out, not a traceback.
    path = cache.blob_path(root.digest)
    path.chmod(0o644)
    path.write_bytes(b"not json")
    with pytest.raises(CacheError, match="is damaged") as exc:
        pull(app, cache_dir)
    assert exc.value.hint is not None and "verify --repair" in exc.value.hint


def test_a_mirror_url_with_a_path_is_refused() -> None:
    from kitdsl.errors import UsageError
    from kitdsl.oci.registry import RegistryClient

    client = RegistryClient(mirrors={"docker.io": "https://mirror.example/dockerhub"})
    with client, pytest.raises(UsageError, match="has a path"):
        client.read_endpoints("docker.io")
