"""Reading a signed archive served over HTTP: Release verification and checks, Packages
indexes (by-hash, compressions, checksums), the parsed-index cache, resolution over it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kitdsl.pkg.debian import (
    DownloadError,
    Keyring,
    Release,
    ReleaseError,
    SignatureError,
)
from tests.debian_archive import (
    ArchiveServer,
    Fault,
    SignedArchive,
    client,
    served_archive,
    shared_keys,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SignedArchive, ArchiveServer]]:
    archive, server = served_archive(tmp_path / "repo")
    yield archive, server
    server.stop()


def test_release_is_verified_and_parsed(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    keys = shared_keys()
    with client(server, tmp_path / "cache") as archive:
        release = archive.release()
    assert (release.suite, release.codename) == ("stable", "kit")
    assert release.components == ("main",) and release.architectures == ("amd64", "all")
    assert release.acquire_by_hash and release.no_arch_all_packages
    assert {s.key_fingerprint for s in release.signers} == {keys.ed25519, keys.rsa}
    assert "main/binary-amd64/Packages.xz" in release.files
    assert server.requests == ["dists/kit/InRelease"]


def test_index_is_fetched_by_hash_preferring_xz(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    with client(server, tmp_path / "cache") as archive:
        index = archive.index()
        listed = archive.release().files["main/binary-amd64/Packages.xz"]
    assert sorted(index.names()) == sorted(p.name for p in repo.packages)
    assert server.requests[1:] == [f"dists/kit/main/binary-amd64/by-hash/SHA256/{listed.sha256}"]
    libfoo = index.get("libfoo")[0]
    assert (libfoo.version, libfoo.multi_arch, libfoo.depends) == (
        "1.2-1",
        "same",
        "libc6 (>= 2.30)",
    )
    assert libfoo.url == f"{server.url}/{repo.filename('libfoo')}"


@pytest.mark.parametrize(
    ("options", "fetched"),
    [
        ({"formats": (".gz",)}, "Packages.gz"),
        ({"formats": ("",), "by_hash": False}, "Packages"),
        ({"by_hash": False}, "Packages.xz"),
    ],
    ids=["gz-fallback", "plain", "no-by-hash"],
)
def test_other_index_layouts(tmp_path: Path, options: dict[str, object], fetched: str) -> None:
    _, server = served_archive(tmp_path / "repo", **options)
    try:
        with client(server, tmp_path / "cache") as archive:
            assert "httpd" in archive.index()
            sha = archive.release().files[f"main/binary-amd64/{fetched}"].sha256
        folder = "dists/kit/main/binary-amd64"
        expected = (
            f"{folder}/by-hash/SHA256/{sha}"
            if options.get("by_hash", True)
            else (f"{folder}/{fetched}")
        )
        assert server.requests == ["dists/kit/InRelease", expected]
    finally:
        server.stop()


def test_missing_by_hash_file_falls_back_to_the_path(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    with client(server, tmp_path / "cache") as archive:
        sha = archive.release().files["main/binary-amd64/Packages.xz"].sha256
        server.faults[f"dists/kit/main/binary-amd64/by-hash/SHA256/{sha}"] = Fault(status=404)
        assert "libc6" in archive.index()
    assert server.requests[-1] == "dists/kit/main/binary-amd64/Packages.xz"


def test_index_that_does_not_match_the_release_is_refused(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    with client(
        server,
        tmp_path / "cache",
    ) as archive:
        sha = archive.release().files["main/binary-amd64/Packages.xz"].sha256
        path = f"dists/kit/main/binary-amd64/by-hash/SHA256/{sha}"
        server.faults[path] = Fault(body=(server.root / path).read_bytes()[:-1] + b"\0")
        with pytest.raises(DownloadError, match="does not match its checksum") as caught:
            archive.index()
    assert caught.value.url.endswith(path)
    assert not list((tmp_path / "cache" / "debian" / "sha256").iterdir())
    assert not (tmp_path / "cache" / "debian" / "index").exists()


def test_parsed_index_is_cached_by_its_sha256(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    with client(server, tmp_path / "cache") as archive:
        first = archive.index()
    (cached,) = (tmp_path / "cache" / "debian" / "index").iterdir()
    requests = len(server.requests)

    with client(server, tmp_path / "cache") as archive:
        second = archive.index()

    assert list(second) == list(first)
    assert server.requests[requests:] == ["dists/kit/InRelease"]  # no index download

    cached.write_bytes(b"damaged")
    with client(server, tmp_path / "cache") as archive:
        assert list(archive.index()) == list(first)  # re-parsed from the cached Packages.xz


def test_tampered_inrelease_is_refused_and_nothing_is_used(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    inrelease = (repo.root / "dists/kit/InRelease").read_bytes()
    server.faults["dists/kit/InRelease"] = Fault(
        body=inrelease.replace(b"Suite: stable", b"Suite: stabl")
    )
    with client(server, tmp_path / "cache") as archive, pytest.raises(SignatureError) as caught:
        archive.index()
    assert f"{server.url}/dists/kit/InRelease has no valid signature" in caught.value.message
    assert server.requests == ["dists/kit/InRelease"]


def test_release_gpg_is_the_fallback_without_inrelease(tmp_path: Path) -> None:
    _, server = served_archive(tmp_path / "repo", inrelease=False)
    try:
        with client(server, tmp_path / "cache") as archive:
            release = archive.release()
        assert len(release.signers) == 2
        assert server.requests == [
            "dists/kit/InRelease",
            "dists/kit/Release",
            "dists/kit/Release.gpg",
        ]
    finally:
        server.stop()


def test_unsigned_archive_is_refused(tmp_path: Path) -> None:
    _, server = served_archive(tmp_path / "repo", signers=())
    try:
        with (
            client(server, tmp_path / "cache") as archive,
            pytest.raises(
                SignatureError, match=r"is not signed: it has neither InRelease nor Release\.gpg"
            ),
        ):
            archive.release()
    finally:
        server.stop()


def test_archive_signed_by_an_unknown_key_is_refused(tmp_path: Path) -> None:
    _, server = served_archive(tmp_path / "repo", signers=(shared_keys().other,))
    try:
        with (
            client(server, tmp_path / "cache") as archive,
            pytest.raises(SignatureError, match="no such key in the keyring"),
        ):
            archive.release()
        # Debian's own keys do not trust it either.
        with (
            client(server, tmp_path / "cache", keyring=Keyring.debian()) as archive,
            pytest.raises(SignatureError),
        ):
            archive.release()
    finally:
        server.stop()


def test_expired_release_is_refused_unless_allowed(tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=2)
    _, server = served_archive(tmp_path / "repo", date=past - timedelta(days=7), valid_until=past)
    try:
        with (
            client(server, tmp_path / "cache") as archive,
            pytest.raises(
                ReleaseError, match=r"expired on .* \(its Valid-Until has passed\)"
            ) as caught,
        ):
            archive.release()
        assert caught.value.hint is not None and "snapshot" in caught.value.hint
        with client(server, tmp_path / "cache", check_valid_until=False) as archive:
            assert archive.release().valid_until is not None
    finally:
        server.stop()


def test_release_of_another_suite_is_refused(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    shutil.copytree(repo.root / "dists/kit", repo.root / "dists/other")
    with (
        client(server, tmp_path / "cache", suite="other") as archive,
        pytest.raises(ReleaseError, match="is for suite stable \\(kit\\), not other"),
    ):
        archive.release()


def test_missing_component_is_refused(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    with (
        client(server, tmp_path / "cache", components=("contrib",)) as archive,
        pytest.raises(ReleaseError, match="has no component contrib"),
    ):
        archive.release()


def test_unreachable_mirror_names_the_url(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    server.stop()
    with (
        client(server, tmp_path / "cache") as archive,
        pytest.raises(DownloadError, match="connection refused") as caught,
    ):
        archive.release()
    assert caught.value.url == f"{server.url}/dists/kit/InRelease"
    assert "(after 3 tries)" in caught.value.message


def test_resolution_over_the_served_archive(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    with client(server, tmp_path / "cache") as archive:
        resolution = archive.resolve(["httpd", "tool"])
        assert resolution.names() == [
            "httpd",
            "libc6",
            "libfoo",
            "media-types",
            "perl",
            "postfix",
            "tool",
        ]
        assert resolution.reasons["postfix"] == "tool → postfix"
        # Recommends are not followed: tool recommends httpd.
        assert "httpd" not in archive.resolve(["tool"]).names()
        assert archive.resolve(["libfoo"], exclude=["libc6"]).names() == ["libfoo"]


def test_release_dates_and_checksum_lines() -> None:
    text = (
        "Suite: stable\nCodename: kit\nDate: Sat, 11 Jul 2026 10:16:37 UTC\n"
        "Valid-Until: Sat, 18 Jul 2026 10:16:37 UTC\nSHA256:\n"
        f" {'a' * 64} 12 main/binary-amd64/Packages.xz\n"
    )
    release = Release.parse(text, what="Release")
    assert release.date == datetime(2026, 7, 11, 10, 16, 37, tzinfo=UTC)
    release.check(suite="kit", what="Release", now=datetime(2026, 7, 12, tzinfo=UTC))
    with pytest.raises(ReleaseError, match="in the future"):
        release.check(suite="kit", what="Release", now=datetime(2026, 7, 1, tzinfo=UTC))
    with pytest.raises(ReleaseError, match="its SHA256 list is malformed"):
        Release.parse(text.replace(" 12 ", " twelve "), what="Release")
    with pytest.raises(ReleaseError, match="lists no SHA256 checksums"):
        Release.parse("Suite: stable\nMD5Sum:\n 0 1 x\n", what="Release")
    with pytest.raises(ReleaseError, match="is not a date"):
        Release.parse(text.replace("Sat, 11 Jul", "someday"), what="Release")
