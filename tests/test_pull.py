"""kitdsl pull, lock and cache, end to end: the command line against the real registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kitdsl.oci.store import ContentStore
from tests.dockerd import dockerd  # noqa: F401 (a fixture)
from tests.images import add_image, add_index, random_bytes, tar_bytes
from tests.registry import (  # noqa: F401 (registry_fixture is a fixture)
    FaultProxy,
    RegistryServer,
    make_client,
    registry_fixture,
    unverified_blobs,
)

Project = Callable[[dict[str, str]], Path]
SHARED = {"lib/base.txt": b"a layer both images share\n"}


def kitdsl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitdsl", *args, "--cache", str(root / "cache")],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def push(registry: RegistryServer, store: ContentStore, name: str, files: dict[str, bytes]) -> str:
    amd64 = add_image(store, platform="linux/amd64", layers=[SHARED, files])
    arm64 = add_image(store, platform="linux/arm64/v8", layers=[SHARED, files])
    root = add_index(store, [amd64, arm64])
    with make_client() as client:
        client.push(f"{registry.host}/{name}", store, root)
    return amd64.manifest.digest


@pytest.fixture
def system(project: Project, registry: RegistryServer, tmp_path: Path) -> Path:
    source = ContentStore(tmp_path / "source")
    push(registry, source, "team/tool:1", {"bin/tool": b"v1\n"})
    push(registry, source, "team/web:1", {"srv/index.html": b"<h1>hi</h1>\n"})
    host = registry.host
    return project(
        {
            "s.py": f"""
                from kitdsl import Onboot, Service, System

                system = System(
                    onboot=[Onboot(name="setup", image="{host}/team/tool:1")],
                    services=[
                        Service(name="web", image="{host}/team/web:1"),
                        Service(name="admin", image="{host}/team/tool:1"),
                    ],
                )
            """
        }
    )


@pytest.mark.slow
def test_pull_lock_and_the_cache(system: Path, registry: RegistryServer, tmp_path: Path) -> None:
    host = registry.host
    locked = kitdsl(system, "lock", "s.py", "--arch", "amd64", "--arch", "arm64")
    assert locked.returncode == 0, locked.stderr
    lock = json.loads((system / "s.lock").read_text())
    assert sorted(lock["images"]) == [f"{host}/team/tool:1", f"{host}/team/web:1"]
    assert lock["images"][f"{host}/team/tool:1"]["used_by"] == ["onboot/setup", "services/admin"]
    first_pin = lock["images"][f"{host}/team/tool:1"]["manifests"]["linux/amd64"]

    pulled = kitdsl(system, "pull", "s.py", "--arch", "amd64", "--jobs", "4")
    assert pulled.returncode == 0, pulled.stderr
    listing = kitdsl(system, "cache", "ls").stdout
    # A locked pull records images by their pinned digests, not as what their tags mean.
    assert f"{host}/team/tool@{first_pin}" in listing and f"{host}/team/web@sha256:" in listing
    assert f"{host}/team/tool:1" not in listing
    assert kitdsl(system, "cache", "verify").stdout.strip() == "the cache is clean"
    assert unverified_blobs(ContentStore(system / "cache")) == []

    # Someone moves the tag: the lockfile (and the cache) keep builds where they were.
    push(registry, ContentStore(tmp_path / "other"), "team/tool:1", {"bin/tool": b"v2\n"})
    assert kitdsl(system, "pull", "s.py", "--arch", "amd64").returncode == 0
    relock = kitdsl(system, "lock", "s.py", "--arch", "amd64", "--arch", "arm64")
    assert json.loads((system / "s.lock").read_text()) == lock, relock.stderr
    # Only what is asked for is re-resolved, and it now sees the new tag.
    update = kitdsl(system, "lock", "s.py", "--update", "admin", "--pull", "--arch", "amd64")
    assert update.returncode == 0, update.stderr
    updated = json.loads((system / "s.lock").read_text())
    assert updated["images"][f"{host}/team/tool:1"]["manifests"]["linux/amd64"] != first_pin
    assert updated["images"][f"{host}/team/web:1"] == {
        **lock["images"][f"{host}/team/web:1"],
        "manifests": {
            "linux/amd64": lock["images"][f"{host}/team/web:1"]["manifests"]["linux/amd64"]
        },
    }
    assert kitdsl(system, "pull", "s.py", "--arch", "amd64").returncode == 0


@pytest.mark.slow
def test_frozen_names_what_drifted(system: Path, registry: RegistryServer) -> None:
    assert kitdsl(system, "lock", "s.py", "--arch", "amd64").returncode == 0
    text = (system / "s.py").read_text().replace("team/web:1", "team/web:2")
    (system / "s.py").write_text(text)
    frozen = kitdsl(system, "pull", "s.py", "--frozen", "--arch", "amd64")
    assert frozen.returncode == 9
    assert "the system no longer matches" in frozen.stderr
    assert (
        f"{registry.host}/team/web:2 (used by services/web) is not in the lockfile" in frozen.stderr
    )
    assert f"{registry.host}/team/web:1 is locked but no longer used" in frozen.stderr


@pytest.mark.slow
def test_export_import_push_round_trip(system: Path, registry: RegistryServer) -> None:
    host = registry.host
    assert kitdsl(system, "pull", "s.py", "--arch", "amd64").returncode == 0
    archive = system / "tool.tar"
    exported = kitdsl(system, "cache", "export", f"{host}/team/tool:1", "-o", str(archive))
    assert exported.returncode == 0, exported.stderr
    other = system / "elsewhere"
    other.mkdir()
    imported = kitdsl(other, "cache", "import", str(archive))
    assert imported.returncode == 0, imported.stderr
    assert f"{host}/team/tool:1" in kitdsl(other, "cache", "ls").stdout
    partial = kitdsl(system, "cache", "push", f"{host}/team/tool:1", f"{host}/copies/tool:1")
    assert partial.returncode == 7 and "pull every platform of the image first" in partial.stderr
    single = add_image(ContentStore(system / "src"), files={"etc/single": b"1\n"})
    with make_client() as client:
        client.push(f"{host}/team/single:1", ContentStore(system / "src"), single.manifest)
    (system / "one.py").write_text(
        "from kitdsl import Service, System\n"
        f"system = System(services=[Service(name='one', image='{host}/team/single:1')])\n"
    )
    assert kitdsl(system, "pull", "one.py", "--arch", "amd64").returncode == 0
    pushed = kitdsl(system, "cache", "push", f"{host}/team/single:1", f"{host}/copies/single:1")
    assert pushed.returncode == 0, pushed.stderr
    with make_client() as client:
        copy = client.resolve(f"{host}/copies/single:1", "linux/amd64", ContentStore(other / "c2"))
    assert copy.manifest.digest == single.manifest.digest


@pytest.mark.slow
def test_pull_failure_names_the_component(project: Project, registry: RegistryServer) -> None:
    root = project(
        {
            "s.py": f"""
                from kitdsl import Service, System

                ghost = Service(name="ghost", image="{registry.host}/team/missing:1")
                system = System(services=[ghost])
            """
        }
    )
    failed = kitdsl(root, "pull", "s.py", "--arch", "amd64")
    assert failed.returncode == 7, failed.stderr
    assert "services/ghost" in failed.stderr and "team/missing" in failed.stderr
    assert "Traceback" not in failed.stderr


@pytest.mark.slow
def test_plan_lists_layers_the_cache_knows(system: Path) -> None:
    before = kitdsl(system, "plan", "s.py", "--arch", "amd64")
    assert "(layers: known after resolve)" in before.stdout
    assert kitdsl(system, "pull", "s.py", "--arch", "amd64").returncode == 0
    after = kitdsl(system, "plan", "s.py", "--arch", "amd64")
    assert after.returncode == 0, after.stderr
    assert "known after resolve" not in after.stdout
    assert "fetch layer sha256:" in after.stdout


@pytest.mark.slow
def test_a_failed_pull_leaves_a_clean_cache(project: Project, registry: RegistryServer) -> None:
    with FaultProxy(registry) as proxy:
        source = ContentStore(project({}) / "src")
        image = add_image(source, layers=[random_bytes(2_000_000, seed=7)])
        with make_client() as client:
            client.push(f"{proxy.host}/faults/cli:1", source, image.manifest)
        root = source.root.parent
        (root / "f.py").write_text(
            "from kitdsl import Service, System\n"
            f"system = System(services=[Service(name='app', image='{proxy.host}/faults/cli:1')])\n"
        )
        layer = image.layers[0].digest
        proxy.add(f"/blobs/{layer}", truncate_to=1000, times=None)
        failed = kitdsl(root, "pull", "f.py", "--arch", "amd64")
        assert failed.returncode == 7, failed.stderr
        assert "services/app" in failed.stderr and layer in failed.stderr
        verify = kitdsl(root, "cache", "verify")
        assert verify.returncode == 0 and verify.stdout.strip() == "the cache is clean"
        assert kitdsl(root, "cache", "ls").stdout == ""  # no name points at missing content
        proxy.faults.clear()
        assert kitdsl(root, "pull", "f.py", "--arch", "amd64").returncode == 0
        assert f"{proxy.host}/faults/cli:1" in kitdsl(root, "cache", "ls").stdout


@pytest.mark.slow
def test_pull_with_docker_uses_the_engine(project: Project, dockerd: str) -> None:  # noqa: F811
    import docker

    client = docker.DockerClient(base_url=dockerd)
    client.api.import_image_from_data(
        tar_bytes({"etc/from-engine": b"yes\n"}), repository="engine.example/team/local", tag="1"
    )
    root = project(
        {
            "d.py": """
                from kitdsl import Service, System

                local = Service(name="local", image="engine.example/team/local:1")
                system = System(services=[local])
            """
        }
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kitdsl",
            "pull",
            "d.py",
            "--docker",
            "--arch",
            "amd64",
            "--cache",
            str(root / "cache"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DOCKER_HOST": dockerd},
    )
    assert result.returncode == 0, result.stderr
    without = kitdsl(root, "pull", "d.py", "--arch", "amd64")
    assert without.returncode == 7  # the engine's copy is not what the tag means on a registry
