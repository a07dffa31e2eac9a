"""Layers built entry by entry in Python, images made of them, and flattened trees to compare.

    base = layer(directory("etc"), file("etc/passwd", b"root:x:0:0\\n"), symlink("sh", "ash"))
    top = layer(whiteout("etc/passwd"), opaque("var/cache"))
    tree = flat_tree(sources([gz(base), gz(top)]))     # {path: Seen(...)}

Entries keep the order given, so tests can build archives no honest tool would write.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import stat
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from kitdsl.assemble.layer_read import LayerSource
from kitdsl.assemble.layers import LayerEntry, flatten, write_tar
from kitdsl.oci.media import OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST, Manifest
from kitdsl.oci.store import ContentStore
from tests.images import document, put

LAYER_MTIME = 1_600_000_000
"""The default time of entries here: not LinuxKit's, so made-up entries stand out."""


@dataclass(frozen=True)
class Member:
    """One tar entry to write: its header and, for a regular file, its contents."""

    info: tarfile.TarInfo
    data: bytes = b""


def _info(
    name: str,
    kind: bytes,
    mode: int,
    *,
    uid: int = 0,
    gid: int = 0,
    mtime: float = LAYER_MTIME,
    uname: str = "",
    gname: str = "",
    pax: Mapping[str, str] | None = None,
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
    info.uname, info.gname = uname, gname
    info.pax_headers = dict(pax or {})
    return info


def file(name: str, data: bytes = b"", mode: int = 0o644, **extra: object) -> Member:
    """A regular file."""
    info = _info(name, tarfile.REGTYPE, mode, **extra)  # type: ignore[arg-type]
    info.size = len(data)
    return Member(info, data)


def directory(name: str, mode: int = 0o755, **extra: object) -> Member:
    """A directory."""
    return Member(_info(name, tarfile.DIRTYPE, mode, **extra))  # type: ignore[arg-type]


def symlink(name: str, target: str, **extra: object) -> Member:
    """A symbolic link."""
    info = _info(name, tarfile.SYMTYPE, 0o777, **extra)  # type: ignore[arg-type]
    info.linkname = target
    return Member(info)


def hardlink(name: str, target: str, **extra: object) -> Member:
    """A hard link to ``target`` (a path from the root of the layer)."""
    info = _info(name, tarfile.LNKTYPE, 0o644, **extra)  # type: ignore[arg-type]
    info.linkname = target
    return Member(info)


def device(name: str, kind: str, major: int, minor: int, mode: int = 0o600) -> Member:
    """A character (``"char"``) or block (``"block"``) device."""
    info = _info(name, tarfile.CHRTYPE if kind == "char" else tarfile.BLKTYPE, mode)
    info.devmajor, info.devminor = major, minor
    return Member(info)


def fifo(name: str, mode: int = 0o644) -> Member:
    """A named pipe."""
    return Member(_info(name, tarfile.FIFOTYPE, mode))


def whiteout(path: str) -> Member:
    """The entry that removes ``path`` from lower layers."""
    parent, _, base = path.rpartition("/")
    return file(f"{parent}/.wh.{base}" if parent else f".wh.{base}")


def opaque(path: str) -> Member:
    """The entry that hides what lower layers had in the directory ``path`` (``""``: root)."""
    return file(f"{path}/.wh..wh..opq" if path else ".wh..wh..opq")


def layer(*members: Member) -> bytes:
    """An uncompressed PAX tar of ``members``, in the order given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            archive.addfile(member.info, io.BytesIO(member.data) if member.info.isreg() else None)
    return buffer.getvalue()


def gz(data: bytes) -> bytes:
    """``data`` gzip'd, deterministically."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sources(
    blobs: Sequence[bytes], *, image: str = "test", media_type: str = OCI_LAYER_GZIP
) -> list[LayerSource]:
    """Layer sources reading ``blobs`` from memory (so always spooled), with the digests of
    the tars in them as their ``diff_id``."""
    return [
        LayerSource(
            digest=digest(blob),
            media_type=media_type,
            open=lambda blob=blob: io.BytesIO(blob),  # type: ignore[misc]
            diff_id=_diff_id(blob),
            size=len(blob),
        )
        for blob in blobs
    ]


def _diff_id(blob: bytes) -> str | None:
    """The digest of the tar in ``blob``; none for a broken gzip stream (tests break them)."""
    try:
        return digest(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)
    except (OSError, EOFError):
        return None


@dataclass
class StoredImage:
    """An image put into a content store: what :func:`image_layers` takes."""

    manifest: Manifest
    manifest_digest: str
    config: bytes
    layers: list[bytes] = field(default_factory=list)


