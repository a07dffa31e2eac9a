"""The models users write in ``system.py``: every field of LinuxKit's YAML, with its meaning.

Python names are snake_case; each field's ``serialization_alias`` is its LinuxKit YAML key, so one
declaration feeds validation, the YAML reader and writer, ``inspect`` and the reference docs.

In container entries ``None`` means *not set*: the image's ``org.mobyproject.config`` label or
LinuxKit's default applies. Setting a list to ``[]`` is different from leaving it unset: it clears
whatever the label would have given (LinuxKit's rule).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from kitdsl.dsl.base import Model
from kitdsl.dsl.types import Capability, IdRef, Image, Mode, check_capability_list

CapabilityList = Annotated[list[Capability], AfterValidator(check_capability_list)]
# Sequence rather than list: a user's list[int] must type-check where ints or names are allowed.
IdRefList = Annotated[Sequence[IdRef], AfterValidator(list)]

_CONTAINER_NAME = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
_VOLUME_NAME = re.compile(r"[a-z0-9_-]+")
_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?")
_RLIMIT_NAMES = frozenset(
    {
        "CPU",
        "FSIZE",
        "DATA",
        "STACK",
        "CORE",
        "RSS",
        "NPROC",
        "NOFILE",
        "MEMLOCK",
        "AS",
        "LOCKS",
        "SIGPENDING",
        "MSGQUEUE",
        "NICE",
        "RTPRIO",
        "RTTIME",
    }
)
_NAMESPACE_KEYWORDS = {"host", "root", "new"}


# --- small building blocks -------------------------------------------------------------------


class IdMapping(Model):
    """A user-namespace id mapping (OCI ``LinuxIDMapping``)."""

    host_id: int = Field(serialization_alias="hostID", ge=0)
    """First id on the host."""
    container_id: int = Field(serialization_alias="containerID", ge=0)
    """First id inside the container."""
    size: int = Field(ge=1)
    """Number of ids mapped."""


class Mount(Model):
    """A mount inside the container (OCI ``Mount``); missing fields are filled as LinuxKit does.

    An empty ``type`` is taken from ``source`` when that names a pseudo file system (proc, sysfs,
    devpts, cgroup, mqueue), and is ``tmpfs`` for ``/dev``; an empty ``destination`` is the usual
    place of that file system. A ``bind`` whose ``source`` does not start with ``/`` names a volume.
    """

    destination: str = ""
    """Absolute path inside the container."""
    type: str = ""
    """File system type: ``bind``, ``tmpfs``, ``proc``, ``overlay``, ..."""
    source: str = ""
    """Device, path, or volume name for binds."""
    options: list[str] | None = None
    """Mount options such as ``rbind``, ``ro``, ``nosuid``."""
    uid_mappings: list[IdMapping] | None = Field(default=None, serialization_alias="uidmappings")
    """Id-mapped mount: uid mappings."""
    gid_mappings: list[IdMapping] | None = Field(default=None, serialization_alias="gidmappings")
    """Id-mapped mount: gid mappings."""


class Device(Model):
    """A device node made available in the container, with its cgroup rule.

    ``path="all"`` with ``type`` ``b``, ``c`` or ``a`` only allows every such device in the cgroup.
    """

    path: str
    """Path of the device node inside the container, or ``all``."""
    type: Literal["b", "c", "u", "p", "a"]
    """``c`` character, ``b`` block, ``u`` unbuffered, ``p`` fifo, ``a`` all (``path="all"``)."""
    major: int = 0
    """Major number."""
    minor: int = 0
    """Minor number."""
    mode: Mode | None = None
    """Permissions of the node, e.g. ``0o666``; required except for ``path="all"``."""

    @model_validator(mode="after")
    def _check(self) -> Device:
        if self.path == "all":
            if self.type not in ("b", "c", "a"):
                raise ValueError("a device with path 'all' must have type 'b', 'c' or 'a'")
        elif self.mode is None:
            raise ValueError(f"device {self.path!r} needs a mode, e.g. 0o666")
        elif not self.path.startswith("/"):
            raise ValueError(f"device path {self.path!r} must be absolute or 'all'")
        return self


class DeviceRule(Model):
    """A cgroup device access rule (OCI ``LinuxDeviceCgroup``)."""

    allow: bool
    """Allow (true) or deny (false) access."""
    type: str | None = None
    """``a``, ``b`` or ``c``."""
    major: int | None = None
    """Major number; unset means any."""
    minor: int | None = None
    """Minor number; unset means any."""
    access: str | None = None
    """Any of ``r``, ``w``, ``m``."""


class Memory(Model):
    """Memory cgroup limits, in bytes."""

    limit: int | None = None
    """Memory limit."""
    reservation: int | None = None
    """Soft limit."""
    swap: int | None = None
    """Memory plus swap limit."""
    kernel: int | None = None
    """Kernel memory limit (deprecated by the kernel)."""
    kernel_tcp: int | None = Field(default=None, serialization_alias="kernelTCP")
    """Kernel TCP buffer limit."""
    swappiness: int | None = Field(default=None, ge=0, le=100)
    """Swappiness, 0 to 100."""
    disable_oom_killer: bool | None = Field(default=None, serialization_alias="disableOOMKiller")
    """Disable the OOM killer for the cgroup."""


class Cpu(Model):
    """CPU cgroup settings."""

    shares: int | None = None
    """Relative weight."""
    quota: int | None = None
    """Allowed time in microseconds per period."""
    period: int | None = None
    """Period in microseconds."""
    realtime_runtime: int | None = Field(default=None, serialization_alias="realtimeRuntime")
    """Real-time runtime in microseconds."""
    realtime_period: int | None = Field(default=None, serialization_alias="realtimePeriod")
    """Real-time period in microseconds."""
    cpus: str | None = None
    """CPUs to run on, e.g. ``"0-1"``."""
    mems: str | None = None
    """Memory nodes, e.g. ``"0"``."""


class Pids(Model):
    """Process number limit."""

    limit: int
    """Maximum number of processes."""


class WeightDevice(Model):
    """Block IO weight for one device."""

    major: int
    """Major number."""
    minor: int
    """Minor number."""
    weight: int | None = None
    """Weight."""
    leaf_weight: int | None = Field(default=None, serialization_alias="leafWeight")
    """Leaf weight."""


class ThrottleDevice(Model):
    """Block IO rate limit for one device."""

    major: int
    """Major number."""
    minor: int
    """Minor number."""
    rate: int
    """Bytes or IO operations per second."""


class BlockIO(Model):
    """Block IO cgroup settings."""

    weight: int | None = None
    """Default weight."""
    leaf_weight: int | None = Field(default=None, serialization_alias="leafWeight")
    """Default leaf weight."""
    weight_device: list[WeightDevice] | None = Field(
        default=None, serialization_alias="weightDevice"
    )
    """Per-device weights."""
    throttle_read_bps_device: list[ThrottleDevice] | None = Field(
        default=None, serialization_alias="throttleReadBpsDevice"
    )
    """Per-device read limits in bytes per second."""
    throttle_write_bps_device: list[ThrottleDevice] | None = Field(
        default=None, serialization_alias="throttleWriteBpsDevice"
    )
    """Per-device write limits in bytes per second."""
    throttle_read_iops_device: list[ThrottleDevice] | None = Field(
        default=None, serialization_alias="throttleReadIOPSDevice"
    )
    """Per-device read limits in operations per second."""
    throttle_write_iops_device: list[ThrottleDevice] | None = Field(
        default=None, serialization_alias="throttleWriteIOPSDevice"
    )
    """Per-device write limits in operations per second."""


class HugepageLimit(Model):
    """Huge page limit for one page size."""

    page_size: str = Field(serialization_alias="pageSize")
    """Page size, e.g. ``"2MB"``."""
    limit: int
    """Limit in bytes."""

    @field_validator("page_size", mode="before")
    @classmethod
    def _page_size_text(cls, value: object) -> object:
        # LinuxKit's schema says integer but the OCI type is a string: accept both.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class InterfacePriority(Model):
    """Network priority for one interface."""

    name: str
    """Interface name."""
    priority: int
    """Priority."""


class Network(Model):
    """Network cgroup settings."""

    class_id: int | None = Field(default=None, serialization_alias="classID")
    """Class identifier of the container's packets."""
    priorities: list[InterfacePriority] | None = None
    """Per-interface priorities."""


