"""A Debian archive as kitdsl reads it: the signed ``Release``, the ``Packages`` indexes it
vouches for, dependency resolution over them, and ``.deb`` downloads they vouch for.

The chain of trust is apt's: ``InRelease`` verifies against the keyring → it lists the sha256
of each ``Packages`` index → each index lists the sha256 of each ``.deb``. Nothing is used
before the link above it checked it.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kitdsl.oci.failures import RetryPolicy
from kitdsl.pkg.debian.errors import DownloadError, ReleaseError, SignatureError
from kitdsl.pkg.debian.fetch import Fetcher, FetchItem
from kitdsl.pkg.debian.index import PackageIndex, load_cached
from kitdsl.pkg.debian.lock import LockedPackage, PackageLock
from kitdsl.pkg.debian.mirror import Mirror
from kitdsl.pkg.debian.openpgp import Keyring, verify_cleartext, verify_detached
from kitdsl.pkg.debian.release import IndexFile, Release
from kitdsl.pkg.debian.resolve import Resolution, resolve

INDEX_FORMATS = ((".xz", lzma.decompress), (".gz", gzip.decompress), ("", bytes))
"""Compressions of ``Packages`` in order of preference: xz is smallest to download."""


@dataclass(frozen=True)
class Downloaded:
    """A fetched ``.deb``: what it is and where it is in the cache."""

    package: LockedPackage
    path: Path


class Archive:
    """Read access to one or more suites of Debian archives (a release plus its security
    updates, say) for one architecture, with downloads cached under ``cache``.

    >>> archive = Archive(Mirror(suite="bookworm"), cache=Path("~/.cache/kitdsl").expanduser())
    >>> resolution = archive.resolve(["runc"])
    >>> debs = archive.download(resolution.packages)
    """

    def __init__(
        self,
        mirrors: Mirror | Sequence[Mirror] = Mirror(),  # noqa: B008 (frozen model)
        *,
        cache: str | Path,
        keyring: Keyring | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        jobs: int = 4,
        now: datetime | None = None,
    ) -> None:
        self.mirrors = (mirrors,) if isinstance(mirrors, Mirror) else tuple(mirrors)
        if not self.mirrors:
            raise ReleaseError("an Archive needs at least one mirror")
        arches = {mirror.architecture for mirror in self.mirrors}
        if len(arches) != 1:
            raise ReleaseError(
                f"the mirrors of one Archive must share an architecture, not {sorted(arches)}"
            )
        self.architecture = arches.pop()
        self.cache = Path(cache)
        self.jobs = jobs
        self.now = now
        """The time Release validity and signatures are judged at (default: the clock)."""
        self.fetcher = Fetcher(self.cache, retry=retry, timeout=timeout)
        self._keyring = keyring
        self._releases: dict[Mirror, Release] = {}
        self._index: PackageIndex | None = None

    def close(self) -> None:
        """Close the HTTP sessions."""
        self.fetcher.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def keyring(self, mirror: Mirror) -> Keyring:
        """The keys ``mirror`` is verified with: its own ``keyring``, else the one given to
        the archive, else Debian's shipped keys."""
        if mirror.keyring is not None:
            return Keyring.load(mirror.keyring)
        if self._keyring is None:
            self._keyring = Keyring.debian()
        return self._keyring

    def release(self, mirror: Mirror | None = None) -> Release:
        """The verified, checked Release of ``mirror`` (the first one by default): from
        ``InRelease``, or ``Release`` with ``Release.gpg`` when there is no ``InRelease``."""
        mirror = mirror or self.mirrors[0]
        if mirror in self._releases:
            return self._releases[mirror]
        keyring = self.keyring(mirror)
        now = self.now.timestamp() if self.now else None
        url = f"{mirror.dists_url}/InRelease"
        try:
            verified = verify_cleartext(self.fetcher.get(url), keyring, what=url, now=now)
        except DownloadError as exc:
            if exc.status != 404:
                raise
            url = f"{mirror.dists_url}/Release"
            data = self.fetcher.get(url)
            try:
                signature = self.fetcher.get(f"{url}.gpg")
            except DownloadError as missing:
                if missing.status != 404:
                    raise
                raise SignatureError(
                    f"{mirror.dists_url} is not signed: it has neither InRelease nor Release.gpg",
                    hint="kitdsl only uses signed archives; check the mirror URL and suite",
                ) from None
            verified = verify_detached(data, signature, keyring, what=url, now=now)
        try:
            text = verified.text.decode("utf-8")
        except UnicodeDecodeError:
            raise ReleaseError(f"{url} is not UTF-8 text") from None
        release = Release.parse(text, what=url, signers=verified.signers)
        release.check(
            suite=mirror.suite,
            what=url,
            now=self.now,
            allow_expired=not mirror.check_valid_until,
        )
        self._check_contents(mirror, release, url)
        self._releases[mirror] = release
        return release

    def _check_contents(self, mirror: Mirror, release: Release, url: str) -> None:
        if release.architectures and mirror.architecture not in release.architectures:
            raise ReleaseError(
                f"{url} has no {mirror.architecture} packages "
                f"(architectures: {' '.join(release.architectures)})"
            )
        # debian-security names its components "updates/main" while serving them as "main".
        known = {name.rpartition("/")[2] for name in release.components}
        missing = [c for c in mirror.components if release.components and c not in known]
        if missing:
            raise ReleaseError(
                f"{url} has no component {', '.join(missing)} "
                f"(components: {' '.join(release.components)})"
            )

    def index(self) -> PackageIndex:
        """Every package of every mirror's components for the architecture (and ``all``)."""
        if self._index is None:
            index = PackageIndex()
            for mirror in self.mirrors:
                release = self.release(mirror)
                arches = [mirror.architecture]
                if "all" in release.architectures and not release.no_arch_all_packages:
                    arches.append("all")
                for component in mirror.components:
                    for arch in arches:
                        base = f"{component}/binary-{arch}/Packages"
                        records = self._records(mirror, release, base, required=arch != "all")
                        index.add_records(
                            records, mirror=mirror.url, what=f"{mirror.dists_url}/{base}"
                        )
            self._index = index
        return self._index

    def _records(
        self, mirror: Mirror, release: Release, base: str, *, required: bool
    ) -> list[tuple[str, ...]]:
        for suffix, decompress in INDEX_FORMATS:  # noqa: B007 (used after the loop)
            listed = release.files.get(base + suffix)
            if listed is not None:
                break
        else:
            if not required:
                return []
            raise ReleaseError(
                f"{mirror.dists_url}/Release lists no {base} index (.xz, .gz or plain)",
                hint="check the component and architecture",
            )
        item = self._index_item(mirror, release, listed)
        cache_file = self.fetcher.root / "index" / f"{listed.sha256}.packages"
        plain = release.files.get(base)

        def data() -> bytes:
            raw = self.fetcher.fetch(item).read_bytes()
            try:
                text = decompress(raw)
            except (lzma.LZMAError, OSError, EOFError, zlib.error) as exc:
                raise ReleaseError(f"{item.url} cannot be decompressed: {exc}") from None
            if plain is not None and (
                len(text) != plain.size or hashlib.sha256(text).hexdigest() != plain.sha256
            ):
                raise ReleaseError(
                    f"{item.url} does not decompress to the {base} the Release lists"
                )
            return text

        return load_cached(cache_file, data)

    @staticmethod
    def _index_item(mirror: Mirror, release: Release, listed: IndexFile) -> FetchItem:
        path_url = f"{mirror.dists_url}/{listed.path}"
        if not release.acquire_by_hash:
            return FetchItem(path_url, listed.sha256, listed.size, what=listed.path)
        folder = listed.path.rpartition("/")[0]
        by_hash = f"{mirror.dists_url}/{folder}/by-hash/SHA256/{listed.sha256}"
        # by-hash files never change under a reader; the plain path is the fallback apt uses.
        return FetchItem(by_hash, listed.sha256, listed.size, (path_url,), what=listed.path)

    def resolve(self, names: Iterable[str], *, exclude: Iterable[str] = ()) -> Resolution:
        """The dependency closure of ``names`` (see :mod:`kitdsl.pkg.debian.resolve`)."""
        return resolve(self.index(), names, architecture=self.architecture, exclude=exclude)

    def lock(self, names: Iterable[str], *, exclude: Iterable[str] = ()) -> PackageLock:
        """Resolve ``names`` and pin the result."""
        return PackageLock.of(self.resolve(names, exclude=exclude))

    def download(
        self, packages: Iterable[LockedPackage] | Resolution | PackageLock
    ) -> list[Downloaded]:
        """Fetch ``.deb`` files into the cache (verified, ``jobs`` at a time), in the order
        given; cached ones are not downloaded again."""
        return fetch_packages(packages, fetcher=self.fetcher, jobs=self.jobs)


