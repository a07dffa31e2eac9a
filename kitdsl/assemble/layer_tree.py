"""The file system an image's layers add up to, worked out from tar headers alone.

Layers are applied bottom-up, as a container runtime unpacks them, but onto a tree in memory
that records only headers and where each file's contents are. The rules are the OCI image
specification's (``layer.md``, "Changesets"):

* Within a layer, whiteouts are applied first, and only to what lower layers left: a
  ``.wh.NAME`` entry removes ``NAME``; a ``.wh..wh..opq`` entry empties its directory. Then the
  layer's other entries are applied in archive order. Other ``.wh..wh.*`` names (aufs
  bookkeeping) are ignored, as Docker ignores them; a ``.wh.`` directory anywhere else is
  refused, since a whiteout name in the stream would act as one when it is a layer again.
* An entry replaces whatever had its path, except that a directory over a directory only
  changes the directory's attributes and keeps what is inside. A non-directory over a
  directory removes the directory's contents too.
* A hard link shares the *file* its target named at that moment (an inode), so it keeps the
  contents even when a later layer removes or replaces the target; two paths stay linked only
  while both still name the same file.
* Missing parent directories are created (0755, root, LinuxKit's default time), as tar does.
* A parent that is a symbolic link is followed, within the tree: ``lib -> usr/lib`` followed by
  ``lib/x`` writes ``usr/lib/x``, as containerd and umoci do. A link that leaves the root
  (absolute, or too many ``..``) is refused, as is a loop, since unpacking through it would
  write outside the image. The last component of a path is never followed.

Because every path the tree holds has only real directories above it, the stream made from it
can be unpacked without following any symbolic link.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from kitdsl.assemble.layer_read import LayerLabel

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_HOPS = 40
"""Symbolic links followed while resolving one path, as Linux's ``ELOOP`` limit."""
MAX_PATH = 4096
"""Linux's ``PATH_MAX``: no name or link target from a real file system is longer, and a
hostile one much longer would cost memory and time to resolve."""

SUPPORTED_TYPES = frozenset(
    {
        *tarfile.REGULAR_TYPES,
        tarfile.DIRTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.CHRTYPE,
        tarfile.BLKTYPE,
        tarfile.FIFOTYPE,
    }
)


class Inode:
    """A non-directory: the header that made it and the layer holding its contents. Paths
    that are hard links to each other hold the same object."""

    __slots__ = ("info", "layer")

    def __init__(self, info: tarfile.TarInfo, layer: int) -> None:
        self.info = info
        self.layer = layer


class Dir:
    """A directory; ``info`` is ``None`` when no entry described it (an implied parent)."""

    __slots__ = ("children", "info")

    def __init__(self, info: tarfile.TarInfo | None) -> None:
        self.info = info
        self.children: dict[str, Dir | Inode] = {}


Node = Dir | Inode


