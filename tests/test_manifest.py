"""Manifests of built systems, ``kitdsl manifest`` / ``kitdsl diff`` and the pytest plugin."""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from kitdsl.manifest import diff_manifests, manifest_of, tar_manifest
from kitdsl.oci.store import ContentStore
from kitdsl.outputs.base import Boot
from kitdsl.outputs.entry import Entry
from tests.registry import (  # noqa: F401 (registry_fixture is a fixture)
    RegistryServer,
    registry_fixture,
)
from tests.test_build import KERNEL, kitdsl, push

pytest_plugins = ["pytester"]

Project = Callable[[dict[str, str]], Path]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


HELLO = sha(b"hello\n")
NEW = sha(b"new\n")
INIT = sha(b"#!/bin/sh\n")
CHANGED = sha(b"changed\n")


# --- the manifest of a stream: pure --------------------------------------------------------


def test_manifest_lines_sorted_last_entry_wins() -> None:
    stream = [
        Entry.directory("./etc/"),
        Entry.file("etc/motd", b"old\n", mode=0o600),
        Entry.symlink("etc/link", "/etc/motd"),
        Entry.hardlink("etc/hard", "./etc/motd"),
        Entry.device("dev/null", "char", 1, 3, mode=0o666),
        Entry.fifo("run/pipe", uid=5, gid=6),
        Entry.file("etc/motd", b"new\n", mode=0o4755, uid=1, gid=2),
        Entry.file("odd name", b""),
    ]
    manifest = manifest_of(stream, Boot(kernel=b"k", cmdline="console=ttyS0 quiet"))
    assert manifest.to_text() == textwrap.dedent(f"""\
        # kitdsl manifest 1
        [kernel]
        kernel {sha(b"k")}
        cmdline "console=ttyS0 quiet"

        [paths]
        dev/null c 0666 0:0 - 1,3
        etc d 0755 0:0 - -
        etc/hard h 0644 0:0 - -> etc/motd
        etc/link l 0777 0:0 - -> /etc/motd
        etc/motd f 4755 1:2 4 {NEW}
        "odd name" f 0644 0:0 0 {sha(b"")}
        run/pipe p 0644 5:6 - -
        """)
    document = json.loads(manifest.to_json())
    assert [entry["path"] for entry in document["paths"]][:3] == ["dev/null", "etc", "etc/hard"]
    assert manifest.path("/etc/motd") == manifest.paths[4]


def test_container_section_from_config_json() -> None:
    config = {
        "process": {
            "args": ["/bin/tool", "--serve"],
            "capabilities": {"effective": ["CAP_SYS_ADMIN", "CAP_CHOWN"]},
        },
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "net", "path": "/run/netns/x"}]},
    }
    entry = Entry.file("containers/services/a/config.json", json.dumps(config).encode())
    entry.info.pax_headers = {"LINUXKIT.source": "example.org/tool:1"}
    text = manifest_of([entry]).to_text()
    assert (
        textwrap.dedent("""\
        [container services/a]
        image example.org/tool:1
        command ["/bin/tool", "--serve"]
        capabilities CAP_CHOWN CAP_SYS_ADMIN
        mount /proc proc proc
        namespaces net=/run/netns/x pid
        """)
        in text
    )


def test_diff_names_what_changed() -> None:
    before = manifest_of([Entry.file("a", b"1"), Entry.file("b", b"x"), Entry.symlink("l", "a")])
    after = manifest_of(
        [Entry.file("a", b"2", mode=0o600), Entry.file("c", b"x"), Entry.symlink("l", "c")]
    )
    changes = diff_manifests(before, after)
    assert [info.path for info in changes.added] == ["c"]
    assert [info.path for info in changes.removed] == ["b"]
    assert {change.path: change.changes for change in changes.changed} == {
        "a": ("mode", "content"),
        "l": ("target",),
    }
    assert "~ l: target a -> c\n" in changes.to_text()
    assert not diff_manifests(before, before)
    assert diff_manifests(before, before).to_text() == ""


