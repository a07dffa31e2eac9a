"""A whole system, its cross-component checks, and composition for teams sharing modules.

Composition never mutates: every method returns a new :class:`System`, so a base module can be
imported by several products without them affecting one another.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from kitdsl.dsl.base import Model, current_location, defined_at
from kitdsl.dsl.models import (
    Container,
    ContainerConfig,
    File,
    Kernel,
    Onboot,
    Onshutdown,
    Service,
    Volume,
)
from kitdsl.dsl.types import Image
from kitdsl.errors import ConfigError, Location

Section = Literal["onboot", "onshutdown", "services"]
SECTIONS: tuple[Section, ...] = ("onboot", "onshutdown", "services")
FIRST_CONTAINER_ID = 100


class System(Model):
    """A bootable system: a kernel, init images, containers, files and volumes."""

    kernel: Kernel | None = None
    """The kernel; needed for bootable outputs."""
    init: Annotated[Sequence[Image], AfterValidator(list)] = Field(default_factory=list)
    """Images unpacked into the root file system: the init, runc, containerd..."""
    onboot: list[Onboot] = Field(default_factory=list)
    """Containers run once at boot, in order."""
    onshutdown: list[Onshutdown] = Field(default_factory=list)
    """Containers run at clean shutdown, in order."""
    services: list[Service] = Field(default_factory=list)
    """Containers kept running for the life of the machine."""
    files: list[File] = Field(default_factory=list)
    """Files, directories and symlinks added to the root file system."""
    volumes: list[Volume] = Field(default_factory=list)
    """Volumes containers can bind."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_unique_names(self)
        _check_volumes(self)
        _check_ids(self)
        return self

    # --- reading -----------------------------------------------------------------------------

    def containers(self) -> Iterator[tuple[Section, int, Container]]:
        """Every container with its section and index, in boot order."""
        for section in SECTIONS:
            for index, container in enumerate(getattr(self, section)):
                yield section, index, container

    def __getitem__(self, name: str) -> Container:
        """The container called ``name``, in whichever section it is."""
        for _, _, container in self.containers():
            if container.name == name:
                return container
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(container.name == name for _, _, container in self.containers())

    def container_ids(self) -> dict[str, int]:
        """The uid/gid LinuxKit allocates to each container: 100, 101, ... in boot order."""
        return {
            container.name: FIRST_CONTAINER_ID + number
            for number, (_, _, container) in enumerate(self.containers())
        }

    def resolve_id(self, ref: int | str) -> int:
        """A uid/gid field's number: ints as they are, ``""``/``"root"`` 0, names by lookup."""
        if isinstance(ref, int):
            return ref
        if ref in ("", "root"):
            return 0
        return self.container_ids()[ref]

    # --- composition -------------------------------------------------------------------------

    def extend(
        self,
        *,
        kernel: Kernel | None = None,
        init: Iterable[Image] = (),
        onboot: Iterable[Onboot] = (),
        onshutdown: Iterable[Onshutdown] = (),
        services: Iterable[Service] = (),
        files: Iterable[File] = (),
        volumes: Iterable[Volume] = (),
    ) -> System:
        """A new system with these components appended (and ``kernel`` replaced if given)."""
        changes: dict[str, Any] = {}
        if kernel is not None:
            changes["kernel"] = kernel
        for key, extra in (
            ("init", init),
            ("onboot", onboot),
            ("onshutdown", onshutdown),
            ("services", services),
            ("files", files),
            ("volumes", volumes),
        ):
            added = list(extra)
            if added:
                changes[key] = [*getattr(self, key), *added]
        with defined_at(current_location()):
            return self.replace(**changes)

    def override(self, name: str, /, **changes: Any) -> System:
        """A new system where one component has ``changes`` applied, its other fields kept.

        ``name`` is a container's name, a volume's name or a file's path.
        ``base.override("getty", env=["INSECURE=true"])`` changes only getty's environment;
        a nested object is replaced whole, so change one of its fields with ``replace``:
        ``base.override("wg0", runtime=base["wg0"].runtime.replace(mkdir=["/run/wg"]))``.
        """
        where = current_location()
        key, indexes = self._locate(name, where)
        if len(indexes) > 1:
            raise ConfigError(
                f"{len(indexes)} files have the path {name!r}: override cannot tell which",
                location=where,
                hint="remove() them and extend() with the one you want",
            )
        entries = list(getattr(self, key))
        with defined_at(where):
            entries[indexes[0]] = entries[indexes[0]].replace(**changes)
            return self.replace(**{key: entries})

    def remove(self, *names: str) -> System:
        """A new system without the named containers, volumes or files (by path)."""
        where = current_location()
        changes: dict[str, list[Any]] = {}
        for name in names:
            key, indexes = self._locate(name, where, current=changes)
            entries = changes.get(key, list(getattr(self, key)))
            changes[key] = [entry for i, entry in enumerate(entries) if i not in indexes]
        with defined_at(where):
            return self.replace(**changes)

    def _locate(
        self, name: str, where: Location | None, current: dict[str, list[Any]] | None = None
    ) -> tuple[str, list[int]]:
        """The list a component called ``name`` is in, and its index (several for files)."""
        current = current or {}

        def entries(key: str) -> list[Any]:
            return current.get(key, list(getattr(self, key)))

        found: list[tuple[str, list[int]]] = []
        for section in SECTIONS:
            hits = [i for i, c in enumerate(entries(section)) if c.name == name]
            if hits:
                found.append((section, hits))
        volume_hits = [i for i, v in enumerate(entries("volumes")) if v.name == name]
        if volume_hits:
            found.append(("volumes", volume_hits))
        file_hits = [
            i for i, f in enumerate(entries("files")) if f.path.strip("/") == name.strip("/")
        ]
        if file_hits:
            found.append(("files", file_hits))
        if len(found) == 1:
            return found[0]
        if found:
            kinds = " and ".join(key for key, _ in found)
            raise ConfigError(
                f"{name!r} names components in {kinds}: cannot tell which is meant",
                location=where,
                hint="rename one of them",
            )
        known = [
            f"containers: {', '.join(c.name for s in SECTIONS for c in entries(s)) or 'none'}",
            f"volumes: {', '.join(v.name for v in entries('volumes')) or 'none'}",
            f"files: {', '.join(f.path for f in entries('files')) or 'none'}",
        ]
        raise ConfigError(
            f"nothing named {name!r} in this system",
            location=where,
            hint="; ".join(known),
        )


