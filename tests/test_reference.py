"""The Docker reference grammar and Docker Hub normalisation."""

from __future__ import annotations

import pytest

from kitdsl.reference import Reference, ReferenceSyntaxError, canonical, parse

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis", "docker.io/library/redis"),
        ("redis:7", "docker.io/library/redis:7"),
        ("linuxkit/getty:v1.0", "docker.io/linuxkit/getty:v1.0"),
        ("docker.io/linuxkit/getty", "docker.io/linuxkit/getty"),
        ("index.docker.io/linuxkit/getty", "docker.io/linuxkit/getty"),
        ("localhost/foo", "localhost/foo"),
        ("localhost:5000/foo/bar:1", "localhost:5000/foo/bar:1"),
        ("127.0.0.1:5000/a", "127.0.0.1:5000/a"),
        ("ghcr.io/org/team/image:tag", "ghcr.io/org/team/image:tag"),
        ("[::1]:5000/a", "[::1]:5000/a"),
        (f"alpine@{DIGEST}", f"docker.io/library/alpine@{DIGEST}"),
        (f"alpine:3.20@{DIGEST}", f"docker.io/library/alpine:3.20@{DIGEST}"),
        ("a/b/c/d", "docker.io/a/b/c/d"),
        ("foo__bar-baz/x.y", "docker.io/foo__bar-baz/x.y"),
    ],
)
def test_canonical(text: str, expected: str) -> None:
    assert canonical(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Redis", "lower case"),
        ("linuxkit/Getty", "lower case"),
        ("redis:", "invalid tag"),
        ("redis:-x", "invalid tag"),
        ("redis@sha256:abc", "invalid digest"),
        ("redis@sha256:" + "A" * 64, "64 lower-case"),
        ("foo//bar", "component"),
        ("foo/-bar", "component"),
        (" redis", "spaces"),
        ("ghcr.io/", "missing"),
        ("a" * 256, "longer than"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(ReferenceSyntaxError, match=message):
        parse(text)


def test_parts_and_familiar_form() -> None:
    ref = parse("linuxkit/getty:v1")
    assert ref == Reference("docker.io", "linuxkit/getty", "v1", None)
    assert ref.familiar == "linuxkit/getty:v1"
    assert parse("redis").familiar == "redis"
    assert str(parse("redis").with_default_tag()) == "docker.io/library/redis:latest"
    assert parse("localhost:5000/a:1").familiar == "localhost:5000/a:1"
