"""Turning a pydantic ``ValidationError`` into lines a user can act on."""

from __future__ import annotations

import difflib
from functools import cache

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

import kitdsl.dsl as dsl


@cache
def _all_field_names() -> tuple[str, ...]:
    names: set[str] = set()
    for value in vars(dsl).values():
        if isinstance(value, type) and issubclass(value, BaseModel):
            names.update(value.model_fields)
    return tuple(sorted(names))


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``("services", 0, "env")`` → ``services[0].env``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def describe_error(error: ErrorDetails) -> str:
    """One line for one pydantic error, without pydantic's jargon."""
    loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
    where = format_loc(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        field = str(loc[-1]) if loc else "?"
        close = difflib.get_close_matches(field, _all_field_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown field {field!r}{hint}"
    if kind == "missing":
        return f"{where}: required, but not given"
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{where}: {message}" if where else message


def _is_union_tag(part: int | str) -> bool:
    # pydantic names the union member it tried ("str", "function-before[...]"); users don't care.
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "is-instance"))


def describe_validation_error(exc: ValidationError) -> tuple[str, tuple[str, ...]]:
    """A title (``invalid Service``) and one detail line per distinct problem."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        line = describe_error(error)
        if line not in lines:
            lines.append(line)
    return f"invalid {exc.title}", tuple(lines)
