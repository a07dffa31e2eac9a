"""kitdsl build, end to end: images pushed to the real registry, outputs read back with tarfile
and GNU cpio."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kitdsl.assemble.runtime_config import bundle_config
from kitdsl.dsl.system import Section
from kitdsl.load import load_system
from kitdsl.oci.image_config import ImageConfig
from kitdsl.oci.store import ContentStore
from tests.images import add_image, tar_bytes
from tests.registry import (  # noqa: F401 (registry_fixture is a fixture)
    RegistryServer,
    make_client,
    registry_fixture,
)

Project = Callable[[dict[str, str]], Path]
KERNEL = b"not really a kernel\n" * 100
MODULES = tar_bytes({"lib/modules/x/modules.dep": b"kernel/x.ko:\n"})
DEFAULT_MTIME = 1492533000
CONFIGS: dict[str, str] = {}
"""Image name → the digest of its configuration, as pushed."""


def kitdsl(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitdsl", *args, "--cache", str(root / "cache")],
        cwd=cwd or root,
        capture_output=True,
        text=True,
        check=False,
    )


def push(registry: RegistryServer, store: ContentStore, name: str, files: dict[str, bytes]) -> str:
    image = add_image(store, platform="linux/amd64", layers=[files])
    with make_client() as client:
        client.push(f"{registry.host}/{name}", store, image.manifest)
    return image.config.digest


SYSTEM = """
from kitdsl import File, Kernel, Onboot, Service, System, Volume

