#!/bin/busybox sh
# /init: the first program the kernel runs from the initramfs; it starts /sbin/init (stage 2).
#
# runc cannot start containers while the initramfs is the root: pivot_root(2), which it uses to
# enter a container, refuses when the caller's root is the kernel's initial root file system
# (rootfs), a mount with no parent. LinuxKit's init and busybox's switch_root copy everything to
# a new file system and make that the root. Here the root becomes a bind mount of the initramfs
# itself instead: a mount like any other, which pivot_root accepts, made without copying a byte.
# (Measured under emulation, the copy took about half a second for a 13 MB initrd.)
#
# One file is copied: runc, to a ramfs. For every container it starts, runc makes sure the
# container cannot overwrite the runc binary (CVE-2019-5736): through a read-only bind mount of
# itself, except when the binary is on a tmpfs, as the initramfs is, whose files it takes for
# its own sealed in-memory copies; it then copies its 8 MB into memory every time, which costs
# about half a second per container under emulation. From a ramfs it binds.
#
# From a root that is not the initramfs (a disk), the kernel runs /sbin/init directly.
bb=/bin/busybox
case $($bb stat -f -c %T /) in
ramfs | tmpfs) ;;
*) exec /sbin/init "$@" ;;
esac

runc=/usr/lib/kitdsl/bin
$bb mkdir -p /newroot $runc
if [ -x /usr/sbin/runc ] && $bb mount -t ramfs -o mode=0755 runc $runc; then
	$bb cp -p /usr/sbin/runc $runc/runc
	$bb mount -t ramfs -o remount,ro runc $runc
fi
$bb mount --rbind / /newroot
cd /newroot || exit 1
$bb mount --move /newroot /
$bb rmdir newroot
exec $bb chroot . /sbin/init "$@"
