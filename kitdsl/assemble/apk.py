"""The APK database of a system with several init images, merged as LinuxKit merges it.

Alpine's package manager records what is installed in ``lib/apk/db/installed``. Each init
image is unpacked into ``/``, so when two of them have that file the last one would hide the
other's packages from ``apk`` and from SBOM scanners. LinuxKit therefore writes, after every
init image, one more ``lib/apk/db/installed``: each image's database in init order, each
followed by an empty line (``\\n\\n``), 0644, root's, with the PAX records
``LINUXKIT.source=LINUXKIT.apkinit`` and ``LINUXKIT.location=init``. So does
:class:`ApkDatabases`; with one database or none nothing is written.

The merged entry is its own segment, keyed by the init images' manifests: when an encoder has
it cached, nothing is read. Otherwise the databases are taken as the init images' segments
stream past, or, for an image an encoder took from its cache, read from the image again.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from functools import partial

from kitdsl.assemble.layers import LayerEntry
from kitdsl.assemble.streams import Context, Transform, pax
from kitdsl.outputs.entry import Entry
from kitdsl.outputs.segments import Segment, code_digest, key_of
from kitdsl.plan.images import ResolvedImage

__all__ = ["APK_INSTALLED", "APK_SOURCE", "ApkDatabases"]

APK_INSTALLED = "lib/apk/db/installed"
APK_SOURCE = "LINUXKIT.apkinit"
"""``LINUXKIT.source`` of the merged database (LinuxKit's spelling)."""


class ApkDatabases:
    """The APK databases of ``images`` (the init images, in order), and their merge."""

    def __init__(self, context: Context, images: Sequence[ResolvedImage]) -> None:
        self._context = context
        self._images = list(images)
        self._found: dict[str, bytes | None] = {}  # manifest digest → database, if any

    def watch(self, image: ResolvedImage) -> Transform:
        """A transform for ``image``'s segment that notes its database as it passes."""

        def transform(entries: Iterator[LayerEntry]) -> Iterator[LayerEntry]:
            found: bytes | None = None
            for entry in entries:
                if entry.name == APK_INSTALLED and entry.info.isreg():
                    with entry.open() as handle:
                        found = handle.read()
                    entry = LayerEntry(entry.info, partial(io.BytesIO, found))
                yield entry
            self._found[image.manifest.digest] = found

        return transform

    def segment(self) -> Segment:
        """The merged database (an empty segment unless two or more images have one)."""

        @contextlib.contextmanager
        def produce() -> Iterator[Iterator[Entry]]:
            yield self._entries()

        key = key_of(
            kind="apk",
            code=code_digest(),
            manifests=[image.manifest.digest for image in self._images],
            mtime=self._context.mtime,
        )
        return Segment(produce, key, "init: APK database")

    def _entries(self) -> Iterator[Entry]:
        databases = [db for image in self._images if (db := self._database(image)) is not None]
        if len(databases) < 2:
            return
        merged = b"".join(database + b"\n\n" for database in databases)
        entry = Entry.file(APK_INSTALLED, merged, mode=0o644, mtime=self._context.mtime)
        entry.info.pax_headers = pax(APK_SOURCE, "init")
        yield entry

    def _database(self, image: ResolvedImage) -> bytes | None:
        digest = image.manifest.digest
        if digest not in self._found:
            # The image's segment came from a cache: read the file from the image.
            found = None
            with self._context.flatten(image) as flat:
                for entry in flat.entries():
                    if entry.name == APK_INSTALLED and entry.info.isreg():
                        with entry.open() as handle:
                            found = handle.read()
                        break
            self._found[digest] = found
        return self._found[digest]
