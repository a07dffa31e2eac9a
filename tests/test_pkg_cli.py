"""kitdsl pkg show-tag | build | push, end to end: a signed test archive over HTTP, the real
reference registry, skopeo to look at what was pushed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.debian_archive import ArchiveServer, DebSpec, served_archive, shared_keys
from tests.registry import RegistryServer, registry_fixture  # noqa: F401 (a fixture)

PACKAGES = """
from kitdsl import File, Service, System
from kitdsl.pkg.package import Package

base = Package(name="base", suite="kit", security=False, debian=["busybox-static"])
web = Package(
    name="web",
    suite="kit",
    security=False,
    base=[base],
    files=[File(path="www/index.html", contents="hi\\n", mode=0o644)],
    cmd=["/bin/busybox", "httpd", "-f"],
)
system = System(services=[Service(name="web", image=web)])
"""


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArchiveServer]:
    root = tmp_path_factory.mktemp("archive")
    spec = DebSpec("busybox-static", "1:1.35.0-4", files={"bin/busybox": b"\x7fELF\n"})
    _, server = served_archive(root, packages=[spec])
    yield server
    server.stop()


@pytest.fixture
def kitdsl(
    archive: ArchiveServer, tmp_path: Path, project: Callable[[dict[str, str]], Path]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(shared_keys().keyring())
    root = project({"pkgs.py": PACKAGES})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "kitdsl",
                "pkg",
                *args,
                "--cache",
                str(tmp_path / "cache"),
                "--debian-mirror",
                archive.url,
                "--debian-keyring",
                str(keyring),
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )

    return run


@pytest.mark.slow
def test_show_tag_build_and_push(
    kitdsl: Callable[..., subprocess.CompletedProcess[str]], registry: RegistryServer
) -> None:
    tags = kitdsl("show-tag", "pkgs.py")
    assert tags.returncode == 0, tags.stderr
    lines = tags.stdout.split()
    assert [line.rsplit(":", 1)[0] for line in lines] == ["kitdsl/base", "kitdsl/web"]
    assert kitdsl("show-tag", "pkgs.py:web").stdout.split() == [lines[1]]
    assert kitdsl("show-tag", "pkgs.py:system").stdout.split() == lines  # what it uses

    built = kitdsl("build", "pkgs.py:web")
    assert built.returncode == 0, built.stderr
    assert built.stdout.splitlines() == [f"{lines[1]} built"]
    again = kitdsl("build", "pkgs.py:web")
    assert again.stdout.splitlines() == [f"{lines[1]} cached"]

    org = f"{registry.host}/team"
    pushed = kitdsl("push", "pkgs.py:web", "--org", org)
    assert pushed.returncode == 0, pushed.stderr
    tag = lines[1].rsplit(":", 1)[1]
    assert pushed.stdout.strip() == f"pushed {lines[1]} to {org}/web:{tag}"
    if shutil.which("skopeo") is None:
        pytest.skip("needs skopeo to read the pushed image back")
    inspected = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{org}/web:{tag}"],
        capture_output=True,
        text=True,
        check=True,
    )
    image = json.loads(inspected.stdout)
    assert image["Architecture"] == "amd64" and len(image["Layers"]) == 2


def test_unknown_targets_are_clear_errors(
    kitdsl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    missing = kitdsl("show-tag", "pkgs.py:nothing")
    assert missing.returncode == 2
    assert "'nothing' is not a package or a system" in missing.stderr
    assert "base, web" in missing.stderr
    nowhere = kitdsl("build", "no.such.module")
    assert nowhere.returncode == 3 and "neither a file nor an importable module" in nowhere.stderr
