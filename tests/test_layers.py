"""Flattening layers into one file system stream: OCI semantics, hostile layers, LinuxKit's
filters, determinism, agreement with umoci, bounded memory."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitdsl.assemble import layer_read
from kitdsl.assemble.layer_filter import HOSTS, NO_RESOLV_CONF, RESOLVCONF_LINK, linuxkit_filter
from kitdsl.assemble.layer_read import LayerData, LayerError, LayerSource
from kitdsl.assemble.layers import DEFAULT_MTIME, flatten, image_layers, relocate
from kitdsl.errors import ImageError
from kitdsl.oci.media import OCI_LAYER_ZSTD
from kitdsl.oci.store import ContentStore
from tests.layer_fixtures import (
    LAYER_MTIME,
    MEMORY_PROBE,
    Member,
    Seen,
    big_layer,
    comparison_layers,
    device,
    digest,
    directory,
    disk_tree,
    fifo,
    file,
    flat_tree,
    gz,
    hardlink,
    layer,
    opaque,
    seen,
    sources,
    store_image,
    stream_bytes,
    symlink,
    tag_layout,
    whiteout,
)

REPO = Path(__file__).resolve().parent.parent


def tree(*layers: bytes, **options: object) -> dict[str, Seen]:
    return flat_tree(sources([gz(tar) for tar in layers]), **options)


def kinds(found: dict[str, Seen]) -> dict[str, str]:
    return {path: item.kind for path, item in found.items()}


def refusal(*layers: bytes, **options: object) -> str:
    with pytest.raises(LayerError) as caught:
        tree(*layers, **options)
    return str(caught.value)


# -- entry types and attributes -------------------------------------------------------------


def test_every_entry_type_keeps_its_attributes() -> None:
    found = tree(
        layer(
            directory("bin", uid=1, gid=2, uname="bin", gname="bin"),
            file("bin/su", b"su", mode=0o4755, uid=0, gid=0, mtime=1_500_000_000.25),
            file("bin/wall", b"w", mode=0o2755, gid=5),
            directory("tmp", mode=0o1777),
            symlink("bin/sh", "su"),
            hardlink("bin/su2", "bin/su"),
            device("dev/null", "char", 1, 3, mode=0o666),
            device("dev/sda", "block", 8, 0),
            fifo("run/initctl", mode=0o600),
            file(
                "bin/ping",
                b"p",
                mode=0o755,
                pax={
                    "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
                    "SCHILY.xattr.user.note": "hi",
                    "comment": "dropped",
                    "atime": "1.5",
                },
            ),
        )
    )
    assert list(found) == [
        "bin",
        "bin/ping",
        "bin/sh",
        "bin/su",
        "bin/su2",
        "bin/wall",
        "dev",
        "dev/null",
        "dev/sda",
        "run",
        "run/initctl",
        "tmp",
    ]
    assert found["bin"] == Seen("dir", 0o755, 1, 2, mtime=LAYER_MTIME)
    assert found["bin/su"] == Seen("file", 0o4755, data=b"su", mtime=1_500_000_000.25)
    assert found["bin/su2"].kind == "hardlink" and found["bin/su2"].link == "bin/su"
    assert found["bin/su2"].mode == 0o4755
    assert found["bin/wall"].mode == 0o2755 and found["bin/wall"].gid == 5
    assert found["tmp"].mode == 0o1777
    assert found["bin/sh"].kind == "symlink" and found["bin/sh"].link == "su"
    assert found["dev/null"] == Seen("char", 0o666, device=(1, 3), mtime=LAYER_MTIME)
    assert found["dev/sda"].device == (8, 0) and found["dev/sda"].kind == "block"
    assert found["run/initctl"].kind == "fifo"
    assert found["run"] == Seen("dir", 0o755, mtime=DEFAULT_MTIME)  # implied parent
    assert found["bin/ping"].xattrs == (
        ("security.capability", "\x01\x00\x00\x02"),
        ("user.note", "hi"),
    )


def test_user_and_group_names_are_kept_and_other_pax_records_dropped() -> None:
    blob = gz(layer(file("a", b"x", uname="daemon", gname="adm", pax={"comment": "c"})))
    with flatten(sources([blob]), image="test") as flat:
        (entry,) = flat.entries()
    assert (entry.info.uname, entry.info.gname) == ("daemon", "adm")
    assert entry.info.pax_headers == {}


# -- OCI changeset rules --------------------------------------------------------------------


def test_whiteouts_and_opaque_directories_across_three_layers() -> None:
    base = layer(
        directory("d"),
        file("d/a", b"a1"),
        file("d/b", b"b1"),
        directory("d/sub"),
        file("d/sub/c", b"c1"),
        file("keep", b"k"),
        directory("gone"),
        file("gone/x", b"x"),
    )
    middle = layer(
        file("d/n", b"n2"),  # before the marker: same-layer entries are never hidden
        opaque("d"),
        whiteout("keep"),
        whiteout("gone"),
        file("e", b"e2"),
        whiteout("never-existed"),
    )
    top = layer(whiteout("d/n"), file("d/a", b"a3"), whiteout("e"), directory("gone"))
    found = tree(base, middle, top)
    assert kinds(found) == {"d": "dir", "d/a": "file", "gone": "dir"}
    assert found["d/a"].data == b"a3"
    assert kinds(tree(base, middle)) == {"d": "dir", "d/n": "file", "e": "file"}


def test_a_whiteout_does_not_hide_its_own_layers_entries() -> None:
    assert tree(layer(file("x", b"1"), whiteout("x")))["x"].data == b"1"


def test_an_opaque_root_hides_every_lower_layer() -> None:
    found = tree(layer(file("a"), file("d/b")), layer(opaque(""), file("c")))
    assert list(found) == ["c"]


def test_aufs_bookkeeping_is_ignored() -> None:
    found = tree(layer(directory(".wh..wh.plnk"), file(".wh..wh.plnk/1.2", b"x"), file("a")))
    assert list(found) == ["a"]


def test_entries_replace_each_other_file_and_directory() -> None:
    base = layer(file("p", b"p"), directory("q"), file("q/x", b"x"), directory("r"), file("r/y"))
    top = layer(directory("p", mode=0o700), file("p/new", b"n"), file("q", b"q"), symlink("r", "p"))
    found = tree(base, top)
    assert kinds(found) == {"p": "dir", "p/new": "file", "q": "file", "r": "symlink"}
    assert found["p"].mode == 0o700
    # A directory over a directory changes its attributes and keeps its contents.
    again = tree(base, layer(directory("q", mode=0o750, uid=7)))
    assert again["q"].mode == 0o750 and again["q"].uid == 7 and "q/x" in again


def test_hard_links_across_layers() -> None:
    base = layer(
        file("t", b"T"),
        hardlink("t2", "t"),
        file("u", b"old"),
        hardlink("u2", "u"),
        file("v", b"V"),
    )
    top = layer(whiteout("t"), file("u", b"new"), hardlink("w", "v"), hardlink("w2", "w"))
    found = tree(base, top)
    assert found["t2"] == Seen("file", 0o644, data=b"T", mtime=found["t2"].mtime)
    assert "t" not in found
    assert found["u"].data == b"new" and found["u2"].data == b"old"
    assert found["u2"].kind == "file"
    assert (found["w"].kind, found["w"].link) == ("hardlink", "v")
    assert (found["w2"].kind, found["w2"].link) == ("hardlink", "v")
    # A link keeps the file its target named when it was made.
    same_layer = tree(layer(file("a", b"1"), hardlink("b", "a"), file("a", b"2")))
    assert (same_layer["a"].data, same_layer["b"].data) == (b"2", b"1")


def test_hard_link_contents_are_readable_from_either_entry() -> None:
    with flatten(sources([gz(layer(file("a", b"data"), hardlink("b", "a")))]), image="t") as flat:
        a, b = flat.entries()
        assert b.target is a
        with b.open() as contents:
            assert contents.read() == b"data"


def test_parents_through_symlinks_inside_the_root_are_followed() -> None:
    base = layer(directory("usr"), directory("usr/lib"), symlink("lib", "usr/lib"))
    found = tree(base, layer(file("lib/extra", b"e")))
    assert found["lib"].kind == "symlink" and found["usr/lib/extra"].data == b"e"
    assert "lib/extra" not in found


def test_order_is_depth_first_with_sorted_names() -> None:
    found = tree(layer(file("a-b"), file("a/b"), file("a.c"), directory("a"), file("B")))
    assert list(found) == ["B", "a", "a/b", "a-b", "a.c"]


def test_root_entries_and_dot_slash_names_are_normalised() -> None:
    found = tree(layer(directory("."), directory("./etc/"), file("./etc//passwd", b"p")))
    assert list(found) == ["etc", "etc/passwd"]


# -- hostile and broken layers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "entry", "problem"),
    [
        ([file("/etc/passwd")], "/etc/passwd", "has an absolute name"),
        ([file("a/../../x")], "a/../../x", "climbs out of the root with '..'"),
        ([symlink("a", "/etc"), file("a/x")], "a/x", "'a' -> '/etc', which leads out"),
        ([symlink("a", "../.."), file("a/x")], "a/x", "'a' -> '../..', which leads out"),
        ([symlink("a", "b"), symlink("b", "a"), file("a/x")], "a/x", "more than 40 symbolic"),
        ([file("x"), hardlink("y", "/x")], "y", "hard link to the absolute path '/x'"),
        ([file("x"), hardlink("y", "../x")], "y", "climbs out with '..'"),
        ([hardlink("y", "missing")], "y", "hard link to 'missing', which does not exist"),
        ([directory("d"), hardlink("y", "d")], "y", "which is a directory"),
        ([symlink("a", "/etc"), hardlink("y", "a/passwd")], "y", "which leads out"),
        ([file("d/.wh...")], "d/.wh...", "is a whiteout of '..', which is not a file name"),
        ([file("d/.wh..")], "d/.wh..", "is a whiteout of '.', which is not a file name"),
        ([file("d/.wh.e/f")], "d/.wh.e/f", "a directory named '.wh.*'"),
        ([file("x"), file("x/y")], "x/y", "needs 'x' to be a directory"),
        ([file("a", pax={"path": "a\0b"})], "a\0b", "has a NUL byte in its name"),
        ([symlink("a", "b", pax={"linkpath": "b\0c"})], "a", "NUL byte in its link target"),
        ([symlink("a", "b/" * 2049)], "a", "has a link target longer than 4096 bytes"),
    ],
)
def test_hostile_entries_are_refused_with_image_layer_and_entry(
    members: list, entry: str, problem: str
) -> None:
    base = layer(file("ok"))
    hostile = layer(*members)
    message = refusal(base, hostile)
    assert f"image test, layer 2 of 2 ({digest(gz(hostile))}), entry {entry!r}" in message
    assert problem in message


@pytest.mark.parametrize("member", [file("a/passwd", b"x"), whiteout("a/passwd"), opaque("a")])
def test_hostile_symlink_from_a_lower_layer(member: Member) -> None:
    message = refusal(layer(symlink("a", "/etc")), layer(member))
    assert "layer 2 of 2" in message and "'a' -> '/etc', which leads out" in message


def test_devices_are_refused_when_not_allowed() -> None:
    message = refusal(layer(device("dev/mem", "char", 1, 1)), allow_devices=False)
    assert "entry 'dev/mem': is a device node" in message
    assert tree(layer(fifo("p")), allow_devices=False)["p"].kind == "fifo"


def test_unsupported_entry_types_are_refused() -> None:
    member = file("label")
    member.info.type = b"V"
    assert "unsupported tar type b'V'" in refusal(layer(member))


def test_corrupt_gzip_is_refused() -> None:
    blob = bytearray(gz(layer(file("a", b"x" * 1000))))
    blob[-6] ^= 0xFF  # the CRC in the trailer
    message = refusal_of_blobs([bytes(blob)])
    assert "layer 1 of 1" in message and "is not valid gzip data: CRC check failed" in message


def test_layers_are_decompressed_outside_the_calling_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The calling thread goes on to compress the initrd, which ISA-L's decoder would slow down
    # (see kitdsl.assemble.layer_read); its errors still reach the caller.
    threads: list[int] = []
    decompress = layer_read._uncompressed

    def recording(*args: Any) -> LayerData:
        threads.append(threading.get_ident())
        return decompress(*args)

    monkeypatch.setattr(layer_read, "_uncompressed", recording)
    assert kinds(tree(layer(file("a")), layer(file("b")))) == {"a": "file", "b": "file"}
    assert len(threads) == 2 and threading.get_ident() not in threads
    blob = gz(layer(file("a", random.Random(1).randbytes(5000))))
    assert "it is truncated" in refusal_of_blobs([blob[: len(blob) // 2]])
    assert len(threads) == 3 and threading.get_ident() not in threads


class _SlowBlob(io.RawIOBase):
    """A blob served a few bytes at a time, slowly: a layer that takes seconds to read."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        time.sleep(0.002)
        piece = self.blob[self.position : self.position + 64]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)


