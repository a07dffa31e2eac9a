"""Package locks: a resolved set written down, so the same files are fetched later without
resolving again (and without trusting what a mirror's index says that day).

Each entry carries what fetching needs and checks: the file's path on its mirror, its sha256
and size. The JSON form is sorted and stable, so a review shows exactly which packages moved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kitdsl.errors import LockError
from kitdsl.fsutil import atomic_write_text
from kitdsl.pkg.debian.index import Package
from kitdsl.pkg.debian.resolve import Resolution

LOCK_VERSION = 1


class LockedPackage(BaseModel):
    """One ``.deb``, pinned."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    version: str
    architecture: str
    filename: str
    """Path below the mirror (``pool/main/r/runc/runc_1.1.5+ds1-1+deb12u1_amd64.deb``)."""
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0)]
    mirror: str
    """The archive's URL the file is fetched from."""

    @property
    def url(self) -> str:
        """Where the file is fetched from."""
        return f"{self.mirror.rstrip('/')}/{self.filename}"

    @classmethod
    def of(cls, package: Package) -> LockedPackage:
        """The pin of an index entry."""
        return cls(
            name=package.name,
            version=package.version,
            architecture=package.architecture,
            filename=package.filename,
            sha256=package.sha256,
            size=package.size,
            mirror=package.mirror,
        )

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.architecture})"


class PackageLock(BaseModel):
    """A resolved set of packages, for one architecture."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    version: Literal[1] = 1
    """The lockfile format."""
    architecture: str
    requested: tuple[str, ...] = ()
    """The names the set was resolved from."""
    exclude: tuple[str, ...] = ()
    """The names kept out of it."""
    packages: tuple[LockedPackage, ...]
    """Sorted by name."""

    @classmethod
    def of(cls, resolution: Resolution) -> PackageLock:
        """The lock of a resolution."""
        return cls(
            architecture=resolution.architecture,
            requested=resolution.requested,
            exclude=resolution.excluded,
            packages=tuple(LockedPackage.of(package) for package in resolution.packages),
        )

    def to_json(self) -> str:
        """The file's text: sorted keys, one package per object, a trailing newline."""
        data = self.model_dump(mode="json")
        data["packages"] = sorted(data["packages"], key=lambda p: (p["name"], p["architecture"]))
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "<lock>") -> PackageLock:
        """Read a lock written by :meth:`to_json`; a malformed one is a
        :class:`~kitdsl.errors.LockError` naming what is wrong."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            problems = tuple(
                f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
            )
            raise LockError(
                f"{source} is not a valid package lock",
                details=problems[:10],
                hint="regenerate it by resolving again",
            ) from None

    def save(self, path: str | Path) -> None:
        """Write the lock atomically."""
        atomic_write_text(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> PackageLock:
        """Read a lock file."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise LockError(f"cannot read package lock {path}: {exc.strerror}") from None
        return cls.from_json(text, source=str(path))
