"""Lockfiles: pins per platform, a checksum, drift detection, selective updates."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kitdsl import Kernel, Onboot, Service, System, Volume
from kitdsl.errors import LockError
from kitdsl.lockfile import (
    Lockfile,
    check_frozen,
    drift,
    lock_path,
    lock_system,
    system_images,
)

SYSTEM = System(
    kernel=Kernel(image="linuxkit/kernel:6.6"),
    init=["linuxkit/init:v1"],
    onboot=[Onboot(name="sysctl", image="linuxkit/sysctl:v1")],
    services=[
        Service(name="getty", image="linuxkit/getty:v1"),
        Service(name="getty2", image="docker.io/linuxkit/getty:v1"),
    ],
    volumes=[Volume(name="data", image="alpine:3.20")],
)


class Registry:
    """Answers what a tag points at today, and counts the questions."""

    def __init__(self, generation: int = 1) -> None:
        self.generation = generation
        self.asked: list[tuple[str, str]] = []

    def __call__(self, ref: str, platform: str) -> tuple[str | None, str]:
        self.asked.append((ref, platform))
        seed = hashlib.sha256(f"{ref}{platform}{self.generation}".encode()).hexdigest()
        return f"sha256:{seed[::-1]}", f"sha256:{seed}"


def test_images_and_their_users() -> None:
    assert system_images(SYSTEM) == {
        "docker.io/library/alpine:3.20": ("volumes/data",),
        "docker.io/linuxkit/getty:v1": ("services/getty", "services/getty2"),
        "docker.io/linuxkit/init:v1": ("init[0]",),
        "docker.io/linuxkit/kernel:6.6": ("kernel",),
        "docker.io/linuxkit/sysctl:v1": ("onboot/sysctl",),
    }


def test_lock_round_trip_and_determinism(tmp_path: Path) -> None:
    registry = Registry()
    lock = lock_system(SYSTEM, registry, platforms=["linux/arm64", "linux/amd64"])
    assert len(registry.asked) == 10  # 5 distinct images x 2 platforms
    path = tmp_path / "edge.lock"
    lock.write(path)
    text = path.read_text()
    assert (
        text == lock_system(SYSTEM, Registry(), platforms=["linux/amd64", "linux/arm64"]).to_json()
    )
    again = Lockfile.read(path)
    assert again == lock
    data = json.loads(text)
    assert data["version"] == 1 and data["platforms"] == ["linux/amd64", "linux/arm64"]
    assert (
        lock.pin("linuxkit/getty:v1", "linux/arm64")
        == data["images"]["docker.io/linuxkit/getty:v1"]["manifests"]["linux/arm64"]
    )


def test_existing_pins_are_kept_and_updates_are_selective() -> None:
    old = lock_system(SYSTEM, Registry(1))
    newer = Registry(2)
    kept = lock_system(SYSTEM, newer, previous=old)
    assert newer.asked == [] and kept.images == old.images
    updated = lock_system(SYSTEM, newer, previous=old, update=["getty"])
    assert newer.asked == [("docker.io/linuxkit/getty:v1", "linux/amd64")]
    assert updated.pin("linuxkit/getty:v1", "linux/amd64") != old.pin(
        "linuxkit/getty:v1", "linux/amd64"
    )
    assert updated.pin("alpine:3.20", "linux/amd64") == old.pin("alpine:3.20", "linux/amd64")
    everything = lock_system(SYSTEM, Registry(3), previous=old, update=[])
    assert all(everything.images[r] != old.images[r] for r in old.images)
    with pytest.raises(LockError, match="nothing named 'nope'"):
        lock_system(SYSTEM, newer, previous=old, update=["nope"])


def test_drift_names_what_changed(tmp_path: Path) -> None:
    lock = lock_system(SYSTEM, Registry())
    assert drift(lock, SYSTEM, ["linux/amd64"]) == []
    changed = SYSTEM.override("sysctl", image="linuxkit/sysctl:v2").remove("data")
    problems = drift(lock, changed, ["linux/amd64", "linux/arm64"])
    assert "docker.io/linuxkit/sysctl:v2 (used by onboot/sysctl) is not in the lockfile" in problems
    assert "docker.io/linuxkit/getty:v1 is not locked for linux/arm64" in problems
    assert (
        "docker.io/library/alpine:3.20 is locked but no longer used (was used by volumes/data)"
        in problems
    )
    with pytest.raises(LockError) as exc:
        check_frozen(lock, changed, ["linux/amd64"], tmp_path / "edge.lock")
    assert exc.value.exit_code == 9
    assert len(exc.value.details) == 3
    with pytest.raises(LockError, match="needs a lockfile"):
        check_frozen(None, SYSTEM, ["linux/amd64"], tmp_path / "edge.lock")


def test_hand_edits_and_bad_files_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock_system(SYSTEM, Registry()).write(path)
    data = json.loads(path.read_text())
    data["images"]["docker.io/linuxkit/init:v1"]["manifests"]["linux/amd64"] = "sha256:" + "f" * 64
    path.write_text(json.dumps(data))
    with pytest.raises(LockError, match="edited by hand"):
        Lockfile.read(path)
    path.write_text("{not json")
    with pytest.raises(LockError, match="not valid JSON") as exc:
        Lockfile.read(path)
    assert exc.value.location is not None and exc.value.location.line == 1
    path.write_text('{"version": 99}')
    with pytest.raises(LockError, match="version 99"):
        Lockfile.read(path)
    assert Lockfile.read(tmp_path / "missing.lock") is None


def test_lock_path() -> None:
    assert lock_path("systems/edge.py") == Path("systems/edge.lock")
    assert lock_path("systems/gateway.py:debug") == Path("systems/gateway.debug.lock")
    assert lock_path("linuxkit.yml") == Path("linuxkit.lock")
