"""Image references: the Docker reference grammar, and Docker Hub normalisation.

The grammar is the one of ``github.com/distribution/reference``::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]
    tag        := [\\w][\\w.-]{0,127}
    digest     := algorithm ":" hex

A name's first component is a registry domain when it contains ``.`` or ``:``, is
``localhost``, or has upper case, exactly as Docker decides it.

This module sits at the top of the package, not in ``kitdsl.oci``, because the language
(``kitdsl.dsl``) checks references as users write them, and lower stages never import higher
ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = frozenset({"index.docker.io", "registry-1.docker.io"})
OFFICIAL_PREFIX = "library/"
NAME_TOTAL_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ReferenceSyntaxError(ValueError):
    """A string is not a valid image reference; the message says which part is wrong."""


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. ``str()`` gives it back in canonical, fully-qualified form."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path`` without tag or digest."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def with_default_tag(self) -> Reference:
        """The same reference with ``:latest`` when it names neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, "latest", None)
        return self

    @property
    def familiar(self) -> str:
        """The short form Docker prints: ``redis:7`` rather than ``docker.io/library/redis:7``."""
        path = self.path
        if self.domain == DEFAULT_DOMAIN:
            path = path.removeprefix(OFFICIAL_PREFIX)
            text = path
        else:
            text = f"{self.domain}/{path}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _split_domain(name: str) -> tuple[str | None, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, rest
    return None, name


def parse(text: str) -> Reference:
    """Parse and normalise ``text``; raise :class:`ReferenceSyntaxError` saying what is wrong."""
    if not text:
        raise ReferenceSyntaxError("an image reference cannot be empty")
    if text != text.strip():
        raise ReferenceSyntaxError("an image reference cannot contain spaces")
    remainder, at, digest = text.partition("@")
    if at:
        if not _DIGEST.fullmatch(digest):
            raise ReferenceSyntaxError(
                f"invalid digest {digest!r}: expected algorithm:hex, e.g. sha256:<64 hex digits>"
            )
        algorithm, _, hexpart = digest.partition(":")
        if algorithm == "sha256" and not _SHA256_HEX.fullmatch(hexpart):
            raise ReferenceSyntaxError(
                f"invalid sha256 digest {digest!r}: expected 64 lower-case hex digits"
            )
    else:
        digest = ""
    name, tag = remainder, None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ReferenceSyntaxError(
                f"invalid tag {tag!r}: a tag is up to 128 letters, digits, '_', '.' or '-' "
                "and cannot start with '.' or '-'"
            )
    domain, path = _split_domain(name)
    if domain is not None and not _DOMAIN.fullmatch(domain):
        raise ReferenceSyntaxError(f"invalid registry host {domain!r}")
    if not path:
        raise ReferenceSyntaxError("the repository name is missing")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            if component.lower() != component:
                raise ReferenceSyntaxError(f"repository name {path!r} must be lower case")
            raise ReferenceSyntaxError(
                f"invalid repository name component {component!r} in {path!r}: use lower-case "
                "letters and digits separated by '.', '_', '__' or '-'"
            )
    if len(name) > NAME_TOTAL_MAX:
        raise ReferenceSyntaxError(f"repository name is longer than {NAME_TOTAL_MAX} characters")
    if domain is None or domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return Reference(domain, path, tag, digest or None)


def image_key(text: str) -> str:
    """How a build names an image reference: canonical, ``:latest`` when it names neither tag
    nor digest, a digest kept (``redis`` → ``docker.io/library/redis:latest``). Lockfiles,
    the planner and image resolution all use this one key."""
    return str(parse(text).with_default_tag())


def canonical(text: str) -> str:
    """``redis`` → ``docker.io/library/redis``; no ``:latest`` is added (LinuxKit does the same)."""
    return str(parse(text))
