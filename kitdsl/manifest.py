"""A built system's contents as a deterministic, diff-friendly manifest.

One line per path of the root file system (type, mode, owner, size, the sha256 of a file's
contents or a link's target), a section per container (its image, command, capabilities, mounts
and namespaces, read from the bundle's ``config.json``), a section per volume (its image,
format and access) and the kernel (sha256, command line)::

    with assemble(system, pulled, cache) as (boot, rootfs):
        manifest = manifest_of(rootfs, boot)
    print(manifest.to_text())
    changes = diff_manifests(old, manifest)

The manifest is computed from a root file system stream, so it is the same whether the system
is being assembled (:func:`system_manifest`) or was written as a ``tar`` output
(:func:`tar_manifest`). Files are hashed while they are read; only bundles' ``config.json``
(small documents) are held. When a path occurs more than once, the last entry wins, as when
the stream is unpacked. Modification times are left out: they say nothing a reviewer needs.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitdsl.errors import KitError
from kitdsl.outputs.base import Blob, Boot
from kitdsl.outputs.entry import Entry, TarSource, is_boot_entry

if TYPE_CHECKING:
    from kitdsl.images import ImageOptions
    from kitdsl.plan import Reporter

__all__ = [
    "ContainerChange",
    "ContainerInfo",
    "KernelInfo",
    "Manifest",
    "ManifestDiff",
    "PathChange",
    "PathInfo",
    "VolumeChange",
    "VolumeInfo",
    "diff_manifests",
    "is_tar",
    "load_manifest",
    "manifest_of",
    "system_manifest",
    "tar_manifest",
]

FORMAT = 1
"""The manifest format's version, written in its first line."""
_CHUNK = 1 << 20
_CONFIG_LIMIT = 16 << 20  # a bundle's config.json larger than this is not a bundle's
_CONTAINER_SECTIONS = ("onboot", "onshutdown", "services")
_VOLUMES = "containers/volumes"
_BLANK_SOURCE = "empty"  # LINUXKIT.source of a blank volume's folders
_TYPES = {
    tarfile.REGTYPE: "f",
    tarfile.AREGTYPE: "f",
    tarfile.CONTTYPE: "f",
    tarfile.DIRTYPE: "d",
    tarfile.SYMTYPE: "l",
    tarfile.LNKTYPE: "h",
    tarfile.CHRTYPE: "c",
    tarfile.BLKTYPE: "b",
    tarfile.FIFOTYPE: "p",
}


@dataclass(frozen=True)
class PathInfo:
    """One path of the root file system."""

    path: str
    """Relative to the root, no ``./`` and no trailing ``/``."""
    type: str
    """``f`` file, ``d`` directory, ``l`` symbolic link, ``h`` hard link, ``c``/``b`` device,
    ``p`` named pipe."""
    mode: int
    """Permission bits, with set-uid, set-gid and sticky."""
    uid: int
    gid: int
    size: int
    """A file's size in bytes; 0 for everything else."""
    digest: str = ""
    """A file's ``sha256:`` digest."""
    target: str = ""
    """A link's target; a device's ``major,minor``."""

    def line(self) -> str:
        """The manifest line: ``path type mode uid:gid size detail``."""
        size = str(self.size) if self.type == "f" else "-"
        detail = self.digest or (_quote(self.target) if self.target else "-")
        if self.type in ("l", "h"):
            detail = f"-> {detail}"
        owner = f"{self.uid}:{self.gid}"
        return f"{_quote(self.path)} {self.type} {self.mode:04o} {owner} {size} {detail}"


@dataclass(frozen=True)
class ContainerInfo:
    """One container, from its bundle's ``config.json``."""

    section: str
    """``onboot``, ``onshutdown`` or ``services``."""
    name: str
    """The bundle's folder name (``000-sysctl`` for the first onboot container)."""
    image: str
    """The image reference (the entry's ``LINUXKIT.source`` record), or ``""``."""
    command: tuple[str, ...]
    capabilities: tuple[str, ...]
    """The effective capabilities, sorted."""
    mounts: tuple[str, ...]
    """``destination type source``, in the configuration's order (it matters)."""
    namespaces: tuple[str, ...]
    """``type`` or ``type=path``, sorted."""

    @property
    def key(self) -> str:
        return f"{self.section}/{self.name}"

    def lines(self) -> list[str]:
        """The manifest section's lines, header first."""
        return [
            f"[container {self.key}]",
            f"image {self.image or '-'}",
            f"command {json.dumps(list(self.command))}",
            f"capabilities {' '.join(self.capabilities) or '-'}",
            *(f"mount {mount}" for mount in self.mounts),
            f"namespaces {' '.join(self.namespaces) or '-'}",
        ]