class Resources(Model):
    """Cgroup resource limits (the subset of OCI ``LinuxResources`` LinuxKit accepts)."""

    devices: list[DeviceRule] | None = None
    """Device access rules; rules from ``devices`` are appended."""
    memory: Memory | None = None
    """Memory limits."""
    cpu: Cpu | None = None
    """CPU limits."""
    pids: Pids | None = None
    """Process number limit."""
    blockio: BlockIO | None = None
    """Block IO limits."""
    hugepage_limits: list[HugepageLimit] | None = Field(
        default=None, serialization_alias="hugepageLimits"
    )
    """Huge page limits."""
    network: Network | None = None
    """Network classification."""


class Interface(Model):
    """A network interface prepared for the container before it starts."""

    name: str
    """Name of the interface inside the container."""
    add: str | None = None
    """Link type to create (``veth``, ``wireguard``...); unset moves an existing link."""
    peer: str | None = None
    """Peer name of a veth pair (implies ``add="veth"``)."""
    create_in_root: bool = Field(default=False, serialization_alias="createInRoot")
    """Create the link in the root namespace, then move it into the container."""


class BindNS(Model):
    """Paths where the container's namespaces are bind-mounted so later containers can join."""

    cgroup: str | None = None
    """Cgroup namespace."""
    ipc: str | None = None
    """IPC namespace."""
    mnt: str | None = None
    """Mount namespace."""
    net: str | None = None
    """Network namespace, e.g. ``/run/netns/wg``."""
    pid: str | None = None
    """PID namespace."""
    user: str | None = None
    """User namespace."""
    uts: str | None = None
    """UTS namespace."""


