"""An image's layers flattened into one stream of tar entries: the image's file system.

    layers = image_layers(store, manifest, store.read_blob(manifest.config.digest), image=ref)
    with flatten(layers, image=ref) as flat:
        for entry in linuxkit_filter(flat.entries()):   # kitdsl.assemble.layer_filter
            ...                                         # entry.info, entry.open()

How it works, and what it costs:

1. Each layer, bottom-up, is decompressed once into an unlinked temporary file while its
   digest and ``diff_id`` are checked (an uncompressed layer that is a local file is read in
   place). Only its tar *headers* are then parsed and applied to a tree of headers
   (:mod:`kitdsl.assemble.layer_tree`): whiteouts, opaque directories, replacements and hard
   links are resolved there, and every hostile or broken entry is refused, before a single
   entry is emitted.
2. :meth:`FlatImage.entries` walks the tree in sorted order and gives each surviving file a
   reader of its contents, which reads (``pread``) from the layer that holds them.

Memory is bounded by the per-entry headers plus fixed buffers, whatever the size of the files.
Disk use is the uncompressed size of the compressed layers, for as long as the
:class:`FlatImage` is open; every layer is decompressed exactly once. Spools of layers none of
whose files survive are released as soon as the tree is known.

The stream, in order: every path of the flattened file system, depth first, the children of
each directory sorted by name (so parents come before children), each path once. Names are
relative (``etc/passwd``, no ``./``), and no path has a symbolic link above it. The root
directory has no entry. Headers keep the layer's mode (with setuid, setgid and sticky bits),
uid, gid, user and group names (as LinuxKit copies them) and modification time; of the PAX
records only extended attributes and ACLs are kept (``SCHILY.xattr.*``, ``LIBARCHIVE.xattr.*``,
``SCHILY.acl.*``), the rest restating fields the header holds or timestamps that vary. Parents
no entry described are directories 0755, owned by root, dated ``mtime`` (default
:data:`DEFAULT_MTIME`; a build passes its time for made-up entries). Files that
are hard links of each other: the first in the order holds the contents, the others are hard
link entries naming it. The same layers always give the same stream.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, cast

from kitdsl.assemble.layer_read import (
    LayerData,
    LayerError,
    LayerLabel,
    LayerSource,
    read_layer,
)
from kitdsl.assemble.layer_tree import Dir, FileTree, Inode, sparse_map
from kitdsl.oci.media import Manifest
from kitdsl.oci.store import ContentStore

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DEFAULT_MTIME",
    "FlatImage",
    "LayerEntry",
    "LayerError",
    "LayerSource",
    "flatten",
    "header",
    "image_layers",
    "relocate",
    "write_tar",
]

DEFAULT_MTIME = 1492533000
"""2017-04-18T16:30:00Z: LinuxKit's ``defaultModTime``, for every entry we make up."""
KEPT_PAX_PREFIXES = ("SCHILY.xattr.", "LIBARCHIVE.xattr.", "SCHILY.acl.")


@dataclass(frozen=True, eq=False)
class LayerEntry:
    """One entry of a flattened file system.

    ``info`` must not be changed (copy it with :func:`header`). For a regular file, and for a
    hard link to one, :meth:`open` gives a fresh reader of the contents each time it is called,
    for as long as the :class:`FlatImage` it came from is open.
    """

    info: tarfile.TarInfo
    source: Callable[[], BinaryIO] | None = None
    """Opens the contents; ``None`` for entries without any."""
    target: LayerEntry | None = None
    """For a hard link: the file's first entry, as :meth:`FlatImage.entries` made it. Its
    ``info`` describes the file (size, attributes) should the link have to stand in for it."""

    @property
    def name(self) -> str:
        """The entry's path, relative to the root of the file system."""
        return self.info.name

    def open(self) -> BinaryIO:
        """A reader of the contents (exactly ``info.size`` bytes for a regular file)."""
        if self.source is None:
            raise ValueError(f"{self.info.name} has no contents")
        return self.source()


