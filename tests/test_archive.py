"""Exporting and importing image archives: OCI layout tars and docker archives.

Interoperability is checked against skopeo and umoci, which read and write these formats.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kitdsl.errors import CacheError
from kitdsl.oci.cache import Cache
from kitdsl.oci.digest import digest_of, hex_of
from kitdsl.oci.media import INDEX_TYPES, OCI_INDEX, Descriptor
from tests.cache_images import (
    Built,
    make_image,
    make_index,
    tar_bytes,
    two_platform_index,
    without_platform,
    write_layout,
)

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")
needs_umoci = pytest.mark.skipif(shutil.which("umoci") is None, reason="needs umoci")


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache.open(tmp_path / "cache")


@pytest.fixture
def alpine(cache: Cache) -> Built:
    index = two_platform_index().put(cache)
    cache.set_ref("alpine:3.20", index.descriptor)
    return index


def run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True).stdout


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def layout_members(
    built: Built, annotations: dict[str, str]
) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The members of an OCI layout tar holding ``built``."""
    named = built.descriptor.model_copy(update={"annotations": annotations})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [named.to_json()]}
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (entry("oci-layout"), b'{"imageLayoutVersion":"1.0.0"}'),
        (entry("index.json"), json.dumps(index).encode()),
    ]
    for digest, data in sorted(built.blobs.items()):
        members.append((entry(f"blobs/sha256/{hex_of(digest)}"), data))
    return members


# -- export ------------------------------------------------------------------------------------


def test_export_is_deterministic(cache: Cache, alpine: Built, tmp_path: Path) -> None:
    first, second = tmp_path / "1.tar", tmp_path / "2.tar"
    exported = cache.export("alpine:3.20", first)
    cache.export("docker.io/library/alpine:3.20", second)
    assert first.read_bytes() == second.read_bytes()
    assert exported.digest == alpine.digest
    assert exported.platforms == ("linux/amd64", "linux/arm64/v8")
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names[:2] == ["blobs", "blobs/sha256"]
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "")}
    assert set(names) >= {"index.json", "oci-layout"}


def test_export_to_a_stream(cache: Cache, alpine: Built) -> None:
    buffer = io.BytesIO()
    cache.export("alpine:3.20", buffer, platform="linux/amd64")
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    (root,) = index["manifests"]
    assert root["platform"] == {"architecture": "amd64", "os": "linux"}
    assert root["annotations"]["io.containerd.image.name"] == "docker.io/library/alpine:3.20"


@needs_skopeo
def test_skopeo_reads_an_oci_export(cache: Cache, alpine: Built, tmp_path: Path) -> None:
    archive = tmp_path / "alpine.tar"
    cache.export("alpine:3.20", archive)
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}"], capture_output=True, check=True
    ).stdout
    assert digest_of(raw) == alpine.digest
    inspected = json.loads(run("skopeo", "inspect", f"oci-archive:{archive}"))
    assert inspected["Layers"]
    copy = tmp_path / "copy"
    run("skopeo", "copy", "-q", "--all", f"oci-archive:{archive}", f"oci:{copy}:x")
    index = json.loads((copy / "index.json").read_text())
    assert index["manifests"][0]["digest"] == alpine.digest


@needs_skopeo
@needs_umoci
def test_docker_export_is_a_docker_archive(cache: Cache, alpine: Built, tmp_path: Path) -> None:
    archive = tmp_path / "alpine-arm64.tar"
    cache.export("alpine:3.20", archive, format="docker", platform="linux/arm64")
    with tarfile.open(archive) as tar:
        (item,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        names = set(tar.getnames())
    assert item["RepoTags"] == ["alpine:3.20"]
    assert {item["Config"], *item["Layers"]} <= names
    inspected = json.loads(run("skopeo", "inspect", f"docker-archive:{archive}"))
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "arm64")
    layout = tmp_path / "layout"
    run("skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{layout}:x")
    run("umoci", "unpack", "--rootless", "--image", f"{layout}:x", tmp_path / "bundle")
    hello = tmp_path / "bundle" / "rootfs" / "etc" / "hello"
    assert hello.read_text() == "hello from arm64\n"


