"""Exporting a cached image as a tar: an OCI image layout, or an archive ``docker load`` reads.

Both kinds are deterministic: entries sorted, modification times 0, owner root, fixed modes,
JSON with sorted keys, so the same image always gives the same bytes.

The docker kind is the layout ``docker save`` writes since Docker 25: an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/``) plus the ``manifest.json`` older loaders
read, whose ``Config`` and ``Layers`` point into ``blobs/sha256/``. Layers stay compressed as
they are in the cache; ``docker load`` decompresses them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import ValidationError

from kitdsl.errors import CacheError
from kitdsl.oci.digest import DigestError, digest_of, hex_of
from kitdsl.oci.media import (
    INDEX_TYPES,
    OCI_INDEX,
    REF_NAME_ANNOTATION,
    Descriptor,
    Index,
    Manifest,
    Platform,
)
from kitdsl.oci.store import REPAIR_HINT, ContentStore, parse_name, recorded_platforms, ref_key
from kitdsl.oci.walk import walk

ArchiveFormat = Literal["oci", "docker"]
CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote."""

    name: str
    digest: str
    """The root written to the archive's ``index.json``."""
    media_type: str
    platforms: tuple[str, ...]
    blobs: int
    size: int
    """Bytes of blobs written."""
    partial: bool = False
    """True when the cache held only some platforms of an index, so a new index listing just
    those was written (its digest differs from the registry's)."""


def export_image(
    store: ContentStore,
    name: str,
    output: Path | BinaryIO,
    *,
    format: ArchiveFormat = "oci",
    platform: Platform | str | None = None,
) -> Exported:
    """Write the cached image ``name`` to ``output`` (a path, written atomically, or a stream).

    With ``platform``, only that platform's image is written. Without it, the OCI kind writes
    the root as cached (an index with the platforms the cache holds) and the docker kind, which
    holds one image per name, needs the cache to hold exactly one platform.
    """
    if format not in ("oci", "docker"):
        raise CacheError(f"unknown archive format {format!r}: use 'oci' or 'docker'")
    try:
        wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    except ValueError as error:
        raise CacheError(str(error)) from None
    key = ref_key(name)
    with store.lease():  # keep prune away from the blobs while they are copied
        root = store.get_ref(name)
        if root is None:
            raise CacheError(
                f"{key} is not in the cache",
                hint="build a system that uses it, or add it with `kitdsl cache import`",
            )
        target, extra, partial = _select(store, key, root, wanted, format)
        result = walk(_With(store, extra), target, attestations=True)
        if not result.complete:
            raise CacheError(
                f"cannot export {key}: content it needs is missing from the cache",
                details=tuple(str(m) for m in result.missing[:10]),
                hint=REPAIR_HINT,
            )
        annotations = {REF_NAME_ANNOTATION: key, CONTAINERD_NAME_ANNOTATION: key}
        entry = Descriptor.model_validate({**target.to_json(), "annotations": annotations})
        files: dict[str, bytes] = {
            "oci-layout": LAYOUT_VERSION,
            "index.json": _json(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry.to_json()]}
            ),
        }
        if format == "docker":
            files["manifest.json"] = _docker_manifest(store, key, target)
        blobs = {f"blobs/sha256/{hex_of(d)}": d for d in result.reached}
        _write_tar(output, files, blobs, store, extra)
    return Exported(
        name=key,
        digest=target.digest,
        media_type=target.media_type,
        platforms=tuple(str(p) for p in result.platforms),
        blobs=len(blobs),
        size=result.size,
        partial=partial,
    )