def test_an_interrupted_build_stops_reading_the_layer_at_once(tmp_path: Path) -> None:
    # Ctrl-C while a layer is decompressed elsewhere: the reader stops at its next read, the
    # interruption reaches the caller, and no thread or temporary file is left behind.
    blob = gzip.compress(random.Random(3).randbytes(1 << 20), mtime=0)  # ~33 s to read
    slow = _SlowBlob(blob)
    source = dataclasses.replace(sources([blob])[0], open=lambda: cast(BinaryIO, slow))
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            flatten([source], image="test", workdir=tmp_path)
    finally:
        timer.cancel()
    assert slow.position < len(blob) // 4
    assert not [t for t in threading.enumerate() if t.name.startswith("kitdsl-layer")]
    assert os.listdir(tmp_path) == []


def test_truncated_gzip_is_refused() -> None:
    blob = gz(layer(file("a", random.Random(1).randbytes(5000))))
    assert "is not valid gzip data: it is truncated" in refusal_of_blobs([blob[: len(blob) // 2]])


def test_truncated_tar_is_refused() -> None:
    tar = layer(file("a", b"x" * 2000), file("b", b"y" * 2000))
    assert "entry 'b': is truncated" in refusal_of_blobs([tar[:3500]])
    assert "after entry 'a': a header cut short at byte 2560" in refusal_of_blobs([tar[:2600]])


def test_garbage_in_place_of_a_header_is_refused() -> None:
    tar = bytearray(layer(file("a", b"x" * 10), file("b", b"y")))
    tar[1024:1536] = random.Random(2).randbytes(512)  # the second entry's header
    message = refusal_of_blobs([bytes(tar)])
    assert "is corrupt or truncated after entry 'a'" in message


def test_huge_headers_and_too_many_entries_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 17 << 20
    bomb = pax.tobuf(tarfile.USTAR_FORMAT) + bytes(2048)
    assert "a tar header claims 17825792 bytes" in refusal_of_blobs([bomb])
    monkeypatch.setattr("kitdsl.assemble.layer_read.MAX_ENTRIES", 3)
    assert "has more than 3 entries" in refusal(layer(*(file(f"f{i}") for i in range(4))))


def test_digest_and_diff_id_mismatches_are_refused() -> None:
    blob = gz(layer(file("a")))
    (source,) = sources([blob])
    wrong = LayerSource(source.digest, source.media_type, source.open, diff_id=digest(b"x"))
    with pytest.raises(LayerError, match="not the diff_id"):
        flatten([wrong], image="test")
    lying = LayerSource(digest(b"x"), source.media_type, source.open)
    with pytest.raises(LayerError, match="does not match its digest"):
        flatten([lying], image="test")


def test_zstd_layers(tmp_path: Path) -> None:
    tar = layer(file("z", b"zstd!"))
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        blob = b"\x28\xb5\x2f\xfd" + bytes(20)
        (source,) = sources([blob], media_type=OCI_LAYER_ZSTD)
        with pytest.raises(
            LayerError, match=r"zstd \(application/vnd.oci.image.layer.v1.tar\+zstd"
        ):
            flatten([LayerSource(source.digest, OCI_LAYER_ZSTD, source.open)], image="t")
        return
    blob = zstandard.ZstdCompressor().compress(tar)
    source = LayerSource(digest(blob), OCI_LAYER_ZSTD, lambda: io.BytesIO(blob), digest(tar))
    assert flat_tree([source])["z"].data == b"zstd!"


def test_media_types_that_are_not_layers_are_refused() -> None:
    (source,) = sources([gz(layer(file("a")))], media_type="application/vnd.in-toto+json")
    with pytest.raises(ImageError, match="which is not a layer"):
        flatten([source], image="test")


def refusal_of_blobs(blobs: list[bytes]) -> str:
    with pytest.raises(LayerError) as caught:
        flatten(sources(blobs), image="test")
    return str(caught.value)


# -- where the stream comes from -------------------------------------------------------------


def test_images_in_the_store_and_uncompressed_layers_read_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ContentStore(tmp_path / "store")
    image = store_image(store, [layer(file("a", b"1")), layer(file("b", b"2"))], compress=False)
    layers = image_layers(store, image.manifest, image.config, image="test")
    assert [layer.diff_id for layer in layers] == [layer.digest for layer in layers]

    def no_spool(*args: object, **kwargs: object) -> None:
        raise AssertionError("an uncompressed local layer needs no temporary copy")

    monkeypatch.setattr("kitdsl.assemble.layer_read.tempfile.TemporaryFile", no_spool)
    found = flat_tree(layers)
    assert (found["a"].data, found["b"].data) == (b"1", b"2")


def test_empty_layers_add_nothing() -> None:
    blobs = [gz(b""), gz(bytes(1024)), b"", layer()]
    assert flat_tree(sources(blobs, media_type="application/vnd.oci.image.layer.v1.tar")) == {}


def test_diff_ids_must_match_the_layers(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    image = store_image(store, [layer(file("a"))])
    config = json.dumps({"rootfs": {"diff_ids": []}}).encode()
    with pytest.raises(LayerError, match="1 layers but its configuration lists 0 diff_ids"):
        image_layers(store, image.manifest, config, image="test")


def test_temporary_files_never_show_and_readers_stop_after_close(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with flatten(sources([gz(layer(file("a", b"x")))]), image="t", workdir=work) as flat:
        assert list(work.iterdir()) == []  # unlinked at once: nothing to clean up, ever
        (entry,) = flat.entries()
    with pytest.raises(ValueError, match="is closed"):
        entry.open()
    with pytest.raises(LayerError):
        flatten(sources([gz(layer(file("/x")))]), image="t", workdir=work)
    assert list(work.iterdir()) == []


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
@pytest.mark.parametrize("form", ["gnu", "pax"])
def test_sparse_files_are_expanded(tmp_path: Path, form: str) -> None:
    sparse = tmp_path / "src" / "sparse"
    sparse.parent.mkdir()
    with sparse.open("wb") as handle:
        handle.seek(1 << 20)
        handle.write(b"middle")
        handle.truncate(3 << 20)
    archive = tmp_path / "layer.tar"
    command = ["tar", "--sparse", f"--format={form}", "-C", sparse.parent, "-cf", archive, "."]
    subprocess.run(command, check=True)
    found = flat_tree(
        sources([archive.read_bytes()], media_type="application/vnd.oci.image.layer.v1.tar")
    )
    assert found["sparse"].data == bytes(1 << 20) + b"middle" + bytes((2 << 20) - 6)


# -- determinism -----------------------------------------------------------------------------


def determinism_members() -> list[Member]:
    return [file(f"d{i % 3}/f{i}", bytes([i]) * i, mode=0o600 + i) for i in range(40)]


def output_of(layers: list[bytes]) -> bytes:
    with flatten(sources(layers), image="t") as flat:
        return stream_bytes(linuxkit_filter(flat.entries()))


def test_independent_files_give_the_same_bytes_in_any_order() -> None:
    members = determinism_members()
    top = gz(layer(whiteout("d1/f1"), hardlink("d2/link", "d0/f3")))
    outputs = set()
    for seed in range(4):
        shuffled = list(members)
        random.Random(seed).shuffle(shuffled)
        outputs.add(output_of([gz(layer(*shuffled)), top]))
    assert len(outputs) == 1


DETERMINISM_PROBE = """
import hashlib
from tests.layer_fixtures import gz, layer, sources, stream_bytes
from tests.test_layers import determinism_members
from kitdsl.assemble.layers import flatten
from kitdsl.assemble.layer_filter import linuxkit_filter
with flatten(sources([gz(layer(*determinism_members()))]), image="t") as flat:
    print(hashlib.sha256(stream_bytes(linuxkit_filter(flat.entries()))).hexdigest())
"""


def test_output_does_not_depend_on_hash_seed_time_zone_or_umask() -> None:
    digests = set()
    for seed, zone, mask in [("1", "UTC", 0o022), ("2", "Asia/Tokyo", 0o077)]:
        env = {**os.environ, "PYTHONHASHSEED": seed, "TZ": zone}
        command = [
            sys.executable,
            "-c",
            f"import os; os.umask({mask}); exec({DETERMINISM_PROBE!r})",
        ]
        result = subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True)
        digests.add(result.stdout)
    assert len(digests) == 1


# -- LinuxKit's filters ----------------------------------------------------------------------


def filtered(*layers: bytes, resolv_conf: str | None = None) -> dict[str, Seen]:
    with flatten(sources([gz(tar) for tar in layers]), image="t") as flat:
        return {
            entry.name: seen(entry)
            for entry in linuxkit_filter(flat.entries(), resolv_conf=resolv_conf)
        }


def test_linuxkit_drops_replaces_clamps_and_touches() -> None:
    found = filtered(
        layer(
            file(".dockerenv"),
            file("Dockerfile", b"FROM scratch"),
            directory("etc", mode=0o750),
            file("etc/hostname", b"box"),
            file("etc/hosts", b"10.0.0.1 box", mode=0o600, uid=5),
            file("etc/passwd", b"root"),
            directory("dev"),
            device("dev/console", "char", 5, 1),
            directory("dev/pts", mode=0o700),
            file("dev/pts/keep", b"k"),
            directory("home"),
        )
    )
    assert list(found) == [
        "dev",
        "dev/pts",
        "dev/pts/keep",
        "dev/shm",
        "etc",
        "etc/hosts",
        "etc/mtab",
        "etc/passwd",
        "etc/resolv.conf",
        "home",
        "proc",
        "sys",
    ]
    assert found["etc"] == Seen("dir", 0o750, mtime=DEFAULT_MTIME)  # kept, time clamped
    assert found["etc/hosts"] == Seen("file", 0o644, data=HOSTS, mtime=DEFAULT_MTIME)
    assert found["etc/resolv.conf"].data == NO_RESOLV_CONF
    assert found["etc/mtab"].link == "/proc/mounts"
    assert found["dev/pts"] == Seen("dir", 0o755, mtime=DEFAULT_MTIME)
    assert found["home"].mtime == LAYER_MTIME
    assert found["proc"] == found["sys"] == Seen("dir", 0o755, mtime=DEFAULT_MTIME)


def test_linuxkit_touch_entries_of_an_empty_image_and_resolv_conf_link() -> None:
    found = filtered(layer(), resolv_conf=RESOLVCONF_LINK)
    assert list(found) == [
        "dev",
        "dev/pts",
        "dev/shm",
        "etc",
        "etc/hosts",
        "etc/mtab",
        "etc/resolv.conf",
        "proc",
        "sys",
    ]
    assert found["etc/resolv.conf"].kind == "symlink"
    assert found["etc/resolv.conf"].link == RESOLVCONF_LINK


def test_linuxkit_filter_keeps_hard_links_to_dropped_files_whole() -> None:
    found = filtered(
        layer(
            file("etc/hostname", b"box", mode=0o640),
            hardlink("etc/hostname2", "etc/hostname"),
            hardlink("etc/hostname3", "etc/hostname"),
            directory("Dockerfile"),
            file("Dockerfile/x", b"x"),
            hardlink("y", "Dockerfile/x"),
        )
    )
    assert found["etc/hostname2"] == Seen("file", 0o640, data=b"box", mtime=LAYER_MTIME)
    assert (found["etc/hostname3"].kind, found["etc/hostname3"].link) == (
        "hardlink",
        "etc/hostname2",
    )
    assert found["y"].data == b"x" and "Dockerfile" not in found


def test_linuxkit_filter_needs_the_flattened_order() -> None:
    with flatten(sources([gz(layer(file("b"), file("a")))]), image="t") as flat:
        entries = list(flat.entries())
    with pytest.raises(ValueError, match="out of order"):
        list(linuxkit_filter(reversed(entries)))


def test_relocate_moves_names_and_hard_link_targets() -> None:
    with flatten(sources([gz(layer(file("a", b"1"), hardlink("b", "a")))]), image="t") as flat:
        moved = list(relocate(flat.entries(), "containers/x/lower/", pax={"LINUXKIT.source": "t"}))
        assert [entry.name for entry in moved] == ["containers/x/lower/a", "containers/x/lower/b"]
        assert moved[1].info.linkname == "containers/x/lower/a"
        assert moved[0].info.pax_headers == {"LINUXKIT.source": "t"}
        with moved[1].open() as contents:
            assert contents.read() == b"1"


# -- against a real tool ---------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("umoci") is None, reason="needs umoci")
@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_flattening_agrees_with_umoci(tmp_path: Path, rootless: bool) -> None:
    if not rootless and os.geteuid() != 0:
        pytest.skip("umoci keeps owners and makes devices only as root")
    store = ContentStore(tmp_path / "layout")
    image = store_image(store, comparison_layers())
    tag_layout(store, image, "test")
    options = ["--rootless"] if rootless else []
    command = ["umoci", "raw", "unpack", *options, "--image", f"{store.root}:test"]
    subprocess.run([*command, tmp_path / "rootfs"], check=True, capture_output=True)
    theirs = disk_tree(tmp_path / "rootfs")
    ours = flat_tree(image_layers(store, image.manifest, image.config, image="test"))
    assert list(ours) == list(theirs)
    for path, mine in ours.items():
        other = theirs[path]
        if mine.kind == "dir" and mine.mtime == DEFAULT_MTIME:
            other = replace(other, mtime=DEFAULT_MTIME)  # made up by umoci at unpack time
        if mine.kind == "symlink":  # a symbolic link's own mode means nothing on Linux
            mine = replace(mine, mode=other.mode)
        if rootless:  # umoci cannot give files away or make devices without privileges
            mine = replace(mine, uid=other.uid, gid=other.gid)
            if mine.kind in ("char", "block"):
                mine = replace(mine, kind="file", device=None)
        assert mine == other, path
    assert ours["usr/lib/extra.so"].data == b"so"
    assert ours["data/t2"].data == b"T" and ours["data/u2"].data == b"U-old"


# -- memory ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_200_mb_layer_is_flattened_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "layer.tar.gz"
    blob, diff_id, contents = big_layer(path, 200 << 20)
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, path, blob, diff_id],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    growth_kib, read_back = result.stdout.split()
    assert read_back == contents
    assert int(growth_kib) < 100 * 1024, f"peak memory grew by {int(growth_kib) // 1024} MiB"


def test_a_layer_checked_against_its_diff_id_is_not_hashed_again(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    image = store_image(store, [layer(file("a", b"1"))])
    (source,) = image_layers(store, image.manifest, image.config, image="test")
    assert source.diff_id is not None and not source.checked
    flat_tree([source])
    assert store.diff_id_checked(source.digest, source.diff_id)
    (again,) = image_layers(store, image.manifest, image.config, image="test")
    assert again.checked and flat_tree([again])["a"].data == b"1"
    # What was remembered is the pair: another diff_id for the same blob is checked, and wrong.
    lying = dataclasses.replace(source, diff_id="sha256:" + "0" * 64, checked=False)
    with pytest.raises(LayerError, match="not the diff_id"):
        flat_tree([lying])
    assert not store.diff_id_checked(source.digest, "sha256:" + "0" * 64)


@settings(max_examples=200, deadline=None)
@given(
    st.text("abc/é._-", min_size=1, max_size=160).filter(lambda n: n.strip("/")),
    st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, b"7"]),
    st.integers(0, 0o7777),
    st.integers(0, 2**21 - 1),
    st.integers(0, 2**33 - 1),
    st.text("abcxyz/", max_size=90),
)
def test_the_fast_header_reader_reads_as_tarfile_does(
    name: str, kind: bytes, mode: int, uid: int, size: int, link: str
) -> None:
    from kitdsl.assemble.layer_read import _ustar

    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.size = kind, mode, uid, uid // 3, size
    info.mtime, info.linkname, info.uname = 1_600_000_000, link, "root"
    info.devmajor, info.devminor = 8, 1
    try:
        block = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    except ValueError:
        return  # a name ustar cannot hold
    fast = _ustar(block)
    assert fast is not None
    reference = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    fields = ("name", "mode", "uid", "gid", "size", "mtime", "type", "linkname", "uname")
    fields += ("gname", "devmajor", "devminor", "chksum")
    assert {f: getattr(fast, f) for f in fields} == {f: getattr(reference, f) for f in fields}
    damaged = block[:148] + b"0000000\0" + block[156:]
    assert _ustar(damaged) is None  # a bad checksum is left to tarfile to refuse