def test_a_docker_export_of_several_platforms_asks_for_one(cache: Cache, alpine: Built) -> None:
    with pytest.raises(CacheError, match="holds one platform") as caught:
        cache.export("alpine:3.20", io.BytesIO(), format="docker")
    assert "linux/amd64, linux/arm64/v8" in (caught.value.hint or "")


@needs_skopeo
def test_export_of_an_index_fetched_in_part(cache: Cache, tmp_path: Path) -> None:
    amd64, arm64 = make_image("amd64"), make_image("arm64")
    index = make_index(amd64, arm64)
    cache.put_blob(index.blobs[index.digest])
    amd64.put(cache)
    cache.set_ref("partial", index.descriptor, platforms=["linux/amd64"])
    archive = tmp_path / "partial.tar"
    exported = cache.export("partial", archive)
    assert exported.partial and exported.digest != index.digest
    assert exported.platforms == ("linux/amd64",)
    copy = tmp_path / "copy"
    run("skopeo", "copy", "-q", "--all", f"oci-archive:{archive}", f"oci:{copy}:x")
    with pytest.raises(
        CacheError, match=r"no image for linux/arm64 .*cached platforms: linux/amd64"
    ):
        cache.export("partial", io.BytesIO(), platform="linux/arm64")


def test_export_of_a_missing_name_or_content(cache: Cache, alpine: Built) -> None:
    with pytest.raises(CacheError, match="not in the cache"):
        cache.export("nope", io.BytesIO())
    with pytest.raises(CacheError, match="must be 'os/arch"):
        cache.export("alpine:3.20", io.BytesIO(), platform="arm64")
    with pytest.raises(CacheError, match="unknown archive format"):
        cache.export("alpine:3.20", io.BytesIO(), format="zip")  # type: ignore[arg-type]
    amd64 = make_image("amd64").blobs
    layer = next(d for d, data in amd64.items() if data[:2] == b"\x1f\x8b")
    cache.blob_path(layer).unlink()
    with pytest.raises(CacheError, match="missing from the cache"):
        cache.export("alpine:3.20", io.BytesIO(), platform="linux/amd64", format="docker")


# -- import ------------------------------------------------------------------------------------


def test_export_then_import_round_trips(cache: Cache, alpine: Built, tmp_path: Path) -> None:
    archive = tmp_path / "alpine.tar"
    cache.export("alpine:3.20", archive)
    other = Cache.open(tmp_path / "other")
    (imported,) = other.import_archive(archive)
    assert (imported.name, imported.digest) == ("docker.io/library/alpine:3.20", alpine.digest)
    assert sorted(other.blob_digests()) == sorted(alpine.blobs)
    assert other.verify() == []
    stored = other.get_ref("alpine:3.20")
    assert stored is not None and "io.containerd.image.name" not in (stored.annotations or {})


@needs_skopeo
@pytest.mark.parametrize("multi", [False, True])
def test_import_of_a_skopeo_oci_archive(cache: Cache, tmp_path: Path, multi: bool) -> None:
    built = two_platform_index() if multi else without_platform(make_image("arm64"))
    source = write_layout(tmp_path / "layout", {"v1": built})
    archive = tmp_path / "skopeo.tar"
    flags = ["--all"] if multi else []
    run(
        "skopeo", "copy", "-q", *flags, f"oci:{source}:v1", f"oci-archive:{archive}:ghcr.io/o/app:1"
    )
    (imported,) = cache.import_archive(archive)
    assert (imported.name, imported.digest) == ("ghcr.io/o/app:1", built.digest)
    assert (imported.media_type in INDEX_TYPES) == multi
    assert cache.verify() == []


@needs_skopeo
@needs_umoci
def test_import_of_a_skopeo_docker_archive(cache: Cache, tmp_path: Path) -> None:
    """skopeo writes the classic layout: uncompressed layers, legacy paths as symlinks."""
    source = write_layout(tmp_path / "layout", {"v1": make_image("amd64")})
    archive = tmp_path / "docker.tar"
    run("skopeo", "copy", "-q", f"oci:{source}:v1", f"docker-archive:{archive}:example.com/app:2")
    (imported,) = cache.import_archive(archive)
    assert imported.name == "example.com/app:2"
    assert imported.platforms == ("linux/amd64",)
    assert cache.verify() == []
    run(
        "umoci",
        "unpack",
        "--rootless",
        "--image",
        f"{cache.root}:example.com/app:2",
        tmp_path / "b",
    )
    assert (tmp_path / "b" / "rootfs" / "etc" / "hello").read_text() == "hello from amd64\n"


