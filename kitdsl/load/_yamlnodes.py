"""YAML as LinuxKit reads it: yaml.v3 scalar resolution on top of PyYAML's node tree.

PyYAML implements YAML 1.1, where ``yes``, ``on`` and ``0644`` change meaning. LinuxKit decodes
with Go's yaml.v3, which follows the 1.2 core schema (``yes`` is a string, only ``true``/``false``
are booleans) with a few Go-flavoured number rules. So we let PyYAML build the node tree (which
keeps the line of every node) but resolve plain scalars ourselves, and the writer uses the same
rules to decide which strings need quotes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Protocol

import yaml
import yaml.reader
from yaml.composer import Composer
from yaml.emitter import Emitter
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.representer import SafeRepresenter
from yaml.resolver import BaseResolver, Resolver
from yaml.scanner import Scanner
from yaml.serializer import Serializer

from kitdsl.errors import ConfigError, Location

__all__ = [
    "PLAIN_TAG",
    "MappingNode",
    "Node",
    "ScalarNode",
    "SequenceNode",
    "compose",
    "describe_node",
    "describe_value",
    "dump",
    "node_location",
    "resolve_plain",
    "scalar_value",
]

PLAIN_TAG = "tag:kitdsl,2024:plain"
"""Tag given to unquoted, untagged scalars; :func:`resolve_plain` decides what they are."""

STR_TAG = "tag:yaml.org,2002:str"
_TAG_OF_TYPE = {
    type(None): "tag:yaml.org,2002:null",
    bool: "tag:yaml.org,2002:bool",
    int: "tag:yaml.org,2002:int",
    float: "tag:yaml.org,2002:float",
    str: STR_TAG,
}

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
# yaml.v3's yamlStyleFloat, and the shape Go's ParseFloat accepts after a leading '.'.
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_DIGITS = {
    2: re.compile("[01]+"),
    8: re.compile("[0-7]*"),  # may be empty: "0" is the prefix alone
    10: re.compile("[0-9]+"),
    16: re.compile("[0-9a-fA-F]+"),
}


def _go_parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, 64)``, falling back to ``ParseUint`` as yaml.v3 does."""
    negative = text[:1] == "-"
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not digits:
        return None
    base = 10
    if digits[0] == "0":
        prefix = digits[1:2].lower()
        if len(digits) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], digits[2:]
        else:
            base, digits = 8, digits[1:]  # Go reads a leading 0 as octal ("0644")
    if not _DIGITS[base].fullmatch(digits):
        return None
    value = int(digits, base) if digits else 0
    if negative:
        return -value if value <= 2**63 else None
    if value < 2**63 or (value < 2**64 and text[0] != "+"):
        return value
    return None


def resolve_plain(text: str) -> object:
    """The value of an unquoted scalar, as yaml.v3 decodes it into an untyped value.

    Timestamps stay strings: yaml.v3 keeps them as text when decoding into ``interface{}``.
    """
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    first = text[0]
    if first == ".":
        return float(text) if _DOT_FLOAT.fullmatch(text) else text
    if first in "+-0123456789":
        plain = text.replace("_", "")
        number = _go_parse_int(plain)
        if number is not None:
            return number
        if _FLOAT.fullmatch(plain):
            return float(plain)
    return text


def scalar_value(node: ScalarNode) -> object:
    """The value of a scalar node: plain ones resolved like yaml.v3, quoted ones are strings.

    Raises ``ValueError`` for explicit tags we do not understand or that do not fit the text.
    """
    if node.tag == PLAIN_TAG:
        return resolve_plain(node.value)
    if node.tag == STR_TAG:
        return node.value
    for kind, tag in _TAG_OF_TYPE.items():
        if node.tag == tag:
            value = resolve_plain(node.value)
            if type(value) is not kind:
                raise ValueError(f"{node.value!r} is not a valid {tag.rsplit(':', 1)[-1]}")
            return value
    raise ValueError(f"unsupported YAML tag {node.tag!r}")


def _default_tag(kind: type[Node]) -> str:
    if kind is ScalarNode:
        return STR_TAG
    return "tag:yaml.org,2002:seq" if kind is SequenceNode else "tag:yaml.org,2002:map"


class _LoadResolver(BaseResolver):
    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            return PLAIN_TAG
        return _default_tag(kind)


