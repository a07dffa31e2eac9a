"""Importing images from a tar: an OCI image layout, or a docker archive (``docker save``).

Names come from ``index.json`` (``io.containerd.image.name``, as ``docker save`` and BuildKit
write it, else ``org.opencontainers.image.ref.name``) or from a docker archive's
``manifest.json`` ``RepoTags``. A layout whose ``index.json`` names nothing falls back to its
``manifest.json`` when it has one (``docker save`` of an image saved by ID). Every blob is
verified; :mod:`kitdsl.oci.archive_members` says which archives are refused unread.
"""

from __future__ import annotations

import gzip
import json
import lzma
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from kitdsl.errors import CacheError
from kitdsl.oci.archive import CONTAINERD_NAME_ANNOTATION
from kitdsl.oci.archive_docker import import_docker
from kitdsl.oci.archive_members import CHUNK, CheckedArchive
from kitdsl.oci.digest import DigestError, hex_of
from kitdsl.oci.media import INDEX_TYPES, REF_NAME_ANNOTATION, Descriptor, Index
from kitdsl.oci.store import ContentStore
from kitdsl.oci.walk import walk


@dataclass(frozen=True)
class Imported:
    """An image ``import`` registered."""

    name: str
    digest: str
    media_type: str
    platforms: tuple[str, ...]


def import_archive(
    store: ContentStore, path: Path | str, *, name: str | None = None, record: bool = True
) -> list[Imported]:
    """Verify every blob of the archive at ``path``, copy what the cache lacks, and register
    the names it holds. ``name`` registers an archive of a single, unnamed image. With
    ``record=False`` the content is stored but no name is recorded (an image from a local
    engine is not what its tag means on a registry)."""
    path = Path(path)
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the ``with`` below)
    except FileNotFoundError:
        raise CacheError(f"{path} does not exist") from None
    except (tarfile.TarError, OSError) as error:
        raise CacheError(f"{path} is not a tar archive: {error}") from None
    try:
        with tar, store.lease():
            archive = CheckedArchive(path, tar)
            images = _oci_images(archive, name) if "index.json" in archive.members else None
            if not images and "manifest.json" in archive.members:
                return [
                    Imported(key, d.digest, d.media_type, (str(d.platform),) if d.platform else ())
                    for key, d in import_docker(store, archive, name, record=record)
                ]
            if images is None:
                raise archive.error("is neither an OCI image layout nor a docker archive")
            if not images:
                raise archive.error(
                    "names no image",
                    hint="give the archive's image a name when importing it",
                )
            return _import_oci(store, archive, images, record=record)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as error:
        raise CacheError(f"archive {path} is damaged: {error}") from None


def _oci_images(archive: CheckedArchive, name: str | None) -> list[tuple[str, Descriptor]]:
    if "oci-layout" in archive.members:
        try:
            layout = json.loads(archive.read("oci-layout"))
            if not isinstance(layout.get("imageLayoutVersion"), str):
                raise ValueError("imageLayoutVersion is missing")
        except (ValueError, AttributeError) as error:
            raise archive.error(f"has an invalid oci-layout file: {error}") from None
    try:
        index = Index.model_validate_json(archive.read("index.json"))
    except (ValidationError, DigestError) as error:
        raise archive.error(f"has an invalid index.json: {error}") from None
    if name is not None:
        if len(index.manifests) != 1:
            raise archive.error(f"holds {len(index.manifests)} images; a name fits one")
        return [(archive.key(name), index.manifests[0])]
    images = []
    for descriptor in index.manifests:
        annotations = descriptor.annotations or {}
        text = annotations.get(CONTAINERD_NAME_ANNOTATION) or annotations.get(REF_NAME_ANNOTATION)
        if text:
            images.append((archive.key(text), descriptor))
    return images


def _import_oci(
    store: ContentStore,
    archive: CheckedArchive,
    images: list[tuple[str, Descriptor]],
    *,
    record: bool = True,
) -> list[Imported]:
    planned = []
    needed: dict[str, int] = {}
    for key, descriptor in images:
        result = walk(archive, descriptor)
        recorded = None
        if descriptor.media_type in INDEX_TYPES:
            # An archive may hold some platforms of an index; record those it holds.
            recorded = result.platforms
            result = walk(archive, descriptor, recorded) if recorded else result
        if not result.complete or (recorded is not None and not recorded):
            raise archive.error(
                f"does not hold everything {key} needs",
                details=tuple(str(m) for m in result.missing[:10]),
            )
        needed.update(result.reached)
        planned.append((key, descriptor, recorded, result.platforms))
    _copy_blobs(store, archive, needed)
    imported = []
    for key, descriptor, recorded, platforms in planned:
        annotations = {
            k: v
            for k, v in (descriptor.annotations or {}).items()
            if k not in (REF_NAME_ANNOTATION, CONTAINERD_NAME_ANNOTATION)
        }
        clean = descriptor.model_copy(update={"annotations": annotations or None})
        if record:
            store.set_ref(key, clean, platforms=recorded)
        shown = tuple(str(p) for p in platforms)
        imported.append(Imported(key, descriptor.digest, descriptor.media_type, shown))
    return imported


def _copy_blobs(store: ContentStore, archive: CheckedArchive, needed: dict[str, int]) -> None:
    """Stream the blobs the cache lacks, in archive order (cheap on compressed archives)."""

    def position(digest: str) -> int:
        return archive.members[f"blobs/sha256/{hex_of(digest)}"].offset_data

    for digest in sorted(needed, key=position):
        if store.has_blob(digest):
            continue
        try:
            with (
                store.write_blob(digest=digest, size=needed[digest], what=f"blob {digest}") as w,
                archive.open(f"blobs/sha256/{hex_of(digest)}") as handle,
            ):
                while chunk := handle.read(CHUNK):
                    w.write(chunk)
        except DigestError as error:
            raise archive.error(f"is damaged: {error.message}") from None
