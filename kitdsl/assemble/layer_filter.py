"""What LinuxKit changes in an image's files when it puts them into a system (``ImageTar``).

A separate step on a stream of :class:`~kitdsl.assemble.layers.LayerEntry`, so each section of
a system can apply it or not, before the entries are moved under their prefix:

* dropped, with anything below them: ``.dockerenv``, ``Dockerfile``, ``dev/console``,
  ``etc/hostname``;
* replaced by LinuxKit's own entry: ``etc/hosts`` (the standard localhost file),
  ``etc/resolv.conf`` (a file saying none is configured, or a symbolic link for init images
  and volumes), ``dev/pts`` and ``dev/shm`` (empty directories; anything the image had inside
  them stays);
* kept with the modification time set to the build's time for made-up entries
  (:data:`DEFAULT_MTIME` unless ``SOURCE_DATE_EPOCH`` says otherwise, see
  :mod:`kitdsl.assemble.epoch`): ``dev``, ``etc``, ``proc``, ``sys`` (replaced by a directory if
  the image has something else there) and ``etc/mtab``;
* added when missing ("touch" entries): ``dev/``, ``dev/pts/``, ``dev/shm/``, ``etc/``,
  ``etc/hosts``, ``etc/mtab -> /proc/mounts``, ``etc/resolv.conf``, ``proc/``, ``sys/``, owned
  by root and dated with that time.

The stream keeps the order :meth:`FlatImage.entries` gives (added entries go where they sort),
and each path still appears once. A hard link whose target was dropped or replaced takes over
the original file's contents, so no link is left dangling.

Where this differs from LinuxKit's stream, it gives what unpacking LinuxKit's stream gives:

* LinuxKit writes a replaced ``etc/hosts`` or ``etc/resolv.conf`` twice: first with the
  image's mode and owner, then again as a touch entry, 0644 and root. Unpacking keeps the
  second; we write only that one.
* LinuxKit drops ``dev/pts`` and ``dev/shm`` and then adds its own touch entries for them; we
  write the touch entries in their place.
* LinuxKit drops only the entry itself, so what a dropped directory held would unpack into an
  implied directory; we drop it all (only a strange image has a directory at those paths).
* LinuxKit matches names exactly as the layer spells them, so ``./etc/hosts``, or a directory
  name with or without a trailing ``/``, may escape its rules depending on how the image was
  built; names here are always normalised, so the rules always apply.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator

from kitdsl.assemble.layers import DEFAULT_MTIME, LayerEntry, header

HOSTS = (
    b"127.0.0.1       localhost\n"
    b"::1     localhost ip6-localhost ip6-loopback\n"
    b"fe00::0 ip6-localnet\n"
    b"ff00::0 ip6-mcastprefix\n"
    b"ff02::1 ip6-allnodes\n"
    b"ff02::2 ip6-allrouters\n"
)
"""LinuxKit's ``etc/hosts``."""
NO_RESOLV_CONF = b"\n# no resolv.conf configured\n"
"""LinuxKit's ``etc/resolv.conf`` for containers."""
RESOLVCONF_LINK = "/run/resolvconf/resolv.conf"
"""Where ``etc/resolv.conf`` points in init images and volumes."""

DROPPED = frozenset({".dockerenv", "Dockerfile", "dev/console", "etc/hostname"})
TOUCH_DIRS = frozenset({"dev", "dev/pts", "dev/shm", "etc", "proc", "sys"})
REPLACED = frozenset({"dev/pts", "dev/shm", "etc/hosts", "etc/resolv.conf"})
CLAMPED = frozenset({"dev", "etc", "proc", "sys", "etc/mtab"})


