"""Several processes sharing one cache, and processes killed in the middle of a write."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kitdsl.errors import CacheError
from kitdsl.oci.cache import Cache
from kitdsl.oci.store import TEMP_PREFIX
from tests.cache_images import make_image

REPO = Path(__file__).resolve().parent.parent
WRITERS = 3
ROUNDS = 12


def _writer(root: str, worker: int, start: multiprocessing.synchronize.Event) -> None:
    """Add images with shared and unique content; every writer also retags one shared name."""
    cache = Cache(Path(root))
    start.wait()
    for round_ in range(ROUNDS):
        shared = make_image("amd64", {"etc/shared": b"the same in every process"})
        unique = make_image("amd64", {"etc/who": f"{worker}/{round_}".encode()})
        with cache.lease():  # keeps the pruner from collecting blobs not yet named
            shared.put(cache)
            unique.put(cache)
            cache.set_ref(f"example.com/w{worker}:{round_}", unique.descriptor)
            cache.set_ref("example.com/shared:latest", shared.descriptor)


def _pruner(root: str, start: multiprocessing.synchronize.Event, stop: float) -> None:
    cache = Cache(Path(root))
    start.wait()
    while time.monotonic() < stop:
        cache.prune()


@pytest.mark.slow
def test_concurrent_writers_lose_no_ref_and_corrupt_no_blob(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    Cache(root).ensure()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [
        context.Process(target=_writer, args=(str(root), worker, start))
        for worker in range(WRITERS)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)

    cache = Cache(root)
    expected = {f"example.com/w{w}:{r}" for w in range(WRITERS) for r in range(ROUNDS)}
    assert set(cache.refs()) == expected | {"example.com/shared:latest"}
    assert cache.verify() == []


@pytest.mark.slow
def test_prune_racing_writers_never_breaks_a_ref(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    Cache(root).ensure()
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers = [
        context.Process(target=_writer, args=(str(root), worker, start)) for worker in range(2)
    ]
    pruners = [
        context.Process(target=_pruner, args=(str(root), start, time.monotonic() + 3))
        for _ in range(2)
    ]
    for process in [*writers, *pruners]:
        process.start()
    start.set()
    for process in [*writers, *pruners]:
        process.join(timeout=120)
    assert [p.exitcode for p in [*writers, *pruners]] == [0] * 4
    cache = Cache(root)
    assert len(cache.refs()) == 2 * ROUNDS + 1
    assert cache.verify() == []


def test_prune_waits_for_a_writer_holding_a_lease(tmp_path: Path) -> None:
    """Blobs written but not yet named survive a prune started meanwhile."""
    root = tmp_path / "cache"
    child = subprocess.Popen(
        [sys.executable, "-c", _LEASE_HOLDER, str(root)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "written"
    cache = Cache(root)
    pruned = threading.Thread(target=cache.prune)
    pruned.start()
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.wait(timeout=60) == 0, "the ref was recorded: its blobs were still there"
    pruned.join(timeout=60)
    assert list(cache.refs()) == ["example.com/leased:1"]
    assert cache.verify() == []


_LEASE_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kitdsl.oci.cache import Cache
    from tests.cache_images import make_image

    cache = Cache(Path(sys.argv[1]))
    image = make_image("amd64", {"leased": b"yes"})
    with cache.lease():
        image.put(cache)
        print("written", flush=True)
        sys.stdin.readline()
        cache.set_ref("example.com/leased:1", image.descriptor)
    """
)


def test_prune_inside_a_lease_of_the_same_thread_is_refused(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    with cache.lease(), pytest.raises(CacheError, match="while this thread is adding"):
        cache.prune()
    assert cache.prune().blobs == 0


_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from kitdsl.oci.cache import Cache
    from tests.cache_images import make_image

    cache = Cache(Path(sys.argv[1]))
    chunk = os.urandom(256 * 1024)
    for round_ in range(1000):
        with cache.write_blob(what="big") as writer:
            for position in range(96):
                writer.write(chunk)
                if round_ == 0 and position == 0:
                    print("writing", flush=True)
                time.sleep(0.001)
        image = make_image("amd64", {"round": str(round_).encode()})
        image.put(cache)
        cache.set_ref(f"example.com/killed:{round_}", image.descriptor)
    """
)


KILL_DELAYS = (0.0, 0.03, 0.08, 0.15, 0.25, 0.4)
"""Seconds after the first chunk: inside the first blob, between writes, during later ones."""


@pytest.mark.slow
def test_a_writer_killed_at_any_moment_leaves_a_clean_cache(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = Cache(root)
    for delay in KILL_DELAYS:
        child = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, str(root)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "writing"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        assert cache.verify() == [], f"after a kill {delay}s into the write"

    leftovers = list(root.rglob(f"{TEMP_PREFIX}*"))
    assert leftovers, "at least one kill landed in the middle of a blob write"
    names = list(cache.refs())
    freed = cache.prune()
    assert freed.temporary == len(leftovers)
    assert not list(root.rglob(f"{TEMP_PREFIX}*"))
    assert list(cache.refs()) == names
    assert cache.verify() == []
