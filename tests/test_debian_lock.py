"""Package locks: written, read back, and fetched from without resolving again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitdsl.errors import LockError
from kitdsl.pkg.debian import DownloadError, PackageLock, fetch_locked
from tests.debian_archive import FAST_RETRY, ArchiveServer, SignedArchive, client, served_archive


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SignedArchive, ArchiveServer]]:
    archive, server = served_archive(tmp_path / "repo")
    yield archive, server
    server.stop()


@pytest.fixture
def lock(served: tuple[SignedArchive, ArchiveServer], tmp_path: Path) -> PackageLock:
    _, server = served
    with client(server, tmp_path / "resolve-cache") as archive:
        return archive.lock(["httpd"], exclude=["libc6"])


def test_lock_holds_what_fetching_needs(
    lock: PackageLock, served: tuple[SignedArchive, ArchiveServer]
) -> None:
    repo, server = served
    assert [p.name for p in lock.packages] == ["httpd", "libfoo", "media-types"]
    assert (lock.architecture, lock.requested, lock.exclude) == ("amd64", ("httpd",), ("libc6",))
    media = lock.packages[2]
    assert (media.version, media.architecture, media.size) == (
        "10.0.0",
        "all",
        len(repo.debs["media-types"]),
    )
    assert media.url == f"{server.url}/{repo.filename('media-types')}"


def test_lock_file_round_trip_is_stable(lock: PackageLock, tmp_path: Path) -> None:
    path = tmp_path / "packages.lock"
    lock.save(path)
    text = path.read_text()
    assert PackageLock.load(path) == lock
    assert PackageLock.from_json(text).to_json() == text
    data = json.loads(text)
    assert data["version"] == 1 and list(data) == sorted(data)
    assert [p["name"] for p in data["packages"]] == ["httpd", "libfoo", "media-types"]


def test_fetch_locked_reads_no_index(
    lock: PackageLock, served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    server.requests.clear()
    path = tmp_path / "packages.lock"
    lock.save(path)

    downloaded = fetch_locked(path, cache=tmp_path / "fresh-cache", retry=FAST_RETRY)

    assert [d.package.name for d in downloaded] == ["httpd", "libfoo", "media-types"]
    assert all(d.path.read_bytes() == repo.debs[d.package.name] for d in downloaded)
    assert sorted(server.requests) == sorted(repo.filename(p.name) for p in lock.packages)


def test_locked_file_gone_from_the_mirror(
    lock: PackageLock, served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, _ = served
    (repo.root / repo.filename("libfoo")).unlink()
    with pytest.raises(
        DownloadError, match=r"libfoo 1\.2-1 \(amd64\) is no longer on its mirror"
    ) as caught:
        fetch_locked(lock, cache=tmp_path / "fresh-cache", retry=FAST_RETRY)
    assert caught.value.hint is not None and "snapshot" in caught.value.hint


def test_locked_file_changed_on_the_mirror(
    lock: PackageLock, served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, _ = served
    (repo.root / repo.filename("libfoo")).write_bytes(repo.debs["libfoo"][::-1])
    with pytest.raises(DownloadError, match="does not match its checksum"):
        fetch_locked(lock, cache=tmp_path / "fresh-cache", retry=FAST_RETRY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "Invalid JSON"),
        ('{"version": 2, "architecture": "amd64", "packages": []}', "version"),
        (
            '{"architecture": "amd64", "packages": [{"name": "x", "version": "1", '
            '"architecture": "amd64", "filename": "x.deb", "sha256": "abc", "size": 1, '
            '"mirror": "http://m"}]}',
            "packages.0.sha256",
        ),
    ],
)
def test_invalid_locks_are_refused(text: str, message: str) -> None:
    with pytest.raises(LockError, match="is not a valid package lock") as caught:
        PackageLock.from_json(text, source="packages.lock")
    assert any(message in detail for detail in caught.value.details)