@dataclass(frozen=True)
class VolumeInfo:
    """One volume, from its folders under ``containers/volumes/``."""

    name: str
    image: str
    """The image that fills it (its folders' ``LINUXKIT.source`` record), or ``""`` for a
    blank volume."""
    format: str
    """``oci`` when ``lower/`` holds an OCI image layout, else ``filesystem``."""
    access: str
    """``rw``, or ``ro`` for a read-only volume (one without ``tmp/``, which the init then
    mounts read-only)."""

    @property
    def key(self) -> str:
        return self.name

    def lines(self) -> list[str]:
        """The manifest section's lines, header first."""
        return [
            f"[volume {_quote(self.name)}]",
            f"image {self.image or '-'}",
            f"format {self.format}",
            f"access {self.access}",
        ]


@dataclass(frozen=True)
class KernelInfo:
    """The kernel parts."""

    digest: str
    """``sha256:`` of ``boot/kernel``, or ``""`` for a system without a kernel."""
    cmdline: str
    ucode: str = ""
    """``sha256:`` of the microcode, or ``""``."""

    def lines(self) -> list[str]:
        lines = ["[kernel]", f"kernel {self.digest or '-'}", f"cmdline {json.dumps(self.cmdline)}"]
        if self.ucode:
            lines.append(f"ucode {self.ucode}")
        return lines


@dataclass(frozen=True)
class Manifest:
    """A built system's contents: compare two with ``==`` or :func:`diff_manifests`."""

    paths: tuple[PathInfo, ...]
    """Sorted by path."""
    containers: tuple[ContainerInfo, ...] = ()
    """Sorted by section, then bundle folder."""
    kernel: KernelInfo = field(default_factory=lambda: KernelInfo("", ""))
    volumes: tuple[VolumeInfo, ...] = ()
    """Sorted by name."""

    def to_text(self) -> str:
        """Readable, stable text: one line per path, after the kernel, container and volume
        sections."""
        lines = [f"# kitdsl manifest {FORMAT}", *self.kernel.lines()]
        sections = [item.lines() for item in self.containers]
        sections += [item.lines() for item in self.volumes]
        for section in sections:
            lines += ["", *section]
        lines += ["", "[paths]", *(info.line() for info in self.paths)]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        """The same as JSON (sorted keys, two-space indent)."""
        document = {
            "format": FORMAT,
            "kernel": asdict(self.kernel),
            "containers": [asdict(container) for container in self.containers],
            "volumes": [asdict(volume) for volume in self.volumes],
            "paths": [asdict(info) for info in self.paths],
        }
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    def path(self, name: str) -> PathInfo | None:
        """The entry for ``name`` (``etc/motd`` or ``/etc/motd``), if the system has it."""
        wanted = _clean(name)
        return next((info for info in self.paths if info.path == wanted), None)


# --- computing a manifest ---------------------------------------------------------------------


def manifest_of(rootfs: Iterable[Entry], boot: Boot | None = None) -> Manifest:
    """The manifest of a root file system stream and its kernel parts (read in one pass)."""
    paths: dict[str, PathInfo] = {}
    containers: dict[str, ContainerInfo] = {}
    volume_sources: dict[str, str] = {}  # volume → its lower/'s LINUXKIT.source
    for entry in rootfs:
        name = _clean(entry.info.name)
        if not name:
            continue
        volume = _volume_folder(name)
        if volume is not None and name.endswith("/lower"):
            volume_sources[volume] = entry.info.pax_headers.get("LINUXKIT.source", "")
        container_path = _container_path(name)
        document = None
        if container_path is not None and entry.info.isreg() and entry.info.size < _CONFIG_LIMIT:
            document = _read(entry)
            info = _path_info(name, entry.info, "sha256:" + hashlib.sha256(document).hexdigest())
        else:
            info = _path_info(name, entry.info, _hash_entry(entry))
        paths[name] = info
        if container_path is not None:
            containers.pop(container_path, None)
            if document is not None:
                containers[container_path] = _container(container_path, entry, document)
    return Manifest(
        paths=tuple(paths[name] for name in sorted(paths)),
        containers=tuple(containers[key] for key in sorted(containers)),
        kernel=_kernel(boot),
        volumes=_volumes(paths, volume_sources),
    )