class _Loader(Reader, Scanner, Parser, Composer, _LoadResolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _LoadResolver.__init__(self)


class _NodeSource(Protocol):
    def get_single_node(self) -> Node | None: ...
    def dispose(self) -> None: ...


_LOADER: Callable[[str], _NodeSource] = _Loader
if yaml.__with_libyaml__:  # libyaml's parser is four times faster on large files
    from yaml._yaml import CParser

    class _FastLoader(CParser, _LoadResolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _LoadResolver.__init__(self)

    _LOADER = _FastLoader


def compose(text: str, file: str) -> Node | None:
    """The node tree of ``text`` (``None`` for an empty document); syntax errors become
    :class:`ConfigError` at the offending line and column."""
    loader: _NodeSource | None = None
    try:
        loader = _LOADER(text)  # the reader checks for control characters right away
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if "expected a single document" in str(exc.context):
            problem = "a LinuxKit file holds a single YAML document; remove the '---' separator"
        details: tuple[str, ...] = ()
        if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            details = (f"{exc.context} at line {exc.context_mark.line + 1}",)
        raise ConfigError(
            f"YAML syntax error: {problem}",
            location=_mark_location(file, mark),
            details=details,
        ) from None
    except yaml.reader.ReaderError as exc:  # a control character: no mark, and libyaml counts
        position = _first_control_character(text)  # bytes, so find it again
        line = text.count("\n", 0, position) + 1
        column = position - text.rfind("\n", 0, position)
        raise ConfigError(
            f"YAML syntax error: character {chr(exc.character)!r} is not allowed in YAML text",
            location=Location(file, line, column),
            hint=f'write it as an escape inside double quotes: "{repr(chr(exc.character))[1:-1]}"',
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


def _first_control_character(text: str) -> int:
    match = Reader.NON_PRINTABLE.search(text)
    return match.start() if match else 0


def _mark_location(file: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(file)
    return Location(file, mark.line + 1, mark.column + 1)


def node_location(file: str, node: Node) -> Location:
    """``file:line:column`` of the first character of ``node``."""
    return _mark_location(file, node.start_mark)


def describe_node(node: Node) -> str:
    """A node in words, for error messages: ``a list``, ``the string 'yes'``."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    try:
        return describe_value(scalar_value(node)) if isinstance(node, ScalarNode) else "?"
    except ValueError:
        return repr(node.value)


def describe_value(value: object) -> str:
    """A resolved scalar in words: ``the number 5``, ``the boolean true``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list) else repr(value)


# --- writing ----------------------------------------------------------------------------------


class _DumpResolver(BaseResolver):
    """Tells the emitter which plain scalars yaml.v3 would read back as something else."""

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            return _TAG_OF_TYPE[type(resolve_plain(value))]
        return _default_tag(kind)


class _Dumper(Emitter, Serializer, SafeRepresenter, _DumpResolver):
    def __init__(self, stream: Any, **_options: Any) -> None:
        Emitter.__init__(
            self,
            stream,
            canonical=False,
            indent=2,
            width=1 << 20,  # never fold long strings
            allow_unicode=True,
            line_break="\n",
        )
        Serializer.__init__(self, explicit_start=False, explicit_end=False)
        SafeRepresenter.__init__(self, default_flow_style=False, sort_keys=False)
        _DumpResolver.__init__(self)

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent lists under their key ("  - name: ..."), as LinuxKit's examples do.
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # never write anchors, even for repeated values


# Line breaks other than '\n' would be normalised when a literal block is read back.
_ODD_BREAKS = re.compile("[\r\x85\u2028\u2029]")
_YAML11 = Resolver()


def _represent_str(dumper: _Dumper, value: str) -> ScalarNode:
    style: str | None = None
    yaml11_tag = _YAML11.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    if not isinstance(resolve_plain(value), str) or yaml11_tag != STR_TAG:
        # "0644", "1e5", "" and "true" must stay strings for LinuxKit; "yes" and "on" are
        # quoted too, for readers that still follow YAML 1.1.
        style = '"'
    elif _ODD_BREAKS.search(value):
        style = '"'  # only double quotes can escape them
    elif "\n" in value:
        style = "|"  # the emitter falls back to quotes when a literal block cannot hold it
    return dumper.represent_scalar(STR_TAG, value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    """Block-style YAML of plain data (dicts in their order, lists, scalars)."""
    text: str = yaml.dump(data, Dumper=_Dumper)
    return text
