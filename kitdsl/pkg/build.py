"""Building a package's image into the cache, unless the cache already has its tag.

The image is an OCI image of the package's base images' layers, then one layer of the files of
its Debian packages (when it has any) and one of its ``files`` (when it has any), with a
configuration holding its entry point, command, environment, working directory and labels
(``org.mobyproject.config`` from :attr:`Package.config`). Every byte is a function of the
resolved package: entries in archive order, files dated LinuxKit's fixed time, deterministic
gzip, canonical JSON. The image is recorded in the cache under its reference only once every
blob is in, so a build that fails leaves nothing under the name.

:func:`build_package` is what the planner's *build* step runs (:func:`package_builder`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from kitdsl import reference
from kitdsl.dsl import File
from kitdsl.dsl.types import ImageProvider
from kitdsl.errors import ImageError, PackageError
from kitdsl.load.linuxkit_yaml import entry_data
from kitdsl.oci.image_config import MOBY_CONFIG_LABEL
from kitdsl.oci.media import OCI_CONFIG, OCI_MANIFEST, Descriptor, Manifest
from kitdsl.oci.store import ContentStore, ref_key
from kitdsl.outputs.entry import Entry
from kitdsl.pkg.context import PackageContext, ResolvedPackage, current_context
from kitdsl.pkg.layers import Layer, LayerWriter, deb_entries
from kitdsl.pkg.package import Package
from kitdsl.plan.executor import StepContext
from kitdsl.plan.images import ResolvedImage

__all__ = ["DEFAULT_PATH", "build_package", "package_builder"]

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The ``PATH`` of an image whose package sets none (as Docker's images have)."""


def package_builder(
    store: ContentStore, context: PackageContext | None = None
) -> Any:  # the planner's Builder
    """The planner's builder of :class:`Package` images, into ``store``."""

    def build(provider: ImageProvider, step: StepContext) -> ResolvedImage:
        if not isinstance(provider, Package):
            raise ImageError(
                f"{provider.reference}: kitdsl cannot build a {type(provider).__name__}",
                hint="build and push the image yourself and use its reference instead",
            )
        resolved = (context or current_context()).resolved(provider)
        return build_package(resolved, store, context or current_context())

    return build


def build_package(
    resolved: ResolvedPackage,
    store: ContentStore,
    context: PackageContext,
    *,
    force: bool = False,
) -> ResolvedImage:
    """The image of ``resolved`` in ``store``: found there by its reference, or built (with
    its base packages first). ``force`` builds it again even when it is there."""
    name = reference.image_key(resolved.reference)
    if not force:
        found = _cached(store, name)
        if found is not None:
            return found
    bases = [build_package(base, store, context, force=force) for base in resolved.base]
    package = resolved.package
    layers: list[tuple[Descriptor, str]] = []
    diff_ids: list[str] = []
    for base in bases:
        manifest = Manifest.model_validate_json(store.read_blob(base.manifest.digest))
        config = json.loads(store.read_blob(base.config.digest))
        diff_ids += config["rootfs"]["diff_ids"]
        layers += [(layer, "") for layer in manifest.layers]
    for layer in _own_layers(resolved, store, context):
        layers.append((layer.descriptor, layer.diff_id))
        diff_ids.append(layer.diff_id)
    config = _config(package, context, diff_ids)
    config_descriptor = _put(store, config, OCI_CONFIG)
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor.to_json(),
        "layers": [descriptor.to_json() for descriptor, _ in layers],
    }
    manifest_descriptor = _put(store, _canonical(manifest_doc), OCI_MANIFEST)
    platform = context.platform
    store.set_ref(name, manifest_descriptor.model_copy(update={"platform": platform}))
    return ResolvedImage(name, manifest_descriptor, config_descriptor, tuple(d for d, _ in layers))


def _own_layers(
    resolved: ResolvedPackage, store: ContentStore, context: PackageContext
) -> Iterator[Layer]:
    """The layers the package adds (its kind may make others: see :mod:`kitdsl.pkg.kernel`)."""
    package = resolved.package
    builder = getattr(package, "build_layers", None)
    if builder is not None:
        yield from builder(resolved, store, context)
        return
    if resolved.closure is not None:
        yield deb_layer(resolved, store, context)
    if package.files:
        yield files_layer(resolved, store)


