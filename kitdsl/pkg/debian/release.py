"""``Release`` files: what a suite is, when it was made, until when it may be trusted, and the
sha256 and size of every index it lists (the chain of trust from the signature to each
``Packages`` file, and from there to each ``.deb``)."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kitdsl.pkg.debian import deb822
from kitdsl.pkg.debian.errors import ReleaseError
from kitdsl.pkg.debian.openpgp import Signer

FUTURE_TOLERANCE = 24 * 3600
"""Seconds a Release's ``Date`` may lie ahead of our clock (clocks differ; apt allows more)."""


@dataclass(frozen=True)
class IndexFile:
    """One file a Release lists: its path below ``dists/SUITE/``, sha256 and size."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """A parsed ``Release`` (or the text of an ``InRelease``)."""

    suite: str
    codename: str
    date: datetime | None
    valid_until: datetime | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    acquire_by_hash: bool
    files: Mapping[str, IndexFile]
    """Path below ``dists/SUITE/`` → its SHA256 entry."""
    fields: Mapping[str, str] = field(repr=False, default_factory=dict)
    """Every field as written (``Origin``, ``Label``, ``Version``, ...)."""
    signers: tuple[Signer, ...] = ()
    """The keys whose signatures verified, when it came signed."""
    no_arch_all_packages: bool = False
    """``No-Support-for-Architecture-all: Packages``: ``all`` packages are listed in every
    architecture's index, not in a ``binary-all`` one of their own."""

    @classmethod
    def parse(cls, text: str, *, what: str, signers: tuple[Signer, ...] = ()) -> Release:
        """Read a Release; ``what`` (its URL) names it in errors."""
        try:
            paragraph = deb822.parse_one(text)
        except deb822.Deb822Error as exc:
            raise ReleaseError(f"{what} is not a valid Release file: {exc}") from None
        files: dict[str, IndexFile] = {}
        for number, line in enumerate(paragraph.get("SHA256", "").splitlines(), start=1):
            parts = line.split()
            if len(parts) != 3 or not parts[1].isdigit() or len(parts[0]) != 64:
                raise ReleaseError(f"{what}: line {number} of its SHA256 list is malformed")
            files[parts[2]] = IndexFile(parts[2], parts[0].lower(), int(parts[1]))
        if not files:
            raise ReleaseError(
                f"{what} lists no SHA256 checksums",
                hint="kitdsl only uses indexes it can check by sha256 (MD5 and SHA-1 are "
                "not enough)",
            )
        return cls(
            suite=paragraph.get("Suite", ""),
            codename=paragraph.get("Codename", ""),
            date=_date(paragraph, "Date", what),
            valid_until=_date(paragraph, "Valid-Until", what),
            architectures=tuple(paragraph.get("Architectures", "").split()),
            components=tuple(paragraph.get("Components", "").split()),
            acquire_by_hash=paragraph.get("Acquire-By-Hash", "").lower() == "yes",
            files=files,
            fields=dict(paragraph.items()),
            signers=signers,
            no_arch_all_packages="Packages"
            in paragraph.get("No-Support-for-Architecture-all", "").split(),
        )

    def check(
        self, *, suite: str, what: str, now: datetime | None = None, allow_expired: bool = False
    ) -> None:
        """Refuse a Release for another suite than ``suite``, or one that is expired
        (``Valid-Until`` passed) or dated in the future, unless ``allow_expired`` (for
        snapshots, whose Release files are expired by design)."""
        if suite not in (self.suite, self.codename):
            raise ReleaseError(
                f"{what} is for suite {self.suite or '?'} ({self.codename or '?'}), not {suite}",
                hint="the mirror may be serving an old or wrong file (a replay); check the URL",
            )
        if allow_expired:
            return
        current = now or datetime.now(UTC)
        if self.valid_until is not None and self.valid_until < current:
            raise ReleaseError(
                f"{what} expired on {self.valid_until:%Y-%m-%d %H:%M:%S} UTC "
                "(its Valid-Until has passed)",
                hint="the mirror is out of date or replaying an old Release; use a current "
                "mirror, or a snapshot (Mirror.snapshot(...)) to read an old archive on "
                "purpose",
            )
        if self.date is not None and self.date.timestamp() > current.timestamp() + (
            FUTURE_TOLERANCE
        ):
            raise ReleaseError(
                f"{what} is dated {self.date:%Y-%m-%d %H:%M:%S} UTC, in the future",
                hint="check this machine's clock",
            )

    def index_file(self, *candidates: str) -> IndexFile | None:
        """The first of ``candidates`` (paths) the Release lists."""
        for path in candidates:
            if path in self.files:
                return self.files[path]
        return None


def _date(paragraph: deb822.Paragraph, name: str, what: str) -> datetime | None:
    value = paragraph.get(name)
    if not value:
        return None
    # Debian writes RFC 2822 dates ("Sat, 11 Jul 2026 10:16:37 UTC"), "UTC" included.
    try:
        moment = email.utils.parsedate_to_datetime(value.replace("UTC", "+0000"))
    except (TypeError, ValueError):
        raise ReleaseError(f"{what}: its {name} {value!r} is not a date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
