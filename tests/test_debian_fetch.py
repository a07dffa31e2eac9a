"""Downloading .debs from a served archive: verified, content-addressed, parallel, retried
on transient faults, and never half-written."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kitdsl.pkg.debian import DebFile, DownloadError
from kitdsl.pkg.debian.fetch import Fetcher, FetchItem
from tests.debian_archive import (
    FAST_RETRY,
    ArchiveServer,
    Fault,
    SignedArchive,
    client,
    served_archive,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SignedArchive, ArchiveServer]]:
    archive, server = served_archive(tmp_path / "repo", wrong_hash={"perl"})
    yield archive, server
    server.stop()


def leftovers(cache: Path) -> list[str]:
    folder = cache / "debian" / "sha256"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_closure_is_downloaded_verified_into_the_cache(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    cache = tmp_path / "cache"
    with client(server, cache, jobs=4) as archive:
        resolution = archive.resolve(["httpd"])
        downloaded = archive.download(resolution)

    assert [d.package.name for d in downloaded] == resolution.names()
    for item in downloaded:
        data = repo.debs[item.package.name]
        assert item.path == cache / "debian" / "sha256" / hashlib.sha256(data).hexdigest()
        assert item.path.read_bytes() == data
    httpd = next(d for d in downloaded if d.package.name == "httpd")
    assert DebFile(httpd.path).maintainer_scripts == ("postinst",)
    debs = [path for path in server.requests if path.endswith(".deb")]
    assert len(debs) == len(resolution)


def test_cached_files_are_not_downloaded_again_but_damaged_ones_are(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    with client(server, tmp_path / "cache") as archive:
        first = archive.download(archive.resolve(["libfoo"]))
        before = server.count(".deb")
        assert archive.download(archive.resolve(["libfoo"])) == first
        assert server.count(".deb") == before

        first[0].path.write_bytes(b"bit rot")
        again = archive.download(archive.resolve(["libfoo"]))
    assert server.count(".deb") == before + 1
    assert again[0].path.read_bytes() != b"bit rot"


def test_corrupt_deb_is_refused_and_not_kept(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    path = repo.filename("libfoo")
    data = repo.debs["libfoo"]
    server.faults[path] = Fault(body=data[:100] + b"X" + data[101:])
    with (
        client(server, tmp_path / "cache") as archive,
        pytest.raises(DownloadError, match="does not match its checksum") as caught,
    ):
        archive.download(archive.resolve(["libfoo"]))
    assert caught.value.url == f"{server.url}/{path}"
    assert server.count(path) == 1  # a mismatch is not retried
    kept = leftovers(tmp_path / "cache")
    assert hashlib.sha256(data).hexdigest() not in kept
    assert not [name for name in kept if name.startswith(".")]  # no temporary file either


def test_index_listing_a_wrong_hash_is_caught(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    _, server = served
    with (
        client(server, tmp_path / "cache") as archive,
        pytest.raises(DownloadError, match=r"perl_5\.36-1_amd64\.deb does not match its checksum"),
    ):
        archive.download(archive.resolve(["perl"]))


def test_missing_file_names_the_url(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    path = repo.filename("libc6")
    server.faults[path] = Fault(status=404)
    with (
        client(server, tmp_path / "cache") as archive,
        pytest.raises(DownloadError, match="is no longer on its mirror") as caught,
    ):
        archive.download(archive.resolve(["libc6"]))
    assert caught.value.url == f"{server.url}/{path}"
    assert "libc6 2.36-9 (amd64)" in caught.value.message


@pytest.mark.parametrize(
    "fault",
    [Fault(status=503, times=2), Fault(cut=10, times=2), Fault(status=429, times=1)],
    ids=["503", "dropped", "429"],
)
def test_transient_faults_are_retried(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path, fault: Fault
) -> None:
    repo, server = served
    path = repo.filename("libc6")
    server.faults[path] = fault
    with client(server, tmp_path / "cache") as archive:
        (downloaded,) = archive.download(archive.resolve(["libc6"]))
    assert downloaded.path.read_bytes() == repo.debs["libc6"]
    assert server.count(path) >= 2


def test_persistent_faults_give_up_with_nothing_left(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    path = repo.filename("libc6")
    server.faults[path] = Fault(cut=500)
    cache = tmp_path / "cache"
    with client(server, cache) as archive:
        index_files = archive.index() and leftovers(cache)
        with pytest.raises(DownloadError, match="after 3 tries") as caught:
            archive.download(archive.resolve(["libc6"]))
    assert caught.value.url == f"{server.url}/{path}"
    assert server.count(path) == FAST_RETRY.attempts
    assert leftovers(cache) == index_files


def test_server_down_names_the_url(tmp_path: Path) -> None:
    repo, server = served_archive(tmp_path / "repo")
    url = f"{server.url}/{repo.filename('libc6')}"
    data = repo.debs["libc6"]
    server.stop()
    fetcher = Fetcher(tmp_path / "cache", retry=FAST_RETRY)
    with pytest.raises(DownloadError, match="connection refused") as caught:
        fetcher.fetch_all([FetchItem(url, hashlib.sha256(data).hexdigest(), len(data))])
    assert caught.value.url == url and caught.value.hint is not None
    assert leftovers(tmp_path / "cache") == []


def test_size_announced_wrong_is_refused_before_reading(
    served: tuple[SignedArchive, ArchiveServer], tmp_path: Path
) -> None:
    repo, server = served
    data = repo.debs["libc6"]
    url = f"{server.url}/{repo.filename('libc6')}"
    fetcher = Fetcher(tmp_path / "cache", retry=FAST_RETRY)
    with pytest.raises(DownloadError, match="bytes, but 5 were expected"):
        fetcher.fetch(FetchItem(url, hashlib.sha256(data).hexdigest(), 5))
    assert leftovers(tmp_path / "cache") == []