def deb_layer(resolved: ResolvedPackage, store: ContentStore, context: PackageContext) -> Layer:
    """One layer of the files of the package's Debian packages (downloaded if needed)."""
    package = resolved.package
    assert resolved.closure is not None
    downloaded = context.archive(package).download(resolved.closure)
    debs = [(item.package.name, item.path) for item in downloaded]
    with LayerWriter(store) as writer:
        for entry in deb_entries(debs, keep=package.keep, drop=package.drop, package=package.name):
            writer.add(entry)
    if writer.entries == 0:
        raise PackageError(
            f"package {package.name}: nothing of {', '.join(package.debian)} is kept",
            location=package.field_origin("keep") or package.origin,
            hint="check the keep and drop globs against the packages' files",
        )
    assert writer.layer is not None
    return writer.layer


def files_layer(resolved: ResolvedPackage, store: ContentStore) -> Layer:
    """One layer of the package's ``files``, in the order given."""
    with LayerWriter(store) as writer:
        for entry in file_entries(
            resolved.package.files, resolved.sources, resolved.source_digests
        ):
            writer.add(entry)
    assert writer.layer is not None
    return writer.layer


def file_entries(
    files: list[File], sources: Mapping[str, Path], digests: Mapping[str, str]
) -> Iterator[Entry]:
    """The entries of a package's ``files`` (parents the layer does not hold are left to the
    layers below, or made 0755 when unpacked). A source file must still have the contents
    (``digests``) the package's tag was computed from."""
    for file in files:
        name = "/".join(part for part in file.path.split("/") if part not in ("", "."))
        mode = _mode(file)
        uid, gid = int(file.uid), int(file.gid)
        if file.directory:
            yield Entry.directory(name, mode=mode, uid=uid, gid=gid)
        elif file.symlink is not None:
            yield Entry.symlink(name, file.symlink, uid=uid, gid=gid)
        elif file.path in sources:
            path = sources[file.path]
            with path.open("rb") as handle:
                entry = Entry.file(name, b"", mode=mode, uid=uid, gid=gid)
                entry.info.size = os.fstat(handle.fileno()).st_size
                checked = _Checked(handle, entry.info.size, digests[file.path], path)
                yield Entry(entry.info, checked)
        else:
            yield Entry.file(name, (file.contents or "").encode(), mode=mode, uid=uid, gid=gid)


class _Checked:
    """Reads a source file, and refuses it at its end if it is not what was hashed."""

    def __init__(self, handle: BinaryIO, size: int, digest: str, path: Path) -> None:
        self._handle, self._left, self._digest, self._path = handle, size, digest, path
        self._hash = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self._handle.read(size)
        self._hash.update(data)
        self._left -= len(data)
        if self._left <= 0 and self._hash.hexdigest() != self._digest:
            raise PackageError(
                f"{self._path} changed while its package was being built",
                hint="build again once it no longer changes",
            )
        return data


def _mode(file: File) -> int:
    if file.mode is None:
        return 0o755 if file.directory else 0o644
    return file.mode if isinstance(file.mode, int) else int(file.mode.removeprefix("0o"), 8)


def _config(package: Package, context: PackageContext, diff_ids: list[str]) -> bytes:
    env = list(package.env)
    if not any(item.startswith("PATH=") for item in env):
        env.insert(0, DEFAULT_PATH)
    settings: dict[str, Any] = {"Env": env}
    if package.entrypoint is not None:
        settings["Entrypoint"] = package.entrypoint
    if package.cmd is not None:
        settings["Cmd"] = package.cmd
    if package.workdir is not None:
        settings["WorkingDir"] = package.workdir
    labels = dict(package.labels)
    if package.config is not None:
        labels[MOBY_CONFIG_LABEL] = json.dumps(entry_data(package.config), sort_keys=True)
    if labels:
        settings["Labels"] = labels
    platform = context.platform
    document: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if platform.variant:
        document["variant"] = platform.variant
    return _canonical(document)


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _put(store: ContentStore, data: bytes, media_type: str) -> Descriptor:
    digest = store.put_blob(data)
    return Descriptor(media_type=media_type, digest=digest, size=len(data))


def _cached(store: ContentStore, name: str) -> ResolvedImage | None:
    """The image recorded under ``name``, if it is there whole."""
    root = store.get_ref(ref_key(name))
    if root is None or root.media_type != OCI_MANIFEST:
        return None
    try:
        manifest = Manifest.model_validate_json(store.read_blob(root.digest))
    except (OSError, ValueError):
        return None
    blobs = [manifest.config, *manifest.layers]
    if not all(store.has_blob(blob.digest, blob.size) for blob in blobs):
        return None
    descriptor = root.model_copy(update={"annotations": None, "platform": None})
    return ResolvedImage(name, descriptor, manifest.config, tuple(manifest.layers))