class Runtime(Model):
    """What the init does around the container at boot (``runtime.json``, not part of OCI)."""

    cgroups: list[str] | None = None
    """Cgroups to create before the container."""
    mounts: list[Mount] | None = None
    """Mounts made in the root mount namespace before the container is created."""
    mkdir: list[str] | None = None
    """Directories to create (relative paths are inside the container's rootfs)."""
    interfaces: list[Interface] | None = None
    """Network interfaces to create or move into the container."""
    bind_ns: BindNS | None = Field(default=None, serialization_alias="bindNS")
    """Where to bind-mount the container's namespaces."""
    namespace: str | None = None
    """containerd namespace of a service (default ``services.linuxkit``)."""


# --- containers ------------------------------------------------------------------------------


def _check_bind(value: str) -> str:
    parts = value.split(":")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise ValueError(f"bind {value!r} must be 'source:destination[:option,option]'")
    if not parts[1].startswith("/"):
        raise ValueError(f"bind {value!r}: the destination must be an absolute path")
    return value


def _check_tmpfs(value: str) -> str:
    if value.count(":") > 1 or value.endswith(":") or not value.split(":")[0].startswith("/"):
        raise ValueError(f"tmpfs {value!r} must be '/destination[:option,option]'")
    return value


def _check_rlimit(value: str) -> str:
    parts = [part.strip() for part in value.split(",", 2)]
    if len(parts) != 3:
        raise ValueError(f"rlimit {value!r} must be 'name,soft,hard', e.g. 'nofile,1024,4096'")
    name = parts[0].upper().removeprefix("RLIMIT_")
    if name not in _RLIMIT_NAMES:
        known = ", ".join(sorted(_RLIMIT_NAMES))
        raise ValueError(f"unknown rlimit {parts[0]!r} (known: {known})")
    for limit in parts[1:]:
        if limit.lower() != "unlimited" and not (limit.isdigit() and int(limit) < 2**64):
            raise ValueError(f"rlimit {value!r}: {limit!r} is not a number or 'unlimited'")
    return value


def _check_env(value: str) -> str:
    if "=" not in value or value.startswith("="):
        raise ValueError(f"environment entry {value!r} must be 'NAME=value'")
    return value


Bind = Annotated[str, AfterValidator(_check_bind)]
Tmpfs = Annotated[str, AfterValidator(_check_tmpfs)]
Rlimit = Annotated[str, AfterValidator(_check_rlimit)]
EnvVar = Annotated[str, AfterValidator(_check_env)]
Propagation = Literal[
    "shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable"
]