def store_image(
    store: ContentStore, tars: Sequence[bytes], *, compress: bool = True
) -> StoredImage:
    """An OCI image of ``tars`` (gzip'd unless ``compress`` is false) in ``store``."""
    blobs = [gz(tar) if compress else tar for tar in tars]
    media_type = OCI_LAYER_GZIP if compress else OCI_LAYER
    descriptors = [put(store, blob, media_type) for blob in blobs]
    config = document(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest(tar) for tar in tars]},
        }
    )
    config_descriptor = put(store, config, OCI_CONFIG)
    manifest = document(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor.to_json(),
            "layers": [d.to_json() for d in descriptors],
        }
    )
    manifest_descriptor = put(store, manifest, OCI_MANIFEST)
    return StoredImage(
        Manifest.model_validate_json(manifest), manifest_descriptor.digest, config, blobs
    )


def tag_layout(store: ContentStore, image: StoredImage, tag: str) -> None:
    """Name ``image`` ``tag`` in the layout's ``index.json``, as umoci and skopeo expect."""
    manifest = store.read_blob(image.manifest_digest)
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": image.manifest_digest,
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    index = {"schemaVersion": 2, "manifests": [entry]}
    (store.root / "index.json").write_text(json.dumps(index))


@dataclass(frozen=True)
class Seen:
    """One path of a flattened tree, as a test compares it."""

    kind: str
    mode: int
    uid: int = 0
    gid: int = 0
    link: str = ""
    data: bytes = b""
    device: tuple[int, int] | None = None
    mtime: float | None = None
    xattrs: tuple[tuple[str, str], ...] = ()


KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


def seen(entry: LayerEntry) -> Seen:
    """How ``entry`` looks to a test (contents read)."""
    info = entry.info
    data = b""
    if info.isreg():
        with entry.open() as handle:
            data = handle.read()
    device = (info.devmajor, info.devminor) if info.ischr() or info.isblk() else None
    prefix = "SCHILY.xattr."
    xattrs = tuple(
        (key[len(prefix) :], value)
        for key, value in sorted(info.pax_headers.items())
        if key.startswith(prefix)
    )
    return Seen(
        KINDS[info.type],
        info.mode,
        info.uid,
        info.gid,
        info.linkname,
        data,
        device,
        info.mtime,
        xattrs,
    )


def flat_tree(layers: Sequence[LayerSource], **options: object) -> dict[str, Seen]:
    """The flattened tree of ``layers``, path by path, in stream order."""
    with flatten(layers, image="test", **options) as flat:  # type: ignore[arg-type]
        return {entry.name: seen(entry) for entry in flat.entries()}


