#!/bin/sh
# /sbin/init: mounts /proc and /run, writes the inittab for this system's services and becomes
# busybox init (PID 1), which runs /usr/lib/kitdsl/rc.init, then supervises the services.
#
# The inittab is written at boot, to /run, and bound over /etc/inittab, which works on a
# read-only root too: one respawn line per bundle in /containers/services.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if [ "$$" != 1 ]; then
	echo "kitdsl: /sbin/init starts a system; it must be process 1" >&2
	exit 1
fi
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t tmpfs -o nosuid,nodev,mode=0755,size=10% tmpfs /run
mkdir -p /run/kitdsl
{
	echo "# Written at boot by /sbin/init."
	echo "::sysinit:/usr/lib/kitdsl/rc.init"
	for service in /containers/services/*/; do
		[ -d "$service" ] || continue
		service=${service%/}
		echo "::respawn:/usr/lib/kitdsl/supervise ${service##*/}"
	done
	echo "::ctrlaltdel:/sbin/reboot"
	echo "::shutdown:/usr/lib/kitdsl/rc.shutdown"
} >/run/kitdsl/inittab
# Read-only where it is bound: a container that sees the host's /etc (getty's /hostroot/etc)
# must not be able to change what init runs.
mount --bind /run/kitdsl/inittab /etc/inittab
mount -o remount,bind,ro /run/kitdsl/inittab /etc/inittab
exec /bin/busybox init
