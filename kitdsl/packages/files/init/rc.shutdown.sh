#!/bin/sh
# /usr/lib/kitdsl/rc.shutdown: what busybox init runs when the system powers off, reboots or
# halts, before it stops every process (SIGTERM, a second, SIGKILL) and asks the kernel to
# power off. Runs the onshutdown containers in order. When a disk file system is mounted, it
# stops the processes itself first, so that the disk can be unmounted cleanly.
. /usr/lib/kitdsl/lib.sh
: >"$STATE/stopping"
say "shutting down"
run_section onshutdown

DISKS=ext2,ext3,ext4,btrfs,xfs,vfat,msdos
disks_mounted() {
	while read -r _ _ _type _; do
		case ",$DISKS," in *",$_type,"*) return 0 ;; esac
	done </proc/mounts
	return 1
}
# Whether a process other than init and this script runs (kernel threads have no executable).
others() {
	for _p in /proc/[0-9]*; do
		case ${_p#/proc/} in 1 | "$$") continue ;; esac
		[ -e "$_p/exe" ] && return 0
	done
	return 1
}
if disks_mounted; then
	kill -TERM -1 2>/dev/null
	waited=0
	while others && [ "$waited" -lt 40 ]; do
		sleep 0.05
		waited=$((waited + 1))
	done
	kill -KILL -1 2>/dev/null
	sync
	umount -a -r -t "$DISKS,overlay" 2>/dev/null
fi
sync
