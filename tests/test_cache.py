"""Cache maintenance: ls, verify (and repair), prune, remove."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kitdsl.errors import CacheError
from kitdsl.oci.cache import Cache, Freed
from kitdsl.oci.store import TEMP_PREFIX
from tests.cache_images import make_image, make_index, two_platform_index, without_platform


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache.open(tmp_path / "cache")


def test_open_uses_the_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KITDSL_CACHE", str(tmp_path / "c"))
    assert Cache.open().root == tmp_path / "c"


def test_ls_lists_names_digests_platforms_and_sizes(cache: Cache) -> None:
    index = two_platform_index().put(cache)
    image = without_platform(make_image("s390x")).put(cache)
    cache.set_ref("alpine:3.20", index.descriptor, platforms=["linux/amd64", "linux/arm64/v8"])
    cache.set_ref("example.com/one", image.descriptor)
    entries = cache.ls()
    assert [(e.name, e.digest, e.platforms, e.complete) for e in entries] == [
        ("docker.io/library/alpine:3.20", index.digest, ("linux/amd64", "linux/arm64/v8"), True),
        ("example.com/one:latest", image.digest, ("linux/s390x",), True),
    ]
    assert entries[0].size == sum(len(b) for b in index.blobs.values())
    assert entries[0].fetched is not None


def test_a_sound_cache_verifies_clean(cache: Cache) -> None:
    cache.set_ref("alpine", two_platform_index().put(cache).descriptor)
    assert cache.verify() == []


def test_verify_finds_and_repairs_a_corrupt_blob(cache: Cache) -> None:
    index = two_platform_index().put(cache)
    cache.set_ref("alpine", index.descriptor)
    other = make_image("amd64", {"other": b"x"}).put(cache)
    cache.set_ref("other", other.descriptor)
    layer = make_image("arm64", variant="v8").blobs
    victim = next(d for d, data in layer.items() if data[:2] == b"\x1f\x8b")
    path = cache.blob_path(victim)
    os.chmod(path, 0o644)
    path.write_bytes(b"truncated")

    problems = cache.verify()
    assert [(p.kind, p.subject) for p in problems] == [
        ("corrupt-blob", victim),
        ("dangling-ref", "docker.io/library/alpine:latest"),
    ]
    assert "linux/arm64/v8" in problems[1].message
    assert cache.has_blob(victim), "verify without repair changes nothing"

    repaired = cache.verify(repair=True)
    assert all(p.repaired for p in repaired)
    assert not cache.has_blob(victim)
    assert list(cache.refs()) == ["docker.io/library/other:latest"]
    assert cache.verify() == []


def test_verify_reports_a_missing_layer(cache: Cache) -> None:
    image = make_image().put(cache)
    cache.set_ref("x", image.descriptor)
    layer = next(d for d, data in image.blobs.items() if data[:2] == b"\x1f\x8b")
    cache.blob_path(layer).unlink()
    (problem,) = cache.verify()
    assert problem.kind == "dangling-ref"
    assert f"layer 1 of root {layer}: missing" in problem.message


def test_verify_repairs_an_unreadable_index(cache: Cache) -> None:
    cache.set_ref("x", make_image().put(cache).descriptor)
    (cache.root / "index.json").write_text("garbage")
    (problem,) = cache.verify()
    assert problem.kind == "unreadable-index"
    with pytest.raises(CacheError, match="unreadable"):
        cache.prune()  # never treat every blob as garbage because the index is damaged
    cache.verify(repair=True)
    assert (cache.root / "index.json.corrupt").read_text() == "garbage"
    assert cache.refs() == {}
    assert cache.verify() == []


def test_prune_removes_unreachable_blobs_and_temporary_files(cache: Cache) -> None:
    kept = two_platform_index().put(cache)
    cache.set_ref("kept", kept.descriptor)
    dropped = make_image("amd64", {"gone": b"soon"}).put(cache)
    (cache.blobs / f"{TEMP_PREFIX}leftover").write_bytes(b"12345")
    (cache.root / f"{TEMP_PREFIX}index").write_bytes(b"{}")
    unique = set(dropped.blobs) - set(kept.blobs)
    freed = cache.prune()
    assert freed == Freed(
        blobs=len(unique),
        temporary=2,
        bytes=sum(len(dropped.blobs[d]) for d in unique) + 7,
    )
    assert sorted(cache.blob_digests()) == sorted(kept.blobs)
    assert cache.prune() == Freed()
    assert cache.verify() == []


def test_prune_keeps_present_children_of_an_index_fetched_in_part(cache: Cache) -> None:
    amd64, arm64 = make_image("amd64"), make_image("arm64")
    index = make_index(amd64, arm64)
    cache.put_blob(index.blobs[index.digest])
    amd64.put(cache)
    cache.put_blob(arm64.blobs[arm64.digest])  # the arm64 manifest but none of its blobs
    cache.set_ref("partial", index.descriptor, platforms=["linux/amd64"])
    assert cache.prune().blobs == 0
    assert cache.verify() == []
    (entry,) = cache.ls()
    assert entry.platforms == ("linux/amd64",)


def test_remove_with_prune_frees_only_unshared_blobs(cache: Cache) -> None:
    shared_layer = {"etc/hello": b"same everywhere"}
    one = make_image("amd64", shared_layer).put(cache)
    two = make_image("arm64", shared_layer).put(cache)
    cache.set_ref("one", one.descriptor)
    cache.set_ref("two", two.descriptor)
    removed = cache.remove(["one"], prune=True)
    assert removed.names == ("docker.io/library/one:latest",)
    only_one = set(one.blobs) - set(two.blobs)
    assert removed.freed.blobs == len(only_one) == 2  # config and manifest; the layer is shared
    assert sorted(cache.blob_digests()) == sorted(two.blobs)
    assert cache.verify() == []


def test_remove_of_an_unknown_name_removes_nothing(cache: Cache) -> None:
    cache.set_ref("one", make_image().put(cache).descriptor)
    with pytest.raises(CacheError, match=r"not in the cache: docker\.io/library/nope:latest"):
        cache.remove(["one", "nope"])
    assert list(cache.refs()) == ["docker.io/library/one:latest"]
    assert cache.remove(["one"]).freed == Freed()
    assert cache.refs() == {}


def test_cache_is_a_layout_umoci_reads(cache: Cache, tmp_path: Path) -> None:
    if shutil.which("umoci") is None:
        pytest.skip("umoci is not installed")
    image = make_image("amd64", {"etc/motd": b"from the cache\n"}).put(cache)
    cache.set_ref("example.com/app:1", image.descriptor)
    listed = subprocess.run(
        ["umoci", "ls", "--layout", str(cache.root)], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split() == ["example.com/app:1"]
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{cache.root}:example.com/app:1", bundle],
        capture_output=True,
        check=True,
    )
    assert (bundle / "rootfs" / "etc" / "motd").read_text() == "from the cache\n"
