"""Debian version numbers (Policy §5.6.12) and their ordering, as dpkg orders them.

A version is ``[epoch:]upstream[-revision]``. Epochs compare as numbers; upstream and revision
are compared piecewise, alternating a run of non-digits (compared character by character, with
``~`` before everything, even the end of the string, then letters, then other characters) and
a run of digits (compared as numbers). So ``1.0~rc1 < 1.0 < 1.0a < 1.0+b1``, and ``1.01 == 1.1``.
"""

from __future__ import annotations

import functools
import re

_EPOCH = re.compile(r"[0-9]+")
_RUNS = re.compile(r"([^0-9]*)([0-9]*)")
_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class VersionError(ValueError):
    """A string that is not a Debian version."""


@functools.total_ordering
class Version:
    """A parsed version; compares (and hashes) as dpkg does, so ``Version("1.0") ==
    Version("0:1.0-0")``."""

    __slots__ = ("_key", "epoch", "revision", "text", "upstream")

    def __init__(self, text: str) -> None:
        self.text = text
        self.epoch, self.upstream, self.revision = split_version(text)
        self._key = (self.epoch, _canonical(self.upstream), _canonical(self.revision))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: Version) -> bool:
        return compare_versions(self.text, other.text) < 0

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def split_version(text: str) -> tuple[int, str, str]:
    """``(epoch, upstream, revision)``; the revision is empty when there is none."""
    value = text.strip()
    if not value:
        raise VersionError("empty version")
    epoch = 0
    if ":" in value:
        head, _, value = value.partition(":")
        if not _EPOCH.fullmatch(head):
            raise VersionError(f"version {text!r} has an epoch that is not a number")
        epoch = int(head)
    upstream, sep, revision = value.rpartition("-")
    if not sep:
        upstream, revision = value, ""
    if not upstream:
        raise VersionError(f"version {text!r} has an empty upstream part")
    return epoch, upstream, revision


def _order(char: str) -> int:
    """dpkg's weight of one character of a non-digit run (``""`` is the end of the run)."""
    if char == "~":
        return -1
    if not char or char in _DIGITS:
        return 0
    if char in _LETTERS:
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    """dpkg's ``verrevcmp`` on an upstream part or a revision."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and a[i] not in _DIGITS) or (j < len(b) and b[j] not in _DIGITS):
            # Both sides advance only past equal characters: a digit or the end weighs 0,
            # which no other character does, so a difference returns first.
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i += 1
            j += 1
        start_i, start_j = i, j
        while i < len(a) and a[i] in _DIGITS:
            i += 1
        while j < len(b) and b[j] in _DIGITS:
            j += 1
        # Numbers compared as digit strings, so a huge one costs no int conversion.
        x, y = a[start_i:i].lstrip("0"), b[start_j:j].lstrip("0")
        if (len(x), x) != (len(y), y):
            return -1 if (len(x), x) < (len(y), y) else 1
    return 0


def _canonical(part: str) -> tuple[tuple[int, ...] | str, ...]:
    """A form of ``part`` equal for exactly the strings dpkg considers equal: the runs of
    non-digits (as weights) and digits (without leading zeros), with trailing empty runs dropped."""
    pieces: list[tuple[int, ...] | str] = []
    for letters, digits in _RUNS.findall(part):
        if letters or digits:
            pieces += [tuple(_order(c) for c in letters), digits.lstrip("0")]
    while len(pieces) >= 2 and pieces[-2] == () and pieces[-1] == "":
        del pieces[-2:]
    return tuple(pieces)


@functools.lru_cache(maxsize=65536)
def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, with, or after ``b`` (``dpkg --compare-versions``)."""
    epoch_a, upstream_a, revision_a = split_version(a)
    epoch_b, upstream_b, revision_b = split_version(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return _compare_part(upstream_a, upstream_b) or _compare_part(revision_a, revision_b)


OPERATORS = ("<<", "<=", "=", ">=", ">>")


def satisfies(version: str, operator: str, wanted: str) -> bool:
    """Whether ``version`` meets ``operator wanted`` (``<<``, ``<=``, ``=``, ``>=``, ``>>``;
    the obsolete ``<`` and ``>`` mean ``<=`` and ``>=``, as in dpkg)."""
    result = compare_versions(version, wanted)
    match operator:
        case "<<":
            return result < 0
        case "<=" | "<":
            return result <= 0
        case "=":
            return result == 0
        case ">=" | ">":
            return result >= 0
        case ">>":
            return result > 0
    raise VersionError(f"unknown version operator {operator!r}")
