"""Reading .deb files built in Python: control fields, scripts, data members, and the
entries that must never be unpacked."""

from __future__ import annotations

import importlib.util
import subprocess
import tarfile
from pathlib import Path

import pytest

from kitdsl.pkg.debian import DebError, DebFile
from tests.debian_archive import DebSpec, ar_archive, build_deb, tar_bytes, tar_entry

HAVE_ZSTD = importlib.util.find_spec("zstandard") is not None


def write(tmp_path: Path, spec: DebSpec) -> Path:
    path = tmp_path / f"{spec.name}.deb"
    path.write_bytes(build_deb(spec))
    return path


@pytest.mark.parametrize("compression", [".xz", ".gz", ".bz2", ".lzma", ""])
def test_members_control_and_scripts(tmp_path: Path, compression: str) -> None:
    spec = DebSpec(
        "httpd",
        "1:2.4-1",
        depends="libc6 (>= 2.36)",
        files={"usr/sbin/httpd": b"#!/bin/sh\n", "etc/httpd.conf": b"Listen 80\n"},
        scripts={"postinst": "#!/bin/sh\nadduser www\n", "prerm": "#!/bin/sh\n"},
        triggers="# comment\nactivate-noawait ldconfig\n",
        compression=compression,
    )
    deb = DebFile(write(tmp_path, spec))

    assert (deb.name, deb.version, deb.architecture) == ("httpd", "1:2.4-1", "amd64")
    assert deb.control["depends"] == "libc6 (>= 2.36)"
    assert deb.control["Description"].splitlines()[0] == "test package httpd"
    assert deb.maintainer_scripts == ("postinst", "prerm")
    assert deb.control_files["postinst"] == b"#!/bin/sh\nadduser www\n"
    assert deb.triggers == ("activate-noawait ldconfig",)
    contents = {
        m.name: m.reader.read() if m.reader else None for m in deb.members() if m.info.isfile()
    }
    assert contents == {
        "etc/httpd.conf": b"Listen 80\n",
        "usr/sbin/httpd": b"#!/bin/sh\n",
        "usr/share/doc/httpd/copyright": b"public domain\n",
    }
    assert "usr/sbin" in deb.files() and "" not in deb.files()


def test_dpkg_deb_agrees(tmp_path: Path) -> None:
    """dpkg-deb reads the files this test suite builds the same way."""
    path = write(tmp_path, DebSpec("tool", "1.0", files={"usr/bin/tool": b"x"}))
    listing = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(path)], capture_output=True, check=True
    ).stdout
    (tmp_path / "data.tar").write_bytes(listing)
    with tarfile.open(tmp_path / "data.tar") as tar:
        names = [name.removeprefix("./").rstrip("/") for name in tar.getnames()]
    assert [n for n in names if n not in ("", ".")] == DebFile(path).files()


