"""A bootable test system made from Debian's cloud kernel and busybox-static.

The two .deb files are downloaded once with ``apt-get download`` into
``~/.cache/kitdsl-test-debs`` (``$KITDSL_TEST_DEBS`` overrides it) and extracted there; every
test run reuses them. The initramfs is written with kitdsl's own writer. Its ``/init``:

* mounts proc, sysfs and devtmpfs and loads the virtio and pvpanic modules with ``insmod``;
* configures eth0 statically (10.0.2.15/24 via 10.0.2.2, as qemu's user networking expects);
* serves ``/www`` with busybox ``httpd`` on port 80 and a ``SSH-2.0`` banner on port 22;
* runs a shell on the virtio port ``org.kitdsl.shell`` (what :meth:`Machine.execute` talks to)
  and one on the serial console;
* prints ``bootkit: ready`` in colour (so the console carries ANSI escapes);
* powers off on ``poweroff`` (busybox sends init SIGUSR2), reboots on ``reboot``.

Kernel command line switches: ``bootkit.mode=poweroff`` or ``bootkit.mode=reboot`` (once
ready), ``bootkit.mode=panic`` (init exits: a kernel panic), ``bootkit.mode=hang`` (stop
before the services), ``bootkit.pvpanic=0`` (do not load the pvpanic driver),
``bootkit.shell=0`` (no shell on the virtio port).

``python3 -m tests.bootkit OUT/PREFIX`` writes ``PREFIX-kernel``, ``PREFIX-initrd.img`` and
``PREFIX-cmdline`` as ``kitdsl build`` does, to try ``kitdsl run qemu`` by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from kitdsl.outputs import Entry, write_initrd

CMDLINE = "console=ttyS0"

# Load order matters: insmod does not resolve dependencies (boot.md lists this order).
MODULES = [
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/net/core/failover.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/drivers/char/virtio_console.ko",
]
PVPANIC_MODULES = [
    "kernel/drivers/misc/pvpanic/pvpanic.ko",
    "kernel/drivers/misc/pvpanic/pvpanic-pci.ko",
]

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mode=run pvpanic=1 shell=1
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        bootkit.mode=*) mode=${arg#*=} ;;
        bootkit.pvpanic=0) pvpanic=0 ;;
        bootkit.shell=0) shell=0 ;;
    esac
done
for module in /lib/modules/virtio/*.ko; do insmod "$module"; done
if [ "$pvpanic" = 1 ]; then
    for module in /lib/modules/pvpanic/*.ko; do insmod "$module"; done
fi
echo "bootkit: mode=$mode"
case "$mode" in
    panic) echo "bootkit: init exits"; exit 1 ;;
    hang) while :; do sleep 3600; done ;;
esac
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
httpd -p 80 -h /www
(while :; do echo "SSH-2.0-bootkit" | nc -l -p 22; done) &
if [ "$shell" = 1 ]; then
    for port in /sys/class/virtio-ports/*; do
        [ "$(cat "$port/name" 2>/dev/null)" = org.kitdsl.shell ] || continue
        device=/dev/${port##*/}
        (while :; do sh <>"$device" >&0 2>&0; sleep 0.2; done) &
    done
fi
setsid sh -c 'exec sh -i </dev/ttyS0 >/dev/ttyS0 2>&1' &
trap 'echo "bootkit: powering off"; poweroff -f' USR2
trap 'echo "bootkit: rebooting"; reboot -f' TERM
printf '\033[1;32mbootkit: ready\033[0m\n'
case "$mode" in
    poweroff) echo "bootkit: powering off"; poweroff -f ;;
    reboot) echo "bootkit: rebooting"; reboot -f ;;
esac
while :; do sleep 3600 & wait $!; done
"""


def debs_folder() -> Path:
    """Where the .debs and their extracted trees are kept between test runs."""
    explicit = os.environ.get("KITDSL_TEST_DEBS")
    return Path(explicit) if explicit else Path.home() / ".cache" / "kitdsl-test-debs"


@dataclass(frozen=True)
class Parts:
    """The extracted pieces the test system is made of."""

    kernel: Path
    modules: Path
    """``lib/modules/<version>`` of the same kernel package."""
    busybox: Path


class Unavailable(Exception):
    """The parts cannot be got (no apt-get, no network): tests that need them skip."""