def tar_manifest(path: Path) -> Manifest:
    """The manifest of a ``tar`` output (``kitdsl build -f tar`` or ``linuxkit build -format
    tar``): ``boot/`` gives the kernel, the rest the paths.

    One pass over the file, hashing the kernel as it goes (unlike
    :func:`~kitdsl.outputs.open_linuxkit_tar`, which reads the kernel into memory).
    """
    boot: dict[str, str] = {}

    def rootfs() -> Iterable[Entry]:
        for entry in TarSource(path):
            if not is_boot_entry(entry.info.name):
                yield entry
                continue
            name = _clean(entry.info.name)
            if name == "boot/cmdline" and entry.data is not None:
                boot["cmdline"] = _read(entry).decode("utf-8", "surrogateescape")
            elif name in ("boot/kernel", "boot/ucode.cpio") and entry.data is not None:
                boot[name] = _hash_entry(entry)

    manifest = manifest_of(rootfs())
    kernel = KernelInfo(
        boot.get("boot/kernel", ""), boot.get("cmdline", ""), boot.get("boot/ucode.cpio", "")
    )
    return Manifest(manifest.paths, manifest.containers, kernel, manifest.volumes)


def system_manifest(
    files: Sequence[str],
    options: ImageOptions | None = None,
    *,
    lock: bool = True,
    reporter: Reporter | None = None,
) -> Manifest:
    """The manifest of the system in ``files`` (merged as ``kitdsl build`` merges them), got
    the way ``kitdsl build`` gets it, without writing an output.

    ``options`` is an :class:`~kitdsl.images.ImageOptions` (default: the defaults); with
    ``lock``, the pins of the last file's lockfile win, as they do for ``kitdsl build``.
    """
    # Imported here: fetching and assembling are only needed for this entry point.
    from kitdsl.assemble.rootfs import assemble
    from kitdsl.images import ImageOptions, pull_system
    from kitdsl.load import load_system
    from kitdsl.lockfile import Lockfile, lock_path
    from kitdsl.oci.cache import Cache

    options = options if options is not None else ImageOptions()
    system = load_system(list(files))
    pins = Lockfile.read(lock_path(files[-1])) if lock else None
    pulled = pull_system(system, options, lock=pins, reporter=reporter)
    cache = Cache.open(options.cache_dir)
    with (
        cache.lease(),
        assemble(system, pulled, cache, platform=options.platform) as (boot, rootfs),
    ):
        return manifest_of(rootfs, boot)


def is_tar(name: str) -> bool:
    """Whether a command-line file names a tar output rather than a system file."""
    return name.endswith((".tar", ".tar.gz", ".tgz"))


def load_manifest(
    files: Sequence[str],
    options: ImageOptions | None = None,
    *,
    reporter: Reporter | None = None,
) -> Manifest:
    """The manifest of a ``tar`` output (one ``.tar`` file) or of a system's files."""
    tars = [name for name in files if is_tar(name)]
    if not tars:
        return system_manifest(files, options, reporter=reporter)
    if len(files) != 1:
        raise KitError(
            f"{tars[0]} is a tar output; it cannot be merged with other files",
            hint="give one tar output, or system files only",
        )
    return tar_manifest(Path(tars[0]))


def _clean(name: str) -> str:
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def _quote(text: str) -> str:
    """``text``, or a JSON string when it has spaces or unprintable characters (so every line
    still splits into fields)."""
    if text and text.isprintable() and " " not in text and not text.startswith('"'):
        return text
    return json.dumps(text)


def _path_info(name: str, info: tarfile.TarInfo, digest: str) -> PathInfo:
    kind = _TYPES.get(info.type, "?")
    target = ""
    if kind == "l":
        target = info.linkname
    elif kind == "h":
        target = _clean(info.linkname)
    elif kind in ("c", "b"):
        target = f"{info.devmajor},{info.devminor}"
    return PathInfo(
        path=name,
        type=kind,
        mode=info.mode & 0o7777,
        uid=info.uid,
        gid=info.gid,
        size=info.size if kind == "f" else 0,
        digest=digest if kind == "f" else "",
        target=target,
    )


