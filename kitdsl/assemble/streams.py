"""The pieces the root file system stream is made of: an image's files as a cached segment,
and the entries the build makes up (directories, small files), dated with the build's time.

Used by :mod:`kitdsl.assemble.rootfs` and the sections it delegates to
(:mod:`kitdsl.assemble.volumes`, :mod:`kitdsl.assemble.apk`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kitdsl import reference
from kitdsl.assemble.layer_filter import linuxkit_filter
from kitdsl.assemble.layers import FlatImage, LayerEntry, flatten, image_layers, relocate
from kitdsl.dsl.types import ImageProvider, image_reference
from kitdsl.oci.media import Manifest
from kitdsl.oci.store import ContentStore
from kitdsl.outputs.entry import Entry
from kitdsl.outputs.segments import Segment, code_digest, key_of
from kitdsl.plan.images import ResolvedImage

Transform = Callable[[Iterator[LayerEntry]], Iterator[LayerEntry]]
"""Something looking at (or changing) an image's entries as they stream past."""


@dataclass(frozen=True)
class Context:
    """What every part of one assembly needs."""

    store: ContentStore
    """The content store holding the images."""
    scratch: Path
    """A folder for the spools of flattened layers."""
    mtime: int
    """The time of every entry the build makes up (see :mod:`kitdsl.assemble.epoch`)."""

    def flatten(self, image: ResolvedImage) -> FlatImage:
        """``image`` flattened (a context manager), its layers read from the store."""
        manifest = Manifest.model_validate_json(self.store.read_blob(image.manifest.digest))
        config = self.store.read_blob(image.config.digest)
        layers = image_layers(self.store, manifest, config, image=image.reference)
        return flatten(layers, image=image.reference, workdir=self.scratch, mtime=self.mtime)


def source_of(image: str | ImageProvider) -> str:
    """How LinuxKit names an image in its PAX records: canonical, with no ``:latest`` added
    (``alpine`` → ``docker.io/library/alpine``)."""
    return reference.canonical(image_reference(image))


def pax(source: str, location: str) -> dict[str, str]:
    """LinuxKit's PAX records for an entry: the image (or ``linuxkit.files``...) and where in
    the system it goes (``services[0]``)."""
    return {"LINUXKIT.location": location, "LINUXKIT.source": source}


def image_segment(
    context: Context,
    image: ResolvedImage,
    prefix: str,
    location: str,
    *,
    resolv_conf: str | None,
    source: str | None = None,
    watch: Transform | None = None,
) -> Segment:
    """The image's files, changed as LinuxKit changes them, under ``prefix``.

    ``source`` is the ``LINUXKIT.source`` record: the image reference as written, canonical
    (:func:`source_of`; default the reference resolved). ``watch`` sees the entries (before
    they are moved under ``prefix``) when the segment is read; it is not called when an
    encoder takes the segment from its cache.
    """
    records = pax(source if source is not None else image.reference, location)

    @contextlib.contextmanager
    def entries() -> Iterator[Iterator[Entry]]:
        with context.flatten(image) as flat:
            changed = linuxkit_filter(flat.entries(), resolv_conf=resolv_conf, mtime=context.mtime)
            if watch is not None:
                changed = watch(changed)
            yield open_entries(relocate(changed, prefix, pax=records))

    key = key_of(
        kind="image",
        code=code_digest(),
        manifest=image.manifest.digest,
        prefix=prefix,
        pax=records,
        resolv_conf=resolv_conf,
        mtime=context.mtime,
    )
    return Segment(entries, key, f"{location}: {image.reference}")


def open_entries(entries: Iterable[LayerEntry]) -> Iterator[Entry]:
    """Layer entries as stream entries, each file open while its entry is the current one."""
    for entry in entries:
        if entry.info.isreg():
            with entry.open() as data:
                yield Entry(entry.info, data)
        else:
            yield Entry(entry.info)


def made(label: str, entries: Callable[[], Iterable[Entry]]) -> Segment:
    """A segment of entries made here (cheap: never cached)."""

    @contextlib.contextmanager
    def produce() -> Iterator[Iterable[Entry]]:
        yield entries()

    return Segment(produce, None, label)


def directories(path: str, records: dict[str, str], seen: set[str], mtime: int) -> Iterator[Entry]:
    """``path`` and each of its parents, parents first, but none already in ``seen`` (which
    gets them)."""
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        name = "/".join(parts[:depth])
        if name not in seen:
            seen.add(name)
            yield directory(name, records, mtime)


def directory(name: str, records: dict[str, str], mtime: int) -> Entry:
    """A directory the build makes: 0755, root's."""
    entry = Entry.directory(name, mtime=mtime)
    entry.info.pax_headers = dict(records)
    return entry


def file(name: str, data: bytes, records: dict[str, str], mtime: int) -> Entry:
    """A file the build makes: 0644, root's."""
    entry = Entry.file(name, data, mode=0o644, mtime=mtime)
    entry.info.pax_headers = dict(records)
    return entry
