"""Reading a tar archive of images safely: every member is checked before anything is read.

The archive is never unpacked: members are read by name and streamed into the cache through
verified blob writes. An archive with an absolute or ``..`` name, a link pointing outside it, a
device, a duplicate or an oversized entry is refused whole, since no honest image archive has
one.

Links inside the archive are resolved by name, never on disk: ``docker save`` and ``skopeo``
write the legacy ``<id>/layer.tar`` paths of a docker archive as symbolic links to the layer
file, so refusing every link would refuse the archives those tools make.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import IO, Any

from kitdsl.errors import CacheError
from kitdsl.oci.digest import digest_of, hex_of
from kitdsl.oci.store import ref_key
from kitdsl.oci.walk import MAX_DOCUMENT_SIZE

MAX_MEMBER_SIZE = 64 * 1024**3
"""No layer is this large; a header that says so is an attack on the disk."""
MAX_MEMBERS = 100_000
CHUNK = 1 << 20


class CheckedArchive:
    """The members of an archive, checked and readable by name; a blob source for walks."""

    def __init__(self, path: Path, tar: tarfile.TarFile) -> None:
        self.path = path
        self.tar = tar
        self.members: dict[str, tarfile.TarInfo] = {}
        links: dict[str, str] = {}
        # Each header is checked as it is read, before tarfile skips over the entry's data.
        for count, member in enumerate(tar):
            if count >= MAX_MEMBERS:
                raise self.error(f"has more than {MAX_MEMBERS} entries")
            name = self.member_name(member.name)
            if member.isdir():
                continue
            if name in self.members or name in links:
                raise self.error(f"entry {member.name!r} appears twice")
            if member.issym() or member.islnk():
                links[name] = self._link_target(member, name)
            elif not member.isreg():
                raise self.error(f"entry {member.name!r} is a device or special file")
            elif member.size > MAX_MEMBER_SIZE:
                raise self.error(f"entry {member.name!r} claims {member.size} bytes")
            else:
                self.members[name] = member
        for name in links:
            self.members[name] = self._resolve(name, links)

    def _link_target(self, member: tarfile.TarInfo, name: str) -> str:
        """Where a link points, as a member name; links that leave the archive are refused."""
        target = member.linkname
        if member.issym():
            if target.startswith("/"):
                raise self.error(f"entry {member.name!r} links outside it, to {target!r}")
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if joined == ".." or joined.startswith("../"):
                raise self.error(f"entry {member.name!r} links outside it, to {target!r}")
            return joined
        return self.member_name(target)

    def _resolve(self, name: str, links: dict[str, str]) -> tarfile.TarInfo:
        """The regular file a chain of links ends at; links are never followed on disk."""
        target = name
        for _ in range(8):
            target = links[target]
            if target in self.members:
                return self.members[target]
            if target not in links:
                break
        raise self.error(f"entry {name!r} is a link to {links[name]!r}, which it does not hold")

    def error(self, message: str, **extra: Any) -> CacheError:
        """A :class:`CacheError` that starts with the archive's path."""
        return CacheError(f"archive {self.path} {message}", **extra)

    def member_name(self, raw: str) -> str:
        """``raw`` normalised (``./a//b`` → ``a/b``); absolute and ``..`` names are refused."""
        if raw.startswith("/") or "\0" in raw or "\\" in raw:
            raise self.error(f"has an unsafe entry name {raw!r}")
        parts = [part for part in raw.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise self.error(f"has an entry name that climbs out with '..': {raw!r}")
        return "/".join(parts)

    def read(self, name: str, limit: int = MAX_DOCUMENT_SIZE) -> bytes:
        """A whole (small) member: a document, a config."""
        member = self.members.get(name)
        if member is None:
            raise self.error(f"has no {name}")
        if member.size > limit:
            raise self.error(f"entry {name} is {member.size} bytes, more than {limit}")
        return self.open(name).read()

    def open(self, name: str) -> IO[bytes]:
        """A member, open for streaming."""
        handle = self.tar.extractfile(self.members[name])
        assert handle is not None  # members holds regular files only
        return handle

    def has_blob(self, digest: str) -> bool:
        """True when the archive holds ``blobs/sha256/<hex>`` for ``digest``."""
        return f"blobs/sha256/{hex_of(digest)}" in self.members

    def read_blob(self, digest: str) -> bytes:
        """A document blob, checked against its digest before anyone parses it."""
        data = self.read(f"blobs/sha256/{hex_of(digest)}")
        if digest_of(data) != digest:
            raise ValueError("content does not match its digest")
        return data

    def key(self, name: str) -> str:
        """The cache name for a name the archive gives, or an error saying which archive."""
        try:
            return ref_key(name)
        except CacheError as error:
            raise self.error(f"names an image badly: {error.message}") from None