def _select(
    store: ContentStore,
    key: str,
    root: Descriptor,
    wanted: Platform | None,
    format: ArchiveFormat,
) -> tuple[Descriptor, dict[str, bytes], bool]:
    """The descriptor to export, blobs made for the export (a reduced index), and whether the
    export holds only part of the cached root."""
    if root.media_type not in INDEX_TYPES:
        if wanted is not None:
            have = walk(store, root).platforms
            if have and not have[0].matches(wanted):
                raise CacheError(f"{key} is an image for {have[0]}, not for {wanted}")
        return root, {}, False
    index = _read_index(store, key, root)
    complete = [
        child
        for child in index.manifests
        if not child.is_attestation and child.platform and walk(store, child).complete
    ]
    available = ", ".join(str(child.platform) for child in complete) or "none"
    if wanted is not None:
        # A platform that was never fetched is "not cached"; one fetched whose content has gone
        # is damage, reported by the caller's check with the missing blobs.
        child = index.select(wanted)
        fetched = recorded_platforms(root)
        if (
            child is None
            or child.platform is None
            or (fetched is not None and not any(child.platform.matches(p) for p in fetched))
        ):
            raise CacheError(
                f"{key} has no image for {wanted} in the cache (cached platforms: {available})"
            )
        return child, {}, False
    if format == "docker":
        if len(complete) != 1:
            raise CacheError(
                f"{key} is a multi-platform image; a docker archive holds one platform",
                hint=f"choose one with --platform (cached platforms: {available})",
            )
        return complete[0], {}, False
    if walk(store, root, attestations=True).complete:
        return root, {}, False
    if not complete:
        raise CacheError(f"the cache holds no complete platform of {key}", hint=REPAIR_HINT)
    # The cache fetched some platforms only: an index of exactly those is a valid image.
    reduced = index.model_dump(by_alias=True, exclude_none=True, mode="json")
    reduced["manifests"] = [child.to_json() for child in complete]
    data = _json(reduced)
    descriptor = Descriptor.model_validate(
        {"mediaType": root.media_type, "digest": digest_of(data), "size": len(data)}
    )
    return descriptor, {descriptor.digest: data}, True


def _read_index(store: ContentStore, key: str, root: Descriptor) -> Index:
    try:
        return Index.model_validate_json(store.read_blob(root.digest))
    except (OSError, ValidationError, DigestError) as error:
        raise CacheError(f"the index of {key} is unreadable: {error}", hint=REPAIR_HINT) from None


def _docker_manifest(store: ContentStore, key: str, target: Descriptor) -> bytes:
    """``manifest.json``: config, tags and layer files, as ``docker load`` reads them."""
    manifest = Manifest.model_validate_json(store.read_blob(target.digest))
    reference = parse_name(key)
    tags = [reference.familiar] if reference.tag is not None else []
    item = {
        "Config": f"blobs/sha256/{hex_of(manifest.config.digest)}",
        "RepoTags": tags,
        "Layers": [f"blobs/sha256/{hex_of(layer.digest)}" for layer in manifest.layers],
    }
    return _json([item])


def _json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class _With:
    """The store plus blobs made for an export."""

    def __init__(self, store: ContentStore, extra: dict[str, bytes]) -> None:
        self.store = store
        self.extra = extra

    def has_blob(self, digest: str) -> bool:
        return digest in self.extra or self.store.has_blob(digest)

    def read_blob(self, digest: str) -> bytes:
        return self.extra[digest] if digest in self.extra else self.store.read_blob(digest)


def _write_tar(
    output: Path | BinaryIO,
    files: dict[str, bytes],
    blobs: dict[str, str],
    store: ContentStore,
    extra: dict[str, bytes],
) -> None:
    names = sorted([*files, *blobs, "blobs/", "blobs/sha256/"])
    with (
        _open_output(output) as handle,
        tarfile.open(fileobj=handle, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            info.mode = 0o644
            if name in files:
                info.size = len(files[name])
                tar.addfile(info, io.BytesIO(files[name]))
                continue
            digest = blobs[name]
            if digest in extra:
                info.size = len(extra[digest])
                tar.addfile(info, io.BytesIO(extra[digest]))
                continue
            with store.open_blob(digest) as blob:
                info.size = os.fstat(blob.fileno()).st_size
                tar.addfile(info, blob)


@contextlib.contextmanager
def _open_output(output: Path | BinaryIO) -> Iterator[BinaryIO]:
    """A stream as given, or a temporary file renamed to the path once complete."""
    if not isinstance(output, (str, Path)):
        yield output
        return
    path = Path(output)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
