#!/bin/sh
# /usr/sbin/load-modules MODULE...: loads each kernel module (with what it depends on), with the
# kernel's modules.dep bound read-only from the host's /lib/modules. Reports each module, and
# exits 1 if any could not be loaded.
if [ $# = 0 ]; then
	echo "usage: load-modules MODULE... (give the modules as the container's command)" >&2
	exit 2
fi
status=0
for module in "$@"; do
	if modprobe "$module"; then
		echo "modprobe: $module loaded"
	else
		echo "modprobe: $module could not be loaded"
		status=1
	fi
done
exit "$status"
