"""A whole system, its cross-component checks, and composition for teams sharing modules.

Composition never mutates: every method returns a new :class:`System`, so a base module can be
imported by several products without them affecting one another.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from kitdsl.dsl.base import Model, current_location, defined_at
from kitdsl.dsl.models import Container, File, Kernel, Onboot, Onshutdown, Service, Volume
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

    def override(self, name: str, **changes: Any) -> System:
        """A new system where container ``name`` has ``changes`` applied, other fields kept.

        ``base.override("getty", env=["INSECURE=true"])`` changes only getty's environment.
        """
        where = current_location()
        section, index = self._locate(name, where)
        entries = list(getattr(self, section))
        with defined_at(where):
            entries[index] = entries[index].replace(**changes)
            return self.replace(**{section: entries})

    def remove(self, *names: str) -> System:
        """A new system without the named containers or volumes."""
        where = current_location()
        known_volumes = {volume.name for volume in self.volumes}
        changes: dict[str, Any] = {}
        for name in names:
            if name in known_volumes:
                changes["volumes"] = [
                    v for v in changes.get("volumes", self.volumes) if v.name != name
                ]
                continue
            section, _ = self._locate(name, where)
            current = changes.get(section, getattr(self, section))
            changes[section] = [c for c in current if c.name != name]
        with defined_at(where):
            return self.replace(**changes)

    def _locate(self, name: str, where: Location | None) -> tuple[Section, int]:
        for section, index, container in self.containers():
            if container.name == name:
                return section, index
        known = ", ".join(container.name for _, _, container in self.containers()) or "none"
        raise ConfigError(
            f"no container named {name!r} in this system",
            location=where,
            hint=f"containers are: {known}",
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


def _volume_binds(container: Container) -> Iterator[tuple[str, str, list[str]]]:
    """(volume name, bind text, options) for each bind or mount whose source is a volume."""
    for bind in [*(container.binds or []), *(container.binds_add or [])]:
        source, _, rest = bind.partition(":")
        if not source.startswith("/"):
            _, _, options = rest.partition(":")
            yield source, bind, options.split(",") if options else []
    for mount in container.mounts or []:
        if mount.type == "bind" and mount.source and not mount.source.startswith("/"):
            yield mount.source, f"mount of {mount.source!r}", list(mount.options or [])


def _check_volumes(system: System) -> None:
    volumes = {volume.name: volume for volume in system.volumes}
    for section, _, container in system.containers():
        for name, bind, options in _volume_binds(container):
            volume = volumes.get(name)
            if volume is None:
                known = ", ".join(sorted(volumes)) or "none are defined"
                raise ConfigError(
                    f"{section} container {container.name!r}: bind {bind!r} names volume "
                    f"{name!r}, which does not exist",
                    location=container.origin,
                    hint=f"volumes: {known}; host paths must start with '/'",
                )
            if volume.readonly and ("ro" not in options or "rw" in options):
                raise ConfigError(
                    f"{section} container {container.name!r}: volume {name!r} is read-only, "
                    f"but {bind!r} mounts it read-write",
                    location=container.origin,
                    hint="add ':ro' to the bind",
                )


def _check_ids(system: System) -> None:
    names = {container.name for _, _, container in system.containers()}

    def check(ref: int | str | None, what: str, owner: Model) -> None:
        if isinstance(ref, str) and ref not in ("", "root") and ref not in names:
            raise ConfigError(
                f"{what} {ref!r} is neither a number, 'root', nor the name of a container",
                location=owner.origin,
                hint=f"containers are: {', '.join(sorted(names)) or 'none'}",
            )

    for section, _, container in system.containers():
        label = f"{section} container {container.name!r}:"
        check(container.uid, f"{label} uid", container)
        check(container.gid, f"{label} gid", container)
        for gid in container.additional_gids or []:
            check(gid, f"{label} additional gid", container)
    for file in system.files:
        check(file.uid, f"file {file.path!r}: uid", file)
        check(file.gid, f"file {file.path!r}: gid", file)