class ContainerConfig(Model):
    """Everything about a container except its name and image.

    This is also exactly what an image may declare in its ``org.mobyproject.config`` label;
    the entry in the system wins over the label field by field (see the composition guide).
    """

    capabilities: CapabilityList | None = None
    """Capabilities (``CAP_*``), or ``["all"]``. Unset: the label's, else none at all."""
    capabilities_add: CapabilityList | None = Field(
        default=None, serialization_alias="capabilities.add"
    )
    """Capabilities added to the image label's list (when ``capabilities`` is unset)."""
    ambient: CapabilityList | None = None
    """Ambient capabilities; also added to the bounding, inheritable and permitted sets."""
    mounts: list[Mount] | None = None
    """Full mount entries; they win over binds and tmpfs at the same destination."""
    binds: list[Bind] | None = None
    """Bind mounts ``source:destination[:options]``; replaces the label's binds."""
    binds_add: list[Bind] | None = Field(default=None, serialization_alias="binds.add")
    """Bind mounts added to the image label's binds (when ``binds`` is unset)."""
    devices: list[Device] | None = None
    """Device nodes and their cgroup rules."""
    tmpfs: list[Tmpfs] | None = None
    """tmpfs mounts ``/destination[:options]``."""
    command: list[str] | None = None
    """The process to run; replaces the image's entrypoint and command together."""
    env: list[EnvVar] | None = None
    """Environment ``NAME=value``; replaces the image's whole environment."""
    cwd: str | None = None
    """Working directory; default the image's, else ``/``."""
    net: str | None = None
    """Network namespace: ``host`` (default), ``new``/``none``, or a path to join."""
    pid: str | None = None
    """PID namespace: ``new`` (default), ``host``, or a path to join."""
    ipc: str | None = None
    """IPC namespace: ``host`` (default), ``new``, or a path to join."""
    uts: str | None = None
    """UTS namespace: ``host`` (default), ``new``, or a path to join."""
    userns: str | None = None
    """User namespace: ``host`` (default), ``new``, or a path to join."""
    hostname: str | None = None
    """Host name inside the container."""
    readonly: bool | None = None
    """Read-only root file system (also ``ro`` on /dev and /sys). Default false."""
    masked_paths: list[str] | None = Field(default=None, serialization_alias="maskedPaths")
    """Paths made inaccessible inside the container."""
    readonly_paths: list[str] | None = Field(default=None, serialization_alias="readonlyPaths")
    """Paths made read-only inside the container."""
    uid: IdRef | None = None
    """User id: a number, ``"root"``, or a container name (its allocated id). Default 0."""
    gid: IdRef | None = None
    """Group id: a number, ``"root"``, or a container name. Default 0."""
    additional_gids: IdRefList | None = Field(default=None, serialization_alias="additionalGids")
    """Supplementary group ids."""
    no_new_privileges: bool | None = Field(default=None, serialization_alias="noNewPrivileges")
    """Set ``no_new_privs`` on the process."""
    oom_score_adj: int | None = Field(
        default=None, serialization_alias="oomScoreAdj", ge=-1000, le=1000
    )
    """OOM score adjustment, -1000 to 1000."""
    rootfs_propagation: Propagation | None = Field(
        default=None, serialization_alias="rootfsPropagation"
    )
    """Mount propagation of the root file system."""
    cgroups_path: str | None = Field(default=None, serialization_alias="cgroupsPath")
    """Cgroup path of the container."""
    resources: Resources | None = None
    """Cgroup resource limits."""
    sysctl: dict[str, str] | None = None
    """Namespaced sysctls to set, e.g. ``{"net.ipv4.ip_forward": "1"}``."""
    rlimits: list[Rlimit] | None = None
    """Resource limits ``name,soft,hard``; ``unlimited`` allowed."""
    uid_mappings: list[IdMapping] | None = Field(default=None, serialization_alias="uidMappings")
    """User-namespace uid mappings."""
    gid_mappings: list[IdMapping] | None = Field(default=None, serialization_alias="gidMappings")
    """User-namespace gid mappings."""
    annotations: dict[str, str] | None = None
    """OCI annotations."""
    runtime: Runtime | None = None
    """What the init does around the container (cgroups, mounts, interfaces, namespaces)."""

    @field_validator("net", "pid", "ipc", "uts", "userns")
    @classmethod
    def _check_namespace(cls, value: str | None, info: object) -> str | None:
        name = getattr(info, "field_name", "namespace")
        keywords = _NAMESPACE_KEYWORDS | ({"none"} if name == "net" else set())
        if value is None or value == "" or value in keywords or value.startswith("/"):
            return value
        choices = ", ".join(repr(k) for k in sorted(keywords))
        raise ValueError(f"{name} must be {choices} or an absolute path to join, not {value!r}")


