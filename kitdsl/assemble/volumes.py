"""Volumes in the root file system: ``containers/volumes/<name>/{lower,tmp,merged}``.

What goes under ``lower/``:

* a blank volume: nothing (the folder only);
* ``format="filesystem"`` (the default): the image's files, changed as for init images
  (``etc/resolv.conf`` a link to ``/run/resolvconf/resolv.conf``...);
* ``format="oci"``: an OCI image layout of the image (``oci-layout``, ``index.json``,
  ``blobs/sha256/...``) holding the platforms the volume lists, each platform's manifest,
  configuration and layers exactly as the registry served them. ``index.json`` names one
  image index, annotated with the image's reference (``org.opencontainers.image.ref.name``,
  canonical with its tag), which lists the platforms' manifests; so ``skopeo copy
  oci:lower:<reference>`` and other OCI tools read it. A volume that lists no platforms holds
  the build's platform only (LinuxKit puts every platform of the image there).

Then ``merged/``, where the init mounts the volume, and for a read-write volume ``tmp/``,
which the init's presence test takes as "read-write" (it mounts an overlay with its upper
layer there). A read-only volume has no ``tmp/``, so the init bind-mounts ``lower/``
read-only; LinuxKit writes ``tmp/`` for every volume, which makes read-only volumes writable
at boot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from functools import partial

from kitdsl.assemble.layer_filter import RESOLVCONF_LINK
from kitdsl.assemble.streams import (
    Context,
    directories,
    directory,
    file,
    image_segment,
    made,
    pax,
    source_of,
)
from kitdsl.dsl import System, Volume
from kitdsl.errors import ImageError
from kitdsl.log import warn
from kitdsl.oci.media import OCI_INDEX, REF_NAME_ANNOTATION, Descriptor, Platform
from kitdsl.oci.store import LAYOUT_VERSION, REPAIR_HINT
from kitdsl.outputs.entry import Entry
from kitdsl.outputs.segments import Segment, code_digest, key_of
from kitdsl.plan.images import ResolvedImage
from kitdsl.reference import image_key

__all__ = ["EMPTY_SOURCE", "VOLUMES_SOURCE", "PlatformImage", "check_volumes", "volume_segments"]

VOLUMES_SOURCE = "linuxkit.volumes"
"""``LINUXKIT.source`` of a volume's ``tmp/`` and ``merged/``."""
EMPTY_SOURCE = "empty"
"""``LINUXKIT.source`` of a blank volume's folders."""
CHUNK = 1 << 20

PlatformImage = tuple[Platform, ResolvedImage]
"""A platform asked for, and the image resolved for it."""


def check_volumes(system: System, platform: Platform) -> None:
    """Warn about what the build does differently from what a volume asks for."""
    for volume in system.volumes:
        if volume.format == "oci" and volume.image is not None and not volume.platforms:
            warn(
                f"volume {volume.name!r}: an 'oci' volume without platforms holds the "
                f"build's platform only ({platform}), not every platform of the image",
                location=volume.field_origin("format") or volume.origin,
            )


def volume_segments(
    context: Context,
    system: System,
    images: Mapping[str, Sequence[PlatformImage]],
    seen: set[str],
) -> Iterator[Segment]:
    """Every volume's entries, in order; ``images`` gives each volume's images by name
    (several for an ``oci`` volume of several platforms); ``seen`` is the set of folders made
    so far."""
    for index, volume in enumerate(system.volumes):
        location = f"volume[{index}]"
        path = f"containers/volumes/{volume.name}"
        found = list(images.get(volume.name, ())) if volume.image is not None else []
        source = source_of(volume.image) if found and volume.image is not None else EMPTY_SOURCE
        lower = pax(source, location)
        yield made(location, partial(directories, f"{path}/lower", lower, seen, context.mtime))
        if found and volume.format == "oci":
            yield _oci_layout(context, volume, found, f"{path}/lower/", lower)
        elif found:
            yield image_segment(
                context,
                found[0][1],
                f"{path}/lower/",
                location,
                resolv_conf=RESOLVCONF_LINK,
                source=source,
            )
        mounts = ("merged",) if volume.readonly else ("tmp", "merged")
        records = pax(VOLUMES_SOURCE, location)
        folders = [directory(f"{path}/{name}", records, context.mtime) for name in mounts]
        yield made(location, partial(iter, folders))


