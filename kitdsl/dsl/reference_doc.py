"""The language reference, generated from the models: ``python -m kitdsl.dsl.reference_doc``.

The field declarations (type, default, docstring, YAML key) are the single source: the same
declaration validates user input, names LinuxKit's YAML keys and writes this reference.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from kitdsl.dsl import models, system
from kitdsl.dsl import types as dsl_types

SECTIONS: list[tuple[str, list[type[BaseModel]]]] = [
    ("The system", [system.System, models.Kernel]),
    ("Containers: Onboot, Service, Onshutdown", [models.Container]),
    ("Files and volumes", [models.File, models.Volume]),
    ("Mounts and devices", [models.Mount, models.Device, models.IdMapping]),
    ("Runtime", [models.Runtime, models.Interface, models.BindNS]),
    (
        "Resources",
        [
            models.Resources,
            models.DeviceRule,
            models.Memory,
            models.Cpu,
            models.Pids,
            models.BlockIO,
            models.WeightDevice,
            models.ThrottleDevice,
            models.HugepageLimit,
            models.Network,
            models.InterfacePriority,
        ],
    ),
]

_NAMED_TYPES: list[tuple[object, str]] = [
    (dsl_types.Capability, "Capability"),
    (models.CapabilityList, "list[Capability]"),
    (dsl_types.Mode, "Mode"),
    (dsl_types.IdRef, "IdRef"),
    (dsl_types.Image, "Image"),
    (models.Bind, "Bind"),
    (models.Tmpfs, "Tmpfs"),
    (models.Rlimit, "Rlimit"),
    (models.EnvVar, "EnvVar"),
]

TYPE_NOTES = """\
Named types used below:

- **Capability**: a Linux capability name such as `"CAP_NET_ADMIN"` (checked, with suggestions),
  or `"all"` / `"none"` as the only entry of a list.
- **Mode**: a permission mode, `0o644` or `"0644"`; written to YAML as `"0644"`.
- **IdRef**: a uid or gid: a number, `"root"`, or the name of a container (its allocated id:
  100, 101, ... in onboot, onshutdown, services order).
- **Image**: a Docker image reference (`"linuxkit/getty:v1.0"`, checked against the reference
  grammar) or a package defined in Python.
- **Bind**: `"source:destination[:option,option]"`; a source not starting with `/` names a volume.
- **Tmpfs**: `"/destination[:option,option]"`.
- **Rlimit**: `"name,soft,hard"`, e.g. `"nofile,1024,4096"`; `unlimited` allowed.
- **EnvVar**: `"NAME=value"`.
"""


def type_name(annotation: Any) -> str:
    """A readable name for a field's type."""
    for known, name in _NAMED_TYPES:
        if annotation == known:
            return name
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin in (types.UnionType, typing.Union):
        return " | ".join(type_name(arg) for arg in args)
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin is not None:
        inner = ", ".join(type_name(arg) for arg in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _full_type(info: FieldInfo) -> Any:
    """The declared type, with the validators pydantic keeps apart put back (to find names)."""
    if info.metadata:
        return Annotated[(info.annotation, *info.metadata)]
    return info.annotation


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return f"`{info.default_factory()!r}`"  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "required"
    if info.default is None:
        return "unset"
    value = info.default
    return f"`{value!r}`"


def _cell(text: str) -> str:
    text = re.sub(r":\w+:`([^`]+)`", r"`\1`", text).replace("``", "`")
    return " ".join(text.split()).replace("|", "\\|")


def model_table(model: type[BaseModel]) -> list[str]:
    """A Markdown table of a model's fields."""
    lines = [
        f"### `{model.__name__}`",
        "",
        _cell(model.__doc__ or ""),
        "",
        "| field | YAML key | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, info in model.model_fields.items():
        key = info.serialization_alias or name
        lines.append(
            f"| `{name}` | `{key}` | `{_cell(type_name(_full_type(info)))}` | {_default(info)} "
            f"| {_cell(info.description or '')} |"
        )
    return [*lines, ""]


def render() -> str:
    """The whole reference document."""
    lines = [
        "# Language reference",
        "",
        "Generated from the models by `just docs` (`python -m kitdsl.dsl.reference_doc`); do not",
        "edit by hand. Python names are snake_case; the YAML key is the LinuxKit name, used by",
        "`kitdsl convert`, `kitdsl export` and LinuxKit YAML input. In container entries *unset*",
        "means the image's `org.mobyproject.config` label, else LinuxKit's default, applies.",
        "",
        TYPE_NOTES,
    ]
    for title, section_models in SECTIONS:
        lines += [f"## {title}", ""]
        for model in section_models:
            lines += model_table(model)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render(), end="")
