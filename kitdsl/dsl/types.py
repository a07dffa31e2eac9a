"""Field types that help users: checked capability names, octal modes, image references, ids.

Each type is a plain Python type for the editor (so ``system.py`` autocompletes and type-checks)
plus a validator that gives a precise message when a value is wrong.
"""

from __future__ import annotations

import difflib
import re
from abc import ABC, abstractmethod
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, GetCoreSchemaHandler, PlainSerializer, ValidationInfo
from pydantic_core import core_schema

from kitdsl import reference

CapabilityName = Literal[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
"""The 41 Linux capabilities LinuxKit knows, in kernel number order (CAP_CHOWN = 0)."""

ALL_CAPABILITIES: tuple[str, ...] = get_args(CapabilityName)
_KNOWN_CAPABILITIES = frozenset(ALL_CAPABILITIES)


def _check_capability(value: object) -> object:
    if not isinstance(value, str):
        return value  # the Literal check reports the wrong type
    if value.lower() in ("all", "none"):
        return value.lower()
    if value in _KNOWN_CAPABILITIES:
        return value
    upper = value.upper()
    candidates = [upper, f"CAP_{upper}"]
    for candidate in candidates:
        if candidate in _KNOWN_CAPABILITIES:
            raise ValueError(f"unknown capability {value!r}: write it as {candidate!r}")
    close = difflib.get_close_matches(f"CAP_{upper.removeprefix('CAP_')}", ALL_CAPABILITIES, n=1)
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown capability {value!r}{suggestion} (names are CAP_* in upper case, or 'all')"
    )


Capability = Annotated[CapabilityName | Literal["all", "none"], BeforeValidator(_check_capability)]
"""A capability name such as ``"CAP_NET_ADMIN"``, or ``"all"``/``"none"`` as the only entry."""


def check_capability_list(values: list[str] | None) -> list[str] | None:
    """``all`` and ``none`` only make sense alone, as in LinuxKit."""
    if values is not None and len(values) > 1:
        for special in ("all", "none"):
            if special in values:
                raise ValueError(f"{special!r} must be the only entry of a capability list")
    return values


# --- octal modes ------------------------------------------------------------------------------


def parse_mode(value: object, info: ValidationInfo) -> object:
    """Accept ``0o644``, ``420`` or ``"0644"``; LinuxKit YAML must quote modes as strings."""
    if isinstance(value, bool):
        raise ValueError("a mode is an octal number such as 0o644 or '0644', not a boolean")
    if isinstance(value, int):
        if info.context and info.context.get("linuxkit_yaml"):
            raise ValueError(
                f'mode must be a quoted octal string in LinuxKit YAML, e.g. "0{value:o}"'
            )
        mode = value
    elif isinstance(value, str):
        text = value.strip().removeprefix("0o")
        if not text or not re.fullmatch(r"[0-7]+", text):
            raise ValueError(f"mode {value!r} is not an octal number such as '0644'")
        mode = int(text, 8)
    else:
        return value
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode {oct(mode)} is out of range (0 to 0o7777)")
    return mode


Mode = Annotated[
    int | str,
    BeforeValidator(parse_mode),
    PlainSerializer(lambda mode: f"0{mode:o}" if isinstance(mode, int) else mode, return_type=str),
]
"""A permission mode: ``0o644`` or ``"0644"``. Stored as an int, written to YAML as ``"0644"``."""


def mode_value(mode: int | str) -> int:
    """The integer value of a validated :data:`Mode` field."""
    return mode if isinstance(mode, int) else int(mode, 8)


# --- ids --------------------------------------------------------------------------------------


MAX_ID = 2**32 - 1


def _check_id(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("an id is an integer or a container name, not a boolean")
    if isinstance(value, int) and not 0 <= value <= MAX_ID:
        raise ValueError(f"id {value} is out of range (0 to {MAX_ID})")
    if isinstance(value, str) and value.isdigit():
        raise ValueError(
            f"{value!r} is a string of digits: write the id as a number ({int(value)}), "
            "strings name containers"
        )
    return value


IdRef = Annotated[int | str, BeforeValidator(_check_id)]
"""A uid or gid: a number, ``"root"`` (0), or the name of a container, whose allocated id
(100, 101, ... in onboot, onshutdown, services order) is used."""


# --- images -----------------------------------------------------------------------------------


class ImageProvider(ABC):
    """Something that yields an OCI image reference when the system is built.

    A plain reference string is the common case; packages defined in Python (built on demand)
    subclass this so ``Service(image=my_package)`` type-checks and validates.
    """

    @property
    @abstractmethod
    def reference(self) -> str:
        """The reference the image is known by once it exists."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.is_instance_schema(cls)


def _check_image(value: object) -> object:
    if isinstance(value, str):
        try:
            reference.parse(value)
        except reference.ReferenceSyntaxError as exc:
            raise ValueError(f"invalid image reference {value!r}: {exc}") from None
    return value


def _serialize_image(value: str | ImageProvider) -> str:
    if isinstance(value, str):
        return value
    text = value.reference
    try:
        reference.parse(text)
    except reference.ReferenceSyntaxError as exc:
        raise ValueError(
            f"{type(value).__name__} gave an invalid image reference {text!r}: {exc}"
        ) from None
    return text


Image = Annotated[
    str | ImageProvider,
    BeforeValidator(_check_image),
    PlainSerializer(_serialize_image, return_type=str),
]
"""An image: a Docker reference string (``"linuxkit/getty:v1.0"``) or an :class:`ImageProvider`."""


def image_reference(image: str | ImageProvider) -> str:
    """The reference string of an image field."""
    return _serialize_image(image)
