"""The deb822 format (Debian Policy §5.1): paragraphs of ``Field: value`` lines, separated by
blank lines, with continuation lines that start with a space or a tab.

This general parser serves ``Release`` files, ``.deb`` control files and apt ``.sources``
files. The large ``Packages`` indexes have a faster reader of their own (:mod:`.index`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping


class Deb822Error(ValueError):
    """Text that is not deb822; the message names the line."""


class Paragraph(Mapping[str, str]):
    """One paragraph: field names are case-insensitive, as in Policy; the original spelling
    and order are kept. A multi-line value keeps its continuation lines, each stripped and
    joined with newlines (the first line may be empty, as in ``SHA256:`` of a Release)."""

    def __init__(self, fields: list[tuple[str, str]], line: int = 1) -> None:
        self._fields = {name.lower(): (name, value) for name, value in fields}
        self.line = line
        """The line the paragraph starts on, for messages."""

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __repr__(self) -> str:
        return f"Paragraph({dict(self.items())!r})"


def parse(text: str, *, comments: bool = False) -> list[Paragraph]:
    """Every paragraph of ``text``. With ``comments``, lines starting with ``#`` are skipped
    (apt ``.sources`` files allow them)."""
    paragraphs: list[Paragraph] = []
    fields: list[tuple[str, str]] = []
    start = 1
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if comments and line.startswith("#"):
            continue
        if not line:
            if fields:
                paragraphs.append(Paragraph(fields, start))
                fields = []
            continue
        if line[0] in " \t":
            if not fields:
                raise Deb822Error(f"line {number}: continuation line without a field")
            name, value = fields[-1]
            stripped = line.strip()
            fields[-1] = (name, f"{value}\n{stripped}" if value else stripped)
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name or name.startswith("-"):
            raise Deb822Error(f"line {number}: {line[:60]!r} is not a 'Field: value' line")
        if not fields:
            start = number
        if any(existing.lower() == name.lower() for existing, _ in fields):
            raise Deb822Error(f"line {number}: field {name} appears twice in one paragraph")
        fields.append((name, value.strip()))
    if fields:
        paragraphs.append(Paragraph(fields, start))
    return paragraphs


def parse_one(text: str) -> Paragraph:
    """The single paragraph of a ``Release`` or control file."""
    paragraphs = parse(text)
    if len(paragraphs) != 1:
        raise Deb822Error(f"expected one paragraph, found {len(paragraphs)}")
    return paragraphs[0]
