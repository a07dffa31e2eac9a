"""The kernel: Debian's cloud kernel, with the modules a virtual machine needs.

``linux-image-cloud-amd64`` is Debian's kernel for virtual machines: a third of the size of
the generic kernel, compressed with LZ4, and about 2.5 s faster to start under emulation. Its
virtio drivers, overlayfs and squashfs are modules; :data:`VIRTUAL_MACHINE_MODULES` keeps
those (and their dependencies), so the initrd carries a few hundred kilobytes of modules
rather than all 90 MB. Make your own with :class:`~kitdsl.pkg.kernel.KernelPackage` for other
hardware (``modules=None`` keeps every module).
"""

from __future__ import annotations

from kitdsl.pkg.kernel import KernelPackage

__all__ = ["VIRTUAL_MACHINE_MODULES", "kernel"]

VIRTUAL_MACHINE_MODULES = [
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_console",
    "virtio_rng",
    "pvpanic_pci",
    "overlay",
    "squashfs",
    "veth",
    "button",
    "evdev",
]
"""Disks, network, consoles and entropy over virtio; pvpanic (qemu learns of a kernel panic);
overlayfs (read-write containers); squashfs (kernel+squashfs outputs); veth (containers with
their own network); the ACPI power button and its events (a hypervisor's "power off" reaches
the init)."""

kernel = KernelPackage(
    name="kernel",
    debian=["linux-image-cloud-amd64"],
    modules=VIRTUAL_MACHINE_MODULES,
)
"""Debian's cloud kernel (bookworm, with its security updates) for amd64."""
