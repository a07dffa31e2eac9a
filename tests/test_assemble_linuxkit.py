"""The root file system as LinuxKit lays it out: metadata files, the kernel's mode, builds for
another architecture, SOURCE_DATE_EPOCH, volumes filled from images (filesystem and OCI
layout), the merged APK database. Images are pushed to the real registry; outputs are read
back with tarfile, skopeo and umoci."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from kitdsl.assemble.epoch import generated_mtime
from kitdsl.assemble.metadata import metadata_bytes
from kitdsl.assemble.rootfs import assemble
from kitdsl.dsl import File, Kernel, Onboot, Service, System, Volume
from kitdsl.errors import UsageError
from kitdsl.images import ImageOptions, pull_system
from kitdsl.load import load_system
from kitdsl.load.linuxkit_yaml import parse_linuxkit_yaml
from kitdsl.manifest import tar_manifest
from kitdsl.oci.cache import Cache
from kitdsl.oci.media import Platform
from kitdsl.oci.store import ContentStore
from kitdsl.outputs.tar import write_tar
from tests.images import Image, add_image, add_index, gzip_bytes
from tests.registry import (  # noqa: F401 (registry_fixture is a fixture)
    RegistryServer,
    make_client,
    registry_fixture,
)

Project = Callable[[dict[str, str]], Path]
DEFAULT_MTIME = 1492533000
NEWER = 1_800_000_000
"""A layer entry's time later than the SOURCE_DATE_EPOCH used below."""
EPOCH = 1_700_000_000
KERNEL = b"not really a kernel\n" * 50

FileSpec = bytes | tuple[bytes, int, int]
"""A file's contents, or (contents, mode, mtime)."""


def layer(files: Mapping[str, FileSpec]) -> bytes:
    """A gzip'd layer; each file 0644 dated DEFAULT_MTIME unless given as a tuple."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            spec = files[name]
            data, mode, mtime = spec if isinstance(spec, tuple) else (spec, 0o644, DEFAULT_MTIME)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            archive.addfile(info, io.BytesIO(data))
    return gzip_bytes(buffer.getvalue())


def push(
    registry: RegistryServer,
    store: ContentStore,
    name: str,
    files: Mapping[str, FileSpec],
    *,
    platforms: tuple[str, ...] = ("linux/amd64",),
) -> dict[str, Image]:
    """Push an image (an index when several platforms are given, each platform's files
    holding ``etc/arch``); return the image of each platform."""
    images = {}
    for platform in platforms:
        arch = {"etc/arch": platform.encode()} if len(platforms) > 1 else {}
        images[platform] = add_image(store, platform=platform, layers=[layer({**files, **arch})])
    root = (
        add_index(store, list(images.values()))
        if len(platforms) > 1
        else images[platforms[0]].manifest
    )
    with make_client() as client:
        client.push(f"{registry.host}/{name}", store, root)
    return images


def kitdsl(
    root: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitdsl", *args, "--cache", str(root / "cache")],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def last(path: Path) -> dict[str, tarfile.TarInfo]:
    """Each path's last entry, as unpacking keeps it."""
    return {info.name: info for info in members(path)}


