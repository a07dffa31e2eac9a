"""Content digests (``sha256:<hex>``): parsing, computing, and verifying while streaming."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from kitdsl.errors import ImageError

ALGORITHM = "sha256"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class DigestError(ImageError):
    """Content does not match the digest or size it was announced with."""


def is_digest(text: str) -> bool:
    """True for a well-formed ``sha256:<64 lower-case hex>`` digest (the only kind we accept)."""
    return bool(_DIGEST.fullmatch(text))


def check_digest(text: str) -> str:
    """``text`` if it is a sha256 digest, else a :class:`DigestError` (never a path to trust)."""
    if not is_digest(text):
        raise DigestError(f"not a sha256 digest: {text!r}")
    return text


def digest_of(data: bytes) -> str:
    """The digest of ``data``."""
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def hex_of(digest: str) -> str:
    """The hex part of a checked digest: the blob's file name in an OCI layout."""
    return check_digest(digest).partition(":")[2]


@dataclass
class Verifier:
    """Hashes bytes as they stream by; :meth:`finish` checks digest and size.

    Size is checked on every update too, so a server that sends more than it announced is
    stopped early instead of filling the disk.
    """

    expected_digest: str | None = None
    expected_size: int | None = None
    what: str = "content"
    size: int = 0
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)

    def update(self, chunk: bytes) -> None:
        """Account for ``chunk``."""
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestError(
                f"{self.what} is larger than the {self.expected_size} bytes announced"
            )
        self._hash.update(chunk)

    @property
    def digest(self) -> str:
        """The digest of everything seen so far."""
        return f"{ALGORITHM}:{self._hash.hexdigest()}"

    def finish(self) -> str:
        """The digest, after checking it and the size against what was expected."""
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestError(
                f"{self.what} is truncated: {self.size} of {self.expected_size} bytes"
            )
        if self.expected_digest is not None and self.digest != self.expected_digest:
            raise DigestError(
                f"{self.what} does not match its digest: expected {self.expected_digest}, "
                f"got {self.digest}"
            )
        return self.digest
