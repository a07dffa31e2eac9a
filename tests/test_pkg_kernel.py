"""Kernel packages: Debian's kernel in LinuxKit's kernel image layout, with a subset of its
modules and the modules.dep and modules.alias Debian's maintainer script would generate."""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

import pytest

from kitdsl.errors import PackageError
from kitdsl.oci.media import Manifest, Platform
from kitdsl.oci.store import ContentStore
from kitdsl.pkg.build import build_package
from kitdsl.pkg.context import PackageContext
from kitdsl.pkg.kernel import KernelPackage, module_info


def elf_with_modinfo(modinfo: bytes) -> bytes:
    """A minimal 64-bit little-endian ELF file with a ``.modinfo`` section."""
    names = b"\0.modinfo\0.shstrtab\0"
    data_offset = 64
    names_offset = data_offset + len(modinfo)
    sections_offset = names_offset + len(names)
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, sections_offset)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)

    def section(name: int, offset: int, size: int) -> bytes:
        entry = bytearray(64)
        struct.pack_into("<I", entry, 0, name)
        struct.pack_into("<QQ", entry, 0x18, offset, size)
        return bytes(entry)

    return (
        bytes(header)
        + modinfo
        + names
        + section(0, 0, 0)
        + section(1, data_offset, len(modinfo))
        + section(10, names_offset, len(names))
    )


def test_modinfo_is_read_from_the_elf_section() -> None:
    modinfo = b"alias=virtio:d00000001v*\0depends=net_failover,virtio-ring\0name=virtio_net\0"
    info = module_info(elf_with_modinfo(modinfo), "kernel/drivers/net/virtio_net.ko")
    assert info.name == "virtio_net"
    assert info.depends == ("net_failover", "virtio_ring")
    assert info.aliases == ("virtio:d00000001v*",)
    bare = module_info(elf_with_modinfo(b"license=GPL\0"), "kernel/fs/overlay-fs.ko")
    assert (bare.name, bare.depends) == ("overlay_fs", ())
    with pytest.raises(PackageError, match="not a 64-bit little-endian ELF"):
        module_info(b"not elf", "x.ko")


@pytest.mark.slow
def test_the_debian_cloud_kernel_with_a_subset_of_modules(tmp_path: Path) -> None:
    cache = Path.home() / ".cache" / "kitdsl-test-debs" / "kitdsl-cache"
    context = PackageContext(cache_dir=cache, platform=Platform(os="linux", architecture="amd64"))
    store = ContentStore(tmp_path / "store")
    kernel = KernelPackage(name="kernel", modules=["virtio_net", "overlay"])
    image = build_package(context.resolved(kernel), store, context)
    manifest = Manifest.model_validate_json(store.read_blob(image.manifest.digest))
    (layer,) = manifest.layers
    with tarfile.open(fileobj=io.BytesIO(store.read_blob(layer.digest))) as outer:
        assert outer.getnames() == ["kernel", "kernel.tar"]
        vmlinuz = outer.extractfile("kernel")
        assert vmlinuz is not None and vmlinuz.read(0x206)[0x202:] == b"HdrS"  # a bzImage
        modules_tar = outer.extractfile("kernel.tar")
        assert modules_tar is not None
        with tarfile.open(fileobj=io.BytesIO(modules_tar.read())) as inner:
            names = inner.getnames()
            dep_name = next(name for name in names if name.endswith("/modules.dep"))
            dep_file = inner.extractfile(dep_name)
            assert dep_file is not None
            dep = dep_file.read().decode()
    modules = {name.rsplit("/", 1)[-1] for name in names if name.endswith(".ko")}
    assert modules == {
        "virtio_net.ko",
        "net_failover.ko",
        "failover.ko",
        "virtio.ko",
        "virtio_ring.ko",
        "overlay.ko",
    }
    lines = dict(line.split(":", 1) for line in dep.splitlines())
    # What virtio_net needs, listed so that modprobe (which loads from the end) loads
    # virtio_ring before virtio and failover before net_failover.
    needed = lines["kernel/drivers/net/virtio_net.ko"].split()
    assert needed.index("kernel/drivers/virtio/virtio.ko") < needed.index(
        "kernel/drivers/virtio/virtio_ring.ko"
    )
    assert needed.index("kernel/drivers/net/net_failover.ko") < needed.index(
        "kernel/net/core/failover.ko"
    )
    assert lines["kernel/fs/overlayfs/overlay.ko"] == ""
    with pytest.raises(PackageError, match="no module 'virtio_nte'"):
        broken = KernelPackage(name="kernel", modules=["virtio_nte"])
        build_package(context.resolved(broken), store, context)
