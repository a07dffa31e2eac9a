"""Kernel packages: a Debian kernel in LinuxKit's kernel image layout.

LinuxKit's kernel images hold ``/kernel`` (the bootable image) and ``/kernel.tar`` (the
modules, unpacked into the root file system at build time). A :class:`KernelPackage` makes
that from a Debian ``linux-image-*`` package::

    kernel = KernelPackage(
        name="kernel",
        debian=["linux-image-cloud-amd64"],
        modules=["virtio_net", "virtio_blk", "overlay"],
    )
    system = System(kernel=Kernel(image=kernel, cmdline="console=ttyS0"))

``modules`` keeps only the modules named and those they depend on (all of them when it is
``None``): an initrd with the handful a virtual machine needs is a few hundred kilobytes, not
the 25 MB of every module. Debian's package ships no ``modules.dep`` (its maintainer script
runs ``depmod``, and maintainer scripts are never run here), so the dependencies and aliases
are read from each module's ``.modinfo`` section and ``modules.dep`` and ``modules.alias`` are
written as ``depmod`` writes them, for ``modprobe`` (busybox's included) at boot.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from kitdsl.errors import PackageError
from kitdsl.oci.store import ContentStore
from kitdsl.outputs.entry import DEFAULT_MTIME, Entry
from kitdsl.outputs.tar import TarWriter
from kitdsl.pkg.context import PackageContext, ResolvedPackage
from kitdsl.pkg.layers import Layer, LayerWriter
from kitdsl.pkg.package import Package

__all__ = ["KernelPackage", "ModuleInfo", "module_info"]

KERNEL_EXCLUDE = ["kmod", "linux-base", "initramfs-tools"]
"""What a kernel package depends on to install itself on a Debian system (and that a kernel
image does not need)."""
KEPT_FILES = ("modules.builtin", "modules.builtin.modinfo", "modules.order")
"""Files of ``lib/modules/VERSION`` kept beside the modules: what modprobe reads to know a
module is built in."""


class KernelPackage(Package):
    """A kernel image (``/kernel`` and ``/kernel.tar``) made from a Debian kernel package."""

    kind: ClassVar[str] = "kernel"

    debian: list[str] = Field(default_factory=lambda: ["linux-image-cloud-amd64"])
    """The kernel package (or the metapackage naming it): ``linux-image-cloud-amd64`` is
    small and boots fastest in virtual machines; ``linux-image-amd64`` has every driver."""
    exclude: list[str] = Field(default_factory=lambda: list(KERNEL_EXCLUDE))
    modules: list[str] | None = None
    """Modules to keep, with those they depend on (``None``: all)."""

    def build_layers(
        self, resolved: ResolvedPackage, store: ContentStore, context: PackageContext
    ) -> Iterator[Layer]:
        """The one layer of ``/kernel`` and ``/kernel.tar``."""
        assert resolved.closure is not None
        downloaded = context.archive(self).download(resolved.closure)
        images = [item for item in downloaded if _is_image(item.package.name)]
        if len(images) != 1:
            names = ", ".join(item.package.name for item in downloaded)
            raise PackageError(
                f"kernel package {self.name}: expected one linux-image package among {names}",
                location=self.field_origin("debian") or self.origin,
                hint="name one linux-image-* package (or a metapackage depending on one)",
            )
        with tempfile.TemporaryDirectory(prefix="kitdsl-kernel-") as scratch:
            work = Path(scratch)
            version, kernel = _unpack(images[0].path, work)
            tar_path = work / "kernel.tar"
            with tar_path.open("wb") as out:
                _write_modules(work / "modules", version, self.modules, out, self)
            with LayerWriter(store) as writer:
                for name, path in (("kernel", kernel), ("kernel.tar", tar_path)):
                    with path.open("rb") as data:
                        entry = Entry.file(name, b"", mode=0o644)
                        entry.info.size = path.stat().st_size
                        writer.add(Entry(entry.info, data))
        assert writer.layer is not None
        yield writer.layer


def _is_image(name: str) -> bool:
    """``linux-image-6.1.0-57-cloud-amd64``, not the metapackage ``linux-image-cloud-amd64``."""
    return re.match(r"linux-image-\d", name) is not None and not name.endswith("-dbg")


def _unpack(deb: Path, work: Path) -> tuple[str, Path]:
    """Extract the kernel and ``lib/modules/VERSION`` of a kernel ``.deb`` into ``work``;
    return the version and the kernel's path."""
    from kitdsl.pkg.debian import DebFile

    kernel: Path | None = None
    version: str | None = None
    modules = work / "modules"
    for member in DebFile(deb).members():
        name, info = member.name, member.info
        parts = name.split("/")
        if len(parts) == 2 and parts[0] == "boot" and parts[1].startswith("vmlinuz-"):
            kernel = target = work / "vmlinuz"
            version = parts[1].removeprefix("vmlinuz-")
        elif len(parts) > 3 and parts[:2] == ["lib", "modules"] and info.isfile():
            target = modules.joinpath(*parts[2:])
        else:
            continue
        assert member.reader is not None
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            shutil.copyfileobj(member.reader, out, 1 << 20)
    if kernel is None or version is None:
        raise PackageError(f"{deb.name} holds no boot/vmlinuz-*: it is not a kernel package")
    if not (modules / version).is_dir():
        raise PackageError(f"{deb.name} holds no modules for its kernel {version}")
    return version, kernel


@dataclass(frozen=True)
class ModuleInfo:
    """What ``.modinfo`` says of a module, and where it is below ``lib/modules/VERSION``."""

    name: str
    path: str
    depends: tuple[str, ...]
    aliases: tuple[str, ...]