class FlatImage:
    """The flattened file system of an image's layers; a context manager.

    Construction reads and checks every layer (raising :class:`LayerError` with the image,
    layer and entry at fault); nothing is emitted from a layer set that has a problem.
    """

    def __init__(
        self,
        layers: Sequence[LayerSource],
        *,
        image: str,
        allow_devices: bool = True,
        workdir: Path | None = None,
        mtime: int = DEFAULT_MTIME,
    ) -> None:
        self.image = image
        self.mtime = mtime
        self._data: dict[int, LayerData] = {}
        self._closed = False
        self._tree = FileTree(allow_devices=allow_devices)
        try:
            for index, source in enumerate(layers):
                label = LayerLabel(image, index, len(layers), source.digest)
                data, headers = read_layer(source, label, workdir)
                self._data[index] = data
                self._tree.apply(index, headers, label)
                del headers  # only the tree's survivors stay in memory
            self._links, used = self._survey()
            for index in [i for i in self._data if i not in used]:
                self._data.pop(index).close()
        except BaseException:
            self.close()
            raise

    def _survey(self) -> tuple[dict[int, int], set[int]]:
        """How many paths each multiply linked file has; which layers hold surviving data."""
        counts: Counter[int] = Counter()
        used: set[int] = set()
        for _, node in self._tree.walk():
            if isinstance(node, Inode):
                counts[id(node)] += 1
                if node.info.isreg():
                    used.add(node.layer)
        return {key: count for key, count in counts.items() if count > 1}, used

    def entries(self) -> Iterator[LayerEntry]:
        """Every entry, in the order described in the module documentation."""
        first: dict[int, LayerEntry] = {}
        for path, node in self._tree.walk():
            if isinstance(node, Dir):
                yield LayerEntry(_directory(path, node.info, self.mtime))
                continue
            linked = first.get(id(node))
            if linked is not None:
                info = header(linked.info, name=path, kind=tarfile.LNKTYPE, linkname=linked.name)
                yield LayerEntry(info, linked.source, linked)
                continue
            opener = partial(self._open, node) if node.info.isreg() else None
            entry = LayerEntry(header(node.info, name=path), opener)
            if id(node) in self._links:
                first[id(node)] = entry
            yield entry

    def _open(self, node: Inode) -> BinaryIO:
        if self._closed:
            raise ValueError(f"the flattened image {self.image} is closed")
        data = self._data[node.layer]
        # Unbuffered: each read is one pread into the bytes returned (files are read once,
        # front to back, in large chunks; a buffer would only add a copy and an allocation).
        return cast(BinaryIO, _Contents(data, node.info, self.image))

    def close(self) -> None:
        """Release the layers' temporary files; readers stop working."""
        self._closed = True
        for data in self._data.values():
            data.close()
        self._data.clear()

    def __enter__(self) -> FlatImage:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def flatten(
    layers: Sequence[LayerSource],
    *,
    image: str,
    allow_devices: bool = True,
    workdir: Path | None = None,
    mtime: int = DEFAULT_MTIME,
) -> FlatImage:
    """Read, check and flatten ``layers`` (bottom first) of the image named ``image``.

    ``allow_devices=False`` refuses character and block devices. Temporary files go to
    ``workdir`` (default: the system's temporary directory; prefer a disk to a tmpfs for big
    images). ``mtime`` dates the parent directories no layer describes.
    """
    return FlatImage(layers, image=image, allow_devices=allow_devices, workdir=workdir, mtime=mtime)


def image_layers(
    store: ContentStore, manifest: Manifest, config: bytes, *, image: str
) -> list[LayerSource]:
    """The layers of an image in ``store``, each with its ``diff_id`` from ``config``."""
    try:
        document = json.loads(config)
        diff_ids: list[str | None] | None = (document.get("rootfs") or {}).get("diff_ids")
        if diff_ids is None:  # the specification requires them, but the layers are checked
            diff_ids = [None] * len(manifest.layers)  # against their digests all the same
        if not isinstance(diff_ids, list) or not all(isinstance(d, str | None) for d in diff_ids):
            raise TypeError("rootfs.diff_ids is not a list of digests")
    except (ValueError, AttributeError, TypeError) as error:
        raise LayerError(
            f"image {image}: its configuration has unusable diff_ids: {error}"
        ) from None
    if len(diff_ids) != len(manifest.layers):
        raise LayerError(
            f"image {image}: its manifest has {len(manifest.layers)} layers but its "
            f"configuration lists {len(diff_ids)} diff_ids"
        )
    return [
        LayerSource(
            digest=layer.digest,
            media_type=layer.media_type,
            open=partial(store.open_blob, layer.digest),
            diff_id=diff_id,
            size=layer.size,
            checked=diff_id is not None and store.diff_id_checked(layer.digest, diff_id),
            on_checked=partial(store.note_diff_id, layer.digest, diff_id) if diff_id else None,
        )
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True)
    ]


