"""Writing several formats from one root file system stream.

A plain stream can be read once. One format that streams (the usual case: ``kernel+initrd``
alone) reads it directly, with nothing kept on disk. When more passes are needed (two formats,
or a format that needs a tar file on disk) the stream is first copied to a scratch tar in the
output folder, and every pass reads that; a :class:`~kitdsl.outputs.entry.TarSource` is already
on disk and is read again instead, and so is a
:class:`~kitdsl.outputs.segments.SegmentedStream` (each pass takes from the segment cache what
an earlier pass or build encoded). Formats that only need the boot kit (:attr:`Needs.KIT`)
share one initrd built for them all. The scratch folder is removed at the end, whatever
happens.

Each format's files appear atomically; when a later format fails, the files of the formats
before it stay written.
"""

from __future__ import annotations

import contextlib
import glob
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from kitdsl.errors import OutputError
from kitdsl.outputs.base import Boot, Job, Needs, Target, get
from kitdsl.outputs.entry import Entry, TarSource
from kitdsl.outputs.initrd import write_initrd
from kitdsl.outputs.segments import SegmentCache, SegmentedStream
from kitdsl.outputs.tar import write_tar


def write_outputs(
    formats: Sequence[str],
    rootfs: Iterable[Entry],
    boot: Boot,
    target: Target,
    cache: SegmentCache | None = None,
) -> list[Path]:
    """Write each format (by registered name, duplicates ignored) of the system made of
    ``rootfs`` and ``boot`` to ``target``; return every file written, in order.

    ``rootfs`` is read once, unless it is a :class:`TarSource` or a :class:`SegmentedStream`
    (read again for each pass). ``cache`` keeps the encoded segments of a
    :class:`SegmentedStream` for the next build, and gives back those it has.
    """
    chosen = [get(name) for name in dict.fromkeys(formats)]
    if not chosen:
        return []
    needs = [output.needs for output in chosen]
    kit = Needs.KIT in needs
    passes = needs.count(Needs.STREAM) + kit
    reusable = isinstance(rootfs, TarSource | SegmentedStream)
    spool = Needs.SPOOL in needs or (passes > 1 and not reusable)
    try:
        target.folder.mkdir(parents=True, exist_ok=True)
        _sweep(target)
        scratch = tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.folder)
    except OSError as error:
        raise OutputError(f"cannot write to {target.folder}: {error.strerror}") from error
    written: list[Path] = []
    with scratch as folder:
        source = rootfs
        spool_path = initrd_path = None
        try:
            if spool:
                spool_path = Path(folder) / "rootfs.tar"
                with spool_path.open("wb") as handle:
                    write_tar(rootfs, None, handle, cache)
                if not reusable:
                    source = TarSource(spool_path)
            if kit:
                initrd_path = Path(folder) / "initrd.img"
                with initrd_path.open("wb") as handle:
                    write_initrd(source, handle, target.compression, cache)
        except OSError as error:
            raise OutputError(
                f"cannot write a scratch copy of the system in {target.folder}: {error.strerror}",
                hint="check that the folder is writable and that the disk has room",
            ) from error
        reusable = isinstance(source, TarSource | SegmentedStream)
        for output in chosen:
            # A KIT format has what it needs in the initrd; the stream may be used up already.
            stream = source if output.needs is not Needs.KIT or reusable else ()
            job = Job(boot, target, stream, spool=spool_path, initrd=initrd_path, cache=cache)
            written += output.write(job)
    return written


STALE = 3600.0
"""Seconds after which a build's hidden temporary file or folder is a leftover."""


def _sweep(target: Target) -> None:
    """Remove what builds of ``target`` killed mid-way left behind (hidden ``.NAME…`` temporary
    files and scratch folders older than :data:`STALE`: a running build's are younger)."""
    limit = time.time() - STALE
    name = re.escape(target.name)
    # Exactly the names tempfile gives them here: 8 random characters after our prefix.
    scratch = re.compile(rf"\.{name}\.[a-z0-9_]{{8}}")
    partial = re.compile(rf"\.{name}[^/]*\.[a-z0-9_]{{8}}\.tmp")
    for path in target.folder.glob(f".{glob.escape(target.name)}*"):
        with contextlib.suppress(OSError):
            if path.lstat().st_mtime > limit:
                continue
            if scratch.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif partial.fullmatch(path.name) and path.is_file():
                path.unlink()