def test_import_prefers_the_containerd_name(cache: Cache, tmp_path: Path) -> None:
    """``docker save`` puts the full name in io.containerd.image.name and the tag alone in
    org.opencontainers.image.ref.name."""
    built = without_platform(make_image())
    annotations = {
        "io.containerd.image.name": "docker.io/library/redis:7",
        "org.opencontainers.image.ref.name": "7",
    }
    archive = write_tar(tmp_path / "saved.tar", layout_members(built, annotations))
    (imported,) = cache.import_archive(archive)
    assert imported.name == "docker.io/library/redis:7"


def test_import_of_a_gzip_compressed_archive(cache: Cache, alpine: Built, tmp_path: Path) -> None:
    plain = tmp_path / "alpine.tar"
    cache.export("alpine:3.20", plain)
    packed = tmp_path / "alpine.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    other = Cache.open(tmp_path / "other")
    assert [i.name for i in other.import_archive(packed)] == ["docker.io/library/alpine:3.20"]


def test_an_unnamed_archive_needs_a_name(cache: Cache, tmp_path: Path) -> None:
    built = without_platform(make_image())
    archive = write_tar(tmp_path / "anon.tar", layout_members(built, {}))
    with pytest.raises(CacheError, match="names no image"):
        cache.import_archive(archive)
    (imported,) = cache.import_archive(archive, name="example.com/anon:1")
    assert imported.name == "example.com/anon:1"


def _corrupt(built: Built) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    members = layout_members(built, {"org.opencontainers.image.ref.name": "x:1"})
    for position, (info, data) in enumerate(members):
        if data is not None and data[:2] == b"\x1f\x8b":
            members[position] = (info, data[:-1] + bytes([data[-1] ^ 1]))
    return members


def _missing(built: Built) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    members = layout_members(built, {"org.opencontainers.image.ref.name": "x:1"})
    return [(i, d) for i, d in members if d is None or d[:2] != b"\x1f\x8b"]


Members = list[tuple[tarfile.TarInfo, bytes | None]]


def _with(extra: tarfile.TarInfo, data: bytes | None = None) -> Callable[[Built], Members]:
    def members(built: Built) -> list[tuple[tarfile.TarInfo, bytes | None]]:
        named = layout_members(built, {"org.opencontainers.image.ref.name": "x:1"})
        return [*named, (extra, data)]

    return members


def _huge() -> tarfile.TarInfo:
    info = entry("blobs/sha256/" + "0" * 64)
    info.size = 1 << 40
    return info


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_corrupt, "is damaged: blob .* does not match its digest"),
        (_missing, "does not hold everything docker.io/library/x:1 needs"),
        (_with(entry("../../etc/evil"), b"x"), "climbs out with '..'"),
        (_with(entry("/etc/evil"), b"x"), "unsafe entry name '/etc/evil'"),
        (_with(entry("blobs/sha256/up", tarfile.SYMTYPE, "../../../etc/passwd")), "links outside"),
        (_with(entry("blobs/link", tarfile.SYMTYPE, "/etc/passwd")), "links outside it"),
        (_with(entry("hard", tarfile.LNKTYPE, "../outside")), "climbs out"),
        (_with(entry("dangling", tarfile.SYMTYPE, "nothing")), "which it does not hold"),
        (_with(entry("dev", tarfile.CHRTYPE)), "device or special file"),
        (_with(entry("oci-layout"), b"{}"), "appears twice"),
    ],
)
def test_hostile_or_damaged_archives_are_refused(
    cache: Cache, tmp_path: Path, make: Callable[[Built], Members], message: str
) -> None:
    archive = write_tar(tmp_path / "bad.tar", make(without_platform(make_image())))
    with pytest.raises(CacheError, match=message) as caught:
        cache.import_archive(archive)
    assert caught.value.exit_code == 8
    assert cache.refs() == {}


