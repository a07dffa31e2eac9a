"""The ``docker`` format against a real Docker engine: the file, the image, its contents."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from kitdsl.errors import OutputError
from kitdsl.outputs import DEFAULT_MTIME, Boot, Entry, Target, write_outputs
from kitdsl.outputs.docker import DOCKERFILE, image_tag, load_image
from tests.dockerd import dockerd  # noqa: F401 (a fixture)

KERNEL = b"MZ not really a kernel" * 100
INIT = b"#!/bin/sh\nexec /sbin/init\n"


def make_rootfs() -> list[Entry]:
    """Files, owners, links, a device, a fifo and a unicode name, with LinuxKit's records."""
    source = {"LINUXKIT.source": "example/init:1", "LINUXKIT.location": "init"}
    init = Entry.file("bin/rc.init", INIT, mode=0o755)
    init.info.pax_headers = dict(source)
    return [
        Entry.directory("bin"),
        init,
        Entry.file("bin/busybox", b"\x7fELF" * 1000, mode=0o644),
        Entry.hardlink("bin/sh", "bin/busybox"),
        Entry.symlink("bin/ls", "busybox"),
        Entry.directory("dev"),
        Entry.device("dev/kmsg", "char", 1, 11, mode=0o644),
        Entry.directory("etc"),
        Entry.file("etc/ünïcødé", b"odd\n", uid=1000, gid=100, mtime=1_600_000_000),
        Entry.directory("run"),
        Entry.fifo("run/initctl", mode=0o600),
        Entry.directory("srv", mode=0o1777, uid=33, gid=33),
    ]


def build(folder: Path, name: str = "box") -> list[Path]:
    boot = Boot(kernel=KERNEL, cmdline="console=ttyS0")
    return write_outputs(["docker"], iter(make_rootfs()), boot, Target(folder, name))


def exported(client: docker.DockerClient, tag: str) -> dict[str, tarfile.TarInfo]:
    """The image's file system as ``docker create`` + ``docker export`` give it."""
    container = client.containers.create(tag)
    try:
        data = b"".join(container.export())
    finally:
        container.remove()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {member.name: member for member in tar.getmembers()}
        member = tar.extractfile("bin/rc.init")
        assert member is not None and member.read() == INIT
    return members


@pytest.fixture
def engine(dockerd: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[docker.DockerClient]:  # noqa: F811
    monkeypatch.setenv("DOCKER_HOST", dockerd)
    client = docker.DockerClient(base_url=dockerd)
    yield client
    client.close()


@pytest.mark.slow
def test_the_image_is_in_the_engine_with_the_system_s_files(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    (written,) = build(tmp_path, "Edge Box")
    assert written == tmp_path / "Edge Box.docker"
    image = engine.images.get("edge-box:latest")
    assert image.attrs["Config"]["Entrypoint"] == ["/bin/rc.init"]
    assert image.attrs["Created"] == "2017-04-18T16:30:00Z"
    assert image.attrs["Architecture"] == engine.version()["Arch"]
    files = exported(engine, "edge-box:latest")
    assert stat.S_IMODE(files["bin/rc.init"].mode) == 0o755
    assert (files["bin/sh"].type, files["bin/sh"].linkname) == (tarfile.LNKTYPE, "bin/busybox")
    assert files["bin/ls"].linkname == "busybox"
    assert (files["dev/kmsg"].devmajor, files["dev/kmsg"].devminor) == (1, 11)
    assert files["run/initctl"].isfifo()
    unicode = files["etc/ünïcødé"]
    assert (unicode.uid, unicode.gid, unicode.mtime) == (1000, 100, 1_600_000_000)  # kept
    assert (stat.S_IMODE(files["srv"].mode), files["srv"].uid) == (0o1777, 33)
    assert files["boot/kernel"].size == len(KERNEL)  # what `docker build` of the file gives
    assert files["Dockerfile"].size == len(DOCKERFILE)


@pytest.mark.slow
def test_the_same_system_gives_the_same_image_id(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    build(tmp_path / "first")
    first = engine.images.get("box:latest").id
    engine.images.remove("box:latest")
    build(tmp_path / "second")
    assert engine.images.get("box:latest").id == first
    changed = [*make_rootfs(), Entry.file("etc/motd", b"hello\n")]
    boot = Boot(kernel=KERNEL, cmdline="console=ttyS0")
    write_outputs(["docker"], changed, boot, Target(tmp_path / "third", "box"))
    assert engine.images.get("box:latest").id != first


@pytest.mark.slow
def test_load_image_takes_any_root_file_system_tar(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    archive = tmp_path / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("bin/rc.init")
        info.size, info.mode, info.mtime = len(INIT), 0o755, DEFAULT_MTIME
        tar.addfile(info, io.BytesIO(INIT))
    image_id = load_image(archive, "plain:1", client=engine)
    assert engine.images.get("plain:1").id == image_id
    assert set(exported(engine, "plain:1")) >= {"bin", "bin/rc.init"}


def test_the_file_is_the_tar_format_with_a_dockerfile_even_without_an_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"unix://{tmp_path}/no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", address)
    with pytest.raises(OutputError, match=f"no Docker engine answers at {address}") as caught:
        build(tmp_path / "d")
    assert "DOCKER_HOST" in str(caught.value.hint)
    assert "docker import --change 'ENTRYPOINT [\"/bin/rc.init\"]'" in str(caught.value.hint)
    (tarred,) = write_outputs(
        ["tar"], make_rootfs(), Boot(kernel=KERNEL, cmdline="console=ttyS0"), Target(tmp_path, "t")
    )
    assert os.listdir(tmp_path / "d") == ["box.docker"]  # complete, for a later `docker import`
    with tarfile.open(tmp_path / "d" / "box.docker") as file, tarfile.open(tarred) as plain:
        names = file.getnames()
        assert names[:-1] == plain.getnames()
        assert names[-1] == "Dockerfile"
        last = file.getmember("Dockerfile")
        assert not last.pax_headers  # as LinuxKit writes it
        data = file.extractfile(last)
        assert data is not None and data.read() == DOCKERFILE


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("box", "box:latest"),
        ("Edge Box", "edge-box:latest"),
        ("edge_v2.1", "edge_v2.1:latest"),
        ("my--system", "my--system:latest"),
        ("-a..b_-c__d-", "a-b-c__d:latest"),
    ],
)
def test_image_tag(name: str, tag: str) -> None:
    assert image_tag(name) == tag


def test_a_name_docker_cannot_use_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot make a Docker image name from '…'"):
        build(tmp_path, "…")
    assert os.listdir(tmp_path) == []
