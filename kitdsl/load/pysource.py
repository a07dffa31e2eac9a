"""Writing a :class:`System` as an idiomatic ``system.py``: the way from LinuxKit YAML to Python.

The output is what a person would write: keyword arguments only for fields that differ from
their defaults, modes as ``0o644``, and line breaks where ``ruff format`` (and black) put them, so
formatting the file changes nothing. Lines are laid out for 88 columns, the default of ruff and
black, which most projects keep.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from kitdsl.dsl.models import File
from kitdsl.dsl.system import System
from kitdsl.dsl.types import ImageProvider
from kitdsl.load._fields import Scalar, field_shapes
from kitdsl.load.file_sources import source_from

__all__ = ["system_to_python"]

LINE_LENGTH = 88
_INDENT = 4


def system_to_python(system: System, *, source: str | None = None, base: Path | None = None) -> str:
    """Python source that defines ``system``; importing it gives an equal system.

    ``source`` (e.g. ``"linuxkit.yml"``) is named in the module docstring. ``base`` is the
    folder the output will be saved in (``None``: the current directory): relative file sources
    are rewritten to point at the same files from there (see
    :func:`~kitdsl.load.file_sources.source_from`). The result imports only the classes it uses
    and is stable under ``ruff format`` with its default line length. An :class:`ImageProvider`
    is written as its reference string: the code that defines the package is not reproduced.
    """
    writer = _Writer(base)
    body = _render(writer.model(system), 0, "system = ", "")
    names = sorted(writer.classes, key=lambda name: (name.lower(), name))
    import_line = f"from kitdsl import {', '.join(names)}"
    if _width(import_line) > LINE_LENGTH:  # formatters always give long imports one per line
        import_line = "\n".join(["from kitdsl import (", *(f"    {n}," for n in names), ")"])
    about = f"Converted from {source}." if source else "A system converted to Python."
    docstring = '"""' + about.replace("\\", "\\\\").replace('"', '\\"') + '"""'
    return "\n".join([docstring, "", import_line, "", *body, ""])


# --- an expression tree, and how formatters lay it out ------------------------------------------


@dataclass(frozen=True)
class _Atom:
    text: str


@dataclass(frozen=True)
class _Call:
    name: str
    args: list[tuple[str, _Expr]]


@dataclass(frozen=True)
class _List:
    items: list[_Expr]


@dataclass(frozen=True)
class _Dict:
    items: list[tuple[str, _Expr]]


@dataclass(frozen=True)
class _Text:
    value: str


_Expr = _Atom | _Text | _Call | _List | _Dict
_LINES = re.compile(r"[^\n]*\n|[^\n]+")
_WORDS = re.compile(r"\S+\s*|\s+")


def _flat(expr: _Expr) -> str:
    if isinstance(expr, _Atom):
        return expr.text
    if isinstance(expr, _Text):
        return _string(expr.value)
    if isinstance(expr, _Call):
        return f"{expr.name}({', '.join(f'{key}={_flat(value)}' for key, value in expr.args)})"
    if isinstance(expr, _List):
        return f"[{', '.join(_flat(item) for item in expr.items)}]"
    return "{" + ", ".join(f"{key}: {_flat(value)}" for key, value in expr.items) + "}"


def _render(expr: _Expr, indent: int, head: str, tail: str) -> list[str]:
    """Lines for ``head + expr + tail`` at ``indent``, split as black and ruff split them.

    What fits stays on one line. Otherwise the brackets open: a call's arguments first try one
    line of their own; a list or dict, like a call whose arguments still do not fit, gets one
    item per line with a trailing comma. A lone item is split inside instead, without a comma.
    A long string of several lines becomes one literal per line, concatenated in parentheses.
    """
    pad = " " * indent
    flat = pad + head + _flat(expr) + tail
    if isinstance(expr, _Atom) or _width(flat) <= LINE_LENGTH:
        return [flat]
    if isinstance(expr, _Text):
        # Formatters join the pieces again when the whole literal fits on a line of its own.
        inner_pad = " " * (indent + _INDENT)
        parts = _pieces(expr.value, LINE_LENGTH - indent - _INDENT)
        if len(parts) < 2 or _width(inner_pad + _flat(expr)) <= LINE_LENGTH:
            return [flat]
        return [pad + head + "(", *(inner_pad + _string(p) for p in parts), pad + ")" + tail]
    if isinstance(expr, _Call):
        opening, closing = f"{expr.name}(", ")"
        items = [(f"{key}=", value) for key, value in expr.args]
    elif isinstance(expr, _List):
        opening, closing, items = "[", "]", [("", item) for item in expr.items]
    else:
        opening, closing, items = "{", "}", [(f"{key}: ", value) for key, value in expr.items]
    if not items:
        return [flat]
    inner = indent + _INDENT
    if len(items) == 1:
        lines = _render(items[0][1], inner, items[0][0], "")
    else:
        one_line = " " * inner + ", ".join(prefix + _flat(value) for prefix, value in items)
        if isinstance(expr, _Call) and _width(one_line) <= LINE_LENGTH:
            lines = [one_line]
        else:
            lines = [line for prefix, value in items for line in _render(value, inner, prefix, ",")]
    return [pad + head + opening, *lines, pad + closing + tail]


def _pieces(text: str, room: int) -> list[str]:
    """``text`` cut after each line break, and long lines between words, to fit ``room``."""
    pieces: list[str] = []
    for line in _LINES.findall(text):
        current = ""
        for word in _WORDS.findall(line):
            if current and _width(_string(current + word)) > room:
                pieces.append(current)
                current = ""
            current += word
        pieces.append(current)
    return pieces


def _width(line: str) -> int:
    """Columns ``line`` takes, as formatters count them (wide East Asian characters take two)."""
    if line.isascii():
        return len(line)
    width = 0
    for char in line:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


# --- models as expressions ----------------------------------------------------------------------


class _Writer:
    """Models as constructor calls; collects the classes the calls name."""

    def __init__(self, base: Path | None) -> None:
        self.base = base
        self.classes: set[str] = set()

    def model(self, model: BaseModel) -> _Call:
        """A constructor call with the fields that differ from their defaults, in field order."""
        name = type(model).__name__
        self.classes.add(name)
        args: list[tuple[str, _Expr]] = []
        for field_name, field in type(model).model_fields.items():
            value = getattr(model, field_name)
            if not field.is_required() and value == field.get_default(call_default_factory=True):
                continue
            shape = field_shapes(type(model))[field_name]
            if isinstance(shape, Scalar) and shape.is_mode and isinstance(value, int):
                args.append((field_name, _Atom(f"0o{value:o}")))
            elif isinstance(model, File) and field_name == "source":
                args.append((field_name, self.value(source_from(model, self.base))))
            else:
                args.append((field_name, self.value(value)))
        return _Call(name, args)

    def value(self, value: object) -> _Expr:
        if isinstance(value, BaseModel):
            return self.model(value)
        if isinstance(value, ImageProvider):
            return _Text(value.reference)
        if isinstance(value, list | tuple):
            return _List([self.value(item) for item in value])
        if isinstance(value, dict):
            return _Dict([(_string(str(key)), self.value(item)) for key, item in value.items()])
        if isinstance(value, str):
            return _Text(value)
        if value is None or isinstance(value, bool | int):
            return _Atom(repr(value))
        raise TypeError(f"cannot write {type(value).__name__} values as Python source")


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(text: str) -> str:
    """A string literal as ruff writes it: double quotes unless that needs more escapes."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == quote:
            out.append("\\" + char)
        elif not char.isprintable():
            out.append(repr(char)[1:-1])  # Python's own escape: \x85, \u2028, \U000e0001
        else:
            out.append(char)
    return quote + "".join(out) + quote
