"""Debian archives without Docker, dpkg or apt: signed Release files, Packages indexes,
dependency closures, verified ``.deb`` downloads and ``.deb`` contents.

>>> from kitdsl.pkg.debian import Archive, Mirror
>>> with Archive(Mirror(suite="bookworm"), cache="/tmp/cache") as archive:
...     resolution = archive.resolve(["runc"])
...     debs = archive.download(resolution)

See docs/debian.md for the trust model, mirrors and snapshots, locking, and what it means that
maintainer scripts are never run.
"""

from kitdsl.pkg.debian.archive import Archive, Downloaded, fetch_locked
from kitdsl.pkg.debian.debfile import MAINTAINER_SCRIPTS, DataMember, DebFile
from kitdsl.pkg.debian.errors import (
    DebError,
    DownloadError,
    ReleaseError,
    ResolveError,
    SignatureError,
)
from kitdsl.pkg.debian.index import Package, PackageIndex
from kitdsl.pkg.debian.lock import LockedPackage, PackageLock
from kitdsl.pkg.debian.mirror import Mirror
from kitdsl.pkg.debian.openpgp import Keyring, Signer, verify_cleartext, verify_detached
from kitdsl.pkg.debian.release import Release
from kitdsl.pkg.debian.resolve import Resolution, resolve
from kitdsl.pkg.debian.version import Version, compare_versions

__all__ = [
    "MAINTAINER_SCRIPTS",
    "Archive",
    "DataMember",
    "DebError",
    "DebFile",
    "DownloadError",
    "Downloaded",
    "Keyring",
    "LockedPackage",
    "Mirror",
    "Package",
    "PackageIndex",
    "PackageLock",
    "Release",
    "ReleaseError",
    "Resolution",
    "ResolveError",
    "SignatureError",
    "Signer",
    "Version",
    "compare_versions",
    "fetch_locked",
    "resolve",
    "verify_cleartext",
    "verify_detached",
]
