"""Importing a docker archive (``docker save``, ``skopeo copy ... docker-archive:``).

Its ``manifest.json`` lists, per image, a config file, the tags, and layer files; those are
stored as blobs with an OCI manifest written for them. Layer files are named by content only
in the newer layout (``blobs/sha256/<hex>``), so each layer is checked against its config's
``diff_id`` (the digest of the uncompressed tar) as it streams in.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib

from pydantic import BaseModel, ConfigDict, Field

from kitdsl.oci.archive_members import CHUNK, CheckedArchive
from kitdsl.oci.digest import DigestError, digest_of
from kitdsl.oci.media import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Platform,
)
from kitdsl.oci.store import ContentStore

_BLOB_NAME = re.compile(r"blobs/sha256/([0-9a-f]{64})")


class _DockerItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    config: str = Field(alias="Config")
    repo_tags: list[str] | None = Field(default=None, alias="RepoTags")
    layers: list[str] = Field(alias="Layers")


def import_docker(
    store: ContentStore, archive: CheckedArchive, name: str | None, *, record: bool = True
) -> list[tuple[str, Descriptor]]:
    """Store the images of the archive's ``manifest.json`` and record their names; returns
    the names and root descriptors recorded (a descriptor names its image's platform)."""
    try:
        items = [_DockerItem.model_validate(i) for i in json.loads(archive.read("manifest.json"))]
    except (ValueError, TypeError) as error:
        raise archive.error(f"has an invalid manifest.json: {error}") from None
    if name is not None and len(items) != 1:
        raise archive.error(f"holds {len(items)} images; a name fits one")
    named = [
        (item, [archive.key(t) for t in ([name] if name else item.repo_tags or [])])
        for item in items
    ]
    if not any(keys for _, keys in named):
        raise archive.error("names no image", hint="give the archive's image a name")
    recorded = []
    for item, keys in named:
        if not keys:
            continue
        descriptor = _docker_image(store, archive, item)
        for key in keys:
            if record:
                store.set_ref(key, descriptor)
            recorded.append((key, descriptor))
    return recorded


def _docker_image(store: ContentStore, archive: CheckedArchive, item: _DockerItem) -> Descriptor:
    """Store the config and layers of one ``manifest.json`` entry and an OCI manifest naming
    them; the manifest's descriptor, with the config's platform."""
    config_name = archive.member_name(item.config)
    config = archive.read(config_name)
    config_digest = _named_digest(archive, config_name) or digest_of(config)
    try:
        parsed = json.loads(config)
        diff_ids = parsed["rootfs"]["diff_ids"]
        platform = Platform(
            os=parsed["os"], architecture=parsed["architecture"], variant=parsed.get("variant")
        )
    except (ValueError, KeyError, TypeError) as error:
        raise archive.error(f"has an invalid image config {config_name}: {error}") from None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(item.layers):
        raise archive.error(f"config {config_name} and manifest.json disagree on the layers")
    try:
        store.put_blob(config, digest=config_digest)
    except DigestError as error:
        raise archive.error(f"is damaged: {error.message}") from None
    layers = [
        _docker_layer(store, archive, archive.member_name(layer), str(diff_id))
        for layer, diff_id in zip(item.layers, diff_ids, strict=True)
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [layer.to_json() for layer in layers],
    }
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    digest = store.put_blob(data)
    return Descriptor.model_validate(
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data), "platform": platform}
    )


def _named_digest(archive: CheckedArchive, name: str) -> str | None:
    """The digest a ``blobs/sha256/<hex>`` path promises (then checked on the way in)."""
    match = _BLOB_NAME.fullmatch(name)
    return f"sha256:{match.group(1)}" if match else None


def _docker_layer(
    store: ContentStore, archive: CheckedArchive, name: str, diff_id: str
) -> Descriptor:
    """Store one layer file, checking it against the config's ``diff_id`` (the digest of the
    uncompressed tar) as it streams by."""
    if name not in archive.members:
        raise archive.error(f"has no layer {name}, which manifest.json lists")
    size = archive.members[name].size
    expected = _named_digest(archive, name)
    with archive.open(name) as handle:
        chunk = handle.read(CHUNK)
        media_type = _sniff(chunk)
        if media_type == OCI_LAYER_ZSTD and expected is None:
            raise archive.error(f"has a zstd layer {name} that cannot be checked")
        uncompressed = _DiffId(gzipped=media_type == OCI_LAYER_GZIP)
        try:
            with store.write_blob(digest=expected, size=size, what=f"layer {name}") as writer:
                while chunk:
                    writer.write(chunk)
                    uncompressed.update(chunk)
                    chunk = handle.read(CHUNK)
                actual = uncompressed.finish()
                if media_type != OCI_LAYER_ZSTD and actual != diff_id:
                    raise archive.error(
                        f"layer {name} does not match its config: {actual}, not {diff_id}"
                    )
        except DigestError as error:
            raise archive.error(f"is damaged: {error.message}") from None
    return Descriptor.model_validate(
        {"mediaType": media_type, "digest": writer.verifier.digest, "size": size}
    )


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return OCI_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return OCI_LAYER_ZSTD
    return OCI_LAYER


class _DiffId:
    """The digest of a layer's uncompressed content, computed as compressed bytes stream by.

    Decompression output is bounded per step, so a gzip bomb costs time, not memory.
    """

    def __init__(self, *, gzipped: bool) -> None:
        self.hash = hashlib.sha256()
        self.inflate = zlib.decompressobj(31) if gzipped else None
        self.between_members = True

    def update(self, chunk: bytes) -> None:
        if self.inflate is None:
            self.hash.update(chunk)
            return
        pending = chunk
        while pending:
            if self.between_members:
                # Several gzip members may follow one another, and some tools pad the last
                # with zeros; a gzip header never starts with one.
                pending = pending.lstrip(b"\0")
                if not pending:
                    return
                self.between_members = False
            self.hash.update(self.inflate.decompress(pending, CHUNK))
            if self.inflate.eof:
                pending = self.inflate.unused_data
                self.inflate = zlib.decompressobj(31)
                self.between_members = True
            else:
                pending = self.inflate.unconsumed_tail

    def finish(self) -> str:
        if self.inflate is not None:
            self.hash.update(self.inflate.flush())
        return f"sha256:{self.hash.hexdigest()}"