def stream_bytes(entries: Iterable[LayerEntry]) -> bytes:
    """``entries`` written as a PAX tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        write_tar(entries, archive)
    return buffer.getvalue()


ROOTLESS_XATTR = "user.rootlesscontainers"
"""Where ``umoci --rootless`` records the owners it could not give files."""


def disk_tree(root: Path) -> dict[str, Seen]:
    """A tree unpacked on disk, described as :func:`flat_tree` describes a stream: hard links
    after the first path of their inode (in sorted order) become ``hardlink`` entries."""
    found: dict[str, Seen] = {}
    first: dict[tuple[int, int], str] = {}
    for path in sorted(_walk(root), key=lambda p: tuple(p.split("/"))):
        full = root / path
        status = full.lstat()
        mode = stat.S_IMODE(status.st_mode)
        xattrs = tuple(
            (key, os.getxattr(full, key, follow_symlinks=False).decode("utf-8", "surrogateescape"))
            for key in sorted(os.listxattr(full, follow_symlinks=False))
            if key != ROOTLESS_XATTR
        )
        owner: dict[str, Any] = {
            "uid": status.st_uid,
            "gid": status.st_gid,
            "mtime": status.st_mtime,
            "xattrs": xattrs,
        }
        inode = (status.st_dev, status.st_ino)
        if not stat.S_ISDIR(status.st_mode) and status.st_nlink > 1:
            if inode in first:
                found[path] = Seen("hardlink", mode, link=first[inode], **owner)
                continue
            first[inode] = path
        if stat.S_ISDIR(status.st_mode):
            found[path] = Seen("dir", mode, **owner)
        elif stat.S_ISLNK(status.st_mode):
            found[path] = Seen("symlink", 0o777, link=os.readlink(full), **owner)
        elif stat.S_ISREG(status.st_mode):
            found[path] = Seen("file", mode, data=full.read_bytes(), **owner)
        elif stat.S_ISFIFO(status.st_mode):
            found[path] = Seen("fifo", mode, **owner)
        else:
            kind = "char" if stat.S_ISCHR(status.st_mode) else "block"
            device = (os.major(status.st_rdev), os.minor(status.st_rdev))
            found[path] = Seen(kind, mode, device=device, **owner)
    return found


def _walk(root: Path) -> Iterable[str]:
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            yield str((Path(folder) / name).relative_to(root))


def comparison_layers() -> list[bytes]:
    """Three layers using every rule: whiteouts, an opaque directory, replacements both ways,
    hard links whose target goes away or changes, a parent through a symbolic link."""
    t = iter(range(1_600_000_000, 1_700_000_000, 1000))
    base = layer(
        directory("etc", mtime=next(t)),
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", mtime=next(t)),
        file("etc/shadow", b"root:*::0:::::\n", mode=0o640, gid=42, mtime=next(t)),
        directory("bin", mtime=next(t)),
        file("bin/busybox", b"\x7fELF busybox", mode=0o755, mtime=next(t)),
        symlink("bin/sh", "busybox", mtime=next(t)),
        file("bin/su", b"su", mode=0o4755, mtime=next(t)),
        file("bin/wall", b"wall", mode=0o2755, gid=5, mtime=next(t)),
        directory("tmp", mode=0o1777, mtime=next(t)),
        directory("usr", mtime=next(t)),
        directory("usr/lib", mtime=next(t)),
        symlink("lib", "usr/lib", mtime=next(t)),
        file("var/cache/apk/a", b"a", mtime=next(t)),
        file("var/cache/apk/b", b"b", mtime=next(t)),
        file("var/lib/db", b"db", mtime=next(t)),
        directory("home/user", mode=0o700, uid=1000, gid=1000, mtime=next(t)),
        file("home/user/.profile", b"PS1=$\n", uid=1000, gid=1000, mtime=next(t)),
        device("dev/null", "char", 1, 3, mode=0o666),
        device("dev/sda", "block", 8, 0),
        fifo("run/fifo"),
        file("data/t", b"T", mtime=next(t)),
        hardlink("data/t2", "data/t"),
        file("data/u", b"U-old", mtime=next(t)),
        hardlink("data/u2", "data/u"),
        file("p", b"p was a file", mtime=next(t)),
        directory("q", mtime=next(t)),
        file("q/x", b"x", mtime=next(t)),
        file("attrs", b"x", pax={"SCHILY.xattr.user.kitdsl": "yes"}, mtime=next(t)),
    )
    middle = layer(
        directory("var/cache/apk", mtime=next(t)),
        opaque("var/cache/apk"),
        file("var/cache/apk/c", b"c", mtime=next(t)),
        whiteout("etc/shadow"),
        whiteout("data/t"),
        file("data/u", b"U-new", mtime=next(t)),
        file("lib/extra.so", b"so", mtime=next(t)),
        directory("p", mode=0o750, mtime=next(t)),
        file("p/inside", b"i", mtime=next(t)),
        file("q", b"q is a file now", mtime=next(t)),
        hardlink("bin/sh2", "bin/busybox"),
    )
    top = layer(
        whiteout("var/lib"),
        file("etc/passwd", b"root:x:0:0::/root:/bin/ash\n", mode=0o600, mtime=next(t)),
        directory("home/user", mode=0o750, uid=1000, gid=100, mtime=next(t)),
        file("var/cache/apk/d", b"d", mtime=next(t)),
        file("bin/busybox", b"\x7fELF busybox 2", mode=0o755, mtime=next(t)),
    )
    return [base, middle, top]


MEMORY_PROBE = """
import hashlib, os, resource, sys, tarfile
from pathlib import Path
from kitdsl.assemble.layers import LayerSource, flatten, write_tar
path = Path(sys.argv[1])
source = LayerSource(sys.argv[2], "application/vnd.oci.image.layer.v1.tar+gzip",
                     lambda: path.open("rb"), diff_id=sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with flatten([source], image="big", workdir=path.parent) as flat:
    with open(os.devnull, "wb") as sink, tarfile.open(fileobj=sink, mode="w|") as tar:
        write_tar(flat.entries(), tar)
    (entry,) = flat.entries()
    digest = hashlib.sha256()
    with entry.open() as contents:
        while chunk := contents.read(1 << 20):
            digest.update(chunk)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(after - before, digest.hexdigest())
"""
"""Run in a fresh interpreter: flattens the layer, writes the stream, reads the file back, and
prints the growth of peak memory (KiB) and the file's sha256."""


class Pattern(io.RawIOBase):
    """``size`` bytes, mostly zeros, made on demand: a big file that is never in memory."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.position = 0
        self.block = random.Random(3).randbytes(4096) + bytes(1 << 20)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        start = self.position % len(self.block)
        count = min(len(buffer), self.left, len(self.block) - start)
        buffer[:count] = self.block[start : start + count]
        self.left -= count
        self.position += count
        return count


class _Tee(io.RawIOBase):
    """Passes writes on to ``sink``, hashing them."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.sink.write(data)
        return len(data)


def big_layer(path: Path, size: int) -> tuple[str, str, str]:
    """Write a gzip'd layer holding one ``size``-byte file ``big``, streaming; return the
    blob's digest, its diff_id and the sha256 of the file."""
    with gzip.open(path, "wb", compresslevel=1) as compressed:
        tee = _Tee(compressed)  # type: ignore[arg-type]
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("big")
            info.size = size
            tar.addfile(info, io.BufferedReader(Pattern(size)))
    contents = hashlib.sha256()
    reader = io.BufferedReader(Pattern(size))
    while chunk := reader.read(1 << 20):
        contents.update(chunk)
    with path.open("rb") as handle:
        blob = "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
    return blob, "sha256:" + tee.hash.hexdigest(), contents.hexdigest()