class _Identity(Model):
    name: str
    """Name of the container: its bundle directory, runtime id and log name."""
    image: Image
    """OCI image reference (``"linuxkit/getty:v1.0"``), or a package defined in Python."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _CONTAINER_NAME.fullmatch(value) or len(value) > 76:
            raise ValueError(
                f"container name {value!r} must be letters and digits separated by single "
                "'.', '_' or '-' (at most 76 characters)"
            )
        return value


class Container(ContainerConfig, _Identity):
    """A container entry; use :class:`Onboot`, :class:`Service` or :class:`Onshutdown`."""


class Onboot(Container):
    """A container run once at boot, in order, before services start."""


class Onshutdown(Container):
    """A container run once, in order, when the machine shuts down cleanly."""


class Service(Container):
    """A container started at boot and kept running for the life of the machine."""


# --- kernel, files, volumes -------------------------------------------------------------------


class Kernel(Model):
    """The kernel image and its command line."""

    image: Image | None = None
    """OCI image holding the kernel files. Needed to build; may be left out of a file that is
    merged onto another only to change the command line."""
    cmdline: str = ""
    """Kernel command line, written to ``boot/cmdline``."""
    binary: str = "kernel"
    """Name of the kernel file in the image."""
    tar: str | None = "kernel.tar"
    """Tarball in the image unpacked into the root (modules); ``None`` for none."""
    ucode: str | None = None
    """CPU microcode cpio in the image, prepended to the initrd."""

    @field_validator("tar", mode="before")
    @classmethod
    def _no_tar(cls, value: object) -> object:
        return None if value in ("", "none") else value


class File(Model):
    """A file, directory or symlink added to the root file system after all containers."""

    path: str
    """Path in the root file system (a leading ``/`` is optional)."""
    directory: bool = False
    """Create a directory."""
    symlink: str | None = None
    """Create a symlink to this target."""
    contents: str | None = None
    """Inline contents."""
    source: str | None = None
    """Host file to copy; relative to the file that defines it. ``~/`` is the user's home."""
    metadata: Literal["yaml", "json"] | None = None
    """Write the resolved system configuration in this format."""
    optional: bool = False
    """Skip the entry when ``source`` does not exist (a warning is printed)."""
    mode: Mode | None = None
    """Permissions; default ``0o600`` for files and symlinks, ``0o700`` for directories."""
    uid: IdRef = 0
    """Owner: a number, ``"root"``, or a container name."""
    gid: IdRef = 0
    """Group: a number, ``"root"``, or a container name."""

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        stripped = "/".join(part for part in value.split("/") if part not in ("", "."))
        if not stripped:
            raise ValueError("a file needs a path other than '/'")
        if ".." in stripped.split("/"):
            raise ValueError(f"file path {value!r} must not contain '..'")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> File:
        given = [
            key
            for key in ("contents", "source", "metadata", "symlink")
            if getattr(self, key) is not None
        ]
        if self.directory:
            if given:
                raise ValueError(f"directory {self.path!r} cannot also have {given[0]}")
        elif len(given) != 1:
            what = " and ".join(given) if given else "none of them"
            raise ValueError(
                f"file {self.path!r} needs exactly one of contents, source, metadata, symlink "
                f"or directory=True (it has {what})"
            )
        return self

    @property
    def default_mode(self) -> int:
        """The mode LinuxKit gives when none is set."""
        return 0o700 if self.directory else 0o600


class Volume(Model):
    """A volume: a directory the init overlays at boot, blank or filled from an image."""

    name: str
    """Name; containers use it as the source of a bind (``"data:/var/data"``)."""
    image: Image | None = None
    """Image whose contents fill the volume; unset for a blank volume."""
    readonly: bool = False
    """Read-only volume: binds must say ``:ro``, and it is mounted read-only."""
    format: Literal["filesystem", "oci"] = "filesystem"
    """``filesystem``: the flattened image. ``oci``: an OCI image layout of it."""
    platforms: list[str] = Field(default_factory=list)
    """Platforms ``os/arch[/variant]`` kept in ``oci`` format; empty for all."""

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _VOLUME_NAME.fullmatch(value):
            raise ValueError(
                f"volume name {value!r} must be lower-case letters, digits, '_' or '-'"
            )
        return value

    @field_validator("platforms")
    @classmethod
    def _check_platforms(cls, value: list[str]) -> list[str]:
        for platform in value:
            if not _PLATFORM.fullmatch(platform):
                raise ValueError(f"platform {platform!r} must be 'os/arch[/variant]'")
        return value
