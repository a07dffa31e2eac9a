"""A container's runtime configuration: its bundle's ``config.json`` and ``runtime.json``.

The assembler calls :func:`bundle_config` once per container. It is a pure function of the
system and the image's configuration, and gives the same bytes LinuxKit writes, apart from the
bugs listed in ``docs/linuxkit-compat.md``::

    for section, index, container in system.containers():
        bundle = bundle_config(system, section, index, image_configs[container.image])
        write(bundle.layout.path + "/config.json", bundle.config_json)
        write(bundle.layout.path + "/runtime.json", bundle.runtime_json)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kitdsl.assemble.bundles import (
    BundleLayout,
    bundle_layout,
    bundle_layouts,
    bundle_path,
    canonical_image,
    find_subject,
    runtime_document,
)
from kitdsl.assemble.gojson import marshal_indent
from kitdsl.assemble.label import parse_label
from kitdsl.assemble.merge import MergedConfig, merge_config
from kitdsl.assemble.oci_spec import OCI_VERSION, oci_spec
from kitdsl.dsl import System
from kitdsl.dsl.system import Section
from kitdsl.oci.image_config import ImageConfig

__all__ = [
    "OCI_VERSION",
    "BundleConfig",
    "BundleLayout",
    "MergedConfig",
    "bundle_config",
    "bundle_layouts",
    "bundle_path",
]


@dataclass(frozen=True)
class BundleConfig:
    """Everything the assembler writes for one container besides the image's files."""

    layout: BundleLayout
    """Where the bundle goes and where its root comes from."""
    merged: MergedConfig
    """The container's configuration after the label merge (for ``inspect`` and tests)."""
    config: dict[str, Any]
    """The OCI runtime specification, as JSON-ready data."""
    runtime: dict[str, Any]
    """LinuxKit's ``runtime.json`` (what the init does around the container), as data."""
    config_json: bytes
    """``config.json``, byte-compatible with LinuxKit."""
    runtime_json: bytes
    """``runtime.json``, byte-compatible with LinuxKit."""
    warnings: tuple[str, ...] = ()
    """Things worth telling the user that do not stop the build."""


def bundle_config(
    system: System, section: Section, index: int, image_config: ImageConfig
) -> BundleConfig:
    """The bundle of the container at ``system.<section>[index]``, run from an image whose
    configuration is ``image_config`` (for the platform being built).

    Raises :class:`~kitdsl.errors.ImageConfigError` for a bad ``org.mobyproject.config`` label and
    :class:`~kitdsl.errors.ConfigError` for a configuration that cannot be turned into a
    runtime specification (an unknown id name, a mount without type...). Both point at the
    container's entry.
    """
    subject = find_subject(system, section, index)
    label = parse_label(
        image_config.config.moby_config_label,
        image=canonical_image(subject),
        location=subject.location,
    )
    layout = bundle_layout(system, subject, label)
    volumes = [volume.name for volume in system.volumes]
    merged = merge_config(subject, label, image_config.config, volumes)
    config = oci_spec(subject, merged, system.container_ids())
    runtime = runtime_document(layout, merged.runtime)
    return BundleConfig(
        layout=layout,
        merged=merged,
        config=config,
        runtime=runtime,
        config_json=marshal_indent(config),
        runtime_json=marshal_indent(runtime),
        warnings=merged.warnings,
    )