class _Refused(Exception):
    """An entry cannot be applied; the caller adds which image, layer and entry."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class _Via:
    """The symbolic link a resolution went through last, for messages."""

    path: str
    target: str

    def escape(self) -> _Refused:
        return _Refused(
            f"goes through the symbolic link {self.path!r} -> {self.target!r}, which leads out "
            "of the image's root"
        )


def split_name(raw: str) -> list[str]:
    """A tar name as path components (``./a//b/`` → ``[a, b]``); unsafe names are refused."""
    if "\0" in raw:
        raise _Refused("has a NUL byte in its name")
    if _too_long(raw):
        raise _Refused(f"has a name longer than {MAX_PATH} bytes")
    if raw.startswith("/"):
        raise _Refused("has an absolute name")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _Refused("has a name that climbs out of the root with '..'")
    return parts


class FileTree:
    """The merged file system of the layers applied so far."""

    def __init__(self, *, allow_devices: bool = True) -> None:
        self.root = Dir(None)
        self.allow_devices = allow_devices

    def apply(self, layer: int, headers: Sequence[tarfile.TarInfo], label: LayerLabel) -> None:
        """Apply one layer: its whiteouts to what the layers below left, then its other
        entries in archive order."""
        changes: list[tuple[list[str], tarfile.TarInfo]] = []
        for info in headers:
            try:
                parts = split_name(info.name)
                base = parts[-1] if parts else ""
                if parts[:1] != [OPAQUE] and parts and parts[0].startswith(WHITEOUT * 2):
                    continue  # aufs bookkeeping (.wh..wh.plnk/...): not part of the tree
                if any(part.startswith(WHITEOUT) for part in parts[:-1]):
                    raise _Refused("has a directory named '.wh.*', a name kept for whiteouts")
                if base.startswith(WHITEOUT):
                    self._whiteout(parts[:-1], base)
                else:
                    changes.append((parts, info))
            except _Refused as refused:
                raise label.error(refused.problem, entry=info.name) from None
        for parts, info in changes:
            try:
                self._add(parts, info, layer)
            except _Refused as refused:
                raise label.error(refused.problem, entry=info.name) from None

    def walk(self) -> Iterator[tuple[str, Node]]:
        """Every path, depth first, each directory's children sorted by name: parents come
        before children and the order depends on nothing but the names."""
        stack = _children("", self.root)
        while stack:
            path, node = stack.pop()
            yield path, node
            if isinstance(node, Dir):
                stack.extend(_children(path, node))

    # -- applying entries ------------------------------------------------------------------

    def _whiteout(self, parent: list[str], base: str) -> None:
        if base == OPAQUE:
            directory = self._resolve(parent, create=False)
            if directory is not None:
                directory.children.clear()
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return  # other aufs bookkeeping, as above
        name = base[len(WHITEOUT) :]
        if name in ("", ".", ".."):
            raise _Refused(f"is a whiteout of {name!r}, which is not a file name")
        directory = self._resolve(parent, create=False)
        if directory is not None:
            directory.children.pop(name, None)

    def _add(self, parts: list[str], info: tarfile.TarInfo, layer: int) -> None:
        if info.type not in SUPPORTED_TYPES:
            raise _Refused(f"has the unsupported tar type {info.type!r}")
        if (info.ischr() or info.isblk()) and not self.allow_devices:
            raise _Refused("is a device node, which is not allowed here")
        if (info.issym() or info.islnk()) and "\0" in info.linkname:
            raise _Refused("has a NUL byte in its link target")
        if (info.issym() or info.islnk()) and _too_long(info.linkname):
            raise _Refused(f"has a link target longer than {MAX_PATH} bytes")
        if info.issparse():
            _check_sparse(info)
        if not parts:
            if info.isdir():
                return  # the root's own entry: the root belongs to whoever places the tree
            raise _Refused("names the root directory but is not a directory")
        parent = self._resolve(parts[:-1], create=True)
        assert parent is not None  # create=True never gives up
        name = parts[-1]
        existing = parent.children.get(name)
        if info.isdir():
            if isinstance(existing, Dir):
                existing.info = info
            else:
                parent.children[name] = Dir(info)
        elif info.islnk():
            target = self._link_target(info.linkname)
            if target is existing:
                raise _Refused("is a hard link to itself")
            parent.children[name] = target
        else:
            parent.children[name] = Inode(info, layer)

    def _link_target(self, linkname: str) -> Inode:
        if linkname.startswith("/"):
            raise _Refused(f"is a hard link to the absolute path {linkname!r}")
        parts = [part for part in linkname.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise _Refused(f"is a hard link to {linkname!r}, which climbs out with '..'")
        if not parts:
            raise _Refused("is a hard link to the root directory")
        parent = self._resolve(parts[:-1], create=False)
        node = parent.children.get(parts[-1]) if parent is not None else None
        if node is None:
            raise _Refused(f"is a hard link to {linkname!r}, which does not exist")
        if isinstance(node, Dir):
            raise _Refused(f"is a hard link to {linkname!r}, which is a directory")
        return node

    def _resolve(self, parts: list[str], *, create: bool) -> Dir | None:
        """The directory at ``parts``, following symbolic links without leaving the root.

        With ``create``, missing directories are made and a non-directory in the way is an
        error; without, either means there is no such directory (``None``).
        """
        chain: list[Dir] = [self.root]
        names: list[str] = []
        pending = parts[::-1]
        hops = 0
        via: _Via | None = None
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not names:
                    assert via is not None  # entry names never hold '..'
                    raise via.escape()
                chain.pop()
                names.pop()
                continue
            here = chain[-1]
            node = here.children.get(name)
            if node is None:
                if not create:
                    return None
                node = here.children[name] = Dir(None)
            if isinstance(node, Dir):
                chain.append(node)
                names.append(name)
                continue
            path = "/".join([*names, name])
            if not node.info.issym():
                if not create:
                    return None
                raise _Refused(f"needs {path!r} to be a directory, but it is not")
            via = _Via(path, node.info.linkname)
            hops += 1
            if hops > MAX_HOPS:
                raise _Refused(f"goes through more than {MAX_HOPS} symbolic links ({path!r})")
            if via.target.startswith("/"):
                raise via.escape()
            if not via.target:
                if not create:
                    return None
                raise _Refused(f"goes through the empty symbolic link {path!r}")
            pending.extend(reversed(via.target.split("/")))
        return chain[-1]


def _too_long(text: str) -> bool:
    return len(text) > MAX_PATH and len(text.encode("utf-8", "surrogateescape")) > MAX_PATH


def _children(path: str, directory: Dir) -> list[tuple[str, Node]]:
    """A directory's children as (path, node), in reverse name order (for popping)."""
    prefix = f"{path}/" if path else ""
    names = sorted(directory.children, reverse=True)
    return [(prefix + name, directory.children[name]) for name in names]


def sparse_map(info: tarfile.TarInfo) -> list[tuple[int, int]]:
    """The data segments of a sparse file: (offset in the file, length), in order.

    Empty segments are left out: old GNU headers have unused slots that read as (0, 0).
    """
    segments = cast(list[tuple[int, int]], info.sparse or [])
    return [(offset, length) for offset, length in segments if length != 0]


def _check_sparse(info: tarfile.TarInfo) -> None:
    end = 0
    for offset, length in sparse_map(info):
        if offset < end or length < 0 or offset + length > info.size:
            raise _Refused("has an invalid sparse file map")
        end = offset + length
