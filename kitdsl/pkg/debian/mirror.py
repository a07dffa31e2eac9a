"""Where packages come from: a :class:`Mirror` is an archive URL, a suite, components and one
architecture; it can be written by hand, read from a machine's apt sources, or point at a
point in time on snapshot.debian.org."""

from __future__ import annotations

import platform
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from kitdsl.log import warn
from kitdsl.pkg.debian import deb822
from kitdsl.pkg.debian.errors import ReleaseError

DEFAULT_URL = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
SNAPSHOT_URL = "http://snapshot.debian.org/archive"
_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_MACHINE_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "armhf",
    "i686": "i386",
    "i386": "i386",
    "ppc64le": "ppc64el",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def _url(value: str) -> str:
    if not re.match(r"https?://[^/\s]+", value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+_~-]*", value):
        raise ValueError(f"{value!r} is not a valid suite, component or architecture name")
    return value


def _names(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("at least one component is needed")
    return tuple(_name(item) for item in value)


class Mirror(BaseModel):
    """One suite of a Debian archive, for one architecture."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    url: Annotated[str, AfterValidator(_url)] = DEFAULT_URL
    """The archive's base URL, the folder holding ``dists/`` and ``pool/`` (stored without
    a trailing slash)."""
    suite: Annotated[str, AfterValidator(_name)] = DEFAULT_SUITE
    """A codename (``bookworm``) or suite (``stable``); pinning a codename keeps a build from
    jumping to the next release."""
    components: Annotated[tuple[str, ...], AfterValidator(_names)] = ("main",)
    architecture: Annotated[str, AfterValidator(_name)] = "amd64"
    """The Debian architecture name (``amd64``, ``arm64``, ...); ``all`` packages come too."""
    check_valid_until: bool = True
    """Refuse a Release whose ``Valid-Until`` has passed. Off for snapshots, whose Release
    files are old on purpose; otherwise an expired Release means a stale or replaying mirror."""
    keyring: Path | None = None
    """A keyring file or folder to verify this archive with, instead of Debian's keys shipped
    with kitdsl (apt's ``Signed-By``)."""

    @property
    def dists_url(self) -> str:
        """The URL of ``dists/SUITE``."""
        return f"{self.url}/dists/{self.suite}"

    def __str__(self) -> str:
        return f"{self.url} {self.suite} {' '.join(self.components)} [{self.architecture}]"

    @classmethod
    def snapshot(
        cls,
        timestamp: str | datetime,
        *,
        suite: str = DEFAULT_SUITE,
        components: tuple[str, ...] = ("main",),
        architecture: str = "amd64",
        archive: str = "debian",
    ) -> Mirror:
        """The archive as it was at ``timestamp`` on snapshot.debian.org
        (``http://snapshot.debian.org/archive/debian/20240101T000000Z/``): a fixed input,
        for builds that must give the same result next year. ``timestamp`` is a datetime
        (naive means UTC) or ``YYYYMMDDTHHMMSSZ``. ``Valid-Until`` is not checked."""
        if isinstance(timestamp, datetime):
            moment = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
            stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        elif _TIMESTAMP.fullmatch(timestamp):
            stamp = timestamp
        else:
            raise ReleaseError(
                f"snapshot timestamp {timestamp!r} is not of the form YYYYMMDDTHHMMSSZ",
                hint="for example Mirror.snapshot('20240101T000000Z')",
            )
        return cls(
            url=f"{SNAPSHOT_URL}/{_name(archive)}/{stamp}",
            suite=suite,
            components=components,
            architecture=architecture,
            check_valid_until=False,
        )

    @classmethod
    def from_apt_sources(
        cls, root: str | Path = "/", *, architecture: str | None = None
    ) -> list[Mirror]:
        """The ``deb`` entries of a machine's apt configuration below ``root``:
        ``etc/apt/sources.list`` and ``etc/apt/sources.list.d/*.list`` (one-line format) and
        ``*.sources`` (deb822 format). One mirror per URL and suite; entries limited to
        other architectures, disabled, source-only, flat or not over HTTP are left out.
        ``architecture`` defaults to this machine's."""
        arch = architecture or host_architecture()
        apt = Path(root) / "etc" / "apt"
        files = [apt / "sources.list"]
        if (apt / "sources.list.d").is_dir():
            files += sorted((apt / "sources.list.d").iterdir())
        mirrors: list[Mirror] = []
        for file in files:
            if not file.is_file():
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
            if file.suffix == ".sources":
                entries = _deb822_entries(text, file)
            elif file.suffix == ".list" or file.name == "sources.list":
                entries = _one_line_entries(text, file)
            else:
                continue
            for entry in entries:
                mirror = _mirror(entry, arch, file)
                if mirror is not None and mirror not in mirrors:
                    mirrors.append(mirror)
        return mirrors


def host_architecture() -> str:
    """This machine's Debian architecture name (``amd64`` on x86-64)."""
    machine = platform.machine().lower()
    return _MACHINE_ARCH.get(machine, machine)


_Entry = dict[str, list[str]]
"""One source entry, as deb822 fields: Types, URIs, Suites, Components, Architectures, ..."""


def _one_line_entries(text: str, file: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.partition("#")[0].strip()
        if not line:
            continue
        options: dict[str, list[str]] = {}
        bracket = re.match(r"(\S+)\s+\[([^\]]*)\]\s*(.*)", line)
        if bracket:
            kind, option_text, rest = bracket.groups()
            for option in option_text.split():
                key, _, value = option.partition("=")
                options[key.lower()] = value.split(",")
            words = [kind, *shlex.split(rest)]
        else:
            words = shlex.split(line)
        if len(words) < 3:
            warn(f"{file}:{number}: not a valid apt source line; ignored")
            continue
        kind, uri, suite, *components = words
        entry: _Entry = {
            "types": [kind],
            "uris": [uri],
            "suites": [suite],
            "components": components,
        }
        if "arch" in options:
            entry["architectures"] = options["arch"]
        if "signed-by" in options:
            entry["signed-by"] = options["signed-by"]
        entries.append(entry)
    return entries


def _deb822_entries(text: str, file: Path) -> list[_Entry]:
    try:
        paragraphs = deb822.parse(text, comments=True)
    except deb822.Deb822Error as exc:
        warn(f"{file}: {exc}; file ignored")
        return []
    entries: list[_Entry] = []
    for paragraph in paragraphs:
        if paragraph.get("Enabled", "yes").strip().lower() == "no":
            continue
        entry = {
            name.lower(): paragraph[name].split()
            for name in ("Types", "URIs", "Suites", "Components", "Architectures")
            if name in paragraph
        }
        signed_by = paragraph.get("Signed-By", "").strip()
        if signed_by:
            entry["signed-by"] = [signed_by]
        for uri in entry.get("uris", []):
            for suite in entry.get("suites", []):
                entries.append({**entry, "uris": [uri], "suites": [suite]})
    return entries


def _mirror(entry: _Entry, arch: str, file: Path) -> Mirror | None:
    if "deb" not in entry.get("types", []):
        return None
    if "architectures" in entry and arch not in entry["architectures"]:
        return None
    uri, suite = entry["uris"][0], entry["suites"][0]
    if suite.endswith("/"):
        warn(f"{file}: flat repository {uri} {suite} is not supported; ignored")
        return None
    if not uri.startswith(("http://", "https://")):
        warn(f"{file}: {uri} is not an HTTP archive; ignored")
        return None
    keyring: Path | None = None
    signed_by = " ".join(entry.get("signed-by", []))
    if "BEGIN PGP" in signed_by:
        warn(
            f"{file}: keys written inline in Signed-By are not supported; {uri} is verified "
            "with the default keyring"
        )
    elif signed_by:
        keyring = Path(signed_by.split(",")[0])
    try:
        return Mirror(
            url=uri,
            suite=suite,
            components=tuple(entry.get("components") or ("main",)),
            architecture=arch,
            keyring=keyring,
        )
    except ValueError as exc:
        warn(f"{file}: {uri} {suite}: {exc}; ignored")
        return None