system = System(
    kernel=Kernel(image="{host}/k/kernel:1", cmdline="console=ttyS0"),
    init=["{host}/k/init:1"],
    onboot=[Onboot(name="x", image="{host}/k/tool:1")],
    services=[
        Service(name="a", image="{host}/k/web:1"),
        Service(name="b", image="{host}/k/tool:1"),
    ],
    volumes=[Volume(name="data")],
    files=[
        File(path="etc/motd", contents="hello\\n", mode=0o644),
        File(path="/opt/app/secret", source="secret.txt", uid="b", gid=5),
        File(path="etc/linuxkit.yml", metadata="yaml"),
        File(path="var/empty", directory=True),
        File(path="etc/link", symlink="/etc/motd"),
        File(path="etc/absent", source="absent.txt", optional=True),
    ],
)
"""


@pytest.fixture
def root(project: Project, registry: RegistryServer, tmp_path: Path) -> Path:
    store = ContentStore(tmp_path / "source")
    kernel_files = {"kernel": KERNEL, "kernel.tar": MODULES, "System.map": b"map\n"}
    push(registry, store, "k/kernel:1", kernel_files)
    push(registry, store, "k/init:1", {"sbin/init": b"#!/bin/sh\n", "etc/issue": b"hi\n"})
    CONFIGS["tool"] = push(registry, store, "k/tool:1", {"bin/tool": b"tool\n"})
    CONFIGS["web"] = push(registry, store, "k/web:1", {"srv/index.html": b"<h1>hi</h1>\n"})
    return project(
        {"s.py": SYSTEM.format(host=registry.host), "secret.txt": "s3cret\n"},
    )


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {info.name: info for info in tar.getmembers()}


def read(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


@pytest.mark.slow
def test_build_writes_linuxkit_layout(root: Path, tmp_path: Path) -> None:
    built = kitdsl(root, "build", "s.py", "-f", "tar", "-f", "kernel+initrd", "-o", "out")
    assert built.returncode == 0, built.stderr
    assert "absent.txt" in built.stderr  # the optional source is skipped with a warning
    out = root / "out"
    assert sorted(built.stdout.split()) == sorted(
        str(Path("out") / name) for name in ("s.tar", "s-kernel", "s-initrd.img", "s-cmdline")
    )
    tar = out / "s.tar"
    entries = members(tar)

    # The kernel parts, and kernel.tar unpacked into the root; nothing else of the image.
    assert read(tar, "boot/kernel") == KERNEL == (out / "s-kernel").read_bytes()
    assert read(tar, "boot/cmdline") == b"console=ttyS0"
    assert read(tar, "lib/modules/x/modules.dep") == b"kernel/x.ko:\n"
    assert "System.map" not in entries and "kernel.tar" not in entries

    # Init images go to the root, changed as LinuxKit changes them.
    assert read(tar, "sbin/init") == b"#!/bin/sh\n"
    assert entries["etc/resolv.conf"].linkname == "/run/resolvconf/resolv.conf"

    # A blank volume: its directories only.
    for name in ("lower", "tmp", "merged"):
        assert entries[f"containers/volumes/data/{name}"].isdir()

    # Bundles: the shared image is extracted once, into its first user.
    system = load_system([str(root / "s.py")])
    store = ContentStore(root / "cache")
    assert read(tar, "containers/onboot/000-x/lower/bin/tool") == b"tool\n"
    assert read(tar, "containers/services/a/lower/srv/index.html") == b"<h1>hi</h1>\n"
    assert not any(name.startswith("containers/services/b/lower") for name in entries)
    for name in ("tmp", "rootfs"):
        assert entries[f"containers/services/b/{name}"].isdir()
    runtime_b = read(tar, "containers/services/b/runtime.json").decode()
    assert "lowerdir=/containers/onboot/000-x/lower" in runtime_b
    bundles: list[tuple[Section, int, str, str]] = [
        ("services", 0, "services/a", "web"),
        ("onboot", 0, "onboot/000-x", "tool"),
    ]
    for section, index, bundle, image in bundles:
        image_config = ImageConfig.parse(store.read_blob(CONFIGS[image]))
        expected = bundle_config(system, section, index, image_config)
        assert read(tar, f"containers/{bundle}/config.json") == expected.config_json
        assert read(tar, f"containers/{bundle}/runtime.json") == expected.runtime_json
        for name in ("config.json", "runtime.json"):
            info = entries[f"containers/{bundle}/{name}"]
            assert (info.mode, info.mtime, info.uid) == (0o644, DEFAULT_MTIME, 0)

    # The files section, after everything else.
    motd = entries["etc/motd"]
    assert (motd.mode, read(tar, "etc/motd")) == (0o644, b"hello\n")
    secret = entries["opt/app/secret"]
    assert (secret.mode, secret.uid, secret.gid) == (0o600, 102, 5)
    assert read(tar, "opt/app/secret") == b"s3cret\n"
    for parent in ("opt", "opt/app"):
        info = entries[parent]
        assert (info.isdir(), info.mode, info.uid, info.gid) == (True, 0o700, 102, 5)
    assert (entries["var/empty"].isdir(), entries["var/empty"].mode) == (True, 0o700)
    assert entries["etc/link"].issym() and entries["etc/link"].linkname == "/etc/motd"
    assert "etc/absent" not in entries
    assert b"path: etc/motd" in read(tar, "etc/linuxkit.yml")
    with tarfile.open(tar) as archive:
        names = archive.getnames()
    assert names.count("etc") == 1  # the init image made it; the files section did not redo it
    assert names.index("containers/services/b/runtime.json") < names.index("etc/motd")

    # The initrd holds the same root file system, without boot/.
    listing = subprocess.run(
        f"zcat {out / 's-initrd.img'} | cpio -t --quiet",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(listing) == {name for name in names if not name.startswith("boot")}
    assert (out / "s-cmdline").read_text() == "console=ttyS0"

    # The same inputs give the same bytes, from another folder too.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    formats = ("-f", "tar", "-f", "kernel+initrd")
    again = kitdsl(root, "build", str(root / "s.py"), *formats, "-o", str(root), cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    for name in ("s.tar", "s-kernel", "s-initrd.img", "s-cmdline"):
        assert (root / name).read_bytes() == (out / name).read_bytes(), name

    # ... and with another umask, one job at a time, into a fresh cache.
    other = tmp_path / "other"
    other.mkdir()
    strict = subprocess.run(
        [
            sys.executable,
            "-m",
            "kitdsl",
            "build",
            str(root / "s.py"),
            *formats,
            "-o",
            str(other),
            "--jobs",
            "1",
            "--cache",
            str(tmp_path / "fresh-cache"),
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: os.umask(0o077),
    )
    assert strict.returncode == 0, strict.stderr
    for name in ("s.tar", "s-kernel", "s-initrd.img", "s-cmdline"):
        assert (other / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.slow
def test_kernel_image_without_kernel(
    project: Project, registry: RegistryServer, tmp_path: Path
) -> None:
    push(registry, ContentStore(tmp_path / "src"), "k/nokernel:1", {"vmlinuz": b"x"})
    root = project(
        {
            "s.py": f"""
                from kitdsl import Kernel, System

                system = System(kernel=Kernel(image="{registry.host}/k/nokernel:1"))
            """
        }
    )
    built = kitdsl(root, "build", "s.py")
    assert built.returncode == 7, built.stderr
    assert f"{registry.host}/k/nokernel:1" in built.stderr
    assert "no file 'kernel'" in built.stderr and "vmlinuz" in built.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("modules", "problem"),
    [
        ({"../../etc/evil": b"x"}, "etc/evil"),
        ({"/abs/evil": b"x"}, "abs/evil"),
    ],
)
def test_hostile_kernel_tar_is_refused(
    project: Project,
    registry: RegistryServer,
    tmp_path: Path,
    modules: dict[str, bytes],
    problem: str,
) -> None:
    name = f"k/hostile{len(problem)}:1"
    files = {"kernel": KERNEL, "kernel.tar": tar_bytes(modules)}
    push(registry, ContentStore(tmp_path / "src"), name, files)
    root = project(
        {
            "s.py": f"""
                from kitdsl import Kernel, System

                system = System(kernel=Kernel(image="{registry.host}/{name}"))
            """
        }
    )
    built = kitdsl(root, "build", "s.py", "-f", "tar", "-o", "out")
    assert built.returncode == 7, built.stderr
    assert "kernel.tar" in built.stderr and problem in built.stderr
    assert not (root / "out" / "s.tar").exists()


@pytest.mark.slow
def test_missing_file_source_names_the_line(project: Project, registry: RegistryServer) -> None:
    root = project(
        {
            "s.py": """
                from kitdsl import File, System

                system = System(
                    files=[
                        File(path="etc/x", source="nowhere.txt"),
                    ],
                )
            """
        }
    )
    built = kitdsl(root, "build", "s.py", "-f", "tar")
    assert built.returncode == 3, built.stderr
    line = next(
        number
        for number, text in enumerate((root / "s.py").read_text().splitlines(), 1)
        if "nowhere.txt" in text
    )
    assert f"s.py:{line}" in built.stderr and "nowhere.txt" in built.stderr
    assert not (root / "s.tar").exists()


def test_file_paths_are_normalised() -> None:
    from kitdsl import File, System
    from kitdsl.assemble.rootfs_files import file_entries, plan_files

    system = System(
        files=[
            File(path="./etc/motd", contents="hi\n", mode=0o644),
            File(path="usr//lib/x", contents="x"),
        ]
    )
    names = [entry.info.name for entry in file_entries(system, plan_files(system), set())]
    assert names == ["etc", "etc/motd", "usr", "usr/lib", "usr/lib/x"]


@pytest.mark.slow
def test_rebuilds_redo_only_what_changed(root: Path, tmp_path: Path) -> None:
    formats = ("-f", "kernel+initrd", "-f", "tar")
    outputs = ("s-kernel", "s-initrd.img", "s-cmdline", "s.tar")
    first = kitdsl(root, "build", "s.py", *formats, "-o", "out")
    assert first.returncode == 0, first.stderr
    out = root / "out"
    stamps = {name: (out / name).stat().st_mtime_ns for name in outputs}

    # Nothing changed: nothing is written again, and the same files are named.
    again = kitdsl(root, "build", "s.py", *formats, "-o", "out")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert {name: (out / name).stat().st_mtime_ns for name in outputs} == stamps

    # One service changes: the outputs are those a build from scratch gives.
    system = root / "s.py"
    system.write_text(
        system.read_text().replace(
            'Service(name="b", image=', 'Service(name="b", env=["MODE=fast"], image='
        )
    )
    changed = kitdsl(root, "build", "s.py", *formats, "-o", "out")
    assert changed.returncode == 0, changed.stderr
    scratch = kitdsl(root, "build", "s.py", *formats, "-o", "scratch", "--rebuild")
    assert scratch.returncode == 0, scratch.stderr
    for name in outputs:
        assert (out / name).read_bytes() == (root / "scratch" / name).read_bytes(), name
    assert b"MODE=fast" in read(out / "s.tar", "containers/services/b/config.json")

    # A changed file source, and an output changed behind kitdsl's back, are noticed.
    (root / "secret.txt").write_text("n3w\n")
    (out / "s-cmdline").write_text("tampered")
    rebuilt = kitdsl(root, "build", "s.py", *formats, "-o", "out")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert read(out / "s.tar", "opt/app/secret") == b"n3w\n"
    assert (out / "s-cmdline").read_text() == "console=ttyS0"

    # --rebuild runs every step again, even with nothing changed.
    before = (out / "s.tar").stat().st_mtime_ns
    forced = kitdsl(root, "build", "s.py", *formats, "-o", "out", "--rebuild")
    assert forced.returncode == 0, forced.stderr
    assert (out / "s.tar").stat().st_mtime_ns != before