def test_links(tmp_path: Path) -> None:
    entries = [
        tar_entry("./", kind=tarfile.DIRTYPE),
        tar_entry("./usr/", kind=tarfile.DIRTYPE),
        tar_entry("./usr/bin/", kind=tarfile.DIRTYPE),
        tar_entry("./usr/bin/busybox", b"ELF"),
        tar_entry("./usr/bin/sh", kind=tarfile.SYMTYPE, link="busybox"),
        tar_entry("./usr/bin/awk", kind=tarfile.SYMTYPE, link="/etc/alternatives/awk"),
        tar_entry("./usr/bin/ls", kind=tarfile.SYMTYPE, link="../../usr/bin/busybox"),
        tar_entry("./usr/bin/cat", kind=tarfile.LNKTYPE, link="./usr/bin/busybox"),
    ]
    deb = DebFile(write(tmp_path, DebSpec("busybox", "1.0", data_entries=entries)))
    members = {m.name: m.info for m in deb.members()}
    assert members["usr/bin/cat"].linkname == "usr/bin/busybox"
    assert members["usr/bin/awk"].linkname == "/etc/alternatives/awk"
    assert members["usr/bin/sh"].issym()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([tar_entry("/etc/passwd", b"x")], "outside the root"),
        ([tar_entry("./usr/../../etc/passwd", b"x")], "outside the root"),
        ([tar_entry("./usr/lib/../x", b"x")], "outside the root"),
        ([tar_entry("./x", kind=tarfile.SYMTYPE, link="../etc/shadow")], "leaves the root"),
        (
            [tar_entry("./a/b", kind=tarfile.SYMTYPE, link="../../../../etc")],
            "leaves the root",
        ),
        ([tar_entry("./x", kind=tarfile.LNKTYPE, link="/etc/shadow")], "not an earlier file"),
        ([tar_entry("./x", kind=tarfile.LNKTYPE, link="./never")], "not an earlier file"),
        (
            [
                tar_entry("./etc", kind=tarfile.SYMTYPE, link="/"),
                tar_entry("./etc/cron.d/evil", b"x"),
            ],
            "below the symbolic link etc",
        ),
        ([tar_entry("./dev/sda", kind=tarfile.BLKTYPE)], "device node"),
    ],
    ids=[
        "absolute",
        "dotdot",
        "dotdot-inside",
        "symlink-up",
        "symlink-deep",
        "hardlink-abs",
        "hardlink-missing",
        "through-symlink",
        "device",
    ],
)
def test_hostile_entries_are_refused(tmp_path: Path, entries: list, message: str) -> None:  # type: ignore[type-arg]
    deb = DebFile(write(tmp_path, DebSpec("evil", "1.0", data_entries=entries)))
    with pytest.raises(DebError, match=message) as caught:
        list(deb.members())
    assert str(deb.path) in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not an archive", "no ar archive header"),
        (ar_archive([("debian-binary", b"2.0\n")]), "its ar members are debian-binary"),
        (
            ar_archive([("debian-binary", b"3.0\n"), ("control.tar", b""), ("data.tar", b"")]),
            "unsupported .deb format version",
        ),
        (
            ar_archive([("debian-binary", b"2.0\n"), ("control.tar", b""), ("data.tar.rar", b"")]),
            "unexpected member 'data.tar.rar'",
        ),
    ],
    ids=["not-ar", "members", "version", "compression"],
)
def test_malformed_debs_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.deb"
    path.write_bytes(data)
    with pytest.raises(DebError, match=message):
        DebFile(path)


def test_truncated_and_damaged_debs(tmp_path: Path) -> None:
    good = build_deb(DebSpec("tool", "1.0", files={"usr/bin/tool": b"x" * 5000}))
    path = tmp_path / "cut.deb"
    path.write_bytes(good[:-100])
    with pytest.raises(DebError, match="truncated"):
        DebFile(path)
    damaged = bytearray(good)
    damaged[-200:-150] = b"\0" * 50
    path.write_bytes(bytes(damaged))
    with pytest.raises(DebError, match=r"damaged data\.tar\.xz"):
        list(DebFile(path).members())


def test_underscore_members_are_ignored(tmp_path: Path) -> None:
    control = tar_bytes([tar_entry("./control", b"Package: x\nVersion: 1\n")], ".gz")
    data = tar_bytes([tar_entry("./usr/x", b"1")])
    path = tmp_path / "x.deb"
    path.write_bytes(
        ar_archive(
            [
                ("debian-binary", b"2.0\n"),
                ("_gpgorigin", b"sig"),
                ("control.tar.gz", control),
                ("data.tar", data),
            ]
        )
    )
    deb = DebFile(path)
    assert deb.name == "x" and deb.files() == ["usr/x"] and deb.maintainer_scripts == ()


@pytest.mark.skipif(HAVE_ZSTD, reason="the error is for machines without zstandard")
def test_zstd_without_zstandard_says_what_to_install(tmp_path: Path) -> None:
    control = tar_bytes([tar_entry("./control", b"Package: z\nVersion: 1\n")], ".xz")
    path = tmp_path / "z.deb"
    path.write_bytes(
        ar_archive(
            [
                ("debian-binary", b"2.0\n"),
                ("control.tar.xz", control),
                ("data.tar.zst", b"(\xb5/\xfd"),
            ]
        )
    )
    deb = DebFile(path)
    assert deb.name == "z"
    with pytest.raises(DebError, match="zstandard") as caught:
        list(deb.members())
    assert caught.value.hint == "pip install zstandard"