def merge(*systems: System) -> System:
    """Combine systems as LinuxKit combines several YAML files.

    Lists are appended in order; the kernel's ``image``, ``cmdline`` and ``binary`` are taken
    from the last system that sets them non-empty, ``tar`` and ``ucode`` from the last that sets
    them at all. Duplicate names are an error, as always.
    """
    if not systems:
        raise ValueError("merge() needs at least one system")
    where = current_location()
    kernel: Kernel | None = None
    lists: dict[str, list[Any]] = {
        key: [] for key in ("init", "onboot", "onshutdown", "services", "files", "volumes")
    }
    for system in systems:
        kernel = _merge_kernel(kernel, system.kernel)
        for key, items in lists.items():
            items.extend(getattr(system, key))
    with defined_at(where):
        return System(kernel=kernel, **lists)


def _merge_kernel(earlier: Kernel | None, later: Kernel | None) -> Kernel | None:
    if later is None or earlier is None:
        return later or earlier
    changes: dict[str, Any] = {}
    for key in ("image", "cmdline", "binary"):
        if key in later.model_fields_set and getattr(later, key):
            changes[key] = getattr(later, key)
    for key in ("tar", "ucode"):
        if key in later.model_fields_set:
            changes[key] = getattr(later, key)
    with defined_at(later.origin):
        return earlier.replace(**changes) if changes else earlier


# --- whole-system checks ----------------------------------------------------------------------


