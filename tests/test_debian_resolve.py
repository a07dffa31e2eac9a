"""Dependency closure over small hand-made indexes (pure logic: no archive needed)."""

from __future__ import annotations

import pytest

from kitdsl.pkg.debian import Package, PackageIndex, ResolveError, resolve


def pkg(name: str, version: str = "1.0", arch: str = "amd64", **fields: str | bool) -> Package:
    return Package(
        name=name,
        version=version,
        architecture=arch,
        filename=f"pool/main/{name}_{version}_{arch}.deb",
        size=1,
        sha256="0" * 64,
        mirror="http://mirror/debian",
        **fields,  # type: ignore[arg-type]
    )


def closure(packages: list[Package], *names: str, exclude: tuple[str, ...] = ()) -> list[str]:
    return resolve(PackageIndex(packages), names, architecture="amd64", exclude=exclude).names()


def test_depends_and_pre_depends_are_followed() -> None:
    packages = [
        pkg("app", depends="liba", pre_depends="libpre"),
        pkg("liba", depends="libc6"),
        pkg("libpre"),
        pkg("libc6"),
        pkg("unwanted"),
    ]
    assert closure(packages, "app") == ["app", "liba", "libc6", "libpre"]


def test_the_newest_version_that_fits_is_chosen() -> None:
    packages = [
        pkg("app", depends="lib (<< 2.0)"),
        pkg("lib", "1.5"),
        pkg("lib", "2.0"),
        pkg("lib", "1.9~rc1"),
    ]
    resolution = resolve(PackageIndex(packages), ["app"], architecture="amd64")
    assert resolution["lib"].version == "1.9~rc1"
    assert resolve(PackageIndex(packages), ["lib"], architecture="amd64")["lib"].version == "2.0"


@pytest.mark.parametrize(
    ("operator", "version", "chosen"),
    [
        ("<<", "2", "1.0"),
        ("<=", "1.0", "1.0"),
        ("=", "1.0", "1.0"),
        (">=", "1.1", "3.0"),
        (">>", "1.0", "3.0"),
    ],
)
def test_every_operator(operator: str, version: str, chosen: str) -> None:
    packages = [
        pkg("app", depends=f"lib ({operator} {version})"),
        pkg("lib", "1.0"),
        pkg("lib", "3.0"),
    ]
    assert resolve(PackageIndex(packages), ["app"], architecture="amd64")["lib"].version == chosen


def test_alternatives_take_the_first_satisfiable() -> None:
    packages = [
        pkg("app", depends="missing | old (>= 2) | second | third"),
        pkg("old", "1.0"),
        pkg("second"),
        pkg("third"),
    ]
    assert closure(packages, "app") == ["app", "second"]


def test_alternative_already_chosen_adds_nothing() -> None:
    packages = [pkg("app", depends="first | second"), pkg("first"), pkg("second")]
    assert closure(packages, "second", "app") == ["app", "second"]


def test_virtual_packages_through_provides() -> None:
    packages = [
        pkg("app", depends="mail-transport-agent"),
        pkg("postfix", provides="mail-transport-agent"),
        pkg("exim4", provides="mail-transport-agent"),
    ]
    # Several providers: the smallest name, so the answer never depends on index order.
    assert closure(packages, "app") == ["app", "exim4"]
    assert closure(list(reversed(packages)), "app") == ["app", "exim4"]


def test_versioned_provides() -> None:
    packages = [
        pkg("app", depends="libvirtual (>= 2)"),
        pkg("oldimpl", provides="libvirtual (= 1.0)"),
        pkg("unversioned", provides="libvirtual"),
        pkg("newimpl", provides="libvirtual (= 2.5)"),
    ]
    assert closure(packages, "app") == ["app", "newimpl"]
    # An unversioned Provides satisfies only an unversioned dependency.
    with pytest.raises(ResolveError, match="no package provides a version that fits"):
        closure(
            [pkg("app", depends="libvirtual (>= 2)"), pkg("unversioned", provides="libvirtual")],
            "app",
        )


def test_provides_of_a_chosen_package_satisfy_later_dependencies() -> None:
    packages = [
        pkg("app", depends="awk"),
        pkg("mawk", provides="awk"),
        pkg("gawk", provides="awk"),
    ]
    assert closure(packages, "mawk", "app") == ["app", "mawk"]