def _hash_entry(entry: Entry) -> str:
    if not entry.info.isreg() or entry.data is None:
        return ""
    digest = hashlib.sha256()
    left = entry.info.size
    while left > 0:
        chunk = entry.data.read(min(_CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return "sha256:" + digest.hexdigest()


def _hash_blob(blob: Blob | None) -> str:
    if blob is None:
        return ""
    if isinstance(blob, bytes):
        return "sha256:" + hashlib.sha256(blob).hexdigest()
    digest = hashlib.sha256()
    with blob.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _kernel(boot: Boot | None) -> KernelInfo:
    if boot is None:
        return KernelInfo("", "")
    return KernelInfo(_hash_blob(boot.kernel), boot.cmdline, _hash_blob(boot.ucode))


def _read(entry: Entry) -> bytes:
    if entry.data is None:
        return b""
    return entry.data.read(entry.info.size)


def _container_path(name: str) -> str | None:
    """``section/name`` when ``name`` is a bundle's ``config.json``."""
    parts = name.split("/")
    if (
        len(parts) == 4
        and parts[0] == "containers"
        and parts[1] in _CONTAINER_SECTIONS
        and parts[3] == "config.json"
    ):
        return f"{parts[1]}/{parts[2]}"
    return None


def _volume_folder(name: str) -> str | None:
    """The volume ``name`` is in (``containers/volumes/<volume>/...``), if any."""
    parts = name.split("/")
    if len(parts) >= 4 and "/".join(parts[:2]) == _VOLUMES:
        return parts[2]
    return None


def _volumes(paths: dict[str, PathInfo], sources: dict[str, str]) -> tuple[VolumeInfo, ...]:
    names = sorted({volume for name in paths if (volume := _volume_folder(name)) is not None})
    volumes = []
    for name in names:
        folder = f"{_VOLUMES}/{name}"
        source = sources.get(name, "")
        layout = paths.get(f"{folder}/lower/oci-layout")
        volumes.append(
            VolumeInfo(
                name=name,
                image="" if source == _BLANK_SOURCE else source,
                format="oci" if layout is not None and layout.type == "f" else "filesystem",
                access="rw" if f"{folder}/tmp" in paths else "ro",
            )
        )
    return tuple(volumes)


def _container(key: str, entry: Entry, document: bytes) -> ContainerInfo:
    section, name = key.split("/")
    try:
        config = json.loads(document)
    except ValueError:
        config = {}
    if not isinstance(config, dict):
        config = {}
    process = _dict(config.get("process"))
    capabilities = _dict(process.get("capabilities")).get("effective") or []
    mounts = []
    for mount in _list(config.get("mounts")):
        mount = _dict(mount)
        parts = (mount.get("destination"), mount.get("type"), mount.get("source"))
        mounts.append(" ".join(_quote(str(part)) if part else "-" for part in parts))
    namespaces = []
    for namespace in _list(_dict(config.get("linux")).get("namespaces")):
        namespace = _dict(namespace)
        kind = str(namespace.get("type", "?"))
        namespaces.append(f"{kind}={namespace['path']}" if namespace.get("path") else kind)
    return ContainerInfo(
        section=section,
        name=name,
        image=entry.info.pax_headers.get("LINUXKIT.source", ""),
        command=tuple(str(arg) for arg in _list(process.get("args"))),
        capabilities=tuple(sorted(str(cap) for cap in _list(capabilities))),
        mounts=tuple(mounts),
        namespaces=tuple(sorted(namespaces)),
    )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# --- comparing manifests ----------------------------------------------------------------------


@dataclass(frozen=True)
class PathChange:
    """A path both manifests have, changed."""

    path: str
    changes: tuple[str, ...]
    """What changed: ``type``, ``mode``, ``owner``, ``content``, ``target``."""
    before: PathInfo
    after: PathInfo

    def line(self) -> str:
        details = []
        for what in self.changes:
            old, new = _aspect(self.before, what), _aspect(self.after, what)
            details.append(f"{what} {old} -> {new}")
        return f"~ {_quote(self.path)}: " + ", ".join(details)


@dataclass(frozen=True)
class ContainerChange:
    """A container both manifests have, changed, or one only one of them has."""

    key: str
    changes: tuple[str, ...]
    """The changed fields (``image``, ``command``...), or ``added`` / ``removed``."""
    before: ContainerInfo | None
    after: ContainerInfo | None

    def lines(self) -> list[str]:
        if self.before is None:
            return [f"+ container {self.key}"]
        if self.after is None:
            return [f"- container {self.key}"]
        lines = [f"~ container {self.key}"]
        for what in self.changes:
            old, new = getattr(self.before, what), getattr(self.after, what)
            lines.append(f"    {what}: {_show(old)} -> {_show(new)}")
        return lines


@dataclass(frozen=True)
class VolumeChange:
    """A volume both manifests have, changed, or one only one of them has."""

    key: str
    changes: tuple[str, ...]
    """The changed fields (``image``, ``format``, ``access``), or ``added`` / ``removed``."""
    before: VolumeInfo | None
    after: VolumeInfo | None

    def lines(self) -> list[str]:
        if self.before is None:
            return [f"+ volume {_quote(self.key)}"]
        if self.after is None:
            return [f"- volume {_quote(self.key)}"]
        lines = [f"~ volume {_quote(self.key)}"]
        for what in self.changes:
            old, new = getattr(self.before, what), getattr(self.after, what)
            lines.append(f"    {what}: {_show(old)} -> {_show(new)}")
        return lines


@dataclass(frozen=True)
class ManifestDiff:
    """What changed from one manifest to another; false when nothing did."""

    added: tuple[PathInfo, ...] = ()
    removed: tuple[PathInfo, ...] = ()
    changed: tuple[PathChange, ...] = ()
    containers: tuple[ContainerChange, ...] = ()
    kernel: tuple[str, ...] = ()
    """Changed kernel fields: ``digest``, ``cmdline``, ``ucode``."""
    kernels: tuple[KernelInfo, KernelInfo] | None = None
    volumes: tuple[VolumeChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.changed
            or self.containers
            or self.volumes
            or self.kernel
        )

    def to_text(self) -> str:
        """One line per difference: ``+`` added, ``-`` removed, ``~`` changed."""
        lines: list[str] = []
        if self.kernels is not None:
            before, after = self.kernels
            for what in self.kernel:
                old, new = getattr(before, what), getattr(after, what)
                lines.append(f"~ kernel {what}: {_show(old)} -> {_show(new)}")
        for container in self.containers:
            lines += container.lines()
        for volume in self.volumes:
            lines += volume.lines()
        lines += [f"+ {info.line()}" for info in self.added]
        lines += [f"- {info.line()}" for info in self.removed]
        lines += [change.line() for change in self.changed]
        return "".join(line + "\n" for line in lines)

    def to_json(self) -> str:
        """The differences as JSON."""
        document = {
            "equal": not self,
            "added": [info.path for info in self.added],
            "removed": [info.path for info in self.removed],
            "changed": {change.path: list(change.changes) for change in self.changed},
            "containers": {change.key: list(change.changes) for change in self.containers},
            "volumes": {change.key: list(change.changes) for change in self.volumes},
            "kernel": list(self.kernel),
        }
        return json.dumps(document, indent=2, sort_keys=True) + "\n"


def diff_manifests(before: Manifest, after: Manifest) -> ManifestDiff:
    """What changed from ``before`` to ``after``."""
    old = {info.path: info for info in before.paths}
    new = {info.path: info for info in after.paths}
    changed = []
    for name in sorted(old.keys() & new.keys()):
        aspects = tuple(
            what
            for what in ("type", "mode", "owner", "content", "target")
            if _aspect(old[name], what) != _aspect(new[name], what)
        )
        if aspects:
            changed.append(PathChange(name, aspects, old[name], new[name]))
    old_containers = {container.key: container for container in before.containers}
    new_containers = {container.key: container for container in after.containers}
    containers = []
    for key in sorted(old_containers.keys() | new_containers.keys()):
        a, b = old_containers.get(key), new_containers.get(key)
        if a is None or b is None:
            containers.append(ContainerChange(key, ("added" if a is None else "removed",), a, b))
            continue
        fields = ("image", "command", "capabilities", "mounts", "namespaces")
        different = tuple(what for what in fields if getattr(a, what) != getattr(b, what))
        if different:
            containers.append(ContainerChange(key, different, a, b))
    old_volumes = {volume.key: volume for volume in before.volumes}
    new_volumes = {volume.key: volume for volume in after.volumes}
    volumes = []
    for key in sorted(old_volumes.keys() | new_volumes.keys()):
        x, y = old_volumes.get(key), new_volumes.get(key)
        if x is None or y is None:
            volumes.append(VolumeChange(key, ("added" if x is None else "removed",), x, y))
            continue
        differ = tuple(
            what for what in ("image", "format", "access") if getattr(x, what) != getattr(y, what)
        )
        if differ:
            volumes.append(VolumeChange(key, differ, x, y))
    kernel = tuple(
        what
        for what in ("digest", "cmdline", "ucode")
        if getattr(before.kernel, what) != getattr(after.kernel, what)
    )
    return ManifestDiff(
        added=tuple(new[name] for name in sorted(new.keys() - old.keys())),
        removed=tuple(old[name] for name in sorted(old.keys() - new.keys())),
        changed=tuple(changed),
        containers=tuple(containers),
        kernel=kernel,
        kernels=(before.kernel, after.kernel),
        volumes=tuple(volumes),
    )


def _aspect(info: PathInfo, what: str) -> str:
    if what == "type":
        return info.type
    if what == "mode":
        return f"{info.mode:04o}"
    if what == "owner":
        return f"{info.uid}:{info.gid}"
    if what == "content":
        return f"{info.digest} ({info.size} bytes)" if info.type == "f" else "-"
    return _quote(info.target) if info.target else "-"


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return _quote(str(value)) if value else "-"