def volume_stream(image: str, *, readonly: bool, oci: bool) -> list[Entry]:
    """The folders of volume ``data`` as the assembler writes them."""
    lower = Entry.directory("containers/volumes/data/lower")
    lower.info.pax_headers = {"LINUXKIT.source": image or "empty"}
    stream = [Entry.directory("containers"), Entry.directory("containers/volumes")]
    stream += [Entry.directory("containers/volumes/data"), lower]
    if oci:
        stream.append(Entry.file("containers/volumes/data/lower/oci-layout", b"{}"))
    if not readonly:
        stream.append(Entry.directory("containers/volumes/data/tmp"))
    return [*stream, Entry.directory("containers/volumes/data/merged")]


def test_volume_sections_and_their_changes() -> None:
    blank = manifest_of(volume_stream("", readonly=False, oci=False))
    assert (
        textwrap.dedent("""\
        [volume data]
        image -
        format filesystem
        access rw

        [paths]
        """)
        in blank.to_text()
    )
    filled = manifest_of(volume_stream("example.org/data:2", readonly=True, oci=True))
    assert json.loads(filled.to_json())["volumes"] == [
        {"name": "data", "image": "example.org/data:2", "format": "oci", "access": "ro"}
    ]
    changes = diff_manifests(blank, filled)
    assert changes.to_text().splitlines()[:4] == [
        "~ volume data",
        "    image: - -> example.org/data:2",
        "    format: filesystem -> oci",
        "    access: rw -> ro",
    ]
    assert json.loads(changes.to_json())["volumes"] == {"data": ["image", "format", "access"]}
    gone = diff_manifests(blank, manifest_of([]))
    assert gone.to_text().splitlines()[0] == "- volume data"
    assert not diff_manifests(filled, filled)


# --- built systems: the real registry ------------------------------------------------------

SYSTEM = """
from kitdsl import File, Kernel, Onboot, Service, System

system = System(
    kernel=Kernel(image="{host}/m/kernel:1", cmdline="console=ttyS0", tar=None),
    init=["{host}/m/init:1"],
    onboot=[Onboot(name="x", image="{host}/m/tool:1")],
    services=[
        Service(name="a", image="{host}/m/web:1"),
        Service(name="b", image="{host}/m/tool:1", command={command}),
    ],
    files=[
        File(path="etc/motd", contents="hello\\n", mode={mode}),
        File(path="etc/link", symlink="/etc/motd"),
    ],
)
"""


@pytest.fixture
def root(project: Project, registry: RegistryServer, tmp_path: Path) -> Path:
    store = ContentStore(tmp_path / "source")
    push(registry, store, "m/kernel:1", {"kernel": KERNEL})
    push(registry, store, "m/init:1", {"sbin/init": b"#!/bin/sh\n"})
    push(registry, store, "m/tool:1", {"bin/tool": b"tool\n"})
    push(registry, store, "m/web:1", {"srv/index.html": b"<h1>hi</h1>\n"})
    host = registry.host
    return project(
        {
            "a.py": SYSTEM.format(host=host, command='["/bin/tool"]', mode="0o644"),
            "b.py": SYSTEM.format(host=host, command='["/bin/tool", "-v"]', mode="0o600"),
        }
    )


def build_tar(root: Path, name: str) -> Path:
    built = kitdsl(root, "build", f"{name}.py", "-f", "tar", "-o", "out")
    assert built.returncode == 0, built.stderr
    return root / "out" / f"{name}.tar"