def test_architecture_all_and_target_only() -> None:
    packages = [
        pkg("app", depends="data, lib"),
        pkg("data", arch="all"),
        pkg("lib", arch="arm64"),
        pkg("lib", "0.9", arch="amd64"),
    ]
    resolution = resolve(PackageIndex(packages), ["app"], architecture="amd64")
    assert [(p.name, p.architecture) for p in resolution] == [
        ("app", "amd64"),
        ("data", "all"),
        ("lib", "amd64"),
    ]
    with pytest.raises(ResolveError, match="not available for amd64 \\(only arm64\\)"):
        closure([pkg("tool", arch="arm64")], "tool")


def test_architecture_qualifiers() -> None:
    packages = [
        pkg("app", depends="perl:any, python3:native (>= 3)"),
        pkg("perl", multi_arch="allowed"),
        pkg("python3", "3.11"),
    ]
    assert closure(packages, "app") == ["app", "perl", "python3"]
    with pytest.raises(ResolveError, match="another architecture"):
        closure([pkg("app", depends="lib:arm64"), pkg("lib")], "app")


def test_essential_packages_are_not_added_unless_needed() -> None:
    packages = [
        pkg("app", depends="libc6"),
        pkg("libc6"),
        pkg("bash", essential=True),
        pkg("coreutils", essential=True),
    ]
    assert closure(packages, "app") == ["app", "libc6"]
    assert closure([*packages, pkg("script", depends="bash")], "script") == ["bash", "script"]


def test_exclude_keeps_packages_and_what_they_provide_out() -> None:
    packages = [
        pkg("libssl", depends="libc6, debconf (>= 0.5) | debconf-2.0"),
        pkg("libc6", depends="libc-bin"),
        pkg("libc-bin"),
        pkg("debconf", provides="debconf-2.0"),
        pkg("cdebconf", provides="debconf-2.0"),
    ]
    assert closure(packages, "libssl") == ["debconf", "libc-bin", "libc6", "libssl"]
    assert closure(packages, "libssl", exclude=("libc-bin", "debconf")) == ["libc6", "libssl"]
    with pytest.raises(ResolveError, match="both asked for and excluded"):
        closure(packages, "libc-bin", exclude=("libc-bin",))


def test_unknown_package_suggests_close_names() -> None:
    with pytest.raises(ResolveError, match="unknown package runcc") as caught:
        closure([pkg("runc"), pkg("crun")], "runcc")
    assert caught.value.hint is not None and "runc" in caught.value.hint


def test_virtual_package_with_several_providers_must_be_named() -> None:
    packages = [pkg("postfix", provides="mta"), pkg("exim4", provides="mta")]
    with pytest.raises(ResolveError, match="virtual package provided by exim4, postfix"):
        closure(packages, "mta")
    assert closure(packages[:1], "mta") == ["postfix"]


def test_unsatisfiable_dependency_shows_the_chain() -> None:
    packages = [
        pkg("web", depends="httpd"),
        pkg("httpd", depends="libc6, libfoo (>= 2)"),
        pkg("libc6"),
        pkg("libfoo", "1.0"),
    ]
    with pytest.raises(ResolveError) as caught:
        closure(packages, "web")
    assert caught.value.message == "web → httpd → libfoo (>= 2) : only 1.0 available"


def test_unsatisfiable_alternatives_explain_each() -> None:
    packages = [pkg("httpd", depends="libfoo (>= 2) | libbar"), pkg("libfoo", "1.0")]
    with pytest.raises(ResolveError) as caught:
        closure(packages, "httpd")
    assert caught.value.message == (
        "httpd → libfoo (>= 2) | libbar : libfoo: only 1.0 available; libbar: no such package"
    )


def test_a_chosen_version_is_final() -> None:
    packages = [
        pkg("a", depends="lib (= 1.0)"),
        pkg("b", depends="lib (>= 2.0)"),
        pkg("lib", "1.0"),
        pkg("lib", "2.0"),
    ]
    with pytest.raises(ResolveError, match=r"lib 1\.0 was already chosen \(for a → lib\)"):
        closure(packages, "a", "b")


def test_same_inputs_same_closure_and_reasons() -> None:
    packages = [
        pkg("app", depends="a | b, c"),
        pkg("a", depends="c"),
        pkg("b"),
        pkg("c", depends="d"),
        pkg("d"),
    ]
    first = resolve(PackageIndex(packages), ["app"], architecture="amd64")
    second = resolve(PackageIndex(list(reversed(packages))), ["app"], architecture="amd64")
    assert first == second
    assert first.reasons["d"] == "app → c → d"  # breadth first: the shortest chain


def test_malformed_relation_names_the_package() -> None:
    with pytest.raises(ResolveError, match=r"app 1\.0 \(amd64\): its Depends field"):
        closure([pkg("app", depends="lib (>= )")], "app")