def header(
    info: tarfile.TarInfo,
    *,
    name: str | None = None,
    kind: bytes | None = None,
    linkname: str | None = None,
    pax: Mapping[str, str] | None = None,
) -> tarfile.TarInfo:
    """A fresh copy of ``info`` with only what a flattened stream keeps, optionally changed.

    Regular-file variants (sparse, contiguous, old-style) become plain regular files. Of the
    PAX records of ``info`` only those a flattened stream keeps are copied (see the module
    documentation; pass ``pax=info.pax_headers`` to copy them all), then ``pax`` is added.
    Records are in sorted order, so the bytes tarfile writes are stable.
    """
    out = tarfile.TarInfo(info.name if name is None else name)
    out.type = tarfile.REGTYPE if info.isreg() else info.type
    if kind is not None:
        out.type = kind
    out.mode = info.mode & 0o7777
    out.uid, out.gid = info.uid, info.gid
    out.uname, out.gname = info.uname, info.gname
    out.mtime = info.mtime
    if out.type == tarfile.REGTYPE:
        out.size = info.size
    if out.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        out.linkname = info.linkname if linkname is None else linkname
    if out.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        out.devmajor, out.devminor = info.devmajor, info.devminor
    records = {k: v for k, v in info.pax_headers.items() if k.startswith(KEPT_PAX_PREFIXES)}
    records.update(pax or {})
    out.pax_headers = {key: records[key] for key in sorted(records)}
    return out


def _directory(path: str, info: tarfile.TarInfo | None, mtime: int) -> tarfile.TarInfo:
    if info is not None:
        return header(info, name=path)
    out = tarfile.TarInfo(path)
    out.type = tarfile.DIRTYPE
    out.mode = 0o755
    out.mtime = mtime
    return out


def relocate(
    entries: Iterable[LayerEntry], prefix: str, *, pax: Mapping[str, str] | None = None
) -> Iterator[LayerEntry]:
    """``entries`` moved under ``prefix`` (``containers/services/x/lower/``), hard link targets
    included, with the PAX records ``pax`` added to every entry (``LINUXKIT.source``...)."""
    if prefix and not prefix.endswith("/"):
        raise ValueError(f"prefix {prefix!r} must end with '/'")
    for entry in entries:
        info = entry.info
        linkname = prefix + info.linkname if info.islnk() else None
        records = {**info.pax_headers, **(pax or {})}
        moved = header(info, name=prefix + info.name, linkname=linkname, pax=records)
        yield LayerEntry(moved, entry.source, entry.target)


def write_tar(entries: Iterable[LayerEntry], tar: tarfile.TarFile) -> None:
    """Append ``entries`` to ``tar`` (open for writing, best in PAX format), contents
    streamed."""
    for entry in entries:
        if entry.info.isreg():
            with entry.open() as contents:
                tar.addfile(entry.info, contents)
        else:
            tar.addfile(entry.info)


class _Contents(io.RawIOBase):
    """A regular file's contents, read with ``pread`` from its layer; sparse holes are zeros."""

    def __init__(self, data: LayerData, info: tarfile.TarInfo, image: str) -> None:
        self._data = data
        self._name = info.name
        self._image = image
        self._size = info.size
        # (start, end, offset of the stored bytes or None for a hole), in file coordinates
        self._segments: list[tuple[int, int, int | None]] = []
        stored, position = info.offset_data, 0
        for start, length in sparse_map(info) or [(0, info.size)]:
            if start > position:
                self._segments.append((position, start, None))
            self._segments.append((start, start + length, stored))
            stored, position = stored + length, start + length
        if position < info.size:
            self._segments.append((position, info.size, None))
        self._position = 0
        self._index = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        """``size`` bytes (all that is left for -1), fewer only at the end of the contents."""
        left = self._size - self._position
        size = left if size is None or size < 0 else min(size, left)
        if size <= 0:
            return b""
        first = self._piece(size)
        if len(first) == size:  # the usual case: a stored run holds it all, one pread
            return first
        pieces = [first]
        got = len(first)
        while got < size and (piece := self._piece(size - got)):
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def _piece(self, size: int) -> bytes:
        """Up to ``size`` bytes from the current hole or stored run."""
        while self._index < len(self._segments):
            start, end, stored = self._segments[self._index]
            if self._position >= end:
                self._index += 1
                continue
            count = min(size, end - self._position)
            if stored is None:
                chunk = bytes(count)
            else:
                chunk = self._data.pread(count, stored + self._position - start)
                if not chunk:
                    raise LayerError(
                        f"image {self._image}: the contents of {self._name!r} end early"
                    )
            self._position += len(chunk)
            return chunk
        return b""

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        while self._index < len(self._segments):
            start, end, stored = self._segments[self._index]
            if self._position >= end:
                self._index += 1
                continue
            count = min(len(view), end - self._position)
            if stored is None:
                view[:count] = bytes(count)
            else:
                chunk = self._data.pread(count, stored + self._position - start)
                if not chunk:
                    raise LayerError(
                        f"image {self._image}: the contents of {self._name!r} end early"
                    )
                count = len(chunk)
                view[:count] = chunk
            self._position += count
            return count
        return 0
