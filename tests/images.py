"""Small OCI and Docker images built in Python, for tests: deterministic bytes, any platform.

    store = ContentStore(tmp_path / "cache")
    amd64 = add_image(store, platform="linux/amd64", files={"etc/hostname": b"amd64\\n"})
    arm64 = add_image(store, platform="linux/arm64/v8")
    root = add_index(store, [amd64, arm64])        # with an attestation manifest per image

Everything lands in a :class:`ContentStore`, ready to push with ``RegistryClient.push``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kitdsl.oci.media import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Platform,
)
from kitdsl.oci.store import ContentStore

MTIME = 1_492_533_000
"""A fixed timestamp for tar entries, so the same files always make the same layer."""
IN_TOTO = "application/vnd.in-toto+json"


def tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar of ``files`` (sorted, owned by root, fixed mtime)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = MTIME
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def gzip_bytes(data: bytes, *, level: int = 6) -> bytes:
    """``data`` gzip'd without a timestamp or file name in the header."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def random_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` incompressible bytes, the same for the same seed."""
    return random.Random(seed).randbytes(size)


def document(data: Mapping[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no spaces."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def put(store: ContentStore, data: bytes, media_type: str, **extra: Any) -> Descriptor:
    """Store ``data`` and describe it."""
    digest = store.put_blob(data)
    return Descriptor.model_validate(
        {"mediaType": media_type, "digest": digest, "size": len(data), **extra}
    )


@dataclass(frozen=True)
class Image:
    """One single-platform image in a store."""

    manifest: Descriptor
    """With ``platform`` set, ready to go into an index."""
    config: Descriptor
    layers: tuple[Descriptor, ...]
    platform: Platform
    layer_data: tuple[bytes, ...]


def add_image(
    store: ContentStore,
    *,
    platform: str = "linux/amd64",
    layers: Sequence[Mapping[str, bytes] | bytes] | None = None,
    files: Mapping[str, bytes] | None = None,
    docker: bool = False,
    config_platform: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Image:
    """Build an image: each layer a mapping of files (tar'd and gzip'd) or ready bytes.

    ``config_platform`` writes another platform into the configuration than the one the image
    is filed under (to make a lying single-platform image).
    """
    wanted = Platform.parse(platform)
    if layers is None:
        layers = [files if files is not None else {"etc/platform": str(wanted).encode() + b"\n"}]
    layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
    blobs = [item if isinstance(item, bytes) else gzip_bytes(tar_bytes(item)) for item in layers]
    diff_ids = [
        "sha256:" + hashlib.sha256(gzip.decompress(blob) if _gzipped(blob) else blob).hexdigest()
        for blob in blobs
    ]
    layer_descriptors = tuple(put(store, blob, layer_type) for blob in blobs)
    stated = Platform.parse(config_platform) if config_platform else wanted
    config_doc: dict[str, Any] = {
        "architecture": stated.architecture,
        "os": stated.os,
        "config": {"Cmd": ["/bin/sh"], "Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if stated.variant:
        config_doc["variant"] = stated.variant
    config = put(store, document(config_doc), DOCKER_CONFIG if docker else OCI_CONFIG)
    manifest_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layer_descriptors],
    }
    manifest = put(
        store,
        document(manifest_doc),
        manifest_type,
        platform=wanted.model_dump(exclude_none=True, by_alias=True),
    )
    return Image(manifest, config, layer_descriptors, wanted, tuple(blobs))


def add_attestation(store: ContentStore, subject: Descriptor) -> Descriptor:
    """An in-toto attestation manifest for ``subject``, as BuildKit attaches to an index."""
    statement = document({"predicateType": "https://spdx.dev/Document", "subject": []})
    layer = put(store, statement, IN_TOTO, annotations={"in-toto.io/predicate-type": "spdx"})
    config = put(
        store,
        document({"architecture": "unknown", "os": "unknown", "rootfs": {"type": "layers"}}),
        OCI_CONFIG,
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json()],
    }
    return put(
        store,
        document(manifest),
        OCI_MANIFEST,
        platform={"os": "unknown", "architecture": "unknown"},
        annotations={
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": subject.digest,
        },
    )


def add_index(
    store: ContentStore,
    images: Sequence[Image],
    *,
    attestations: bool = True,
    docker: bool = False,
) -> Descriptor:
    """An index of ``images`` (a Docker manifest list with ``docker``, which has no
    attestations), each followed by its attestation manifest."""
    entries = []
    for image in images:
        entries.append(image.manifest.to_json())
        if attestations and not docker:
            entries.append(add_attestation(store, image.manifest).to_json())
    media_type = DOCKER_LIST if docker else OCI_INDEX
    index = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return put(store, document(index), media_type)


def _gzipped(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"
