"""Small OCI images built in Python for the cache tests: gzip'd tar layers, a config, a
manifest, and an index with two platforms."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitdsl.oci.digest import digest_of, hex_of
from kitdsl.oci.media import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    REF_NAME_ANNOTATION,
    Descriptor,
    Platform,
)
from kitdsl.oci.store import ContentStore
from tests.images import document, tar_bytes
from tests.images import gzip_bytes as _gzip_bytes

canonical_json = document


def gzip_bytes(data: bytes) -> bytes:
    """Fast, deterministic gzip (level 1 keeps the cache tests quick)."""
    return _gzip_bytes(data, level=1)


@dataclass
class Built:
    """A root descriptor and every blob it reaches."""

    descriptor: Descriptor
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    def put(self, store: ContentStore) -> Built:
        for digest, data in sorted(self.blobs.items()):
            store.put_blob(data, digest=digest)
        return self


def descriptor(media_type: str, data: bytes, **extra: Any) -> Descriptor:
    return Descriptor.model_validate(
        {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}
    )


def make_image(
    arch: str = "amd64",
    files: dict[str, bytes] | None = None,
    *,
    variant: str | None = None,
    extra_layer: bytes | None = None,
) -> Built:
    """A one- or two-layer image for ``linux/<arch>``; the manifest descriptor has a platform."""
    contents = files if files is not None else {"etc/hello": f"hello from {arch}\n".encode()}
    raw_layers = [tar_bytes(contents)]
    if extra_layer is not None:
        raw_layers.append(tar_bytes({"big": extra_layer}))
    layers = [gzip_bytes(raw) for raw in raw_layers]
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(raw) for raw in raw_layers]},
    }
    if variant:
        config["variant"] = variant
    config_data = canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config_data).to_json(),
        "layers": [descriptor(OCI_LAYER_GZIP, layer).to_json() for layer in layers],
    }
    manifest_data = canonical_json(manifest)
    platform = Platform(os="linux", architecture=arch, variant=variant)
    built = Built(descriptor(OCI_MANIFEST, manifest_data, platform=platform.model_dump()))
    built.blobs = {digest_of(b): b for b in [config_data, *layers, manifest_data]}
    return built


def make_index(*images: Built) -> Built:
    """An index of ``images`` (each keeps its platform)."""
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [image.descriptor.to_json() for image in images],
    }
    data = canonical_json(index)
    built = Built(descriptor(OCI_INDEX, data))
    for image in images:
        built.blobs.update(image.blobs)
    built.blobs[built.digest] = data
    return built


def two_platform_index() -> Built:
    return make_index(make_image("amd64"), make_image("arm64", variant="v8"))


def without_platform(built: Built) -> Built:
    """The same image with a bare manifest descriptor (as a registry returns a root)."""
    bare = built.descriptor.model_copy(update={"platform": None})
    return Built(bare, dict(built.blobs))


def write_layout(folder: Path, entries: dict[str, Built]) -> Path:
    """An OCI image layout folder naming each entry with ``ref.name`` (for skopeo, umoci)."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    manifests = []
    for name, built in sorted(entries.items()):
        for digest, data in built.blobs.items():
            (blobs / hex_of(digest)).write_bytes(data)
        annotated = built.descriptor.model_copy(update={"annotations": {REF_NAME_ANNOTATION: name}})
        manifests.append(annotated.to_json())
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    (folder / "index.json").write_text(json.dumps(index))
    return folder


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
