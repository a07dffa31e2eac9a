"""The content store: cache location, verified blobs, and named refs in ``index.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitdsl.errors import CacheError
from kitdsl.oci.digest import DigestError, digest_of
from kitdsl.oci.media import REF_NAME_ANNOTATION, Platform
from kitdsl.oci.store import (
    PLATFORMS_ANNOTATION,
    TEMP_PREFIX,
    ContentStore,
    default_cache_dir,
    recorded_platforms,
    ref_key,
)
from tests.cache_images import make_image, make_index, two_platform_index, without_platform


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "cache")


def test_cache_dir_prefers_kitdsl_cache_then_xdg_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KITDSL_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "kitdsl"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "kitdsl"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "kitdsl"
    monkeypatch.setenv("KITDSL_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.20", "docker.io/library/alpine:3.20"),
        ("index.docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20"),
        ("ghcr.io/a/b:v1", "ghcr.io/a/b:v1"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        ("alpine@sha256:" + "a" * 64, "docker.io/library/alpine@sha256:" + "a" * 64),
        ("alpine:3.20@sha256:" + "a" * 64, "docker.io/library/alpine:3.20"),
    ],
)
def test_ref_key_is_canonical_with_a_tag(name: str, key: str) -> None:
    assert ref_key(name) == key


def test_an_invalid_name_is_a_cache_error() -> None:
    with pytest.raises(CacheError, match="invalid image name 'Alpine'") as caught:
        ref_key("Alpine")
    assert caught.value.exit_code == 8


def test_blob_write_verifies_before_publishing(store: ContentStore) -> None:
    digest = store.put_blob(b"hello", digest=digest_of(b"hello"))
    assert store.read_blob(digest) == b"hello"
    assert store.has_blob(digest)
    with pytest.raises(DigestError, match="does not match"):
        store.put_blob(b"other", digest=digest_of(b"hellp"))
    assert not store.has_blob(digest_of(b"hellp"))
    assert store.blob_digests() == [digest]
    assert not list(store.blobs.glob(f"{TEMP_PREFIX}*"))


def test_blob_write_stops_at_the_announced_size(store: ContentStore) -> None:
    with pytest.raises(DigestError, match="larger"), store.write_blob(size=3) as writer:
        writer.write(b"four")
    assert store.blob_digests() == []


def test_refs_round_trip_and_index_json_is_sorted_and_annotated(store: ContentStore) -> None:
    index = two_platform_index().put(store)
    image = without_platform(make_image("riscv64")).put(store)
    store.set_ref("registry.example/z:1", image.descriptor)
    store.set_ref("alpine:3.20", index.descriptor, platforms=["linux/arm64/v8", "linux/amd64"])
    assert list(store.refs()) == ["docker.io/library/alpine:3.20", "registry.example/z:1"]
    got = store.get_ref("docker.io/library/alpine:3.20")
    assert got is not None
    assert got.digest == index.digest
    assert got.annotations is not None
    assert got.annotations[PLATFORMS_ANNOTATION] == "linux/amd64,linux/arm64/v8"
    assert recorded_platforms(got) == [
        Platform.parse("linux/amd64"),
        Platform.parse("linux/arm64/v8"),
    ]
    document = json.loads((store.root / "index.json").read_text())
    names = [d["annotations"][REF_NAME_ANNOTATION] for d in document["manifests"]]
    assert names == sorted(names)
    assert document["schemaVersion"] == 2


def test_set_ref_replaces_the_previous_root(store: ContentStore) -> None:
    first = make_image("amd64", {"a": b"1"}).put(store)
    second = make_image("amd64", {"a": b"2"}).put(store)
    store.set_ref("x", first.descriptor)
    store.set_ref("x:latest", second.descriptor)
    assert [d.digest for d in store.refs().values()] == [second.digest]


def test_platforms_fetched_later_add_to_the_record(store: ContentStore) -> None:
    index = two_platform_index().put(store)
    store.set_ref("alpine", index.descriptor, platforms=["linux/amd64"])
    store.set_ref("alpine", index.descriptor, platforms=["linux/arm64/v8"])
    got = store.get_ref("alpine")
    assert got is not None
    assert (got.annotations or {})[PLATFORMS_ANNOTATION] == "linux/amd64,linux/arm64/v8"
    other = make_index(make_image("riscv64")).put(store)
    store.set_ref("alpine", other.descriptor, platforms=["linux/riscv64"])
    got = store.get_ref("alpine")
    assert got is not None
    assert (got.annotations or {})[PLATFORMS_ANNOTATION] == "linux/riscv64"


def test_find_by_digest(store: ContentStore) -> None:
    image = make_image().put(store)
    store.set_ref("example.com/a:1", image.descriptor)
    store.set_ref("example.com/b:1", image.descriptor)
    assert store.find_digest(image.digest) == ["example.com/a:1", "example.com/b:1"]
    found = store.get_ref(f"example.com/b@{image.digest}")
    assert found is not None and found.digest == image.digest
    assert (found.annotations or {})[REF_NAME_ANNOTATION] == "example.com/b:1"
    assert store.get_ref("example.com/c@sha256:" + "0" * 64) is None
    assert store.get_ref("example.com/c:1") is None


def test_remove_ref(store: ContentStore) -> None:
    image = make_image().put(store)
    store.set_ref("a", image.descriptor)
    removed = store.remove_ref("a:latest")
    assert removed is not None and removed.digest == image.digest
    assert store.refs() == {}
    assert store.remove_ref("a") is None
    assert store.has_blob(image.digest), "blobs stay until prune"


def test_a_ref_is_recorded_only_when_its_content_is_present(store: ContentStore) -> None:
    index = two_platform_index()
    store.put_blob(index.blobs[index.digest])
    with pytest.raises(CacheError, match="content it needs is not in the cache") as caught:
        store.set_ref("alpine", index.descriptor)
    assert any("linux/amd64" in line for line in caught.value.details)
    assert store.refs() == {}

    # Only the platforms fetched need to be there.
    amd64 = make_image("amd64")
    amd64.put(store)
    store.set_ref("alpine", index.descriptor, platforms=["linux/amd64"])
    assert list(store.refs()) == ["docker.io/library/alpine:latest"]
    with pytest.raises(CacheError, match="not in the cache") as caught:
        store.set_ref("alpine", index.descriptor, platforms=["linux/s390x"])
    assert caught.value.details == (f"no image for linux/s390x in {index.digest}",)


def test_a_pinned_name_must_match_the_descriptor(store: ContentStore) -> None:
    image = make_image().put(store)
    with pytest.raises(CacheError, match="pinned"):
        store.set_ref("alpine@sha256:" + "1" * 64, image.descriptor)
    store.set_ref(f"alpine@{image.digest}", image.descriptor)
    assert list(store.refs()) == [f"docker.io/library/alpine@{image.digest}"]


def test_an_unreadable_index_is_a_cache_error_with_a_hint(store: ContentStore) -> None:
    store.ensure()
    (store.root / "index.json").write_text('{"manifests": [')
    with pytest.raises(CacheError, match="unreadable") as caught:
        store.refs()
    assert caught.value.hint is not None and "verify --repair" in caught.value.hint


def test_an_empty_cache_has_no_refs(store: ContentStore) -> None:
    assert store.refs() == {}
    assert store.get_ref("alpine") is None
    assert store.blob_digests() == []
