"""A system's root file system: its images, bundles and files as one stream of tar entries.

    pulled = pull_system(system, options)
    with assemble(system, pulled, Cache.open(options.cache_dir), platform=arm64) as (boot, rootfs):
        write_outputs(["kernel+initrd"], rootfs, boot, target)

The stream follows LinuxKit's order (``build.go``):

1. the contents of the kernel image's ``kernel.tar`` (``Kernel.tar``; modules); the kernel
   itself (``Kernel.binary``, with its mode) and the microcode (``Kernel.ucode``) go into
   :class:`Boot`, which the output formats place (``boot/`` in a tar, beside the initrd
   otherwise);
2. each init image, flattened into ``/``, then the merged APK database when several init
   images have one (:mod:`kitdsl.assemble.apk`);
3. each volume (:mod:`kitdsl.assemble.volumes`);
4. the onboot, onshutdown and services bundles (:mod:`kitdsl.assemble.bundles`): the image's
   files under ``lower/`` or ``rootfs/`` in the first bundle that uses the image only,
   ``config.json``, the ``tmp/`` and ``rootfs/`` mount points, ``runtime.json``;
5. the ``files`` section (:mod:`kitdsl.assemble.rootfs_files`), whose ``metadata`` entries
   name every image as it was resolved (:mod:`kitdsl.assemble.metadata`).

Entries carry LinuxKit's ``LINUXKIT.source`` and ``LINUXKIT.location`` PAX records. Image
entries keep their layer's headers; everything made up here is owned by root (files-section
entries excepted) and dated with one time, LinuxKit's 2017 one or ``SOURCE_DATE_EPOCH``
(:mod:`kitdsl.assemble.epoch`), so the same inputs give the same bytes.

Nothing is held in memory: images are flattened one at a time, when the stream reaches them,
and their files are read as the consumer takes them. The stream is a
:class:`~kitdsl.outputs.segments.SegmentedStream`: the files of each image (wherever it is
put) form a segment keyed by the image's manifest digest, where it goes, how it is changed and
the time of made-up entries, so an encoder with a segment cache copies what an earlier build
encoded instead of flattening the image again. The kernel, its ``kernel.tar`` and the
microcode are extracted once per kernel image into the ``kernel`` folder of the segment cache
(or a scratch folder without one); the scratch folder and the flattened images' spools are
released when the ``with`` block ends.

Unlike LinuxKit, a directory made up here (``containers/``, a bundle's folder...) is written
once rather than once per image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple, Protocol

from kitdsl.assemble.apk import ApkDatabases
from kitdsl.assemble.epoch import generated_mtime
from kitdsl.assemble.layer_filter import RESOLVCONF_LINK
from kitdsl.assemble.layers import LayerEntry, LayerSource, flatten, relocate
from kitdsl.assemble.metadata import ImageRefs, pinned
from kitdsl.assemble.rootfs_files import file_entries, plan_files
from kitdsl.assemble.runtime_config import BundleConfig, bundle_config
from kitdsl.assemble.streams import (
    Context,
    directories,
    directory,
    file,
    image_segment,
    made,
    open_entries,
    pax,
    source_of,
)
from kitdsl.assemble.volumes import PlatformImage, check_volumes, volume_segments
from kitdsl.dsl import Kernel, System
from kitdsl.dsl.types import image_reference
from kitdsl.errors import ImageError, KitError
from kitdsl.log import warn
from kitdsl.oci.image_config import ImageConfig
from kitdsl.oci.media import OCI_LAYER, Platform
from kitdsl.oci.store import ContentStore
from kitdsl.outputs.base import Boot
from kitdsl.outputs.entry import Entry
from kitdsl.outputs.segments import Segment, SegmentCache, SegmentedStream, code_digest, key_of
from kitdsl.plan.images import ResolvedImage, host_platform, image_uses

__all__ = ["Assembled", "PulledImages", "assemble"]

PARTS = "parts.json"
"""In an extracted kernel's folder: what else is known of its files (the kernel's mode)."""


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
    volumes: dict[str, list[PlatformImage]] = field(default_factory=dict)


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
    platform: Platform | None = None,
    mtime: int | None = None,
) -> Iterator[Assembled]:
    """Assemble ``system`` from the images ``pulled`` (:func:`kitdsl.images.pull_system`)
    fetched into ``store`` (the cache).

    ``platform`` is the build's target (``ImageOptions.platform``, ``--arch``; default this
    machine's): the images were pulled for it. ``mtime`` dates the entries made up here
    (default: :func:`~kitdsl.assemble.epoch.generated_mtime`, ``SOURCE_DATE_EPOCH`` or
    LinuxKit's time).

    Everything that can be checked without reading image files is checked before this
    returns: containers' configurations, file sources, the kernel. Scratch files go to
    ``workdir`` (default: the system's temporary folder; prefer a disk to a tmpfs). ``cache``
    keeps the extracted kernel parts between builds.
    """
    target = platform if platform is not None else host_platform()
    when = generated_mtime() if mtime is None else mtime
    images = _collect(system, pulled.images, target)
    bundles = _bundles(system, images, store)
    planned = plan_files(system)
    refs = _refs(system, images)
    check_volumes(system, target)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=workdir)))
        context = Context(store, scratch, when)
        boot, modules = _kernel(system, images.kernel, context, cache)
        apk = ApkDatabases(context, images.init)
        directories: set[str] = set()  # every directory of the stream so far

        def files() -> Iterator[Entry]:
            return file_entries(system, planned, directories, mtime=when, images=refs)

        def segments() -> Iterator[Segment]:
            seen: set[str] = set()  # made-up directories are written once
            yield from modules
            yield from _init(context, system, images.init, apk)
            yield from volume_segments(context, system, images.volumes, seen)
            yield from _containers(context, bundles, images.containers, seen)
            yield made("files", files)

        yield Assembled(boot, SegmentedStream(segments, directories))


def _collect(
    system: System, pulled: Mapping[str, tuple[ResolvedImage, ...]], platform: Platform
) -> _Images:
    """Each part's image, by the component names the planner gives."""
    seen: dict[str, int] = {}
    kernel: ResolvedImage | None = None
    init: list[ResolvedImage] = []
    containers: dict[str, ResolvedImage] = {}
    volumes: dict[str, list[PlatformImage]] = {}
    for use in image_uses(system, platform):
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
            volumes.setdefault(component.removeprefix("volumes/"), []).append((use.platform, image))
        else:
            containers[component] = image
    return _Images(kernel, init, containers, volumes)


def _refs(system: System, images: _Images) -> ImageRefs:
    """How the system's ``metadata`` files name each image: as written, canonical, with the
    digest of the manifest the build used (an ``oci`` volume of several platforms: none)."""
    kernel = system.kernel
    kernel_ref = None
    if kernel is not None and kernel.image is not None and images.kernel is not None:
        kernel_ref = pinned(image_reference(kernel.image), images.kernel.manifest.digest)
    containers = {}
    for section, _, entry in system.containers():
        image = images.containers[f"{section}/{entry.name}"]
        containers[f"{section}/{entry.name}"] = pinned(
            image_reference(entry.image), image.manifest.digest
        )
    volumes = {}
    for volume in system.volumes:
        found = images.volumes.get(volume.name, [])
        if volume.image is not None and found:
            digest = found[0][1].manifest.digest if len(found) == 1 else None
            volumes[volume.name] = pinned(image_reference(volume.image), digest)
    init = tuple(
        pinned(image_reference(written), image.manifest.digest)
        for written, image in zip(system.init, images.init, strict=True)
    )
    return ImageRefs(kernel=kernel_ref, init=init, containers=containers, volumes=volumes)


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
    context: Context,
    cache: SegmentCache | None,
) -> tuple[Boot, list[Segment]]:
    """The kernel parts, and the segment of ``kernel.tar``'s entries (if it has one)."""
    kernel = system.kernel
    if kernel is None or image is None:
        return Boot(cmdline=kernel.cmdline if kernel is not None else "", mtime=context.mtime), []
    wanted = {"binary": _clean(kernel.binary)}
    if kernel.tar is not None:
        wanted["tar"] = _clean(kernel.tar)
    if kernel.ucode is not None:
        wanted["ucode"] = _clean(kernel.ucode)
    key = key_of(kind="kernel", code=code_digest(), manifest=image.manifest.digest, **wanted)
    # --rebuild extracts the kernel again (into scratch space), as it redoes every step.
    reuse = cache is not None and cache.reuse
    folder = cache.folder(key) if cache is not None and reuse else context.scratch / "kernel"
    marker = folder / "complete"
    if marker.exists() and (folder / PARTS).exists():
        with contextlib.suppress(OSError):
            os.utime(marker)  # recently used: kept by prune
    else:
        _extract_kernel(kernel, image, context, wanted, folder)
    records = pax(source_of(kernel.image) if kernel.image else image.reference, "kernel")
    ucode = folder / "ucode" if "ucode" in wanted else None
    boot = Boot(
        kernel=folder / "binary",
        kernel_mode=_kernel_mode(folder),
        cmdline=kernel.cmdline,
        ucode=ucode,
        mtime=context.mtime,
        pax_headers=records,
    )
    if "tar" not in wanted:
        return boot, []
    label = f"{image.reference} ({wanted['tar']})"
    modules = Segment(
        lambda: _kernel_tar(folder / "tar", label, records, context),
        key_of(kind="modules", kernel=key, pax=records, mtime=context.mtime),
        f"kernel: {image.reference}",
    )
    return boot, [modules]


def _kernel_mode(folder: Path) -> int:
    """The kernel file's mode, as the image has it (0644 if it was not recorded)."""
    try:
        mode = json.loads((folder / PARTS).read_text())["binary_mode"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0o644
    return mode if isinstance(mode, int) else 0o644


def _extract_kernel(
    kernel: Kernel,
    image: ResolvedImage,
    context: Context,
    wanted: dict[str, str],
    folder: Path,
) -> None:
    """Copy the kernel image's files named in ``wanted`` (role → path) into ``folder``, which
    appears complete or not at all."""
    found: dict[str, LayerEntry] = {}
    top: list[str] = []
    with context.flatten(image) as flat:
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
        partial_folder = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        try:
            for role, entry in found.items():
                with entry.open() as source, (partial_folder / role).open("wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
            parts = {"binary_mode": found["binary"].info.mode & 0o7777}
            (partial_folder / PARTS).write_text(json.dumps(parts))
            (partial_folder / "complete").touch()
            if folder.exists() and not (folder / PARTS).exists():
                shutil.rmtree(folder, ignore_errors=True)  # incomplete: replaced
            with contextlib.suppress(OSError):  # another build got there first: the same files
                os.rename(partial_folder, folder)
        finally:
            shutil.rmtree(partial_folder, ignore_errors=True)


@contextlib.contextmanager
def _kernel_tar(
    path: Path, image: str, records: dict[str, str], context: Context
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
    with flatten([modules], image=image, workdir=context.scratch, mtime=context.mtime) as flat:
        yield open_entries(relocate(flat.entries(), "", pax=records))


def _clean(name: str) -> str:
    """A path as the stream names it: relative, no ``./``, no trailing ``/``."""
    return "/".join(part for part in name.split("/") if part not in ("", "."))


# --- images -----------------------------------------------------------------------------------


def _init(
    context: Context, system: System, images: list[ResolvedImage], apk: ApkDatabases
) -> Iterator[Segment]:
    merging = len(images) > 1  # one APK database needs no merge
    for index, (written, image) in enumerate(zip(system.init, images, strict=True)):
        yield image_segment(
            context,
            image,
            "",
            f"init[{index}]",
            resolv_conf=RESOLVCONF_LINK,
            source=source_of(written),
            watch=apk.watch(image) if merging else None,
        )
    if merging:
        yield apk.segment()


def _containers(
    context: Context,
    bundles: list[BundleConfig],
    images: Mapping[str, ResolvedImage],
    seen: set[str],
) -> Iterator[Segment]:
    for bundle in bundles:
        layout = bundle.layout
        image = images[f"{layout.section}/{layout.name}"]
        records = pax(layout.image, layout.location)
        top = layout.root if layout.extracts_image else layout.path
        yield made(layout.location, partial(directories, top, records, seen, context.mtime))
        if layout.extracts_image:
            yield image_segment(
                context,
                image,
                f"{layout.root}/",
                layout.location,
                resolv_conf=None,
                source=layout.image,
            )
        yield made(layout.location, partial(_bundle_files, bundle, records, context.mtime))


def _bundle_files(bundle: BundleConfig, records: dict[str, str], mtime: int) -> Iterator[Entry]:
    """A bundle's ``config.json``, mount points and ``runtime.json``."""
    layout = bundle.layout
    yield file(f"{layout.path}/config.json", bundle.config_json, records, mtime)
    if not layout.readonly:
        yield directory(f"{layout.path}/tmp", records, mtime)
        yield directory(f"{layout.path}/rootfs", records, mtime)
    elif not layout.extracts_image:
        yield directory(f"{layout.path}/rootfs", records, mtime)
    yield file(f"{layout.path}/runtime.json", bundle.runtime_json, records, mtime)
