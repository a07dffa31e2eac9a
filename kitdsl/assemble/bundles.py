"""Where each container's bundle lives, and its ``runtime.json``.

A bundle is ``containers/onboot/000-<name>``, ``containers/onshutdown/000-<name>`` (the
index in its section, three digits) or ``containers/services/<name>``. An image's files are
extracted once, into the first bundle that uses it (by canonical reference, in onboot,
onshutdown, services order): into ``lower/`` for a read-write container, which gets an overlay
at boot, or ``rootfs/`` for a read-only one. Later bundles of the same image point at that
directory instead of holding a copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kitdsl import reference
from kitdsl.assemble.label import parse_label
from kitdsl.assemble.merge import MergedRuntime, Subject, merged_readonly
from kitdsl.assemble.oci_spec import runtime_mount
from kitdsl.dsl import ContainerConfig, Interface, System
from kitdsl.dsl.system import Section
from kitdsl.oci.image_config import ImageConfig


@dataclass(frozen=True)
class BundleLayout:
    """Where one container's bundle and root file system are, relative to the image root."""

    section: Section
    """``onboot``, ``onshutdown`` or ``services``."""
    index: int
    """Position in its section."""
    name: str
    """The container's name."""
    image: str
    """Canonical image reference: what de-duplicates extractions and labels tar entries."""
    path: str
    """The bundle directory, e.g. ``containers/onboot/001-dhcpcd``."""
    readonly: bool
    """Whether the root file system is read-only (bind-mounted rather than overlaid)."""
    root: str
    """The directory holding the image's files: ``<path>/lower`` or ``<path>/rootfs`` when
    this bundle extracts the image, else the directory of the first bundle that did."""

    @property
    def extracts_image(self) -> bool:
        """True when this bundle holds the image's files (the first use of the image)."""
        return self.root.startswith(f"{self.path}/")

    @property
    def location(self) -> str:
        """``onboot[1]``: how LinuxKit names the entry in ``LINUXKIT.location`` tar records."""
        return f"{self.section}[{self.index}]"


def bundle_path(section: Section, index: int, name: str) -> str:
    """``containers/onboot/000-name``; services are not numbered."""
    if section == "services":
        return f"containers/services/{name}"
    return f"containers/{section}/{index:03d}-{name}"


def canonical_image(subject: Subject) -> str:
    """The canonical reference of a container's image (``docker.io/linuxkit/getty:v1``)."""
    try:
        return reference.canonical(subject.image)
    except reference.ReferenceSyntaxError as exc:
        raise subject.error(f"invalid image reference {subject.image!r}: {exc}") from None


def subjects(system: System) -> Iterator[Subject]:
    """Every container of ``system`` in boot order, as a :class:`Subject`."""
    for section, index, container in system.containers():
        yield Subject(section, index, container)


def find_subject(system: System, section: Section, index: int) -> Subject:
    """The container at ``section[index]``; :class:`IndexError` when there is none."""
    entries = getattr(system, section)
    if not 0 <= index < len(entries):
        raise IndexError(f"{section}[{index}]: the system has {len(entries)} {section} entries")
    return Subject(section, index, entries[index])


def bundle_layout(system: System, subject: Subject, label: ContainerConfig | None) -> BundleLayout:
    """The layout of ``subject``'s bundle; ``label`` is its image's parsed label.

    Containers sharing the image share the label, so it also tells whether the first user of
    the image (whose directory holds the files) is read-only.
    """
    image = canonical_image(subject)
    first = next(other for other in subjects(system) if canonical_image(other) == image)
    return _layout(subject, image, merged_readonly(subject.container, label), first, label)


def bundle_layouts(system: System, image_configs: Mapping[str, ImageConfig]) -> list[BundleLayout]:
    """The bundle layout of every container of ``system``, in boot order.

    ``image_configs`` maps each image reference (as written, or canonical) to its
    configuration; its labels decide which containers are read-only.
    """
    configs = {reference.canonical(ref): config for ref, config in image_configs.items()}
    labels: dict[str, ContainerConfig | None] = {}
    firsts: dict[str, Subject] = {}
    layouts = []
    for subject in subjects(system):
        image = canonical_image(subject)
        if image not in configs:
            raise KeyError(f"no image configuration given for {image} ({subject.name})")
        if image not in labels:
            text = configs[image].config.moby_config_label
            labels[image] = parse_label(text, image=image, location=subject.location)
        first = firsts.setdefault(image, subject)
        readonly = merged_readonly(subject.container, labels[image])
        layouts.append(_layout(subject, image, readonly, first, labels[image]))
    return layouts


def _layout(
    subject: Subject,
    image: str,
    readonly: bool,
    first: Subject,
    label: ContainerConfig | None,
) -> BundleLayout:
    path = bundle_path(subject.section, subject.index, subject.name)
    first_path = bundle_path(first.section, first.index, first.name)
    first_readonly = merged_readonly(first.container, label)
    root = f"{first_path}/{'rootfs' if first_readonly else 'lower'}"
    return BundleLayout(subject.section, subject.index, subject.name, image, path, readonly, root)


def runtime_document(layout: BundleLayout, runtime: MergedRuntime) -> dict[str, Any]:
    """The ``runtime.json`` document: the generated rootfs mounts, then the user's mounts.

    Every list is present even when empty, and ``bindNS`` has all seven keys (LinuxKit's
    merged structure holds non-nil pointers only).
    """
    return {
        "cgroups": runtime.cgroups,
        "mounts": [*rootfs_mounts(layout), *(runtime_mount(m) for m in runtime.mounts)],
        "mkdir": runtime.mkdir,
        "interfaces": [_interface(interface) for interface in runtime.interfaces],
        "bindNS": runtime.bind_ns,
        "namespace": runtime.namespace,
    }


def rootfs_mounts(layout: BundleLayout) -> list[dict[str, Any]]:
    """The mounts the init makes before creating the container, to give it its root."""
    bundle = f"/{layout.path}"
    if layout.readonly:
        # A bind even of the bundle's own rootfs/: runc wants the root to be a mount point.
        return [
            {"destination": f"{bundle}/rootfs", "source": f"/{layout.root}", "options": ["bind"]}
        ]
    return [
        {"destination": f"{bundle}/tmp", "type": "tmpfs", "source": "tmpfs"},
        # Private, so that nothing else sees the temporary layers.
        {"destination": f"{bundle}/tmp", "options": ["remount", "private"]},
        {
            "destination": f"{bundle}/rootfs",
            "type": "overlay",
            "source": "overlay",
            "options": [
                f"lowerdir=/{layout.root}",
                f"upperdir={bundle}/tmp/upper",
                f"workdir={bundle}/tmp/work",
            ],
        },
    ]


def _interface(interface: Interface) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in (("name", interface.name), ("add", interface.add), ("peer", interface.peer)):
        if value:
            data[key] = value
    data["createInRoot"] = interface.create_in_root  # no omitempty in LinuxKit's struct
    return data
