"""--docker: images in a real local Docker engine are used without a registry."""

from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path

import docker
import pytest

from kitdsl.oci.cache import Cache
from kitdsl.oci.docker_source import DockerSource
from kitdsl.oci.media import Manifest, Platform
from tests.dockerd import dockerd  # noqa: F401 (a fixture)

AMD64 = Platform(os="linux", architecture="amd64")


def rootfs(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def engine(dockerd: str) -> docker.DockerClient:  # noqa: F811
    client = docker.DockerClient(base_url=dockerd)
    client.api.import_image_from_data(
        rootfs({"etc/motd": b"from the engine\n", "bin/tool": b"#!/bin/sh\necho hi\n"}),
        repository="registry.example/team/tool",
        tag="1",
    )
    return client


@pytest.mark.slow
def test_image_from_the_engine_lands_in_the_cache(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    cache = Cache.open(tmp_path / "cache")
    source = DockerSource(cache, client=engine)
    descriptor = source.lookup("registry.example/team/tool:1", AMD64)
    assert descriptor is not None
    assert cache.get_ref("registry.example/team/tool:1") is None  # not what the tag means
    manifest = Manifest.model_validate_json(cache.read_blob(descriptor.digest))
    assert len(manifest.layers) == 1
    layer = cache.read_blob(manifest.layers[0].digest)
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:*") as tar:
        member = tar.extractfile("etc/motd")
        assert member is not None and member.read() == b"from the engine\n"
    assert cache.verify() == []
    assert cache.ls() == []


@pytest.mark.slow
def test_missing_image_or_other_platform_is_left_to_registries(
    engine: docker.DockerClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = DockerSource(Cache.open(tmp_path / "cache"), client=engine)
    assert source.lookup("registry.example/team/absent:1", AMD64) is None
    with caplog.at_level(logging.WARNING, logger="kitdsl"):
        arm = Platform(os="linux", architecture="arm64")
        assert source.lookup("registry.example/team/tool:1", arm) is None
    assert "for linux/amd64, not linux/arm64" in caplog.text


def test_no_engine_is_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = DockerSource(Cache.open(tmp_path / "cache"), base_url=f"unix://{tmp_path}/none.sock")
    with caplog.at_level(logging.WARNING, logger="kitdsl"):
        assert source.lookup("alpine:3.20", AMD64) is None
        assert source.lookup("alpine:3.21", AMD64) is None
    assert caplog.text.count("no Docker engine answers") == 1