def _run(argv: list[str], cwd: Path) -> str:
    try:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise Unavailable(f"{argv[0]} is not installed") from error
    if result.returncode != 0:
        raise Unavailable(f"{' '.join(argv)} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def _download(folder: Path, pattern: str, package: str) -> Path:
    """The cached .deb matching ``pattern``, downloaded first when there is none."""
    found = sorted(folder.glob(pattern))
    if not found:
        # Downloaded aside and renamed into place, so an interrupted download is not reused.
        with tempfile.TemporaryDirectory(prefix=".download.", dir=folder) as scratch:
            _run(["apt-get", "download", package], Path(scratch))
            for deb in Path(scratch).glob(pattern):
                deb.rename(folder / deb.name)
        found = sorted(folder.glob(pattern))
        if not found:
            raise Unavailable(f"apt-get download {package} wrote no {pattern}")
    return found[-1]


def _kernel_package(folder: Path) -> str:
    depends = _run(["apt-cache", "depends", "linux-image-cloud-amd64"], folder)
    for line in depends.splitlines():
        if not line.strip().startswith("Depends:"):
            continue
        name = line.strip().removeprefix("Depends:").strip()
        if name.startswith("linux-image-") and name.endswith("-cloud-amd64"):
            return name
    raise Unavailable("apt-cache names no linux-image-*-cloud-amd64 package")


def _extract(deb: Path) -> Path:
    """``deb`` extracted next to it (once: the tree is renamed into place when complete)."""
    tree = deb.with_suffix(".tree")
    if not tree.is_dir():
        scratch = Path(tempfile.mkdtemp(prefix=f".{deb.stem}.", dir=deb.parent))
        _run(["dpkg-deb", "-x", str(deb), str(scratch)], deb.parent)
        try:
            scratch.rename(tree)
        except OSError:  # another test run got there first
            shutil.rmtree(scratch)
    return tree


def fetch_parts() -> Parts:
    """Download (once) and extract the cloud kernel and busybox-static."""
    folder = debs_folder()
    folder.mkdir(parents=True, exist_ok=True)
    # A kernel downloaded before is used as it is: no apt-cache query, no network.
    found = sorted(folder.glob("linux-image-[0-9]*-cloud-amd64_*.deb"))
    if found:
        kernel_deb = found[-1]
    else:
        package = _kernel_package(folder)
        kernel_deb = _download(folder, f"{package}_*.deb", package)
    busybox_deb = _download(folder, "busybox-static_*.deb", "busybox-static")
    kernel_tree, busybox_tree = _extract(kernel_deb), _extract(busybox_deb)
    kernels = sorted((kernel_tree / "boot").glob("vmlinuz-*"))
    module_trees = sorted((kernel_tree / "lib" / "modules").iterdir())
    if not kernels or not module_trees:
        raise Unavailable(f"{kernel_deb.name} holds no vmlinuz or no modules")
    return Parts(kernels[-1], module_trees[-1], busybox_tree / "bin" / "busybox")


def rootfs(parts: Parts) -> list[Entry]:
    """The initramfs contents, in the order they are written."""
    entries = [Entry.directory(name) for name in ("bin", "dev", "lib", "proc", "sys", "www")]
    entries += [Entry.directory("lib/modules"), Entry.directory("lib/modules/virtio")]
    entries.append(Entry.directory("lib/modules/pvpanic"))
    entries.append(Entry.file("bin/busybox", parts.busybox.read_bytes(), mode=0o755))
    entries.append(Entry.file("init", INIT.encode(), mode=0o755))
    entries.append(Entry.file("www/index.html", b"hello from bootkit\n"))
    for folder, modules in (("virtio", MODULES), ("pvpanic", PVPANIC_MODULES)):
        for index, module in enumerate(modules):
            # The numeric prefix keeps the load order in the shell's sorted glob.
            name = f"lib/modules/{folder}/{index:02d}-{Path(module).name}"
            entries.append(Entry.file(name, (parts.modules / module).read_bytes()))
    return entries


@dataclass(frozen=True)
class BootFiles:
    """A kernel, an initramfs and a command line, laid out as ``kitdsl build`` writes them."""

    prefix: Path
    kernel: Path
    initrd: Path
    cmdline: str


def write_boot_files(prefix: Path, parts: Parts | None = None) -> BootFiles:
    """Write ``<prefix>-kernel``, ``<prefix>-initrd.img`` and ``<prefix>-cmdline``."""
    parts = parts or fetch_parts()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    kernel = prefix.parent / f"{prefix.name}-kernel"
    initrd = prefix.parent / f"{prefix.name}-initrd.img"
    shutil.copyfile(parts.kernel, kernel)
    with initrd.open("wb") as handle:
        write_initrd(rootfs(parts), handle)
    (prefix.parent / f"{prefix.name}-cmdline").write_text(CMDLINE)
    return BootFiles(prefix, kernel, initrd, CMDLINE)


@pytest.fixture(scope="session")
def bootkit(tmp_path_factory: pytest.TempPathFactory) -> BootFiles:
    """The test system's boot files (the tests that need it skip without qemu or the .debs)."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu is not installed (apt-get install qemu-system-x86)")
    try:
        parts = fetch_parts()
    except Unavailable as error:
        pytest.skip(f"the test kernel and busybox cannot be got: {error}")
    return write_boot_files(tmp_path_factory.mktemp("bootkit") / "bk", parts)


if __name__ == "__main__":
    print(write_boot_files(Path(sys.argv[1])))
