"""Packages defined in Python, built from a signed Debian archive served over HTTP, into the
cache, and used by systems."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitdsl import ContainerConfig, File, Service, System
from kitdsl.errors import ConfigError, PackageError
from kitdsl.lockfile import Lockfile
from kitdsl.oci.media import Manifest, Platform
from kitdsl.oci.store import ContentStore
from kitdsl.pkg.build import DEFAULT_PATH, build_package
from kitdsl.pkg.context import PackageContext, package_context
from kitdsl.pkg.package import Package
from kitdsl.pkg.system import context_for, lock_packages, system_packages
from tests.debian_archive import ArchiveServer, DebSpec, served_archive, shared_keys

AMD64 = Platform(os="linux", architecture="amd64")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArchiveServer]:
    root = tmp_path_factory.mktemp("archive")
    packages = [
        DebSpec(
            "busybox-static",
            "1:1.35.0-4",
            files={"bin/busybox": b"\x7fELF busybox\n", "usr/share/man/man1/busybox.1": b"."},
        ),
        DebSpec("httpd", "2.0-1", depends="libfoo (>= 1.0)", files={"usr/sbin/httpd": b"h\n"}),
        DebSpec("libfoo", "1.2-1", files={"usr/lib/libfoo.so.1": b"\x7fELF libfoo"}),
        DebSpec("broken", "1.0", depends="libfoo (>= 9)"),
    ]
    _, serving = served_archive(root, packages=packages)
    yield serving
    serving.stop()


@pytest.fixture
def context(server: ArchiveServer, tmp_path: Path) -> PackageContext:
    keyring = tmp_path / "keys.gpg"
    keyring.write_bytes(shared_keys().keyring())
    return PackageContext(
        cache_dir=tmp_path / "cache", platform=AMD64, mirror=server.url, keyring=keyring
    )


def package(**fields: object) -> Package:
    fields.setdefault("name", "box")
    fields.setdefault("suite", "kit")
    fields.setdefault("security", False)
    return Package(**fields)  # type: ignore[arg-type]


def layer_files(store: ContentStore, manifest_digest: str) -> dict[str, tarfile.TarInfo]:
    manifest = Manifest.model_validate_json(store.read_blob(manifest_digest))
    found: dict[str, tarfile.TarInfo] = {}
    for layer in manifest.layers:
        with tarfile.open(fileobj=io.BytesIO(store.read_blob(layer.digest))) as tar:
            found |= {info.name: info for info in tar.getmembers()}
    return found


def test_a_package_is_built_from_debian_packages_and_files(
    context: PackageContext, tmp_path: Path
) -> None:
    busybox = package(
        name="busybox",
        debian=["busybox-static"],
        files=[File(path="bin/sh", symlink="busybox")],
    )
    web = package(
        name="web",
        base=[busybox],
        debian=["httpd"],
        files=[File(path="www/index.html", contents="<h1>hi</h1>\n", mode=0o644)],
        cmd=["/usr/sbin/httpd"],
        env=["MODE=fast"],
        config=ContainerConfig(net="host", capabilities=["CAP_NET_BIND_SERVICE"]),
    )
    store = ContentStore(tmp_path / "cache")
    resolved = context.resolved(web)
    assert [p.name for p in resolved.closure.packages] == ["httpd", "libfoo"]  # type: ignore[union-attr]
    image = build_package(resolved, store, context)
    assert image.reference == f"docker.io/kitdsl/web:{resolved.tag}"
    files = layer_files(store, image.manifest.digest)
    assert {"bin/busybox", "bin/sh", "usr/sbin/httpd", "usr/lib/libfoo.so.1"} <= set(files)
    assert "www/index.html" in files
    assert not any(name.startswith("usr/share/man") for name in files)  # dropped by default
    config = json.loads(store.read_blob(image.config.digest))
    assert config["config"]["Cmd"] == ["/usr/sbin/httpd"]
    assert config["config"]["Env"] == [DEFAULT_PATH, "MODE=fast"]
    label = json.loads(config["config"]["Labels"]["org.mobyproject.config"])
    assert label == {"capabilities": ["CAP_NET_BIND_SERVICE"], "net": "host"}
    # The base's layers come first and are shared with the base's own image.
    base = build_package(context.resolved(busybox), store, context)
    assert image.layers[: len(base.layers)] == base.layers
    # Built again from scratch, the same bytes; found in the cache, not built again.
    again = build_package(resolved, ContentStore(tmp_path / "other"), context)
    assert again.manifest.digest == image.manifest.digest
    assert build_package(resolved, store, context).manifest.digest == image.manifest.digest


def test_the_tag_changes_with_every_input(context: PackageContext, tmp_path: Path) -> None:
    source = tmp_path / "motd"
    source.write_text("one\n")
    first = package(debian=["httpd"], files=[File(path="etc/motd", source=str(source))])
    tag = context.resolved(first).tag
    assert len(tag) == 20 and context.resolved(first).tag == tag
    same = package(debian=["httpd"], files=[File(path="etc/motd", source=str(source))])
    assert context.resolved(same).tag == tag
    others = [
        package(debian=["httpd"], files=[File(path="etc/motd", source=str(source))], cmd=["x"]),
        package(
            debian=["httpd", "busybox-static"], files=[File(path="etc/motd", source=str(source))]
        ),
    ]
    assert len({tag, *(context.resolved(other).tag for other in others)}) == 3
    source.write_text("two\n")
    changed = package(debian=["httpd"], files=[File(path="etc/motd", source=str(source))])
    assert context.resolved(changed).tag != tag


def test_keep_selects_files_and_their_folders(context: PackageContext, tmp_path: Path) -> None:
    lean = package(debian=["httpd"], keep=["usr/lib/*.so*"])
    store = ContentStore(tmp_path / "cache")
    image = build_package(context.resolved(lean), store, context)
    assert sorted(layer_files(store, image.manifest.digest)) == [
        "usr",
        "usr/lib",
        "usr/lib/libfoo.so.1",
    ]
    nothing = package(name="nothing", debian=["httpd"], keep=["opt/*"])
    with pytest.raises(PackageError, match="nothing of httpd is kept"):
        build_package(context.resolved(nothing), store, context)


def test_unknown_and_unsatisfiable_packages_are_clear_errors(context: PackageContext) -> None:
    with pytest.raises(PackageError, match="nosuch"):
        context.resolved(package(debian=["nosuch"]))
    with pytest.raises(PackageError, match=r"libfoo \(>= 9\)"):
        context.resolved(package(debian=["broken"]))
    with pytest.raises(ConfigError, match="does not exist"):
        context.resolved(package(files=[File(path="x", source="/no/such/file")]))


def test_bad_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="lower case"):
        Package(name="Web")
    with pytest.raises(ValueError, match="metadata belongs in a system"):
        Package(name="web", files=[File(path="x", metadata="yaml")])


def test_lockfile_pins_resolve_without_the_archive(
    context: PackageContext, server: ArchiveServer, tmp_path: Path
) -> None:
    web = package(name="web", debian=["httpd"])
    system = System(services=[Service(name="web", image=web)])
    assert system_packages(system) == [web]
    with package_context(context):
        pins = lock_packages(
            system,
            [AMD64],
            cache_dir=context.cache_dir,
            mirror=server.url,
            keyring=context.keyring,
        )
    assert list(pins) == ["kitdsl/web"]
    lock = Lockfile(packages=pins)
    text = lock.to_json()
    assert Lockfile.from_json(text, path=tmp_path / "s.lock").packages == lock.packages
    # Pinned and unchanged: no archive is asked (this mirror does not exist).
    offline = context_for(AMD64, cache_dir=tmp_path, lock=lock, mirror="http://127.0.0.1:9")
    assert offline.resolved(web).tag == context.resolved(web).tag
    # Changed where resolving does not look (its command): the pin holds, the tag moves.
    frozen = context_for(AMD64, cache_dir=tmp_path, lock=lock, frozen=True)
    other = frozen.resolved(package(name="web", debian=["httpd"], cmd=["/usr/sbin/httpd"]))
    pinned = offline.resolved(web).closure
    assert other.closure is not None and pinned is not None
    assert [p.sha256 for p in other.closure.packages] == [p.sha256 for p in pinned.packages]
    assert other.tag != context.resolved(web).tag
    # A pinned file is fetched from this machine's archive, not the one that locked it.
    assert {p.mirror for p in pinned.packages} == {"http://127.0.0.1:9"}
    # Changed where it does: resolving again is needed, which --frozen refuses.
    with pytest.raises(PackageError, match="changed since it was locked"):
        frozen.resolved(package(name="web", debian=["httpd", "busybox-static"]))


def test_apt_sources_give_the_mirror_only_when_they_are_debians(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitdsl.pkg.system import debian_mirrors

    monkeypatch.delenv("KITDSL_DEBIAN_MIRROR", raising=False)
    apt = tmp_path / "etc" / "apt"
    apt.mkdir(parents=True)
    (apt / "sources.list").write_text(
        "deb http://azure.archive.ubuntu.com/ubuntu jammy main\n"
        "deb http://mirror.example/debian bookworm main\n"
        "deb http://mirror.example/debian-security bookworm-security main\n"
    )
    assert debian_mirrors(root=str(tmp_path)) == (
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    )
    (apt / "sources.list").write_text("deb http://azure.archive.ubuntu.com/ubuntu jammy main\n")
    assert debian_mirrors(root=str(tmp_path)) == (
        "http://deb.debian.org/debian",
        "http://deb.debian.org/debian-security",
    )
    assert debian_mirrors("http://given.example/debian", root=str(tmp_path))[0] == (
        "http://given.example/debian"
    )


def test_two_packages_may_not_share_a_name() -> None:
    one = package(name="tools", debian=["busybox-static"])
    other = package(name="tools", debian=["httpd"])
    system = System(services=[Service(name="a", image=one), Service(name="b", image=other)])
    with pytest.raises(ConfigError, match="two different packages are named kitdsl/tools"):
        system_packages(system)
    same = package(name="tools", debian=["busybox-static"])
    twice = System(services=[Service(name="a", image=one), Service(name="b", image=same)])
    assert system_packages(twice) == [one]


def test_a_damaged_pin_is_a_lockfile_error(context: PackageContext, tmp_path: Path) -> None:
    from kitdsl.errors import LockError
    from kitdsl.lockfile import LockedPackage

    web = package(name="web", debian=["httpd"])
    closure = context.resolved(web).closure
    assert closure is not None
    data = closure.model_dump(mode="json")
    data["packages"][0]["sha256"] = "abc"
    lock = Lockfile(packages={"kitdsl/web": LockedPackage("x", {"linux/amd64": data})})
    with pytest.raises(LockError, match=r"pin of package kitdsl/web .* packages\.0\.sha256"):
        context_for(AMD64, cache_dir=tmp_path, lock=lock)