def _oci_layout(
    context: Context,
    volume: Volume,
    images: Sequence[PlatformImage],
    prefix: str,
    records: dict[str, str],
) -> Segment:
    """The OCI image layout of ``images`` under ``prefix``."""
    name = image_key(images[0][1].reference)
    manifests = [
        {
            "mediaType": image.manifest.media_type,
            "digest": image.manifest.digest,
            "size": image.manifest.size,
            "platform": _platform(image.manifest, platform).model_dump(
                by_alias=True, exclude_none=True
            ),
        }
        for platform, image in images
    ]
    index = _json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
    root = {
        "mediaType": OCI_INDEX,
        "digest": "sha256:" + hashlib.sha256(index).hexdigest(),
        "size": len(index),
        "annotations": {REF_NAME_ANNOTATION: name},
    }
    top = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [root]},
        indent=2,
        sort_keys=True,
    )
    blobs: dict[str, int | bytes] = {str(root["digest"]): index}
    for _, image in images:
        for descriptor in (image.manifest, *image.blobs):
            blobs.setdefault(descriptor.digest, descriptor.size)

    @contextlib.contextmanager
    def produce() -> Iterator[Iterator[Entry]]:
        yield _layout_entries(context, volume, prefix, records, blobs, (top + "\n").encode())

    key = key_of(
        kind="oci-volume",
        code=code_digest(),
        # The index lists every manifest (digest, size, type, platform); the manifests name
        # every other blob.
        index=root["digest"],
        name=name,
        prefix=prefix,
        pax=records,
        mtime=context.mtime,
    )
    return Segment(produce, key, f"{records['LINUXKIT.location']}: {name} (oci)")


def _layout_entries(
    context: Context,
    volume: Volume,
    prefix: str,
    records: dict[str, str],
    blobs: Mapping[str, int | bytes],
    top: bytes,
) -> Iterator[Entry]:
    mtime = context.mtime
    yield directory(f"{prefix}blobs", records, mtime)
    yield directory(f"{prefix}blobs/sha256", records, mtime)
    for digest in sorted(blobs):
        name = f"{prefix}blobs/sha256/{digest.removeprefix('sha256:')}"
        blob = blobs[digest]
        if isinstance(blob, bytes):
            yield file(name, blob, records, mtime)
            continue
        path = context.store.blob_path(digest)
        try:
            handle = path.open("rb")
            size = path.stat().st_size
        except OSError as error:
            raise _missing(volume, digest, error.strerror or str(error)) from error
        with handle:
            if size != blob:
                raise _missing(volume, digest, f"it has {size} bytes, not {blob}")
            entry = Entry.file(name, b"", mode=0o644, mtime=mtime)
            entry.info.size = size
            entry.info.pax_headers = dict(records)
            yield Entry(entry.info, handle)
    yield file(f"{prefix}index.json", top, records, mtime)
    yield file(f"{prefix}oci-layout", LAYOUT_VERSION.encode(), records, mtime)


def _missing(volume: Volume, digest: str, problem: str) -> ImageError:
    return ImageError(
        f"volume {volume.name!r}: blob {digest} of its image is unusable in the cache: {problem}",
        location=volume.origin,
        hint=REPAIR_HINT,
    )


def _platform(manifest: Descriptor, asked: Platform) -> Platform:
    """The platform the registry's index gave the manifest, else the one asked for."""
    return manifest.platform if manifest.platform is not None else asked


def _json(document: object) -> bytes:
    """Compact, key-sorted JSON: the same document always has the same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