@pytest.mark.slow
def test_manifest_of_a_built_tar(root: Path, registry: RegistryServer) -> None:
    tar = build_tar(root, "a")
    shown = kitdsl(root, "manifest", str(tar))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:4] == [
        "# kitdsl manifest 1",
        "[kernel]",
        f"kernel {sha(KERNEL)}",
        'cmdline "console=ttyS0"',
    ]
    assert f"etc/motd f 0644 0:0 6 {HELLO}" in lines
    link = next(line for line in lines if line.startswith("etc/link "))
    assert link.startswith("etc/link l 0") and link.endswith(" 0:0 - -> /etc/motd")
    assert f"sbin/init f 0644 0:0 10 {INIT}" in lines
    assert not any(line.startswith("boot") for line in lines)
    section = lines.index("[container services/b]")
    assert lines[section + 1 : section + 3] == [
        f"image {registry.host}/m/tool:1",
        'command ["/bin/tool"]',
    ]
    assert "[container onboot/000-x]" in lines

    # The system file gives the same manifest as its tar output; the text is stable.
    from_system = kitdsl(root, "manifest", "a.py")
    assert from_system.returncode == 0, from_system.stderr
    assert from_system.stdout == shown.stdout
    assert tar_manifest(tar).to_text() == shown.stdout
    as_json = json.loads(kitdsl(root, "manifest", str(tar), "--json").stdout)
    assert {c["name"] for c in as_json["containers"]} == {"000-x", "a", "b"}


@pytest.mark.slow
def test_diff_shows_exactly_the_changes(root: Path) -> None:
    a, b = build_tar(root, "a"), build_tar(root, "b")
    same = kitdsl(root, "diff", str(a), "a.py")
    assert (same.returncode, same.stdout) == (0, ""), same.stderr

    different = kitdsl(root, "diff", str(a), str(b))
    assert different.returncode == 1, different.stderr
    lines = different.stdout.splitlines()
    assert lines[:2] == [
        "~ container services/b",
        '    command: ["/bin/tool"] -> ["/bin/tool", "-v"]',
    ]
    assert "~ etc/motd: mode 0644 -> 0600" in lines
    changed = [line.split(":")[0] for line in lines if line.startswith("~ ") and ": " in line]
    assert changed == ["~ containers/services/b/config.json", "~ etc/motd"]
    assert not any(line.startswith(("+", "-")) for line in lines)

    document = json.loads(kitdsl(root, "diff", str(a), str(b), "--json").stdout)
    assert document["changed"] == {
        "containers/services/b/config.json": ["content"],
        "etc/motd": ["mode"],
    }
    assert document["containers"] == {"services/b": ["command"]}
    assert (document["added"], document["removed"], document["equal"]) == ([], [], False)


# --- the pytest plugin ---------------------------------------------------------------------

EDGE = """
from kitdsl import File, System

system = System(files=[File(path="etc/motd", contents={motd!r}, mode=0o644)])
"""

TEST_EDGE = """
def test_edge(system_manifest, snapshot):
    assert system_manifest("systems/edge.py") == snapshot


def test_other(snapshot):
    assert {"kept": "amber"} == snapshot
"""


def _plugin_args() -> list[str]:
    # Installed, kitdsl's entry point loads the plugin; from a source tree it must be named.
    installed = any(ep.name == "kitdsl" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "kitdsl.testing.plugin"]


def test_plugin_snapshots_a_manifest_as_text(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nkitdsl_cache = .cache\n")
    pytester.makepyfile(test_edge=TEST_EDGE)
    (pytester.path / "systems").mkdir()
    edge = pytester.path / "systems" / "edge.py"
    edge.write_text(EDGE.format(motd="hello\n"))

    written = pytester.runpytest_subprocess(*_plugin_args(), "--snapshot-update")
    written.assert_outcomes(passed=2)
    stored = pytester.path / "__snapshots__" / "test_edge" / "test_edge.txt"
    assert stored.read_text() == textwrap.dedent(f"""\
        # kitdsl manifest 1
        [kernel]
        kernel -
        cmdline ""

        [paths]
        etc d 0755 0:0 - -
        etc/motd f 0644 0:0 6 {HELLO}
        """)
    assert (pytester.path / "__snapshots__" / "test_edge.ambr").exists()  # syrupy's default

    pytester.runpytest_subprocess(*_plugin_args()).assert_outcomes(passed=2)

    edge.write_text(EDGE.format(motd="changed\n"))
    failed = pytester.runpytest_subprocess(*_plugin_args())
    failed.assert_outcomes(passed=1, failed=1)
    output = failed.stdout.str()
    assert f"etc/motd f 0644 0:0 6 {HELLO}" in output
    assert f"etc/motd f 0644 0:0 8 {CHANGED}" in output
