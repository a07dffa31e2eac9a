"""Mirror configuration: defaults, snapshots, and a machine's apt sources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from kitdsl.pkg.debian import Mirror, ReleaseError
from tests.helpers import build_file_tree


def test_defaults() -> None:
    mirror = Mirror()
    assert (mirror.url, mirror.suite, mirror.components, mirror.architecture) == (
        "http://deb.debian.org/debian",
        "bookworm",
        ("main",),
        "amd64",
    )
    assert mirror.check_valid_until and mirror.keyring is None
    assert mirror.dists_url == "http://deb.debian.org/debian/dists/bookworm"
    assert Mirror(url="https://example.org/debian/").url == "https://example.org/debian"


@pytest.mark.parametrize(
    "fields",
    [{"url": "ftp://example.org"}, {"suite": "../etc"}, {"components": ()}, {"extra": 1}],
)
def test_invalid_mirrors_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Mirror(**fields)  # type: ignore[arg-type]


def test_snapshot() -> None:
    mirror = Mirror.snapshot("20240101T000000Z", suite="bookworm", architecture="arm64")
    assert mirror.url + "/" == "http://snapshot.debian.org/archive/debian/20240101T000000Z/"
    assert mirror.dists_url.endswith("/20240101T000000Z/dists/bookworm")
    assert not mirror.check_valid_until and mirror.architecture == "arm64"
    at_noon_in_paris = datetime(2024, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    assert Mirror.snapshot(at_noon_in_paris).url.endswith("/20240101T120000Z")
    assert Mirror.snapshot(datetime(2024, 1, 1), archive="debian-security").url == (
        "http://snapshot.debian.org/archive/debian-security/20240101T000000Z"
    )
    assert Mirror.snapshot(datetime(2024, 1, 1, tzinfo=UTC)) == Mirror.snapshot("20240101T000000Z")
    with pytest.raises(ReleaseError, match="YYYYMMDDTHHMMSSZ"):
        Mirror.snapshot("2024-01-01")


def test_from_apt_sources(tmp_path: Path) -> None:
    root = build_file_tree(
        tmp_path,
        {
            "etc/apt/sources.list": """
                # the main archive
                deb http://deb.debian.org/debian bookworm main contrib
                deb-src http://deb.debian.org/debian bookworm main
                deb [arch=amd64 signed-by=/k/extra.gpg] https://repo.example.org/apt stable main # c
                deb [arch=arm64] http://ports.example.org/debian bookworm main
                deb http://flat.example.org/repo ./
                deb cdrom:[Debian]/ bookworm main
            """,
            "etc/apt/sources.list.d/debian.sources": """
                Types: deb deb-src
                URIs: http://deb.debian.org/debian
                Suites: bookworm-updates bookworm-backports
                Components: main
                Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

                # disabled
                Types: deb
                URIs: http://disabled.example.org/debian
                Suites: bookworm
                Components: main
                Enabled: no

                Types: deb
                URIs: http://security.debian.org/debian-security
                Suites: bookworm-security
                Components: main non-free-firmware
                Architectures: amd64 i386
            """,
            "etc/apt/sources.list.d/ignored.txt": "deb http://nothing.example.org x main\n",
        },
    )

    mirrors = Mirror.from_apt_sources(root, architecture="amd64")

    assert [(m.url, m.suite, m.components, m.keyring) for m in mirrors] == [
        ("http://deb.debian.org/debian", "bookworm", ("main", "contrib"), None),
        (
            "https://repo.example.org/apt",
            "stable",
            ("main",),
            Path("/k/extra.gpg"),
        ),
        (
            "http://deb.debian.org/debian",
            "bookworm-updates",
            ("main",),
            Path("/usr/share/keyrings/debian-archive-keyring.gpg"),
        ),
        (
            "http://deb.debian.org/debian",
            "bookworm-backports",
            ("main",),
            Path("/usr/share/keyrings/debian-archive-keyring.gpg"),
        ),
        (
            "http://security.debian.org/debian-security",
            "bookworm-security",
            ("main", "non-free-firmware"),
            None,
        ),
    ]
    assert {m.architecture for m in mirrors} == {"amd64"}
    arm = Mirror.from_apt_sources(root, architecture="arm64")
    assert "http://ports.example.org/debian" in [m.url for m in arm]
    assert "http://security.debian.org/debian-security" not in [m.url for m in arm]


def test_from_apt_sources_without_apt(tmp_path: Path) -> None:
    assert Mirror.from_apt_sources(tmp_path) == []
