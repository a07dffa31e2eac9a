"""Building a system: fetch its images, assemble its root file system, write the outputs.

The one call behind ``kitdsl build``::

    system = load_system(["system.py"])
    written = build_system(system, ImageOptions(), ["kernel+initrd"], Target(Path("out"), "box"))

Builds are incremental at two levels:

* **Outputs.** Beside its outputs a build leaves a stamp, ``.<name>.build.json``: a digest of
  everything the outputs depend on (the system, the contents of its file sources, the digest
  of every image, the formats, the compression, kitdsl's own code) and the size and
  modification time of each file written. When the next build finds the same digest and the
  files as it left them, it does nothing.
* **Segments.** Each image's files, wherever they go, are encoded once per output encoding and
  kept in the cache's ``assembled`` folder (:mod:`kitdsl.outputs.segments`): after a change
  to one service, only that service's parts are flattened and compressed again.

``rebuild=True`` (``kitdsl build --rebuild``) ignores both, so every assembly and output step
runs again; images still come from the image cache.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

from kitdsl.assemble.epoch import generated_mtime
from kitdsl.assemble.rootfs import assemble
from kitdsl.dsl.system import System
from kitdsl.fsutil import atomic_write_text, file_sha256, files_digest
from kitdsl.images import ImageOptions, Pulled, pull_system
from kitdsl.load.file_sources import source_path
from kitdsl.load.linuxkit_yaml import system_data
from kitdsl.lockfile import Lockfile
from kitdsl.oci.cache import Cache
from kitdsl.outputs import Target, get, write_outputs
from kitdsl.outputs.files import identity, written_identity
from kitdsl.outputs.segments import SegmentCache, key_of
from kitdsl.plan import Reporter, host_platform

__all__ = ["ASSEMBLED", "build_system", "segment_cache"]

ASSEMBLED = "assembled"
"""The folder of the image cache holding assembled segments and kernel parts."""


def segment_cache(cache: Cache, *, reuse: bool = True) -> SegmentCache:
    """The segment cache that lives in the image cache ``cache``."""
    return SegmentCache(cache.root / ASSEMBLED, reuse=reuse)


def build_system(
    system: System,
    options: ImageOptions,
    formats: Sequence[str],
    target: Target,
    *,
    lock: Lockfile | None = None,
    frozen_lock: Path | None = None,
    reporter: Reporter | None = None,
    rebuild: bool = False,
) -> list[Path]:
    """Build ``system`` in each of ``formats`` into ``target``; return the files written (or,
    when the outputs in place are up to date, found).

    Images are got as :func:`~kitdsl.images.pull_system` gets them (``lock`` pins win;
    ``frozen_lock`` requires the system to match that lockfile). Unknown formats are refused
    before anything is fetched. ``rebuild`` runs every assembly and output step again.
    """
    chosen = list(dict.fromkeys(formats))
    for name in chosen:
        get(name)
    pulled = pull_system(system, options, lock=lock, frozen_lock=frozen_lock, reporter=reporter)
    stamp = _Stamp(target, _build_key(system, pulled, chosen, target, options))
    # The docker format's result also lives in an engine, which may have lost it: it runs.
    if not rebuild and "docker" not in chosen and (found := stamp.up_to_date()) is not None:
        return found
    cache = Cache.open(options.cache_dir)
    segments = segment_cache(cache, reuse=not rebuild)
    # The lease keeps a concurrent `kitdsl cache prune` away from the blobs being read.
    platform = options.platform or host_platform()
    assembled = assemble(system, pulled, cache, cache=segments, platform=platform)
    with cache.lease(), assembled as (boot, rootfs):
        written = write_outputs(chosen, rootfs, boot, target, segments)
    stamp.record(written)
    return written


def _build_key(
    system: System, pulled: Pulled, formats: list[str], target: Target, options: ImageOptions
) -> str:
    """A digest of everything the outputs depend on."""
    base = Path(os.path.abspath(system.origin.file)).parent if system.origin else None
    sources = {}
    for file in system.files:
        path = source_path(file)
        if path is not None and path.is_file():
            sources[str(path)] = file_sha256(path)
    images = {
        component: [image.manifest.digest for image in found]
        for component, found in sorted(pulled.images.items())
    }
    return key_of(
        code=_code_digest(),
        system=system_data(system, base=base, empty_sections=True),
        sources=sources,
        images=images,
        formats=formats,
        name=target.name,
        level=target.compression.level,
        platform=str(options.platform or host_platform()),
        mtime=generated_mtime(),
    )


@functools.cache
def _code_digest() -> str:
    """A digest of all of kitdsl's code: outputs depend on more of it than the segments do
    (configurations, metadata files), and a stale stamp costs only copying kept segments."""
    package = Path(__file__).resolve().parent
    return files_digest(package, sorted(package.rglob("*.py")))


class _Stamp:
    """The record of a build beside its outputs (see the module documentation)."""

    def __init__(self, target: Target, key: str) -> None:
        self.path = target.folder / f".{target.name}.build.json"
        self.folder = target.folder
        self.key = key

    def up_to_date(self) -> list[Path] | None:
        """The outputs, if the last build here had the same inputs and nothing touched them."""
        try:
            record = json.loads(self.path.read_text())
            if record.get("key") != self.key:
                return None
            files: list[Path] = []
            for name, expected in record["files"].items():
                path = self.folder / name
                if identity(path) != expected:
                    return None
                files.append(path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return files

    def record(self, written: list[Path]) -> None:
        """Note the outputs just written (a stamp that cannot be written only costs the next
        build its shortcut)."""
        files = {path.name: written_identity(path) for path in written}
        try:
            atomic_write_text(self.path, json.dumps({"key": self.key, "files": files}) + "\n")
        except OSError:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
