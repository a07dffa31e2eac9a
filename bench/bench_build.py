"""Building a generated ~450 MB system into a kernel and an initrd, with the image cache warm.

The system has about ten images (a kernel with 30 MB of modules, two init images, two onboot
containers, five services), each tens of megabytes of files of mixed sizes that compress about
3:1, like binaries and text. The images are pushed to a local Debian ``docker-registry`` and
pulled once; every figure below is then a build from the warm image cache:

* **full build** (``--rebuild``): every assembly and output step runs again;
* **no change**: the same build again;
* **one service changed**: one service's configuration changes (its environment), then its
  image (a new image of the same size);
* **unavoidable work**: compressing the same uncompressed initrd (the cpio) once, from a file,
  with the same compressor, level and threads as the build, right after each full build; the
  ratio is the median of the runs' ratios.

Peak memory is the maximum resident set of a process that only runs the build. Run with
``just bench-build``; figures go to docs/performance.md.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kitdsl.oci.store import ContentStore
from kitdsl.outputs.pgzip import GzipWriter, available_cpus
from tests.images import add_image
from tests.registry import RegistryServer, make_client

RUNS = 3
FULL_RUNS = 5
POOL_SIZE = 64 << 20
MTIME = 1_600_000_000

SYSTEM = """
from kitdsl import Kernel, Onboot, Service, System

ENV = {env!r}
WEB = {web!r}
system = System(
    kernel=Kernel(image="{host}/bench/kernel:1", cmdline="console=ttyS0"),
    init=["{host}/bench/init0:1", "{host}/bench/init1:1"],
    onboot=[Onboot(name=f"boot{{i}}", image=f"{host}/bench/boot{{i}}:1") for i in range(2)],
    services=[
        Service(name="web", image=f"{host}/bench/{{WEB}}", env=ENV),
        *(Service(name=f"svc{{i}}", image=f"{host}/bench/svc{{i}}:1") for i in range(1, 5)),
    ],
)
"""


def pool() -> bytes:
    """64 MiB to cut files from: a tenth random bytes, the rest text-like lines of words
    (gzip -6 leaves about a third)."""
    rng = random.Random(7)
    words = [rng.randbytes(rng.randint(2, 6)).hex().encode() for _ in range(500)]
    text = bytearray()
    while len(text) < POOL_SIZE - POOL_SIZE // 10:
        text += b" ".join(rng.choices(words, k=48)) + b"\n"
    return rng.randbytes(POOL_SIZE // 10) + bytes(text[: POOL_SIZE - POOL_SIZE // 10])


def layer(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzip'd tar of ``files`` and symbolic ``links`` (level 1: generating is not measured)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({name.rsplit("/", 1)[0] for name in files if "/" in name})
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o755, MTIME
            tar.addfile(info, io.BytesIO(files[name]))
        for name, target in sorted((links or {}).items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, MTIME
            tar.addfile(info)
    return gzip.compress(buffer.getvalue(), compresslevel=1, mtime=0)


def image_files(data: bytes, seed: int, megabytes: int) -> dict[str, bytes]:
    """About ``megabytes`` MB of files: half in ~16 big ones, half in small ones (2-16 KiB)."""
    rng = random.Random(seed)
    files: dict[str, bytes] = {}

    def cut(size: int) -> bytes:
        start = rng.randrange(0, len(data) - size)
        return data[start : start + size]

    half = megabytes * 1_000_000 // 2
    for number in range(16):
        files[f"usr/lib/big/lib{seed}-{number}.so"] = cut(half // 16)
    total = 0
    while total < half:
        size = rng.randint(2048, 16384)
        files[f"usr/share/{seed}/d{len(files) % 40}/f{len(files)}"] = cut(size)
        total += size
    return files


def push_images(registry: RegistryServer, work: Path) -> int:
    """Push the bench images; return their uncompressed size in bytes."""
    data = pool()
    store = ContentStore(work / "source")
    total = 0
    images: dict[str, list[bytes]] = {}
    kernel_rng = random.Random(1)
    modules = {
        f"lib/modules/6.1.0/kernel/m{n}.ko": data[n * 30000 : n * 30000 + 30000]
        for n in range(1000)
    }
    kernel_tar = io.BytesIO()
    with tarfile.open(fileobj=kernel_tar, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in modules.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(body), MTIME
            tar.addfile(info, io.BytesIO(body))
    kernel = {"kernel": kernel_rng.randbytes(12 << 20), "kernel.tar": kernel_tar.getvalue()}
    images["kernel:1"] = [layer(kernel)]
    total += sum(len(body) for body in modules.values()) + len(kernel["kernel"])
    sizes = {"init0": 40, "init1": 20, "boot0": 40, "boot1": 40, "web": 45}
    sizes |= {f"svc{i}": 45 for i in range(1, 5)}
    for seed, (name, megabytes) in enumerate(sizes.items()):
        base = image_files(data, seed, megabytes)
        extra = image_files(data, seed + 100, 2)
        links = {f"usr/bin/tool{n}": f"../lib/big/lib{seed}-{n}.so" for n in range(16)}
        images[f"{name}:1"] = [layer(base, links), layer(extra)]
        total += sum(len(b) for b in base.values()) + sum(len(b) for b in extra.values())
    # New versions of the web service: other images of the same size, one per run.
    for version in range(2, RUNS + 2):
        images[f"web:{version}"] = [
            layer(image_files(data, 50 + version, 45)),
            layer(image_files(data, 150 + version, 2)),
        ]
    with make_client() as client:
        for name, blobs in images.items():
            image = add_image(store, layers=blobs)
            client.push(f"{registry.host}/bench/{name}", store, image.manifest)
    return total


WORKER = """
import json, sys, time
from pathlib import Path
from kitdsl.build import build_system
from kitdsl.images import ImageOptions
from kitdsl.load import load_system
from kitdsl.outputs import Target
from kitdsl.plan import NullReporter