def test_an_oversized_entry_is_refused_before_it_is_read(cache: Cache, tmp_path: Path) -> None:
    # A header claiming a terabyte, with no data behind it.
    archive = tmp_path / "huge.tar"
    archive.write_bytes(_huge().tobuf(tarfile.GNU_FORMAT) + b"\0" * 1024)
    with pytest.raises(CacheError, match="claims 1099511627776 bytes"):
        cache.import_archive(archive)


def test_a_file_that_is_not_an_archive(cache: Cache, tmp_path: Path) -> None:
    (tmp_path / "not.tar").write_bytes(b"hello" * 200)
    with pytest.raises(CacheError, match="is not a tar archive"):
        cache.import_archive(tmp_path / "not.tar")
    with pytest.raises(CacheError, match="does not exist"):
        cache.import_archive(tmp_path / "absent.tar")
    empty = write_tar(tmp_path / "empty.tar", [(entry("readme"), b"hi")])
    with pytest.raises(CacheError, match="neither an OCI image layout nor a docker archive"):
        cache.import_archive(empty)


@pytest.mark.parametrize("compress", [False, True])
def test_a_truncated_archive_is_damaged(
    cache: Cache, alpine: Built, tmp_path: Path, compress: bool
) -> None:
    whole = io.BytesIO()
    cache.export("alpine:3.20", whole)
    with tarfile.open(fileobj=io.BytesIO(whole.getvalue())) as tar:
        cut = tar.getmember("index.json").offset_data + 10  # inside the last document
    data = whole.getvalue()[:cut]
    if compress:  # an interrupted download of a compressed archive
        data = gzip.compress(whole.getvalue())
        data = data[: len(data) // 2]
    (tmp_path / "cut.tar").write_bytes(data)
    other = Cache.open(tmp_path / "other")
    with pytest.raises(CacheError, match="is damaged"):
        other.import_archive(tmp_path / "cut.tar")
    assert other.refs() == {}


def test_a_docker_archive_whose_layer_does_not_match_its_config(
    cache: Cache, tmp_path: Path
) -> None:
    image = without_platform(make_image())
    manifest = json.loads(image.blobs[image.digest])
    config = image.blobs[manifest["config"]["digest"]]
    item = {"Config": "config.json", "RepoTags": ["x:1"], "Layers": ["layer.tar"]}
    archive = write_tar(
        tmp_path / "docker.tar",
        [
            (entry("config.json"), config),
            (entry("layer.tar"), b"not the layer the config describes"),
            (entry("manifest.json"), json.dumps([item]).encode()),
        ],
    )
    with pytest.raises(CacheError, match="does not match its config"):
        cache.import_archive(archive)
    assert cache.refs() == {}
    descriptor = Descriptor.model_validate(manifest["layers"][0])
    assert not cache.has_blob(descriptor.digest)


def test_a_classic_docker_archive_with_a_multi_member_gzip_layer(
    cache: Cache, tmp_path: Path
) -> None:
    """Layers compressed by parallel tools are several gzip members, sometimes zero-padded;
    legacy ``<id>/layer.tar`` paths are links to the layer file."""
    raw = tar_bytes({"etc/a": b"a" * 5000, "etc/b": b"b" * 5000})
    layer = gzip.compress(raw[:4096]) + gzip.compress(raw[4096:]) + b"\0" * 512
    config = json.dumps(
        {
            "architecture": "arm64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(raw)]},
        }
    ).encode()
    item = {"Config": "cfg.json", "RepoTags": ["example.com/multi:1"], "Layers": ["abc/layer.tar"]}
    archive = write_tar(
        tmp_path / "classic.tar",
        [
            (entry("layer.tgz"), layer),
            (entry("abc/layer.tar", tarfile.SYMTYPE, "../layer.tgz"), None),
            (entry("cfg.json"), config),
            (entry("manifest.json"), json.dumps([item]).encode()),
        ],
    )
    (imported,) = cache.import_archive(archive)
    assert (imported.name, imported.platforms) == ("example.com/multi:1", ("linux/arm64",))
    assert cache.has_blob(digest_of(layer))
    assert cache.verify() == []
