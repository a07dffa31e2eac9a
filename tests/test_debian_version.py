"""Debian version ordering, checked against dpkg itself."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitdsl.pkg.debian import Version, compare_versions
from kitdsl.pkg.debian.relations import parse_relations
from kitdsl.pkg.debian.version import VersionError, satisfies

DPKG = shutil.which("dpkg")


def dpkg_compare(a: str, b: str) -> int:
    """dpkg's verdict: -1, 0 or 1."""
    for operator, result in (("lt", -1), ("eq", 0)):
        if (
            subprocess.run(["dpkg", "--compare-versions", a, operator, b], check=False).returncode
            == 0
        ):
            return result
    return 1


# Small alphabets make near-equal versions (the interesting ones) likely.
_upstream_tail = st.text(alphabet="019a.+~", max_size=6)
_revision = st.text(alphabet="01a.+~", min_size=1, max_size=5)
versions = st.builds(
    lambda epoch, head, tail, revision: (
        (f"{epoch}:" if epoch is not None else "")
        + head
        + tail
        + (f"-{revision}" if revision else "")
    ),
    st.none() | st.integers(0, 2),
    st.sampled_from(["0", "1", "2", "10", "01"]),
    _upstream_tail,
    st.none() | _revision,
)


@pytest.mark.skipif(DPKG is None, reason="dpkg is the oracle")
@settings(max_examples=300, deadline=None)
@given(versions, versions)
def test_ordering_matches_dpkg(a: str, b: str) -> None:
    expected = dpkg_compare(a, b)
    assert compare_versions(a, b) == expected
    assert (Version(a) == Version(b)) == (expected == 0)
    assert (Version(a) < Version(b)) == (expected < 0)
    if expected == 0:
        assert hash(Version(a)) == hash(Version(b))


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0+b1"),
        ("1.9", "1.10"),
        ("2.36-9+deb12u4", "2.36-9+deb12u10"),
        ("9.9", "1:0.1"),
        ("1.0-1", "1.0-1.1"),
        ("1.0", "1.0-0.1"),
    ],
)
def test_known_orderings(smaller: str, larger: str) -> None:
    assert compare_versions(smaller, larger) == -1
    assert compare_versions(larger, smaller) == 1
    assert sorted([Version(larger), Version(smaller)]) == [Version(smaller), Version(larger)]


@pytest.mark.parametrize(("a", "b"), [("1.01", "1.1"), ("0:1.0", "1.0"), ("1.0", "1.0-0")])
def test_equal_spellings(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0
    assert Version(a) == Version(b) and len({Version(a), Version(b)}) == 1


def test_parts() -> None:
    version = Version("2:1.2-3-4")
    assert (version.epoch, version.upstream, version.revision) == (2, "1.2-3", "4")
    with pytest.raises(VersionError):
        Version("x:1.0")
    with pytest.raises(VersionError):
        Version("")


@pytest.mark.parametrize(
    ("version", "operator", "wanted", "result"),
    [
        ("1.0", "<<", "1.1", True),
        ("1.1", "<<", "1.1", False),
        ("1.1", "<=", "1.1", True),
        ("1.1", "=", "1.1-0", True),
        ("1.2", ">=", "1.1", True),
        ("1.1", ">>", "1.1", False),
        ("1.1~rc1", ">=", "1.1", False),
        ("1.1", "<", "1.1", True),  # obsolete spelling of <=
        ("1.1", ">", "1.1", True),  # obsolete spelling of >=
    ],
)
def test_constraints(version: str, operator: str, wanted: str, result: bool) -> None:
    assert satisfies(version, operator, wanted) is result


def test_relation_fields_parse() -> None:
    groups = parse_relations(
        "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, perl:any, "
        "foo [amd64 arm64] <!nocheck>, bar:native (<< 2~), qux [!i386]"
    )
    assert [[str(r) for r in group] for group in groups] == [
        ["libc6 (>= 2.34)"],
        ["debconf (>= 0.5)", "debconf-2.0"],
        ["perl:any"],
        ["foo"],
        ["bar:native (<< 2~)"],
        ["qux"],
    ]
    assert groups[3][0].applies_to("arm64") and not groups[3][0].applies_to("i386")
    assert groups[5][0].applies_to("amd64") and not groups[5][0].applies_to("i386")
