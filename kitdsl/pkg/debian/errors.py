"""The ways reading a Debian archive fails; all are :class:`~kitdsl.errors.PackageError`
(exit code 10), split so callers and tests can tell them apart."""

from __future__ import annotations

from kitdsl.errors import PackageError


class SignatureError(PackageError):
    """An archive's signature is missing, malformed, made by an unknown key or wrong; or a
    keyring cannot be read. Nothing signed by it is used."""


class ReleaseError(PackageError):
    """A ``Release`` file or ``Packages`` index is malformed, expired, or not the one asked
    for."""


class ResolveError(PackageError):
    """A package is unknown, or a dependency cannot be satisfied."""


class DownloadError(PackageError):
    """A file could not be fetched from a mirror, or did not match its checksum."""

    def __init__(
        self, message: str, *, url: str, hint: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, hint=hint, details=(f"url: {url}",))
        self.url = url
        self.status = status


class DebError(PackageError):
    """A ``.deb`` file is malformed or holds an entry that must not be unpacked."""
