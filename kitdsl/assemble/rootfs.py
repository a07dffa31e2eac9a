"""A system's root file system: its images, bundles and files as one stream of tar entries.

    pulled = pull_system(system, options)
    with assemble(system, pulled, Cache.open(options.cache_dir)) as (boot, rootfs):
        write_outputs(["kernel+initrd"], rootfs, boot, target)

The stream follows LinuxKit's order (``build.go``):

1. the contents of the kernel image's ``kernel.tar`` (``Kernel.tar``; modules); the kernel
   itself (``Kernel.binary``) and the microcode (``Kernel.ucode``) go into :class:`Boot`,
   which the output formats place (``boot/`` in a tar, beside the initrd otherwise);
2. each init image, flattened into ``/``;
3. each volume: ``containers/volumes/<name>/lower/`` (the image's files, or nothing for a
   blank volume), then ``tmp/`` and ``merged/``;
4. the onboot, onshutdown and services bundles (:mod:`kitdsl.assemble.bundles`): the image's
   files under ``lower/`` or ``rootfs/`` in the first bundle that uses the image only,
   ``config.json``, the ``tmp/`` and ``rootfs/`` mount points, ``runtime.json``;
5. the ``files`` section (:mod:`kitdsl.assemble.rootfs_files`).

Entries carry LinuxKit's ``LINUXKIT.source`` and ``LINUXKIT.location`` PAX records. Image
entries keep their layer's headers; everything made up here is owned by root (files-section
entries excepted) and dated :data:`DEFAULT_MTIME`, so the same inputs give the same bytes.

Nothing is held in memory: images are flattened one at a time, when the stream reaches them,
and their files are read as the consumer takes them. The stream is a
:class:`~kitdsl.outputs.segments.SegmentedStream`: the files of each image (wherever it is
put) form a segment keyed by the image's manifest digest, where it goes and how it is changed,
so an encoder with a segment cache copies what an earlier build encoded instead of flattening
the image again. The kernel, its ``kernel.tar`` and the microcode are extracted once per kernel
image into the ``kernel`` folder of the segment cache (or a scratch folder without one); the
scratch folder and the flattened images' spools are released when the ``with`` block ends.

Not done yet (an error says so): ``oci``-format volumes. Unlike LinuxKit, a directory made
up here (``containers/``, a bundle's folder...) is written once rather than once per image,
and the APK databases of several init images are not merged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple, Protocol

from kitdsl.assemble.layer_filter import RESOLVCONF_LINK, linuxkit_filter
from kitdsl.assemble.layers import (
    DEFAULT_MTIME,
    FlatImage,
    LayerEntry,
    LayerSource,
    flatten,
    image_layers,
    relocate,
)
from kitdsl.assemble.rootfs_files import file_entries, plan_files
from kitdsl.assemble.runtime_config import BundleConfig, bundle_config
from kitdsl.dsl import Kernel, System
from kitdsl.errors import ConfigError, ImageError, KitError
from kitdsl.log import warn
from kitdsl.oci.image_config import ImageConfig
from kitdsl.oci.media import OCI_LAYER, Manifest
from kitdsl.oci.store import ContentStore
from kitdsl.outputs.base import Boot
from kitdsl.outputs.entry import Entry
from kitdsl.outputs.segments import Segment, SegmentCache, SegmentedStream, code_digest, key_of
from kitdsl.plan.images import ResolvedImage, host_platform, image_uses

__all__ = ["Assembled", "PulledImages", "assemble"]

VOLUMES_SOURCE = "linuxkit.volumes"
EMPTY_SOURCE = "empty"
MOUNTS = ("tmp", "merged")
"""The folders of a volume the init mounts on."""


class Assembled(NamedTuple):
    """What :func:`assemble` gives: the kernel parts and the root file system stream."""

    boot: Boot
    rootfs: SegmentedStream
    """The root file system without ``boot/``; read it inside the ``with`` block (as often as
    needed: each pass flattens again what an encoder's cache does not have)."""


@dataclass(frozen=True)
class _Images:
    """The resolved image of every part of the system, from :attr:`Pulled.images`."""

    kernel: ResolvedImage | None
    init: list[ResolvedImage]
    containers: dict[str, ResolvedImage]
    volumes: dict[str, ResolvedImage]


class PulledImages(Protocol):
    """What :func:`assemble` needs of :class:`kitdsl.images.Pulled`."""

    @property
    def images(self) -> Mapping[str, tuple[ResolvedImage, ...]]:
        """Component (``kernel``, ``init/<name>``, ``services/<name>``...) → its images."""
        ...


@contextlib.contextmanager
def assemble(
    system: System,
    pulled: PulledImages,
    store: ContentStore,
    *,
    workdir: Path | None = None,
    cache: SegmentCache | None = None,
) -> Iterator[Assembled]:
    """Assemble ``system`` from the images ``pulled`` (:func:`kitdsl.images.pull_system`)
    fetched into ``store`` (the cache).

    Everything that can be checked without reading image files is checked before this
    returns: containers' configurations, file sources, the kernel. Scratch files go to
    ``workdir`` (default: the system's temporary folder; prefer a disk to a tmpfs). ``cache``
    keeps the extracted kernel parts between builds.
    """
    images = _collect(system, pulled.images)
    bundles = _bundles(system, images, store)
    planned = plan_files(system)
    for volume in system.volumes:
        if volume.format == "oci":
            raise ConfigError(
                f"volume {volume.name!r}: the 'oci' format is not supported yet",
                location=volume.origin,
                hint="use format='filesystem'",
            )
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=workdir)))
        boot, modules = _kernel(system, images.kernel, store, scratch, cache)
        directories: set[str] = set()  # every directory of the stream so far

        def segments() -> Iterator[Segment]:
            made: set[str] = set()  # made-up directories are written once
            yield from modules
            yield from _init(images.init, store, scratch)
            yield from _volumes(system, images.volumes, store, scratch, made)
            yield from _containers(bundles, images.containers, store, scratch, made)
            yield _made("files", lambda: file_entries(system, planned, directories))

        yield Assembled(boot, SegmentedStream(segments, directories))