def module_info(data: bytes, path: str) -> ModuleInfo:
    """Read the ``.modinfo`` section of the ELF module ``data`` (found at ``path``)."""
    section = _elf_section(data, b".modinfo", path)
    fields: dict[str, list[str]] = {}
    for item in section.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            fields.setdefault(key.decode(), []).append(value.decode("utf-8", "replace"))
    stem = path.rsplit("/", 1)[-1].split(".ko", 1)[0]
    name = (fields.get("name") or [stem])[0].replace("-", "_")
    depends = tuple(
        d.replace("-", "_") for d in ",".join(fields.get("depends", [])).split(",") if d
    )
    return ModuleInfo(name, path, depends, tuple(fields.get("alias", [])))


def _elf_section(data: bytes, wanted: bytes, path: str) -> bytes:
    """The bytes of the section named ``wanted`` of a 64-bit little-endian ELF file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise PackageError(f"kernel module {path} is not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        (name,) = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        return name, offset, size

    _, names_offset, names_size = header(shstrndx)
    names = data[names_offset : names_offset + names_size]
    for index in range(shnum):
        name, offset, size = header(index)
        if names[name : names.index(b"\0", name)] == wanted:
            return data[offset : offset + size]
    return b""


def _write_modules(
    root: Path, version: str, wanted: list[str] | None, out: io.BufferedWriter, package: Package
) -> None:
    """``kernel.tar``: the chosen modules under ``lib/modules/VERSION`` with generated
    ``modules.dep`` and ``modules.alias``, sorted, owned by root, dated LinuxKit's time."""
    folder = root / version
    infos: dict[str, ModuleInfo] = {}
    for path in sorted(folder.rglob("*.ko*")):
        relative = path.relative_to(folder).as_posix()
        if not relative.endswith(".ko"):
            raise PackageError(
                f"kernel module {relative} is compressed; kitdsl reads only plain .ko modules"
            )
        info = module_info(path.read_bytes(), relative)
        infos[info.name] = info
    chosen = _closure(infos, wanted, folder, package) if wanted is not None else set(infos)
    prefix = f"lib/modules/{version}"
    tar = TarWriter(out)
    written: set[str] = set()
    for directory in ("lib", "lib/modules", prefix):
        tar.add(Entry.directory(directory).info)
        written.add(directory)
    files = sorted(infos[name].path for name in chosen)
    for relative in files:
        parts = relative.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = f"{prefix}/{'/'.join(parts[:depth])}"
            if directory not in written:
                written.add(directory)
                tar.add(Entry.directory(directory).info)
        path = folder / relative
        with path.open("rb") as handle:
            entry = Entry.file(f"{prefix}/{relative}", b"", mode=0o644)
            entry.info.size = path.stat().st_size
            tar.add(entry.info, handle)
    generated: dict[str, bytes] = {
        "modules.dep": _modules_dep(infos, chosen),
        "modules.alias": _modules_alias(infos, chosen),
    }
    for name in KEPT_FILES:
        if (folder / name).is_file():
            generated[name] = (folder / name).read_bytes()
    for name, contents in sorted(generated.items()):
        entry = Entry.file(f"{prefix}/{name}", contents, mode=0o644, mtime=DEFAULT_MTIME)
        tar.add(entry.info, entry.data)
    tar.close()


def _closure(
    infos: dict[str, ModuleInfo], wanted: Iterable[str], folder: Path, package: Package
) -> set[str]:
    builtin = _builtin(folder)
    chosen: set[str] = set()
    pending = [name.replace("-", "_") for name in wanted]
    while pending:
        name = pending.pop()
        if name in chosen or name in builtin:
            continue
        if name not in infos:
            near = sorted(m for m in infos if name in m or m in name)[:5]
            raise PackageError(
                f"kernel package {package.name}: the kernel has no module {name!r}",
                location=package.field_origin("modules") or package.origin,
                hint=f"similar modules: {', '.join(near)}" if near else "check the name",
            )
        chosen.add(name)
        pending += infos[name].depends
    return chosen


def _builtin(folder: Path) -> set[str]:
    try:
        lines = (folder / "modules.builtin").read_text().split()
    except OSError:
        return set()
    return {line.rsplit("/", 1)[-1].removesuffix(".ko").replace("-", "_") for line in lines}


def _modules_dep(infos: dict[str, ModuleInfo], chosen: set[str]) -> bytes:
    """``modules.dep``: each module, then every module it needs, those needed last loaded
    first (modprobe loads the list from its end)."""
    lines = []
    for name in sorted(chosen, key=lambda n: infos[n].path):
        order = _load_order(infos, name)
        needed = " ".join(infos[d].path for d in reversed(order))
        lines.append(f"{infos[name].path}:{' ' if needed else ''}{needed}\n")
    return "".join(lines).encode()


def _load_order(infos: dict[str, ModuleInfo], name: str) -> list[str]:
    """What ``name`` needs, each module after those it needs itself."""
    order: list[str] = []

    def visit(module: str) -> None:
        for dependency in infos[module].depends:
            if dependency in infos and dependency not in order:
                visit(dependency)
                order.append(dependency)

    visit(name)
    return order


def _modules_alias(infos: dict[str, ModuleInfo], chosen: set[str]) -> bytes:
    lines = ["# Aliases extracted from modules themselves.\n"]
    for name in sorted(chosen):
        lines += [f"alias {alias} {name}\n" for alias in infos[name].aliases]
    return "".join(lines).encode()