def fetch_packages(
    packages: Iterable[LockedPackage] | Resolution | PackageLock,
    *,
    fetcher: Fetcher,
    jobs: int = 4,
) -> list[Downloaded]:
    """Fetch pinned packages, in order; a file gone from its mirror is reported as such."""
    if isinstance(packages, PackageLock):
        locked = list(packages.packages)
    elif isinstance(packages, Resolution):
        locked = [LockedPackage.of(package) for package in packages.packages]
    else:
        locked = list(packages)
    items = [FetchItem(p.url, p.sha256, p.size, what=str(p)) for p in locked]
    try:
        paths = fetcher.fetch_all(items, jobs=jobs)
    except DownloadError as exc:
        if exc.status != 404:
            raise
        gone = next((p for p in locked if p.url == exc.url), None)
        raise DownloadError(
            f"{gone or exc.url} is no longer on its mirror: {exc.url} answers 404",
            url=exc.url,
            status=404,
            hint="Debian's mirrors keep only current versions; resolve and lock again, or "
            "point the lock at a snapshot (Mirror.snapshot(...)) of the day it was made",
        ) from None
    return [Downloaded(p, path) for p, path in zip(locked, paths, strict=True)]


def fetch_locked(
    lock: PackageLock | str | Path,
    *,
    cache: str | Path,
    jobs: int = 4,
    retry: RetryPolicy | None = None,
    timeout: float = 60.0,
) -> list[Downloaded]:
    """Fetch exactly the files of a lock (a :class:`PackageLock` or the path of its file),
    without reading any index: each is checked against the sha256 and size the lock holds."""
    if not isinstance(lock, PackageLock):
        lock = PackageLock.load(lock)
    fetcher = Fetcher(cache, retry=retry, timeout=timeout)
    try:
        return fetch_packages(lock, fetcher=fetcher, jobs=jobs)
    finally:
        fetcher.close()