def _collect(system: System, pulled: Mapping[str, tuple[ResolvedImage, ...]]) -> _Images:
    """Each part's image, by the component names the planner gives."""
    seen: dict[str, int] = {}
    kernel: ResolvedImage | None = None
    init: list[ResolvedImage] = []
    containers: dict[str, ResolvedImage] = {}
    volumes: dict[str, ResolvedImage] = {}
    for use in image_uses(system, host_platform()):
        component = use.component
        index = seen.get(component, 0)
        seen[component] = index + 1
        found = pulled.get(component, ())
        if index >= len(found):
            raise KitError(
                f"no image was fetched for {component}",
                hint="fetch the system's images first (kitdsl pull)",
            )
        image = found[index]
        if component == "kernel":
            kernel = image
        elif component.startswith("init/"):
            init.append(image)
        elif component.startswith("volumes/"):
            volumes.setdefault(component.removeprefix("volumes/"), image)
        else:
            containers[component] = image
    return _Images(kernel, init, containers, volumes)


def _bundles(system: System, images: _Images, store: ContentStore) -> list[BundleConfig]:
    configs: dict[str, ImageConfig] = {}
    bundles = []
    for section, index, container in system.containers():
        image = images.containers[f"{section}/{container.name}"]
        if image.config.digest not in configs:
            document = store.read_blob(image.config.digest)
            configs[image.config.digest] = ImageConfig.parse(document, image=image.reference)
        bundle = bundle_config(system, section, index, configs[image.config.digest])
        for message in bundle.warnings:
            warn(message, location=container.origin)
        bundles.append(bundle)
    return bundles


# --- the kernel -------------------------------------------------------------------------------