system_file, cache, out, rebuild = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
system = load_system([system_file])
build_system(
    system, ImageOptions(cache_dir=cache), ["kernel+initrd"], Target(out, "bench"),
    reporter=NullReporter(), rebuild=rebuild == "1",
)
elapsed = time.perf_counter() - start
# VmHWM: the peak of this process alone (ru_maxrss would count the parent's, from the fork).
status = Path("/proc/self/status").read_text()
peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
print(json.dumps({"seconds": elapsed, "peak": peak}))
"""


def settle() -> None:
    """Write out what earlier steps left in the page cache, so that no measurement pays for
    the writeback of another's files (each build writes ~300 MB: outputs and kept segments)."""
    os.sync()


def settle_memory(inputs: list[Path]) -> bool:
    """Before the measurements, drop the page cache (as root: the whole machine's) and read
    ``inputs`` back in, so the cache stays warm. Writing a large new file (the cpio above)
    leaves this kind of virtual machine about 5% slower at page-cache-heavy work for a while
    (builds: 4.3 s against 4.05 s), whichever step comes next; dropped, it is not. Between
    the measurements :func:`settle` only writes dirty pages out. Returns whether the cache
    could be dropped."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    for path in inputs:
        if path.is_file():
            with path.open("rb") as handle:
                while handle.read(1 << 20):
                    pass
    return True


def build(system_file: Path, cache: Path, out: Path, *, rebuild: bool) -> tuple[float, int]:
    """One build in a fresh process: (seconds inside the process, peak resident bytes)."""
    settle()
    done = subprocess.run(
        [sys.executable, "-c", WORKER, str(system_file), str(cache), str(out), str(int(rebuild))],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures = json.loads(done.stdout.splitlines()[-1])
    return figures["seconds"], figures["peak"]


def cli_seconds(system_file: Path, cache: Path, out: Path) -> float:
    """Wall time of ``kitdsl build`` as a user runs it (interpreter start-up included)."""
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kitdsl",
            "build",
            str(system_file),
            "-o",
            str(out),
            "--name",
            "bench",
            "--cache",
            str(cache),
        ],
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def compress_once(cpio: Path) -> float:
    """The unavoidable work: the uncompressed initrd compressed once, as the build does."""
    settle()
    start = time.perf_counter()
    with cpio.open("rb") as source, open(os.devnull, "wb") as sink, GzipWriter(sink) as gz:
        while chunk := source.read(1 << 20):
            gz.write(chunk)
    return time.perf_counter() - start


def write_system(path: Path, host: str, *, env: list[str], web: str) -> None:
    path.write_text(SYSTEM.format(host=host, env=env, web=web))


def prepare(work: Path) -> tuple[Path, Path, int]:
    """Generate and push the images, pull them once; return the system file, the warm cache
    and the size of the files. With ``KITDSL_BENCH_KEEP=DIR`` the result is kept in ``DIR``
    and reused by the next run (the cache answers without the registry)."""
    cache, system_file, size_file = work / "cache", work / "bench.py", work / "size"
    if size_file.exists():
        return system_file, cache, int(size_file.read_text())
    with RegistryServer(work / "registry") as registry:
        uncompressed = push_images(registry, work)
        for web in [f"web:{version}" for version in range(RUNS + 1, 0, -1)]:  # all cached
            write_system(system_file, registry.host, env=["A=1"], web=web)
            build(system_file, cache, work / "out", rebuild=True)
    shutil.rmtree(work / "registry")
    shutil.rmtree(work / "source")
    size_file.write_text(str(uncompressed))
    return system_file, cache, uncompressed


def main() -> None:
    keep = os.environ.get("KITDSL_BENCH_KEEP")
    with tempfile.TemporaryDirectory(prefix="kitdsl-bench-", dir="/var/tmp") as folder:
        work = Path(keep) if keep else Path(folder)
        work.mkdir(parents=True, exist_ok=True)
        system_file, cache, uncompressed = prepare(work)
        text = system_file.read_text()
        host = text.split('image="', 1)[1].split("/", 1)[0]
        out = work / "out"
        shutil.rmtree(cache / "assembled", ignore_errors=True)  # what earlier runs assembled
        write_system(system_file, host, env=["A=1"], web="web:1")
        build(system_file, cache, out, rebuild=True)
        initrd = out / "bench-initrd.img"
        cpio = work / "initrd.cpio"
        with gzip.open(initrd) as source, cpio.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        settled = settle_memory([cpio, *sorted((cache / "blobs").rglob("*"))])

        full, unchanged, config, image, baseline, peaks, cli = [], [], [], [], [], [], []
        for _ in range(FULL_RUNS):
            seconds, peak = build(system_file, cache, out, rebuild=True)
            full.append(seconds)
            peaks.append(peak)
            baseline.append(compress_once(cpio))
        for run in range(RUNS):
            build(system_file, cache, out, rebuild=False)  # the outputs of this system
            unchanged.append(build(system_file, cache, out, rebuild=False)[0])
            cli.append(cli_seconds(system_file, cache, out))
            write_system(system_file, host, env=[f"A={run + 2}"], web="web:1")
            config.append(build(system_file, cache, out, rebuild=False)[0])
            # A version of the web image never assembled before.
            write_system(system_file, host, env=["A=1"], web=f"web:{run + 2}")
            seconds, peak = build(system_file, cache, out, rebuild=False)
            image.append(seconds)
            peaks.append(peak)
            write_system(system_file, host, env=["A=1"], web="web:1")
        f, u, c, i, b, w = (
            statistics.median(x) for x in (full, unchanged, config, image, baseline, cli)
        )
        # Each full build is paired with a compression right after it: the machine's speed
        # drifts, and a pair sees the same machine.
        ratios = sorted(x / y for x, y in zip(full, baseline, strict=True))
        size = initrd.stat().st_size
        print(
            f"machine: {os.cpu_count()} CPUs ({available_cpus()} usable), "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
        )
        print(
            f"system: {uncompressed / 1e6:.0f} MB of files, cpio {cpio.stat().st_size / 1e6:.0f}"
            f" MB, initrd {size / 1e6:.0f} MB (gzip -6)"
        )
        if not settled:
            print("(page cache not dropped: not root; figures vary more)")
        print(f"full build (--rebuild):       {f:.2f} s")
        print(f"compressing the cpio once:    {b:.2f} s")
        print(
            f"ratio build/compress:         {statistics.median(ratios):.2f}   "
            f"(runs: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
        print(f"no-change rebuild:            {u:.3f} s   (CLI wall time {w:.2f} s)")
        print(f"one service's config changed: {c:.2f} s   ({100 * c / f:.0f}% of full)")
        print(f"one service's image changed:  {i:.2f} s   ({100 * i / f:.0f}% of full)")
        print(f"peak RSS:                     {max(peaks) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
