"""OCI and Docker image documents: media types, descriptors, manifests, indexes, platforms.

Parsing is tolerant of unknown fields (registries and builders add their own) but strict about
what we rely on: digests are checked, sizes are non-negative integers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kitdsl.oci.digest import is_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
"""The ``Accept`` header for manifest requests: every kind we can read."""

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
ATTESTATION_TYPE_ANNOTATION = "vnd.docker.reference.type"


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Platform(_Document):
    """``os/architecture[/variant]``."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = Field(default=None, alias="os.version")

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64/v8`` → Platform."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} must be 'os/arch[/variant]'")
        return cls(
            os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None
        )

    def matches(self, wanted: Platform) -> bool:
        """True when this platform satisfies ``wanted``; a variant is compared only when both
        name one (``arm64`` matches ``arm64/v8``, as LinuxKit and Docker do)."""
        if (self.os, self.architecture) != (wanted.os, wanted.architecture):
            return False
        return not (self.variant and wanted.variant and self.variant != wanted.variant)


class Descriptor(_Document):
    """A pointer to content: media type, digest, size."""

    media_type: str = Field(alias="mediaType")
    digest: str
    size: int = Field(ge=0)
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    platform: Platform | None = None

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not is_digest(value):  # a ValueError, so pydantic reports it with the field
            raise ValueError(f"not a sha256 digest: {value!r}")
        return value

    def to_json(self) -> dict[str, Any]:
        """The descriptor as it appears in JSON documents."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @property
    def is_attestation(self) -> bool:
        """An attestation manifest in an index (``unknown/unknown``), not an image to run."""
        annotations = self.annotations or {}
        if annotations.get(ATTESTATION_TYPE_ANNOTATION) == "attestation-manifest":
            return True
        return self.platform is not None and self.platform.os == "unknown"


class Manifest(_Document):
    """An image manifest: a config and layers."""

    schema_version: int = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    config: Descriptor
    layers: list[Descriptor]
    annotations: dict[str, str] | None = None


class Index(_Document):
    """An image index (or Docker manifest list): one manifest per platform."""

    schema_version: int = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    manifests: list[Descriptor]
    annotations: dict[str, str] | None = None

    def select(self, wanted: Platform) -> Descriptor | None:
        """The first manifest for ``wanted``, attestations skipped."""
        for descriptor in self.manifests:
            if descriptor.is_attestation or descriptor.platform is None:
                continue
            if descriptor.platform.matches(wanted):
                return descriptor
        return None


def document_kind(media_type: str | None, data: dict[str, Any]) -> str:
    """``"index"`` or ``"manifest"`` from the media type, or from the shape when it is absent."""
    if media_type in INDEX_TYPES:
        return "index"
    if media_type in MANIFEST_TYPES:
        return "manifest"
    if "manifests" in data:
        return "index"
    if "config" in data and "layers" in data:
        return "manifest"
    raise ValueError(f"unsupported manifest media type {media_type!r}")