def _kernel(
    system: System,
    image: ResolvedImage | None,
    store: ContentStore,
    scratch: Path,
    cache: SegmentCache | None,
) -> tuple[Boot, list[Segment]]:
    """The kernel parts, and the segment of ``kernel.tar``'s entries (if it has one)."""
    kernel = system.kernel
    if kernel is None or image is None:
        return Boot(cmdline=kernel.cmdline if kernel is not None else ""), []
    wanted = {"binary": _clean(kernel.binary)}
    if kernel.tar is not None:
        wanted["tar"] = _clean(kernel.tar)
    if kernel.ucode is not None:
        wanted["ucode"] = _clean(kernel.ucode)
    key = key_of(kind="kernel", code=code_digest(), manifest=image.manifest.digest, **wanted)
    folder = cache.folder(key) if cache is not None else scratch / "kernel"
    marker = folder / "complete"
    if marker.exists():
        with contextlib.suppress(OSError):
            os.utime(marker)  # recently used: kept by prune
    else:
        _extract_kernel(kernel, image, store, scratch, wanted, folder)
    pax = _pax(image.reference, "kernel")
    ucode = folder / "ucode" if "ucode" in wanted else None
    boot = Boot(kernel=folder / "binary", cmdline=kernel.cmdline, ucode=ucode, pax_headers=pax)
    if "tar" not in wanted:
        return boot, []
    modules = Segment(
        lambda: _kernel_tar(folder / "tar", f"{image.reference} ({wanted['tar']})", pax, scratch),
        key_of(kind="modules", kernel=key, pax=pax),
        f"kernel: {image.reference}",
    )
    return boot, [modules]