def _check_unique_names(system: System) -> None:
    seen: dict[str, tuple[str, Container]] = {}
    for section, _, container in system.containers():
        if container.name in seen:
            first_section, first = seen[container.name]
            raise ConfigError(
                f"duplicate container name {container.name!r} (in {section})",
                location=container.origin,
                details=(f"first defined in {first_section} at {first.origin or 'unknown'}",),
                hint="give one of them another name, or use System.override()/remove() to "
                "change an inherited container",
            )
        seen[container.name] = (section, container)
    volumes: dict[str, Volume] = {}
    for volume in system.volumes:
        if volume.name in volumes:
            raise ConfigError(
                f"duplicate volume name {volume.name!r}",
                location=volume.origin,
                details=(f"first defined at {volumes[volume.name].origin or 'unknown'}",),
            )
        volumes[volume.name] = volume


@dataclass(frozen=True)
class VolumeReference:
    """A bind or bind mount of a container whose source names a volume."""

    volume: str
    text: str
    """The bind as written (``data:/var/data:ro``), or a description of the mount."""
    options: tuple[str, ...]
    field: str
    """The container field it is in: ``binds``, ``binds_add`` or ``mounts``."""


def bind_volume(bind: str) -> str | None:
    """The volume a ``source:destination[:options]`` bind names, if its source is not a path."""
    source = bind.partition(":")[0]
    return None if source.startswith("/") else source


def volume_references(container: ContainerConfig) -> Iterator[VolumeReference]:
    """Each bind, or ``type: bind`` mount, whose source does not start with ``/``: LinuxKit
    reads such a source as the name of a volume."""
    for field in ("binds", "binds_add"):
        for bind in getattr(container, field) or []:
            source = bind_volume(bind)
            if source is not None:
                options = bind.split(":", 2)[2] if bind.count(":") >= 2 else ""
                yield VolumeReference(
                    source, bind, tuple(options.split(",") if options else ()), field
                )
    for mount in container.mounts or []:
        if mount.type == "bind" and mount.source and not mount.source.startswith("/"):
            text = f"mount of {mount.source!r} on {mount.destination!r}"
            yield VolumeReference(mount.source, text, tuple(mount.options or ()), "mounts")


def _blame(model: Model, field: str) -> Location | None:
    """Where the offending value was set: an override's line if it was overridden."""
    return model.field_origin(field) or model.origin


def _built_at(location: Location | None) -> tuple[str, ...]:
    """A detail naming where the system was put together, when that is elsewhere."""
    where = current_location()
    if where is None or where == location:
        return ()
    return (f"in the system put together at {where}",)


def _check_volumes(system: System) -> None:
    volumes = {volume.name: volume for volume in system.volumes}
    for section, _, container in system.containers():
        for ref in volume_references(container):
            volume = volumes.get(ref.volume)
            where = _blame(container, ref.field)
            if volume is None:
                known = ", ".join(sorted(volumes)) or "none are defined"
                raise ConfigError(
                    f"{section} container {container.name!r}: {ref.text!r} names volume "
                    f"{ref.volume!r}, which does not exist",
                    location=where,
                    details=_built_at(where),
                    hint=f"volumes: {known}; host paths must start with '/'",
                )
            if volume.readonly and ("ro" not in ref.options or "rw" in ref.options):
                raise ConfigError(
                    f"{section} container {container.name!r}: volume {ref.volume!r} is "
                    f"read-only, but {ref.text!r} mounts it read-write",
                    location=where,
                    details=_built_at(where),
                    hint="add ':ro' to the bind",
                )


def _check_ids(system: System) -> None:
    names = {container.name for _, _, container in system.containers()}

    def check(ref: int | str | None, what: str, owner: Model, field: str) -> None:
        if isinstance(ref, str) and ref not in ("", "root") and ref not in names:
            where = _blame(owner, field)
            raise ConfigError(
                f"{what} {ref!r} is neither a number, 'root', nor the name of a container",
                location=where,
                details=_built_at(where),
                hint=f"containers are: {', '.join(sorted(names)) or 'none'}",
            )

    for section, _, container in system.containers():
        label = f"{section} container {container.name!r}:"
        check(container.uid, f"{label} uid", container, "uid")
        check(container.gid, f"{label} gid", container, "gid")
        for gid in container.additional_gids or []:
            check(gid, f"{label} additional gid", container, "additional_gids")
    for file in system.files:
        check(file.uid, f"file {file.path!r}: uid", file, "uid")
        check(file.gid, f"file {file.path!r}: gid", file, "gid")
