"""Reading an image's ``org.mobyproject.config`` label into a :class:`ContainerConfig`.

The label holds YAML or JSON text with the same keys as a container entry of a LinuxKit YAML
file (``maskedPaths``, ``capabilities.add``, ``runtime.bindNS``...), except ``name`` and
``image``. Each key is the ``serialization_alias`` of a model field (or the field name when it has
no alias), so the models stay the single description of what a label may say.
"""

from __future__ import annotations

import difflib
import types
from collections import abc
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from kitdsl.dsl import ContainerConfig
from kitdsl.dsl.base import defined_at
from kitdsl.errors import ImageConfigError, Location
from kitdsl.oci.image_config import MOBY_CONFIG_LABEL

_FORBIDDEN = {
    "name": "'name' cannot be set in the label: the system names its containers",
    "image": "'image' cannot be set in the label: the system chooses the image",
}
_HINT = (
    "the label is part of the image: fix the `config` of the package that builds it, "
    "or use another image"
)


def parse_label(
    text: str, *, image: str, location: Location | None = None
) -> ContainerConfig | None:
    """Parse and validate the label text of ``image``; ``None`` when the label is empty.

    Raises :class:`ImageConfigError` naming the image and the offending key, with ``location``
    (the container entry that uses the image) as the place to look.
    """
    if text == "":
        return None  # LinuxKit treats an empty label as no label
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _invalid(image, location, [f"it is not YAML or JSON: {_yaml_problem(exc)}"]) from None
    if not isinstance(data, dict):
        raise _invalid(image, location, [f"it must be an object of settings, not {_kind(data)}"])
    problems = [message for key, message in _FORBIDDEN.items() if key in data]
    translated = _to_field_names(data, ContainerConfig, (), problems)
    if problems:
        raise _invalid(image, location, problems)
    try:
        # The label's origin is the entry that uses the image: that is where a user looks.
        with defined_at(location):
            return ContainerConfig.model_validate(translated, context={"linuxkit_yaml": True})
    except ValidationError as exc:
        raise _invalid(image, location, _describe(exc)) from None


def _kind(data: object) -> str:
    if data is None:
        return "empty"
    if isinstance(data, list):
        return "a list"
    if isinstance(data, str):
        return "a string"
    if isinstance(data, bool):
        return "a boolean"
    if isinstance(data, int | float):
        return "a number"
    return type(data).__name__


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def _invalid(image: str, location: Location | None, problems: list[str]) -> ImageConfigError:
    # LinuxKit prints "The org.mobyproject.config label is invalid:" followed by the problems.
    return ImageConfigError(
        f"image {image}: the {MOBY_CONFIG_LABEL} label is invalid: {problems[0]}",
        location=location,
        details=tuple(problems[1:]),
        hint=_HINT,
    )


# --- keys ------------------------------------------------------------------------------------


def yaml_keys(model: type[BaseModel]) -> dict[str, str]:
    """``{YAML key: field name}`` of ``model``: each field's serialization alias, else its name."""
    return {field.serialization_alias or name: name for name, field in model.model_fields.items()}


def _strip(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` → ``X``; other unions are left as they are."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _model(annotation: Any) -> type[BaseModel] | None:
    stripped = _strip(annotation)
    if isinstance(stripped, type) and issubclass(stripped, BaseModel):
        return stripped
    return None


def _list_item(annotation: Any) -> Any:
    stripped = _strip(annotation)
    return get_args(stripped)[0] if get_origin(stripped) in (list, abc.Sequence) else None


def _path(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _to_field_names(
    data: dict[Any, Any],
    model: type[BaseModel],
    where: tuple[str | int, ...],
    problems: list[str],
) -> dict[str, Any]:
    """Rename YAML keys to field names, recursively; unknown keys are added to ``problems``."""
    keys = yaml_keys(model)
    renamed: dict[str, Any] = {}
    for key, value in data.items():
        if where == () and key in _FORBIDDEN:
            continue
        name = keys.get(key) if isinstance(key, str) else None
        if name is None:
            close = difflib.get_close_matches(str(key), list(keys), n=1)
            suggestion = f"; did you mean {_path((*where, close[0]))!r}?" if close else ""
            problems.append(f"unknown key {_path((*where, str(key)))!r}{suggestion}")
            continue
        renamed[name] = _translate(
            value, model.model_fields[name].annotation, (*where, key), problems
        )
    return renamed


def _translate(
    value: Any, annotation: Any, where: tuple[str | int, ...], problems: list[str]
) -> Any:
    model = _model(annotation)
    if model is not None and isinstance(value, dict):
        return _to_field_names(value, model, where, problems)
    item = _list_item(annotation)
    if item is not None and isinstance(value, list):
        return [_translate(v, item, (*where, i), problems) for i, v in enumerate(value)]
    return value  # anything else is pydantic's to check


# --- validation errors -----------------------------------------------------------------------


def _describe(exc: ValidationError) -> list[str]:
    """One line per problem, with locations spelled as YAML keys (``maskedPaths[0]``)."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        where = _yaml_loc(error["loc"], ContainerConfig)
        message = error["msg"].removeprefix("Value error, ")
        line = f"{where}: {message}" if where else message
        if line not in lines:
            lines.append(line)
    return lines


def _yaml_loc(loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    parts: list[str | int] = []
    annotation: Any = model
    for part in loc:
        current = _model(annotation)
        if isinstance(part, int):
            parts.append(part)
            annotation = _list_item(annotation)
        elif current is not None and part in current.model_fields:
            field = current.model_fields[part]
            parts.append(field.serialization_alias or part)
            annotation = field.annotation
        elif current is not None:
            parts.append(part)
            annotation = None
        # else: a union member's tag such as "int" or "function-after[...]"; users don't care
    return _path(tuple(parts))
