"""What the models expect where: the shape of each field, read once from the pydantic models.

The YAML reader walks a document against these shapes (to reject unknown keys with their line,
and to describe expected types in words); the Python writer uses them to spell modes in octal.
"""

from __future__ import annotations

import types
from collections import abc
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from kitdsl.dsl.types import parse_mode


@dataclass(frozen=True)
class Scalar:
    """A single value; ``expected`` says in words what it may be."""

    expected: str
    is_mode: bool = False


@dataclass(frozen=True)
class ListOf:
    """A YAML sequence."""

    item: Shape


@dataclass(frozen=True)
class MapOf:
    """A mapping from free-form string keys (``sysctl``, ``annotations``)."""

    value: Shape


Shape = type[BaseModel] | Scalar | ListOf | MapOf

_SCALAR_WORDS = {str: "a string", bool: "a boolean (true or false)", int: "an integer"}
_MODE = Scalar('a quoted octal string such as "0644"', is_mode=True)


def _is_mode(metadata: list[Any] | tuple[Any, ...]) -> bool:
    return any(isinstance(item, BeforeValidator) and item.func is parse_mode for item in metadata)


def shape_of(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> Shape:
    """The shape of a value of type ``annotation`` (with pydantic ``metadata`` of the field)."""
    if _is_mode(metadata):
        return _MODE
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return shape_of(inner, extra)
    if origin in (Union, types.UnionType):
        shapes = [shape_of(arg) for arg in get_args(annotation) if arg is not type(None)]
        scalars = [
            shape.expected for shape in shapes if isinstance(shape, Scalar) and shape.expected
        ]
        if len(shapes) == 1 or len(scalars) != len(shapes):
            useful = [s for s in shapes if not isinstance(s, Scalar) or s.expected]
            return useful[0] if useful else Scalar("a value")
        words = list(dict.fromkeys(scalars))
        if "a string" in words:  # a few named strings add nothing to "a string"
            words = [word for word in words if not word.startswith("one of")]
        return Scalar(" or ".join(words))
    if origin in (list, tuple, abc.Sequence):
        return ListOf(shape_of(get_args(annotation)[0]))
    if origin in (dict, abc.Mapping):
        return MapOf(shape_of(get_args(annotation)[1]))
    if origin is Literal:
        choices = get_args(annotation)
        if len(choices) <= 8:
            return Scalar("one of " + ", ".join(repr(choice) for choice in choices))
        return Scalar("a string")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    # Types that YAML cannot spell (ImageProvider) describe nothing, so unions skip them.
    return Scalar(_SCALAR_WORDS.get(annotation, ""))


def field_shape(field: FieldInfo) -> Shape:
    """The shape of one model field."""
    return shape_of(field.annotation, field.metadata)


def yaml_key(name: str, field: FieldInfo) -> str:
    """The LinuxKit YAML key of a field: its serialization alias, else its name."""
    return field.serialization_alias or name


@cache
def field_shapes(model: type[BaseModel]) -> dict[str, Shape]:
    """Python field name → shape, for every field of ``model``."""
    return {name: field_shape(field) for name, field in model.model_fields.items()}


@cache
def yaml_keys(model: type[BaseModel]) -> dict[str, str]:
    """LinuxKit YAML key → Python field name, in field order."""
    return {yaml_key(name, field): name for name, field in model.model_fields.items()}
