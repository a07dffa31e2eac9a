"""Building a system: fetch its images, assemble its root file system, write the outputs.

The one call behind ``kitdsl build``::

    system = load_system(["system.py"])
    written = build_system(system, ImageOptions(), ["kernel+initrd"], Target(Path("out"), "box"))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kitdsl.assemble.rootfs import assemble
from kitdsl.dsl.system import System
from kitdsl.images import ImageOptions, pull_system
from kitdsl.lockfile import Lockfile
from kitdsl.oci.cache import Cache
from kitdsl.outputs import Target, get, write_outputs
from kitdsl.plan import Reporter

__all__ = ["build_system"]


def build_system(
    system: System,
    options: ImageOptions,
    formats: Sequence[str],
    target: Target,
    *,
    lock: Lockfile | None = None,
    frozen_lock: Path | None = None,
    reporter: Reporter | None = None,
) -> list[Path]:
    """Build ``system`` in each of ``formats`` into ``target``; return the files written.

    Images are got as :func:`~kitdsl.images.pull_system` gets them (``lock`` pins win;
    ``frozen_lock`` requires the system to match that lockfile). Unknown formats are refused
    before anything is fetched.
    """
    for name in formats:
        get(name)
    pulled = pull_system(system, options, lock=lock, frozen_lock=frozen_lock, reporter=reporter)
    cache = Cache.open(options.cache_dir)
    # The lease keeps a concurrent `kitdsl cache prune` away from the blobs being read.
    with cache.lease(), assemble(system, pulled, cache) as (boot, rootfs):
        return write_outputs(formats, rootfs, boot, target)