def touch_entries(
    resolv_conf: str | None = None, *, mtime: int = DEFAULT_MTIME
) -> dict[str, LayerEntry]:
    """LinuxKit's own entries, by path; ``resolv_conf`` and ``mtime`` as in
    :func:`linuxkit_filter`."""
    touch = {name: LayerEntry(_info(name, tarfile.DIRTYPE, 0o755, mtime)) for name in TOUCH_DIRS}
    touch["etc/hosts"] = _file("etc/hosts", HOSTS, mtime)
    mtab = _info("etc/mtab", tarfile.SYMTYPE, 0o755, mtime)
    mtab.linkname = "/proc/mounts"
    touch["etc/mtab"] = LayerEntry(mtab)
    if resolv_conf is None:
        touch["etc/resolv.conf"] = _file("etc/resolv.conf", NO_RESOLV_CONF, mtime)
    else:
        link = _info("etc/resolv.conf", tarfile.SYMTYPE, 0o644, mtime)
        link.linkname = resolv_conf
        touch["etc/resolv.conf"] = LayerEntry(link)
    return touch


def linuxkit_filter(
    entries: Iterable[LayerEntry], *, resolv_conf: str | None = None, mtime: int = DEFAULT_MTIME
) -> Iterator[LayerEntry]:
    """``entries`` (in :meth:`FlatImage.entries` order) changed as LinuxKit changes them.

    ``resolv_conf``: ``None`` writes ``etc/resolv.conf`` as a file saying no resolver is
    configured (containers); a path makes it a symbolic link there (LinuxKit uses
    :data:`RESOLVCONF_LINK` for init images and volumes). ``mtime`` dates the entries made or
    clamped here. Raises :class:`ValueError` if the entries are not in that order, since
    missing entries could then not be placed.
    """
    touch = touch_entries(resolv_conf, mtime=mtime)
    pending = sorted(touch, key=_key)
    skip: str | None = None  # the subtree of a dropped or replaced entry: left out
    moved: dict[str, str | None] = {}  # non-directories left out → the entry standing in
    previous: tuple[str, ...] = ()
    for entry in entries:
        name = entry.name
        key = _key(name)
        if key <= previous:
            raise ValueError(f"entry {name!r} comes after {'/'.join(previous)!r}: out of order")
        previous = key
        if skip is not None and name.startswith(skip):
            if not entry.info.isdir():
                moved[name] = None
            continue
        skip = None
        while pending and _key(pending[0]) < key:
            yield touch[pending.pop(0)]
        if entry.info.islnk() and entry.info.linkname in moved:
            entry = _stand_in(entry, moved)
        if name in DROPPED or name in REPLACED:
            if entry.info.isdir():
                if name not in TOUCH_DIRS:
                    skip = name + "/"
            else:
                moved[name] = None
            if name in REPLACED:
                pending.remove(name)
                yield touch[name]
            continue
        if name in CLAMPED:
            pending.remove(name)
            if name in TOUCH_DIRS and not entry.info.isdir():
                moved[name] = None
                yield touch[name]
                continue
            info = header(entry.info, pax=entry.info.pax_headers)
            info.mtime = mtime
            entry = LayerEntry(info, entry.source, entry.target)
        yield entry
    for name in pending:
        yield touch[name]


def _stand_in(entry: LayerEntry, moved: dict[str, str | None]) -> LayerEntry:
    """A hard link to a file that was left out: the first such link becomes the file."""
    target = entry.info.linkname
    stand_in = moved[target]
    if stand_in is not None:
        info = header(entry.info, linkname=stand_in, pax=entry.info.pax_headers)
        return LayerEntry(info, entry.source, entry.target)
    if entry.target is None:
        raise ValueError(f"hard link {entry.name!r} names no target entry to stand in for")
    moved[target] = entry.name
    info = header(entry.target.info, name=entry.name, pax=entry.info.pax_headers)
    return LayerEntry(info, entry.source)


def _key(name: str) -> tuple[str, ...]:
    return tuple(name.split("/"))


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    return info


def _file(name: str, contents: bytes, mtime: int) -> LayerEntry:
    info = _info(name, tarfile.REGTYPE, 0o644, mtime)
    info.size = len(contents)
    return LayerEntry(info, lambda: io.BytesIO(contents))
