#!/bin/sh
# /usr/sbin/dhcpcd: DHCP on every ethernet interface (those backed by a device), or on those
# named in the arguments, all at once with busybox udhcpc. By default it gets a lease on each and
# exits, as an onboot container (like LinuxKit's `dhcpcd -1`): the exit code is the number of
# interfaces that got none. With --daemon it stays and renews the leases (run it as a service).
#
# The lease is applied by /usr/share/udhcpc/default.script: address, routes, MTU and the
# resolver configuration (/etc/resolv.conf here, which is the host's /run/resolvconf).
once=-q
case $1 in --daemon) once= && shift ;; esac
interfaces=$*
if [ -z "$interfaces" ]; then
	for path in /sys/class/net/*; do
		[ -e "$path/device" ] && interfaces="$interfaces ${path##*/}"
	done
fi
if [ -z "$interfaces" ]; then
	echo "dhcpcd: no ethernet interface"
	exit 0
fi
host=$(hostname)
for interface in $interfaces; do
	# -f foreground, -n give up after the tries (-t) spaced by -T seconds, -A before trying
	# again when running as a daemon; ask for routes, MTU, search domains; send our name.
	udhcpc -f $once -n -i "$interface" -t 10 -T 1 -A 5 -s /usr/share/udhcpc/default.script \
		-O staticroutes -O mtu -O search ${host:+-x "hostname:$host"} &
done
wait
# An interface without an IPv4 address is one that got no lease.
failed=0
for interface in $interfaces; do
	ip -4 -o addr show dev "$interface" | grep -q inet || {
		echo "dhcpcd: $interface: no lease"
		failed=$((failed + 1))
	}
done
exit "$failed"
