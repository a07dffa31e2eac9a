"""JSON bytes exactly as Go's ``json.MarshalIndent(v, "", "    ")`` writes them.

LinuxKit writes ``config.json`` and ``runtime.json`` with Go's encoder, and reproducible builds
compare those bytes, so we match it character for character:

* 4-space indent, ``"key": value``, ``[]`` and ``{}`` for empty containers, no trailing newline;
* non-ASCII text is written as UTF-8, except U+2028 and U+2029, which Go escapes;
* ``<``, ``>`` and ``&`` are escaped as ``\\u003c``, ``\\u003e``, ``\\u0026`` (Go's default
  HTML-safe escaping);
* control characters use ``\\n``, ``\\r``, ``\\t``, ``\\b``, ``\\f`` (Go 1.22 and later) or
  ``\\u00XX`` with lower-case hex, as Python does;
* text that is not valid Unicode (a lone surrogate) becomes ``\\ufffd``, as Go writes invalid
  UTF-8.

Key order is the order of the dicts given: callers build them in Go struct order. Go sorts map
keys; callers sort the dicts that stand for Go maps (see :func:`sorted_map`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# Characters Python leaves alone but Go escapes. They can only occur inside JSON strings (never
# in the structure), so replacing them in the whole text is safe.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPED = re.compile("[<>&\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def marshal_indent(value: Any) -> bytes:
    """Encode ``value`` (dicts, lists, str, int, bool, None) as Go's MarshalIndent does."""
    text = json.dumps(value, indent=4, ensure_ascii=False, allow_nan=False)
    text = _GO_ESCAPED.sub(lambda match: _GO_ESCAPES[match.group()], text)
    text = _SURROGATE.sub("\\\\ufffd", text)
    return text.encode("utf-8")


def sorted_map(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A dict standing for a Go map: Go's encoder writes map keys in sorted (byte) order."""
    # Code point order equals UTF-8 byte order, which is what Go sorts by.
    return {key: mapping[key] for key in sorted(mapping)}
