#!/bin/sh
# /usr/lib/kitdsl/command-port: a root shell on the virtio serial port org.kitdsl.shell, for
# test drivers (kitdsl's Machine.execute). rc.init starts it only when the kernel command line
# has kitdsl.shell=1; docs/init.md says why that is the gate.
. /usr/lib/kitdsl/lib.sh
cd /
# The port appears once virtio_console has probed it, which may be after modprobe returns.
tries=0
while :; do
	for port in /sys/class/virtio-ports/*; do
		[ -r "$port/name" ] || continue
		read -r name <"$port/name"
		[ "$name" = org.kitdsl.shell ] || continue
		device=/dev/${port##*/}
		# A virtio port opens once: open it read-write and share it as the shell's stdio.
		while :; do
			sh <>"$device" >&0 2>&0
			sleep 0.2
		done
	done
	tries=$((tries + 1))
	[ "$tries" -lt 300 ] || exit 1
	sleep 0.1
done