def read(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        found = [info for info in tar.getmembers() if info.name == name]
        handle = tar.extractfile(found[-1])
        assert handle is not None
        return handle.read()


def build(root: Path, out: str = "out", env: Mapping[str, str] | None = None) -> Path:
    """``kitdsl build s.py -f tar -o OUT``: the tar written."""
    built = kitdsl(root, "build", "s.py", "-f", "tar", "-o", out, env=env)
    assert built.returncode == 0, built.stderr
    return root / out / "s.tar"


# --- metadata -------------------------------------------------------------------------------

METADATA_SYSTEM = """
from kitdsl import File, Kernel, Onboot, Service, System, Volume

system = System(
    kernel=Kernel(image="{host}/md/kernel:1", cmdline="console=ttyS0", tar=None),
    init=["{host}/md/init:1"],
    onboot=[Onboot(name="setup", image="{host}/md/tool:1", command=["/bin/tool", "--once"])],
    services=[
        Service(name="web", image="{host}/md/tool:1", capabilities=[], binds=["data:/data"]),
    ],
    volumes=[Volume(name="data", image="{host}/md/data:1")],
    files=[
        File(path="/etc/motd", contents="hello\\nworld\\n", mode=0o644),
        File(path="etc/linuxkit.yml", metadata="yaml"),
        File(path="etc/linuxkit.json", metadata="json"),
    ],
)
"""


@pytest.mark.slow
def test_metadata_names_the_images_built(
    project: Project, registry: RegistryServer, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "source")
    host = registry.host
    digests = {
        name: push(registry, store, f"md/{name}:1", files)["linux/amd64"].manifest.digest
        for name, files in {
            "kernel": {"kernel": KERNEL},
            "init": {"sbin/init": b"#!/bin/sh\n"},
            "tool": {"bin/tool": b"tool\n"},
            "data": {"srv/data": b"data\n"},
        }.items()
    }
    root = project({"s.py": METADATA_SYSTEM.format(host=host)})
    tar = build(root)

    text = read(tar, "etc/linuxkit.yml").decode()
    assert text == textwrap.dedent(f"""\
        kernel:
          image: {host}/md/kernel:1@{digests["kernel"]}
          cmdline: console=ttyS0
          tar: none
        init:
        - {host}/md/init:1@{digests["init"]}
        onboot:
        - name: setup
          image: {host}/md/tool:1@{digests["tool"]}
          command:
          - /bin/tool
          - --once
        onshutdown: []
        services:
        - name: web
          image: {host}/md/tool:1@{digests["tool"]}
          capabilities: []
          binds:
          - data:/data
        files:
        - path: /etc/motd
          directory: false
          contents: |
            hello
            world
          optional: false
          mode: "0644"
        - path: etc/linuxkit.yml
          directory: false
          metadata: yaml
          optional: false
        - path: etc/linuxkit.json
          directory: false
          metadata: json
          optional: false
        volumes:
        - name: data
          image: {host}/md/data:1@{digests["data"]}
        """)

    # Read back, the file describes the same system, pinned to what was built.
    again = parse_linuxkit_yaml(text)
    assert again.services[0].image == f"{host}/md/tool:1@{digests['tool']}"
    assert [file.path for file in again.files] == [file.path for file in load_files(root)]

    document = json.loads(read(tar, "etc/linuxkit.json"))
    assert list(document) == [
        "kernel",
        "init",
        "onboot",
        "onshutdown",
        "services",
        "files",
        "volumes",
    ]
    assert document["onshutdown"] == []
    assert document["init"] == [f"{host}/md/init:1@{digests['init']}"]
    assert list(document["files"][0]) == ["path", "directory", "contents", "optional", "mode"]
    assert not read(tar, "etc/linuxkit.json").endswith(b"\n")  # Go's MarshalIndent


def load_files(root: Path) -> list[File]:
    return load_system([str(root / "s.py")]).files


def test_metadata_yaml_quotes_as_yaml_v2() -> None:
    system = System(
        onboot=[
            Onboot(
                name="x",
                image="alpine:3.20",
                command=["yes", "y", "0644", "1:20", "", "true", "a: b", "plain"],
                cwd="",
            )
        ],
        files=[File(path="etc/flag", contents="on")],
    )
    text = metadata_bytes(system, "yaml").decode()
    assert text == textwrap.dedent("""\
        init: []
        onboot:
        - name: x
          image: docker.io/library/alpine:3.20
          command:
          - "yes"
          - "y"
          - "0644"
          - "1:20"
          - ""
          - "true"
          - 'a: b'
          - plain
        onshutdown: []
        services: []
        files:
        - path: etc/flag
          directory: false
          contents: "on"
          optional: false
        volumes: []
        """)
    assert parse_linuxkit_yaml(text).onboot[0].command == system.onboot[0].command


# --- the kernel's mode, another architecture --------------------------------------------------


@pytest.mark.slow
def test_boot_kernel_keeps_its_mode(
    project: Project, registry: RegistryServer, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "source")
    push(registry, store, "km/kernel:1", {"kernel": (KERNEL, 0o755, DEFAULT_MTIME)})
    root = project(
        {
            "s.py": f"""
                from kitdsl import Kernel, System

                system = System(kernel=Kernel(image="{registry.host}/km/kernel:1", tar=None))
            """
        }
    )
    kernel = last(build(root))["boot/kernel"]
    assert (kernel.mode, kernel.mtime) == (0o755, DEFAULT_MTIME)


CROSS_SYSTEM = """
from kitdsl import Service, System, Volume

system = System(
    init=["{host}/xa/init:1"],
    services=[Service(name="app", image="{host}/xa/app:1")],
    volumes=[Volume(name="images", image="{host}/xa/app:1", format="oci")],
)
"""


@pytest.mark.slow
def test_build_for_another_architecture(
    project: Project, registry: RegistryServer, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "source")
    both = ("linux/amd64", "linux/arm64")
    push(registry, store, "xa/init:1", {"sbin/init": b"#!/bin/sh\n"}, platforms=both)
    app = push(registry, store, "xa/app:1", {"bin/app": b"app\n"}, platforms=both)
    root = project({"s.py": CROSS_SYSTEM.format(host=registry.host)})

    # The command line: every image is the arm64 one.
    built = kitdsl(root, "build", "s.py", "-f", "tar", "-o", "out", "--arch", "arm64")
    assert built.returncode == 0, built.stderr
    tar = root / "out" / "s.tar"
    assert read(tar, "etc/arch") == b"linux/arm64"
    assert read(tar, "containers/services/app/lower/etc/arch") == b"linux/arm64"
    assert "holds the build's platform only" in built.stderr

    # The library: the volume's OCI layout is the target's, not this machine's.
    arm64 = Platform.parse("linux/arm64")
    system = load_system([str(root / "s.py")])
    options = ImageOptions(cache_dir=root / "cache", platform=arm64)
    pulled = pull_system(system, options)
    cache = Cache.open(root / "cache")
    spool = tmp_path / "arm64.tar"
    with (
        assemble(system, pulled, cache, platform=arm64) as (boot, rootfs),
        spool.open("wb") as out,
    ):
        write_tar(rootfs, boot, out)
    lower = "containers/volumes/images/lower"
    index_json = json.loads(read(spool, f"{lower}/index.json"))
    inner = index_json["manifests"][0]["digest"].removeprefix("sha256:")
    inner_index = json.loads(read(spool, f"{lower}/blobs/sha256/{inner}"))
    [manifest] = inner_index["manifests"]
    assert manifest["digest"] == app["linux/arm64"].manifest.digest
    assert manifest["platform"] == {"architecture": "arm64", "os": "linux"}


# --- SOURCE_DATE_EPOCH ------------------------------------------------------------------------

EPOCH_SYSTEM = """
from kitdsl import File, Kernel, Service, System, Volume

system = System(
    kernel=Kernel(image="{host}/sde/kernel:1"),
    init=["{host}/sde/init:1"],
    services=[Service(name="app", image="{host}/sde/app:1")],
    volumes=[Volume(name="data")],
    files=[File(path="etc/motd", contents="hi\\n")],
)
"""


@pytest.mark.slow
def test_source_date_epoch_dates_made_up_entries(
    project: Project, registry: RegistryServer, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "source")
    modules = io.BytesIO()
    with tarfile.open(fileobj=modules, mode="w") as archive:
        info = tarfile.TarInfo("lib/modules/6.1/modules.dep")  # lib/ and lib/modules: implied
        info.mtime = NEWER
        archive.addfile(info, io.BytesIO(b""))
    push(registry, store, "sde/kernel:1", {"kernel": KERNEL, "kernel.tar": modules.getvalue()})
    push(registry, store, "sde/init:1", {"sbin/init": (b"#!/bin/sh\n", 0o755, NEWER)})
    push(registry, store, "sde/app:1", {"bin/app": (b"app\n", 0o755, NEWER)})
    root = project({"s.py": EPOCH_SYSTEM.format(host=registry.host)})

    plain = last(build(root, "plain"))
    dated = last(build(root, "dated", env={"SOURCE_DATE_EPOCH": str(EPOCH)}))
    made_up = [
        "containers/services/app/config.json",
        "containers/services/app/runtime.json",
        "containers/services/app/tmp",
        "containers/services/app/lower/etc/hosts",
        "containers/volumes/data/tmp",
        "etc/hosts",
        "etc/motd",
        "lib",
        "lib/modules",
        "lib/modules/6.1",
    ]
    for name in made_up:
        assert plain[name].mtime == DEFAULT_MTIME, name
        assert dated[name].mtime == EPOCH, name
    # Image entries keep their own times, even newer ones: no clamping.
    images = ("sbin/init", "containers/services/app/lower/bin/app", "lib/modules/6.1/modules.dep")
    for name in images:
        assert dated[name].mtime == plain[name].mtime == NEWER, name

    # A third build reuses the cached segments only where the time matches.
    again = last(build(root, "again", env={"SOURCE_DATE_EPOCH": str(EPOCH + 1)}))
    assert {again[name].mtime for name in made_up} == {EPOCH + 1}

    refused = kitdsl(root, "build", "s.py", "-o", "bad", env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert refused.returncode == 2, refused.stderr
    assert "SOURCE_DATE_EPOCH='yesterday'" in refused.stderr


def test_generated_mtime_reads_source_date_epoch() -> None:
    assert generated_mtime({}) == DEFAULT_MTIME
    assert generated_mtime({"SOURCE_DATE_EPOCH": ""}) == DEFAULT_MTIME
    assert generated_mtime({"SOURCE_DATE_EPOCH": "0"}) == 0
    assert generated_mtime({"SOURCE_DATE_EPOCH": "1700000000"}) == 1_700_000_000
    for bad in ("-1", "1.5", "１２", str(1 << 32), " 1"):
        with pytest.raises(UsageError):
            generated_mtime({"SOURCE_DATE_EPOCH": bad})


# --- volumes ---------------------------------------------------------------------------------

VOLUME_SYSTEM = """
from kitdsl import Service, System, Volume

system = System(
    services=[Service(name="app", image="{host}/vol/app:1", binds=["conf:/etc/app:ro"])],
    volumes=[
        Volume(name="conf", image="{host}/vol/conf:1", readonly=True),
        Volume(name="scratch"),
        Volume(
            name="images",
            image="{host}/vol/app:1",
            format="oci",
            platforms=["linux/arm64", "linux/amd64"],
        ),
    ],
)
"""


@pytest.mark.slow
def test_volumes_filled_from_images(
    project: Project, registry: RegistryServer, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "source")
    both = ("linux/amd64", "linux/arm64")
    push(registry, store, "vol/conf:1", {"etc/app.conf": b"x=1\n", "etc/resolv.conf": b"ns\n"})
    app = push(registry, store, "vol/app:1", {"bin/app": b"app\n"}, platforms=both)
    root = project({"s.py": VOLUME_SYSTEM.format(host=registry.host)})
    tar = build(root)
    entries = last(tar)

    # filesystem: the image's files, changed as for init images; read-only: no tmp/, so the
    # init bind-mounts it read-only.
    conf = "containers/volumes/conf"
    assert read(tar, f"{conf}/lower/etc/app.conf") == b"x=1\n"
    assert entries[f"{conf}/lower/etc/resolv.conf"].linkname == "/run/resolvconf/resolv.conf"
    assert entries[f"{conf}/lower"].pax_headers["LINUXKIT.source"] == f"{registry.host}/vol/conf:1"
    assert f"{conf}/merged" in entries and f"{conf}/tmp" not in entries
    assert {f"containers/volumes/scratch/{name}" for name in ("lower", "tmp", "merged")} <= set(
        entries
    )
    config = json.loads(read(tar, "containers/services/app/config.json"))
    sources = {mount["destination"]: mount["source"] for mount in config["mounts"]}
    assert sources["/etc/app"] == "/containers/volumes/conf/merged"

    # oci: a layout skopeo reads, holding the two platforms asked for and nothing else.
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tar) as archive:
        archive.extractall(unpacked, filter="tar")
    layout = unpacked / "containers/volumes/images/lower"
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    blobs = sorted(path.name for path in (layout / "blobs/sha256").iterdir())
    wanted = {
        descriptor.digest.removeprefix("sha256:")
        for image in app.values()
        for descriptor in (image.manifest, image.config, *image.layers)
    }
    assert wanted <= set(blobs) and len(blobs) == len(wanted) + 1  # and the new index

    # Built again from the segment cache: the same bytes.
    assert build(root, "again").read_bytes() == tar.read_bytes()

    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo is not installed: apt-get install skopeo")
    name = f"{registry.host}/vol/app:1"
    for arch in ("arm64", "amd64"):
        copied = tmp_path / f"copy-{arch}"
        subprocess.run(
            [skopeo, "--override-arch", arch, "copy", f"oci:{layout}:{name}", f"dir:{copied}"],
            check=True,
            capture_output=True,
        )
        manifest = (copied / "manifest.json").read_bytes()
        assert json.loads(manifest) == json.loads(
            store.read_blob(app[f"linux/{arch}"].manifest.digest)
        )


# --- init images' APK databases ---------------------------------------------------------------

APK_SYSTEM = """
from kitdsl import System

system = System(init=[{images}])
"""


def apk_system(host: str, names: list[str]) -> str:
    return APK_SYSTEM.format(images=", ".join(f'"{host}/apk/{name}:1"' for name in names))


@pytest.mark.slow
def test_apk_databases_of_init_images_are_merged(
    project: Project, registry: RegistryServer, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "source")
    databases = {name: f"P:{name}\nV:1.0\n".encode() for name in ("base", "runc", "tools")}
    for name, database in databases.items():
        push(registry, store, f"apk/{name}:1", {"lib/apk/db/installed": database})
    push(registry, store, "apk/plain:1", {"sbin/plain": b"x\n"})
    root = project({"s.py": apk_system(registry.host, ["base", "plain", "runc"])})
    tar = build(root, "two")

    found = [info for info in members(tar) if info.name == "lib/apk/db/installed"]
    assert len(found) == 3  # each image's, then the merge, which wins when unpacked
    merged = found[-1]
    assert (
        read(tar, "lib/apk/db/installed")
        == databases["base"] + b"\n\n" + databases["runc"] + b"\n\n"
    )
    assert (merged.mode, merged.uid, merged.gid, merged.mtime) == (0o644, 0, 0, DEFAULT_MTIME)
    assert merged.pax_headers["LINUXKIT.source"] == "LINUXKIT.apkinit"
    assert merged.pax_headers["LINUXKIT.location"] == "init"

    # One more init image: the first two come from the segment cache, their databases from
    # the images again.
    (root / "s.py").write_text(apk_system(registry.host, ["base", "plain", "runc", "tools"]))
    three = build(root, "three")
    assert read(three, "lib/apk/db/installed") == b"".join(
        databases[name] + b"\n\n" for name in ("base", "runc", "tools")
    )

    # One database: nothing to merge.
    (root / "s.py").write_text(apk_system(registry.host, ["base", "plain"]))
    one = build(root, "one")
    assert [info.name for info in members(one)].count("lib/apk/db/installed") == 1
    assert tar_manifest(one).path("lib/apk/db/installed") is not None


def test_metadata_of_a_system_without_images() -> None:
    system = System(
        kernel=Kernel(cmdline="quiet"),
        services=[Service(name="s", image="example.org/s@sha256:" + "a" * 64)],
        volumes=[Volume(name="v", readonly=True)],
    )
    document = json.loads(metadata_bytes(system, "json"))
    assert document["kernel"] == {"image": "", "cmdline": "quiet"}
    assert document["services"] == [{"name": "s", "image": "example.org/s@sha256:" + "a" * 64}]
    assert document["volumes"] == [{"name": "v", "readonly": True}]


@pytest.mark.slow
def test_untagged_images_are_named_as_linuxkit_names_them(
    project: Project, registry: RegistryServer, tmp_path: Path
) -> None:
    store = ContentStore(tmp_path / "source")
    push(registry, store, "lt/app:latest", {"bin/app": b"app\n"})
    host = registry.host
    root = project(
        {
            "s.py": f"""
                from kitdsl import Service, System

                system = System(
                    init=["{host}/lt/app"],
                    services=[Service(name="a", image="{host}/lt/app")],
                )
            """
        }
    )
    tar = build(root)
    entries = last(tar)
    # LinuxKit adds no ":latest" to the LINUXKIT.source records.
    for name in ("bin/app", "containers/services/a/config.json", "containers/services/a/lower"):
        assert entries[name].pax_headers["LINUXKIT.source"] == f"{host}/lt/app", name
    assert f"[container services/a]\nimage {host}/lt/app\n" in tar_manifest(tar).to_text()
