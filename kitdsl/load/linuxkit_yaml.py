"""LinuxKit YAML in and out: read ``linuxkit.yml`` files into a :class:`System`, and write one back.

The same reader turns an image's ``org.mobyproject.config`` label into a
:class:`ContainerConfig` (:func:`parse_container_config`), so a file entry and a label go through
one key mapping and one scalar resolution, as in LinuxKit.

Reading is as strict as LinuxKit's JSON schema, which rejects unknown keys at every level, and
every error names the file, line and column, the key path (``services[2].capabilities``) and
what was expected. Scalars are resolved as LinuxKit's YAML library does (YAML 1.2: ``yes`` is a
string), so a file that loads here loads in LinuxKit too.

Each kernel, container, file and volume is validated on its own and records its YAML line as its
origin, so later errors (a duplicate name, an unknown volume) point at the right line.

A relative ``source`` of a file entry is read as written; it is relative to the directory of the
YAML file that defines it, which is the entry's ``origin.file`` (LinuxKit reads it relative to
its working directory instead). The writer rewrites it for the folder the output is read from.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from kitdsl.dsl import (
    ContainerConfig,
    File,
    Kernel,
    Onboot,
    Onshutdown,
    Service,
    System,
    Volume,
    merge,
)
from kitdsl.dsl.base import defined_at
from kitdsl.dsl.types import Image, image_reference
from kitdsl.errors import ConfigError, Location
from kitdsl.load import _yamlnodes as yn
from kitdsl.load._fields import ListOf, MapOf, Scalar, Shape, field_shapes, yaml_key, yaml_keys
from kitdsl.load.file_sources import source_from
from kitdsl.log import warn

__all__ = [
    "SECTIONS",
    "dump_linuxkit_yaml",
    "entry_data",
    "load_linuxkit_yaml",
    "parse_container_config",
    "parse_linuxkit_yaml",
    "read_linuxkit_yaml",
    "system_data",
]

_CONTEXT = {"linuxkit_yaml": True}
SECTIONS: Mapping[str, type[BaseModel]] = {
    "onboot": Onboot,
    "onshutdown": Onshutdown,
    "services": Service,
    "files": File,
    "volumes": Volume,
}
"""The list sections of a LinuxKit file, in its order, and the model of their entries."""
_IMAGE: TypeAdapter[Any] = TypeAdapter(Image)
_STRING = Scalar("a string")
_SECTIONS_HINT = "a LinuxKit file is a mapping with kernel, init, onboot, services, files ..."
# The keys of a container entry that a label may not set, and why.
_NOT_IN_A_LABEL = {
    "name": "the system names its containers",
    "image": "the system chooses the image",
}


def load_linuxkit_yaml(paths: Sequence[Path]) -> System:
    """Read LinuxKit YAML files and combine them as ``linuxkit build a.yml b.yml`` does.

    Lists are appended in file order and the kernel is taken field by field from the last file
    that sets it (see :func:`kitdsl.dsl.merge`). Raises :class:`ConfigError` pointing at the
    offending line for anything LinuxKit would reject.
    """
    if isinstance(paths, str | Path):  # a lone path would be read letter by letter
        raise TypeError("load_linuxkit_yaml() takes a list of paths, e.g. [Path('linuxkit.yml')]")
    if not paths:
        raise ConfigError("no LinuxKit YAML file given")
    return merge(*(_read(Path(path)) for path in paths))


def read_linuxkit_yaml(path: Path) -> System:
    """Read one LinuxKit YAML file without the checks across components.

    Unique names, volume references and id names are checked once the files of a command
    line are combined (:func:`kitdsl.dsl.merge` does it), since one file may use what another
    defines. Everything else is checked here.
    """
    return _read(Path(path))


def parse_linuxkit_yaml(text: str, *, file: str = "<stdin>") -> System:
    """Read one LinuxKit YAML document from ``text``; ``file`` is the name used in errors."""
    return merge(_parse(text, file))


def parse_container_config(
    text: str, *, file: str, origin: Location | None = None
) -> ContainerConfig | None:
    """Read the text of an image's ``org.mobyproject.config`` label; ``None`` when it is empty.

    The label is YAML (or JSON, which is YAML too) with the keys of a container entry except
    ``name`` and ``image``. It is read like an entry of a LinuxKit file: the same keys, the
    same scalar rules (``yes`` is a string, as in LinuxKit's label reader) and the same errors.
    ``file`` names the label in errors (``"label of docker.io/x/y:1"``); a
    :class:`ConfigError` has the label's line and column as its location. The model records
    ``origin`` as where it was defined (default: the label's first line).
    """
    root = yn.compose(text, file)
    if root is None:
        return None
    return _Reader(file).container_config(root, origin or Location(file, 1))


def _read(path: Path) -> System:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", location=Location(str(path))
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start})", location=Location(str(path))
        ) from None
    return _parse(text, str(path.absolute()))


def _parse(text: str, file: str) -> System:
    root = yn.compose(text, file)
    if root is None:
        raise ConfigError("the file is empty", location=Location(file), hint=_SECTIONS_HINT)
    return _Reader(file).system(root)


# A map from a path of Python field names and indexes inside one component (the ``loc`` of
# pydantic errors) to the node it came from, its path as the user writes it, and its shape.
_Nodes = dict[tuple[str | int, ...], tuple[yn.Node, str, Shape]]


class _Reader:
    """Turns the node tree of one file into validated components."""

    def __init__(self, file: str) -> None:
        self.file = file
        # The unknown keys of the component being read: all of them are reported together, as
        # LinuxKit's schema check does, so a user does not fix them one run at a time.
        self._unknown_keys: list[ConfigError] = []

    def system(self, root: yn.Node) -> System:
        if not isinstance(root, yn.MappingNode):
            raise self._error(
                root, f"the top level must be a mapping of sections, not {yn.describe_node(root)}"
            )
        parts: dict[str, Any] = {}
        known = [*yaml_keys(System), "trust"]
        for key_node, key, node in self._pairs(root, ""):
            if key == "trust":
                self._trust(key_node, node)
            elif key == "kernel":
                parts["kernel"] = self._component(Kernel, node, "kernel", self._line(key_node))
            elif key == "init":
                parts["init"] = [
                    self._image(item, f"init[{index}]")
                    for index, item in enumerate(self._sequence(node, "init"))
                ]
            elif key in SECTIONS:
                parts[key] = [
                    self._component(SECTIONS[key], item, f"{key}[{index}]", self._line(item))
                    for index, item in enumerate(self._sequence(node, key))
                ]
            else:
                raise self._unknown_key(key_node, key, "", known)
        # Each component is validated; the checks across components (unique names, volumes,
        # ids) run once on the merged system, because LinuxKit resolves them across files.
        with defined_at(Location(self.file, 1)):
            return System.model_construct(**parts)

    def container_config(self, root: yn.Node, origin: Location) -> ContainerConfig:
        """An image label: a container entry without ``name`` and ``image``."""
        self._expect(root, yn.MappingNode, "", "a mapping of container settings")
        for key_node, key, _ in self._pairs(root, ""):
            if key in _NOT_IN_A_LABEL:
                raise self._error(
                    key_node, f"{key!r} cannot be set in the label: {_NOT_IN_A_LABEL[key]}"
                )
        config: ContainerConfig = self._component(ContainerConfig, root, "", origin)
        return config

    # --- components ------------------------------------------------------------------------

    def _component(
        self, model: type[BaseModel], node: yn.Node, display: str, origin: Location
    ) -> Any:
        nodes: _Nodes = {}
        self._unknown_keys = []
        try:
            data = self._value(node, model, display, (), nodes)
        except ConfigError as exc:
            if not self._unknown_keys:
                raise
            raise self._all_of([*self._unknown_keys, exc]) from None
        if self._unknown_keys:
            raise self._all_of(self._unknown_keys)
        try:
            with defined_at(origin):
                return model.model_validate(data, strict=True, context=_CONTEXT)
        except ValidationError as exc:
            raise self._validation_error(exc, nodes) from None

    def _line(self, node: yn.Node) -> Location:
        """The line of ``node``, recorded as the origin of the component that starts there."""
        return Location(self.file, node.start_mark.line + 1)

    def _image(self, node: yn.Node, display: str) -> Any:
        nodes: _Nodes = {}
        value = self._value(node, _STRING, display, (), nodes)
        try:
            return _IMAGE.validate_python(value, strict=True)
        except ValidationError as exc:
            raise self._validation_error(exc, nodes) from None

    def _trust(self, key_node: yn.Node, node: yn.Node) -> None:
        """Check the shape LinuxKit's schema allows, then ignore it as LinuxKit does."""
        self._expect(node, yn.MappingNode, "trust", "a mapping with image: and org: lists")
        for item_key_node, key, value in self._pairs(node, "trust"):
            if key not in ("image", "org"):
                raise self._unknown_key(item_key_node, key, "trust", ["image", "org"])
            for index, item in enumerate(self._sequence(value, f"trust.{key}")):
                display = f"trust.{key}[{index}]"
                if not isinstance(self._value(item, _STRING, display, (), {}), str):
                    raise self._error(item, f"{display}: expected a string")
        warn(
            "'trust' is ignored: image signing with Notary was removed from LinuxKit, "
            "which ignores this section too",
            location=yn.node_location(self.file, key_node),
        )

    # --- walking nodes against the models' shapes -------------------------------------------

    def _value(
        self, node: yn.Node, shape: Shape, display: str, path: tuple[str | int, ...], nodes: _Nodes
    ) -> Any:
        nodes[path] = (node, display, shape)
        if isinstance(shape, Scalar):
            return self._scalar(node, display, shape)
        if isinstance(shape, ListOf):
            items = self._sequence(node, display, shape)
            return [
                self._value(item, shape.item, f"{display}[{index}]", (*path, index), nodes)
                for index, item in enumerate(items)
            ]
        self._expect(node, yn.MappingNode, display, _expected(shape))
        if isinstance(shape, MapOf):
            return {
                key: self._value(value, shape.value, f"{display}[{key!r}]", (*path, key), nodes)
                for _, key, value in self._pairs(node, display)
            }
        keys = yaml_keys(shape)
        data: dict[str, Any] = {}
        for key_node, key, value in self._pairs(node, display):
            if key not in keys:
                self._unknown_keys.append(self._unknown_key(key_node, key, display, list(keys)))
                continue
            name = keys[key]
            data[name] = self._value(
                value,
                field_shapes(shape)[name],
                _join(display, key),
                (*path, name),
                nodes,
            )
        return data

    def _scalar(self, node: yn.Node, display: str, shape: Scalar) -> Any:
        self._expect(node, yn.ScalarNode, display, shape.expected)
        assert isinstance(node, yn.ScalarNode)
        try:
            value = yn.scalar_value(node)
        except ValueError as exc:
            raise self._error(node, f"{display}: {exc}") from None
        if value is None:
            raise self._error(
                node,
                f"{display} has no value: expected {shape.expected}",
                hint="remove the key to leave it unset, or write '\"\"' for an empty string",
            )
        if isinstance(value, str) and value.startswith("@pkg:"):
            package = value.removeprefix("@pkg:")
            raise self._error(
                node,
                f"{display}: LinuxKit package templates ({value!r}) are not supported yet",
                hint=f"build the package with 'linuxkit pkg build {package}' and write the image "
                f"reference that 'linuxkit pkg show-tag {package}' prints instead",
            )
        return value

    def _sequence(self, node: yn.Node, display: str, shape: Shape | None = None) -> list[yn.Node]:
        self._expect(node, yn.SequenceNode, display, _expected(shape or ListOf(_STRING)))
        items: list[yn.Node] = node.value
        return items

    def _pairs(self, node: yn.Node, display: str) -> list[tuple[yn.Node, str, yn.Node]]:
        """The key/value pairs of a mapping; duplicate keys are errors, ``<<`` merges apply."""
        pairs: list[tuple[yn.Node, str, yn.Node]] = []
        merged: list[tuple[yn.Node, str, yn.Node]] = []
        seen: dict[str, yn.Node] = {}
        for key_node, value in node.value:
            if key_node.tag == yn.PLAIN_TAG and key_node.value == "<<":
                sources = value.value if isinstance(value, yn.SequenceNode) else [value]
                for source in sources:
                    self._expect(source, yn.MappingNode, f"{display} <<", "a mapping to merge")
                    merged.extend(self._pairs(source, display))
                continue
            key = self._key(key_node, display)
            if key in seen:
                raise self._error(
                    key_node,
                    f"duplicate key {_join(display, key)}",
                    details=(f"first given at line {seen[key].start_mark.line + 1}",),
                    hint="each key may appear once in a mapping (LinuxKit rejects this too)",
                )
            seen[key] = key_node
            pairs.append((key_node, key, value))
        for key_node, key, value in merged:  # keys written in the mapping win over merged ones
            if key not in seen:
                seen[key] = key_node
                pairs.append((key_node, key, value))
        return pairs

    def _key(self, node: yn.Node, display: str) -> str:
        key = yn.scalar_value(node) if isinstance(node, yn.ScalarNode) else None
        if not isinstance(key, str):
            raise self._error(
                node,
                f"{display or 'the top level'}: keys must be strings, not {yn.describe_node(node)}",
            )
        return key

    # --- errors --------------------------------------------------------------------------------

    def _error(
        self, node: yn.Node, message: str, *, hint: str | None = None, details: tuple[str, ...] = ()
    ) -> ConfigError:
        return ConfigError(
            message, location=yn.node_location(self.file, node), hint=hint, details=details
        )

    def _expect(self, node: yn.Node, kind: type[yn.Node], display: str, expected: str) -> None:
        if not isinstance(node, kind):
            where = f"{display}: " if display else ""
            raise self._error(node, f"{where}expected {expected}, got {yn.describe_node(node)}")

    def _unknown_key(self, node: yn.Node, key: str, display: str, known: list[str]) -> ConfigError:
        suggestion = _suggest(key, known)
        if suggestion:
            return self._error(
                node, f"unknown key {_join(display, key)} (did you mean {suggestion!r}?)"
            )
        return self._error(
            node,
            f"unknown key {_join(display, key)}",
            hint=f"keys allowed in {display or 'the top level'}: {', '.join(known)}",
        )

    def _all_of(self, errors: list[ConfigError]) -> ConfigError:
        """The first of ``errors`` in the document, with the others, at their lines, as details."""
        first, *others = sorted(errors, key=_position)
        details = (*first.details, *(f"{other.location}: {other.message}" for other in others))
        return ConfigError(first.message, location=first.location, hint=first.hint, details=details)

    def _validation_error(self, exc: ValidationError, nodes: _Nodes) -> ConfigError:
        """One error per offending node, located at its line, in the user's words."""
        problems: list[tuple[yn.Node, str, str | None]] = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            depth = next(n for n in range(len(loc), -1, -1) if loc[:n] in nodes)
            node, display, shape = nodes[loc[:depth]]
            if any(node is seen for seen, _, _ in problems):
                continue  # a union reports each member; the first message says it all
            message, hint = _explain(error, display, shape, loc[depth:])
            problems.append((node, message, hint))
        node, message, hint = problems[0]
        details = tuple(
            f"{yn.node_location(self.file, other)}: {text}" for other, text, _ in problems[1:]
        )
        return self._error(node, message, hint=hint, details=details)


def _explain(
    error: Any, display: str, shape: Shape, rest: tuple[str | int, ...]
) -> tuple[str, str | None]:
    kind: str = error["type"]
    value = error.get("input")
    if kind == "missing" and rest and isinstance(shape, type):
        name = str(rest[0])
        return _at(
            display, f"missing required key {yaml_key(name, shape.model_fields[name])!r}"
        ), None
    if kind in ("value_error", "assertion_error"):
        return _at(display, error["msg"].removeprefix("Value error, ")), None
    if isinstance(shape, Scalar) and shape.expected and not rest:
        hint = None
        if "string" in shape.expected and isinstance(value, bool | int | float):
            hint = "quote the value to make it a string"
        elif "boolean" in shape.expected and isinstance(value, str):
            hint = "LinuxKit's YAML reads yes/no/on/off as strings: write true or false"
        return _at(display, f"expected {shape.expected}, got {yn.describe_value(value)}"), hint
    return _at(display, error["msg"]), None


def _position(error: ConfigError) -> tuple[int, int]:
    where = error.location
    return (where.line or 0, where.column or 0) if where is not None else (0, 0)


def _at(display: str, message: str) -> str:
    # A label's settings are at the top level, where there is no path to put in front.
    return f"{display}: {message}" if display else message


def _expected(shape: Shape) -> str:
    if isinstance(shape, Scalar):
        return shape.expected
    if isinstance(shape, ListOf):
        return "a list"
    if isinstance(shape, MapOf):
        return "a mapping of names to values"
    return "a mapping of keys to values"


def _join(display: str, key: str) -> str:
    return f"{display}.{key}" if display else key


def _suggest(key: str, known: list[str]) -> str | None:
    """The key the user probably meant: same letters in another case or spelling, or close."""
    squashed = key.replace("_", "").replace(".", "").lower()
    for candidate in known:
        if candidate.replace(".", "").lower() == squashed:
            return candidate
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return close[0] if close else None


# --- writing ------------------------------------------------------------------------------------


def dump_linuxkit_yaml(system: System, *, base: Path | None = None) -> str:
    """LinuxKit YAML for ``system``: sections in LinuxKit's order, only the fields that are set.

    Modes are quoted octal strings (``"0644"``), ``Kernel(tar=None)`` is ``tar: none`` and an
    :class:`ImageProvider` is written as its reference. ``base`` is the folder the output will
    be read from (``None``: the current directory): relative file sources are rewritten to
    point at the same files from there (see :func:`~kitdsl.load.file_sources.source_from`).
    The output is deterministic, and reading it back from ``base`` gives an equal system.
    """
    return yn.dump(system_data(system, base=base))


def system_data(
    system: System, *, base: Path | None = None, empty_sections: bool = False
) -> dict[str, Any]:
    """The LinuxKit document of ``system`` as plain data, in LinuxKit's section order.

    Each entry is :func:`entry_data`. Empty sections are left out unless ``empty_sections``;
    a system without kernel has no ``kernel`` key either way.
    """
    document: dict[str, Any] = {}
    if system.kernel is not None:
        document["kernel"] = entry_data(system.kernel, base=base)
    if system.init or empty_sections:
        document["init"] = [image_reference(image) for image in system.init]
    for key in SECTIONS:
        entries = getattr(system, key)
        if entries or empty_sections:
            document[key] = [entry_data(entry, base=base) for entry in entries]
    return document


def entry_data(model: BaseModel, *, base: Path | None = None) -> dict[str, Any]:
    """One kernel, container, file or volume as plain data, under its LinuxKit YAML keys.

    Only fields that differ from their defaults are kept. For container entries the default
    is ``None`` ("not set"), so an explicit ``[]`` or ``false``, which overrides an image label,
    is kept. ``Kernel(tar=None)`` is ``tar: none``, and a relative file source is written as
    seen from folder ``base`` (``None``: the current directory).
    """
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(model, Kernel) and model.tar is None:
        data["tar"] = "none"
    if isinstance(model, File) and model.source is not None:
        data["source"] = source_from(model, base)
    return data
