"""Pulling a generated 10-image, ~300 MB system from a local registry into an empty cache.

Compared, in the same run, with the unavoidable work: a plain parallel download of the same
blobs (``requests`` streaming each blob to a file, as many at once as kitdsl uses, no checks).
Then a second pull with the cache warm: nothing is downloaded, only names are resolved.

Run with ``just bench-pull`` (needs Debian's ``docker-registry``). Figures go to
docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kitdsl import Service, System
from kitdsl.images import ImageOptions, pull_system
from kitdsl.oci.store import ContentStore
from kitdsl.plan import NullReporter, default_jobs
from tests.images import add_image, random_bytes
from tests.registry import RegistryServer, make_client

IMAGES = 10
LAYERS = 3
LAYER_BYTES = 10 * 1024 * 1024  # random, so gzip cannot shrink it: ~300 MB in all
RUNS = 5


def populate(registry: RegistryServer, work: Path) -> tuple[System, list[tuple[str, str]]]:
    """Push the images; return the system using them and (repository, digest) of every blob."""
    store = ContentStore(work / "source")
    blobs: list[tuple[str, str]] = []
    services = []
    with make_client() as client:
        for number in range(IMAGES):
            layers = [random_bytes(LAYER_BYTES, seed=number * 10 + i) for i in range(LAYERS)]
            image = add_image(store, layers=layers)
            repository = f"bench/image{number}"
            client.push(f"{registry.host}/{repository}:1", store, image.manifest)
            blobs += [(repository, d.digest) for d in (image.config, *image.layers)]
            services.append(Service(name=f"svc{number}", image=f"{registry.host}/{repository}:1"))
    return System(services=services), blobs


def plain_download(
    registry: RegistryServer, blobs: list[tuple[str, str]], folder: Path, *, durable: bool = False
) -> float:
    """The baseline: the same blobs, fetched in parallel and written to files (``durable``:
    each file fsync'd, the durability the cache promises)."""
    folder.mkdir()
    session_per_thread: dict[int, requests.Session] = {}

    def fetch(item: tuple[str, str]) -> int:
        import threading

        session = session_per_thread.setdefault(threading.get_ident(), requests.Session())
        repository, digest = item
        url = f"{registry.url}/v2/{repository}/blobs/{digest}"
        written = 0
        with (
            session.get(url, stream=True, timeout=60) as response,
            (folder / digest.replace(":", "-")).open("wb") as handle,
        ):
            response.raise_for_status()
            for chunk in response.iter_content(1 << 20):
                handle.write(chunk)
                written += len(chunk)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        return written

    start = time.perf_counter()
    with ThreadPoolExecutor(default_jobs()) as pool:
        total = sum(pool.map(fetch, blobs))
    elapsed = time.perf_counter() - start
    assert total >= IMAGES * LAYERS * LAYER_BYTES
    return elapsed


def kitdsl_pull(system: System, cache: Path) -> float:
    options = ImageOptions(cache_dir=cache)
    start = time.perf_counter()
    pull_system(system, options, reporter=NullReporter())
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kitdsl-bench-") as folder:
        work = Path(folder)
        with RegistryServer(work / "registry") as registry:
            system, blobs = populate(registry, work)
            megabytes = IMAGES * LAYERS * LAYER_BYTES / 1e6
            plain: list[float] = []
            durable: list[float] = []
            cold: list[float] = []
            warm: list[float] = []
            for run in range(RUNS):
                plain.append(plain_download(registry, blobs, work / f"plain{run}"))
                durable.append(
                    plain_download(registry, blobs, work / f"durable{run}", durable=True)
                )
                cold.append(kitdsl_pull(system, work / f"cache{run}"))
                warm.append(kitdsl_pull(system, work / f"cache{run}"))
            p, d, c, w = (statistics.median(x) for x in (plain, durable, cold, warm))
            print(f"{IMAGES} images, {len(blobs)} blobs, {megabytes:.0f} MB, jobs={default_jobs()}")
            print(f"plain parallel download: {p:.2f} s ({megabytes / p:.0f} MB/s)")
            print(f"plain download + fsync:  {d:.2f} s ({megabytes / d:.0f} MB/s)")
            print(
                f"kitdsl pull, empty cache: {c:.2f} s ({megabytes / c:.0f} MB/s), "
                f"{c / p:.2f}x plain, {c / d:.2f}x plain + fsync"
            )
            per_image = w / IMAGES * 1000
            print(f"kitdsl pull, warm cache:  {w * 1000:.0f} ms ({per_image:.1f} ms per image)")
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
