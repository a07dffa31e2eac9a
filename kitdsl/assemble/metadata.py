"""The system's own configuration, as a ``files`` entry with ``metadata: yaml|json`` writes it.

LinuxKit serialises its ``Moby`` structure after the build has resolved it, with
``gopkg.in/yaml.v2`` or ``json.MarshalIndent``; so does this module, from a
:class:`~kitdsl.dsl.System`:

* every section, in LinuxKit's order (``kernel``, ``init``, ``onboot``, ``onshutdown``,
  ``services``, ``files``, ``volumes``), present even when empty (``[]``), except ``kernel``
  for a system without one (LinuxKit writes ``kernel: {image: ""}``, which kitdsl refuses to
  read back);
* container entries start with ``name`` and ``image``, then the fields that are set, in
  LinuxKit's order (an explicit empty list is set: it overrides the image's label);
* ``files`` entries always have ``path``, ``directory`` and ``optional``;
* YAML as yaml.v2 writes it: block style, lists at their key's indentation, strings quoted
  (double quotes) only when they would read as something else, text with line breaks as a
  ``|`` block; JSON with Go's 4-space layout and escapes, no trailing newline.

Image references are canonical (``docker.io/linuxkit/init:v1.0``), as LinuxKit writes them,
and carry the digest of the image manifest the build used
(``docker.io/linuxkit/init:v1.0@sha256:...``): the file inside the image then says exactly
what it was built from, and reading it back (kitdsl or LinuxKit) builds the same system. An
``oci`` volume holding several platforms keeps its tag only, since no single manifest
describes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from kitdsl import reference
from kitdsl.assemble.gojson import marshal_indent
from kitdsl.dsl import Container, File, Kernel, System, Volume
from kitdsl.dsl.types import ImageProvider, image_reference
from kitdsl.load.linuxkit_yaml import entry_data

__all__ = ["ImageRefs", "metadata_bytes", "metadata_document", "pinned"]

SECTIONS = ("onboot", "onshutdown", "services")
# Go ``string`` fields (not pointers) with ``omitempty``: an empty value is left out.
_PLAIN_STRINGS = frozenset({"cwd", "net", "pid", "ipc", "uts", "userns", "hostname"})
# yaml.v2 reads these as booleans too; PyYAML's YAML 1.1 resolver does not.
_YAML_V2_BOOLEANS = frozenset({"y", "Y", "n", "N"})
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = Resolver()


@dataclass(frozen=True)
class ImageRefs:
    """The reference each part of a system is written with: what the build resolved."""

    kernel: str | None = None
    init: tuple[str, ...] = ()
    containers: Mapping[str, str] = field(default_factory=dict)
    """``onboot/<name>``, ``services/<name>``... → reference."""
    volumes: Mapping[str, str] = field(default_factory=dict)
    """Volume name → reference."""


def pinned(written: str, digest: str | None) -> str:
    """``written`` in canonical form, with ``digest`` (a manifest's) in place of any digest it
    had: ``alpine:3.20`` → ``docker.io/library/alpine:3.20@sha256:...``."""
    parsed = reference.parse(written)
    if digest is None:
        return str(parsed)
    return str(reference.Reference(parsed.domain, parsed.path, parsed.tag, digest))


def metadata_document(
    system: System, images: ImageRefs | None = None, *, base: Path | None = None
) -> dict[str, Any]:
    """The document as plain data, keys in LinuxKit's order.

    ``images`` gives the references as resolved; without it, references are canonical with
    the digests they were written with. ``base`` is the folder relative ``source`` paths are
    written from (``None``: the current directory).
    """
    refs = images if images is not None else ImageRefs()
    document: dict[str, Any] = {}
    if system.kernel is not None:
        document["kernel"] = _kernel(system.kernel, refs.kernel, base)
    document["init"] = [
        refs.init[index] if index < len(refs.init) else _canonical(image)
        for index, image in enumerate(system.init)
    ]
    for section in SECTIONS:
        document[section] = [
            _container(entry, refs.containers.get(f"{section}/{entry.name}"), base)
            for entry in getattr(system, section)
        ]
    document["files"] = [_file(entry, base) for entry in system.files]
    document["volumes"] = [
        _volume(volume, refs.volumes.get(volume.name), base) for volume in system.volumes
    ]
    return document


def metadata_bytes(
    system: System,
    kind: Literal["yaml", "json"],
    images: ImageRefs | None = None,
    *,
    base: Path | None = None,
) -> bytes:
    """The contents of a ``metadata: yaml`` or ``metadata: json`` file (see the module)."""
    document = metadata_document(system, images, base=base)
    if kind == "json":
        return marshal_indent(document)
    text: str = yaml.dump(document, Dumper=_GoYamlDumper, allow_unicode=True)
    return text.encode()


def _canonical(image: str | ImageProvider) -> str:
    return reference.canonical(image_reference(image))


def _kernel(kernel: Kernel, resolved: str | None, base: Path | None) -> dict[str, Any]:
    data = entry_data(kernel, base=base)
    data.pop("image", None)
    if resolved is not None:
        image = resolved
    else:
        image = _canonical(kernel.image) if kernel.image is not None else ""
    return {"image": image, **data}


def _container(entry: Container, resolved: str | None, base: Path | None) -> dict[str, Any]:
    data = entry_data(entry, base=base)
    image = resolved if resolved is not None else _canonical(entry.image)
    rest = {
        key: value
        for key, value in data.items()
        if key not in ("name", "image") and not (key in _PLAIN_STRINGS and value == "")
    }
    return {"name": entry.name, "image": image, **rest}


def _file(entry: File, base: Path | None) -> dict[str, Any]:
    data = entry_data(entry, base=base)
    # Go's File struct: path, directory (always), symlink, contents, source, metadata,
    # optional (always), mode, uid, gid.
    result: dict[str, Any] = {"path": entry.path, "directory": entry.directory}
    for key in ("symlink", "contents", "source", "metadata"):
        if key in data:
            result[key] = data[key]
    result["optional"] = entry.optional
    for key in ("mode", "uid", "gid"):
        if key in data:
            result[key] = data[key]
    return result


def _volume(volume: Volume, resolved: str | None, base: Path | None) -> dict[str, Any]:
    data = entry_data(volume, base=base)
    result: dict[str, Any] = {"name": volume.name}
    if volume.image is not None:
        result["image"] = resolved if resolved is not None else _canonical(volume.image)
    result.update((key, value) for key, value in data.items() if key not in ("name", "image"))
    return result


class _GoYamlDumper(yaml.SafeDumper):
    """PyYAML set up to write what yaml.v2 writes for the same data (both descend from
    libyaml's emitter: block style, lists not indented under their key, 80 columns)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["default_flow_style"] = False
        kwargs["sort_keys"] = False
        super().__init__(*args, **kwargs)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: _GoYamlDumper, value: str) -> ScalarNode:
    # yaml.v2: a line break makes a literal block; a string that would read back as another
    # type is double-quoted; anything else is plain (the emitter quotes what cannot be).
    style: str | None = None
    if "\n" in value:
        style = "|"
    elif (
        value in _YAML_V2_BOOLEANS
        or _RESOLVER.resolve(ScalarNode, value, (True, False)) != _STR_TAG  # type: ignore[no-untyped-call]
    ):
        style = '"'
    return dumper.represent_scalar(_STR_TAG, value, style=style)


_GoYamlDumper.add_representer(str, _represent_str)
