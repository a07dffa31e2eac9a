"""Against Debian's real archive (deb.debian.org, bookworm): the signature with the shipped
keys, the real Packages index, and the packages kitdsl images are built from.

These need the network; CI reaches deb.debian.org. One cache serves the whole test run, so
the 9 MB index is downloaded and parsed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kitdsl.pkg.debian import Archive, DebFile, Mirror, PackageLock, fetch_locked

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("debian-cache")


@pytest.fixture(scope="session")
def bookworm(cache: Path) -> Iterator[Archive]:
    with Archive(Mirror(suite="bookworm", architecture="amd64"), cache=cache) as archive:
        yield archive


def test_inrelease_verifies_with_the_shipped_keys(bookworm: Archive) -> None:
    release = bookworm.release()
    assert release.codename == "bookworm"
    signers = {signer.user_id: signer for signer in release.signers}
    automatic = signers["Debian Archive Automatic Signing Key (12/bookworm) <ftpmaster@debian.org>"]
    assert automatic.algorithm == "RSA 4096"
    stable = signers["Debian Stable Release Key (12/bookworm) <debian-release@lists.debian.org>"]
    assert stable.algorithm == "EdDSA Ed25519"


def test_the_real_packages_index_parses(bookworm: Archive) -> None:
    index = bookworm.index()
    assert len(index) > 50_000
    libc6 = index.get("libc6")[0]
    assert libc6.version.startswith("2.36-9")
    assert libc6.filename.startswith("pool/main/g/glibc/libc6_2.36-9")
    assert libc6.multi_arch == "same" and libc6.source == "glibc"
    assert any(p.name == "postfix" for p, _ in index.providers("mail-transport-agent"))


def test_runc_closure(bookworm: Archive) -> None:
    resolution = bookworm.resolve(["runc"])
    names = resolution.names()
    assert {"runc", "libseccomp2", "libc6"} <= set(names)
    assert "libc-bin" not in names  # shared libraries only: no Essential packages pulled in
    assert resolution.reasons["libseccomp2"] == "runc → libseccomp2"
    assert {p.architecture for p in resolution} <= {"amd64", "all"}


def test_busybox_static_is_fetched_and_read(bookworm: Archive, cache: Path, tmp_path: Path) -> None:
    resolution = bookworm.resolve(["busybox-static"])
    assert resolution.names() == ["busybox-static"]
    (downloaded,) = bookworm.download(resolution)
    assert downloaded.path.parent == cache / "debian" / "sha256"

    deb = DebFile(downloaded.path)
    assert deb.name == "busybox-static"
    members = {member.name: member for member in deb.members() if member.name == "bin/busybox"}
    assert set(members) == {"bin/busybox"}
    assert deb.maintainer_scripts == ()

    lock = PackageLock.of(resolution)
    lock.save(tmp_path / "busybox.lock")
    (again,) = fetch_locked(tmp_path / "busybox.lock", cache=cache)
    assert again.path == downloaded.path


def test_busybox_binary_is_a_static_elf(bookworm: Archive) -> None:
    (downloaded,) = bookworm.download(bookworm.resolve(["busybox-static"]))
    for member in DebFile(downloaded.path).members():
        if member.name == "bin/busybox":
            assert member.reader is not None
            assert member.reader.read(4) == b"\x7fELF"
            assert member.info.mode & 0o111
            break
    else:
        pytest.fail("bin/busybox not found")


def test_security_archive_with_the_release(cache: Path) -> None:
    security = Mirror(url="http://security.debian.org/debian-security", suite="bookworm-security")
    with Archive([Mirror(suite="bookworm"), security], cache=cache) as archive:
        (signer,) = archive.release(security).signers
        resolution = archive.resolve(["openssl"])
    assert signer.user_id.startswith("Debian Security Archive Automatic Signing Key (12/bookworm)")
    assert {"openssl", "libssl3", "libc6"} <= set(resolution.names())