def _extract_kernel(
    kernel: Kernel,
    image: ResolvedImage,
    store: ContentStore,
    scratch: Path,
    wanted: dict[str, str],
    folder: Path,
) -> None:
    """Copy the kernel image's files named in ``wanted`` (role → path) into ``folder``, which
    appears complete or not at all."""
    found: dict[str, LayerEntry] = {}
    top: list[str] = []
    with _flatten(image, store, scratch) as flat:
        for entry in flat.entries():
            if "/" not in entry.name and entry.info.isreg():
                top.append(entry.name)
            for role, name in wanted.items():
                if entry.name == name and (entry.info.isreg() or entry.info.islnk()):
                    found[role] = entry
        for role, name in wanted.items():
            if role not in found:
                raise ImageError(
                    f"kernel image {image.reference} has no file {name!r} (Kernel.{role})",
                    location=kernel.field_origin(role) or kernel.origin,
                    hint=f"its top-level files are: {', '.join(top) or 'none'}"
                    + ("; set tar=None if it has no modules" if role == "tar" else ""),
                )
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        try:
            for role, entry in found.items():
                with entry.open() as source, (partial / role).open("wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
            (partial / "complete").touch()
            with contextlib.suppress(OSError):  # another build got there first: the same files
                os.rename(partial, folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


@contextlib.contextmanager
def _kernel_tar(
    path: Path, image: str, pax: dict[str, str], scratch: Path
) -> Iterator[Iterator[Entry]]:
    """The entries of the kernel image's ``kernel.tar`` (any compression), checked as strictly
    as a layer: no absolute or ``..`` names, no writes or links leaving the root."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    modules = LayerSource(
        digest=f"sha256:{digest.hexdigest()}",
        media_type=OCI_LAYER,
        open=lambda: path.open("rb"),
        size=path.stat().st_size,
    )
    with flatten([modules], image=image, workdir=scratch) as flat:
        yield _open(relocate(flat.entries(), "", pax=pax))


def _clean(name: str) -> str:
    """A path as the stream names it: relative, no ``./``, no trailing ``/``."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


# --- images -----------------------------------------------------------------------------------


def _flatten(image: ResolvedImage, store: ContentStore, scratch: Path) -> FlatImage:
    manifest = Manifest.model_validate_json(store.read_blob(image.manifest.digest))
    config = store.read_blob(image.config.digest)
    layers = image_layers(store, manifest, config, image=image.reference)
    return flatten(layers, image=image.reference, workdir=scratch)


def _image_segment(
    image: ResolvedImage,
    store: ContentStore,
    scratch: Path,
    prefix: str,
    location: str,
    *,
    resolv_conf: str | None,
) -> Segment:
    """The image's files, changed as LinuxKit changes them, under ``prefix``."""
    pax = _pax(image.reference, location)

    @contextlib.contextmanager
    def entries() -> Iterator[Iterator[Entry]]:
        with _flatten(image, store, scratch) as flat:
            changed = linuxkit_filter(flat.entries(), resolv_conf=resolv_conf)
            yield _open(relocate(changed, prefix, pax=pax))

    key = key_of(
        kind="image",
        code=code_digest(),
        manifest=image.manifest.digest,
        prefix=prefix,
        pax=pax,
        resolv_conf=resolv_conf,
    )
    return Segment(entries, key, f"{location}: {image.reference}")


def _open(entries: Iterable[LayerEntry]) -> Iterator[Entry]:
    """Layer entries as stream entries, each file open while its entry is the current one."""
    for entry in entries:
        if entry.info.isreg():
            with entry.open() as data:
                yield Entry(entry.info, data)
        else:
            yield Entry(entry.info)


def _made(label: str, entries: Callable[[], Iterable[Entry]]) -> Segment:
    """A segment of entries made here (cheap: never cached)."""

    @contextlib.contextmanager
    def produce() -> Iterator[Iterable[Entry]]:
        yield entries()

    return Segment(produce, None, label)


def _init(images: list[ResolvedImage], store: ContentStore, scratch: Path) -> Iterator[Segment]:
    for index, image in enumerate(images):
        location = f"init[{index}]"
        yield _image_segment(image, store, scratch, "", location, resolv_conf=RESOLVCONF_LINK)


def _volumes(
    system: System,
    images: Mapping[str, ResolvedImage],
    store: ContentStore,
    scratch: Path,
    made: set[str],
) -> Iterator[Segment]:
    for index, volume in enumerate(system.volumes):
        location = f"volume[{index}]"
        path = f"containers/volumes/{volume.name}"
        image = images.get(volume.name) if volume.image is not None else None
        source = image.reference if image is not None else EMPTY_SOURCE
        lower = _pax(source, location)
        yield _made(location, partial(_directories, f"{path}/lower", lower, made))
        if image is not None:
            yield _image_segment(
                image, store, scratch, f"{path}/lower/", location, resolv_conf=RESOLVCONF_LINK
            )
        mounts = [_directory(f"{path}/{name}", _pax(VOLUMES_SOURCE, location)) for name in MOUNTS]
        yield _made(location, partial(iter, mounts))


def _containers(
    bundles: list[BundleConfig],
    images: Mapping[str, ResolvedImage],
    store: ContentStore,
    scratch: Path,
    made: set[str],
) -> Iterator[Segment]:
    for bundle in bundles:
        layout = bundle.layout
        image = images[f"{layout.section}/{layout.name}"]
        pax = _pax(image.reference, layout.location)
        top = layout.root if layout.extracts_image else layout.path
        yield _made(layout.location, partial(_directories, top, pax, made))
        if layout.extracts_image:
            yield _image_segment(
                image, store, scratch, f"{layout.root}/", layout.location, resolv_conf=None
            )
        yield _made(layout.location, partial(_bundle_files, bundle, pax))


def _bundle_files(bundle: BundleConfig, pax: dict[str, str]) -> Iterator[Entry]:
    """A bundle's ``config.json``, mount points and ``runtime.json``."""
    layout = bundle.layout
    yield _file(f"{layout.path}/config.json", bundle.config_json, pax)
    if not layout.readonly:
        yield _directory(f"{layout.path}/tmp", pax)
        yield _directory(f"{layout.path}/rootfs", pax)
    elif not layout.extracts_image:
        yield _directory(f"{layout.path}/rootfs", pax)
    yield _file(f"{layout.path}/runtime.json", bundle.runtime_json, pax)


# --- made-up entries --------------------------------------------------------------------------


def _pax(source: str, location: str) -> dict[str, str]:
    return {"LINUXKIT.location": location, "LINUXKIT.source": source}


def _directories(path: str, pax: dict[str, str], made: set[str]) -> Iterator[Entry]:
    """``path`` and each of its parents, parents first, but none already in ``made``."""
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        name = "/".join(parts[:depth])
        if name not in made:
            made.add(name)
            yield _directory(name, pax)


def _directory(name: str, pax: dict[str, str]) -> Entry:
    entry = Entry.directory(name, mtime=DEFAULT_MTIME)
    entry.info.pax_headers = dict(pax)
    return entry


def _file(name: str, data: bytes, pax: dict[str, str]) -> Entry:
    entry = Entry.file(name, data, mode=0o644, mtime=DEFAULT_MTIME)
    entry.info.pax_headers = dict(pax)
    return entry
