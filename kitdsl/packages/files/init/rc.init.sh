#!/bin/sh
# /usr/lib/kitdsl/rc.init: what busybox init runs first (sysinit), before any service.
# Mounts, kernel modules, hostname, loopback, volumes, /etc/init.d, then the onboot containers
# in order. Nothing here stops the boot: a failure is reported on the console and boot goes on.
. /usr/lib/kitdsl/lib.sh
say "starting ($(seconds "$(uptime_cs)") since the kernel started)"

# --- file systems ----------------------------------------------------------------------------
# /proc and /run are mounted by /sbin/init. The root stays read-only, as LinuxKit's does: what
# changes at run time lives in /run, /tmp, /var and the containers' own layers.
mount -o remount,ro / || say "the root file system could not be made read-only"
mount -t devtmpfs -o nosuid,noexec,mode=0755,size=10m dev /dev
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
ln -sf /proc/kcore /dev/core
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm
mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
# runc needs the cgroup hierarchy before it runs anything (it panics without it).
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate cgroup2 /sys/fs/cgroup
mount -t tmpfs -o nosuid,nodev,mode=1777,size=10% tmpfs /tmp
mount -t tmpfs -o nosuid,nodev,mode=0755,size=50% tmpfs /var
mkdir -p /var/cache /var/empty /var/lib /var/local /var/lock /var/log /var/opt /var/spool
mkdir -p /var/tmp && chmod 1777 /var/tmp
ln -s /run /var/run
mkdir -p /run/kitdsl/config
# Containers may mount things the host must see (a disk formatted by an onboot container).
mount --make-rshared /

# --- kernel modules --------------------------------------------------------------------------
# The modules the hardware asks for (each device's modalias), and overlay for read-write
# containers. A driver may add devices of its own (virtio_pci adds the virtio devices), so
# the scan repeats until no device is new. busybox modprobe reads the kernel package's
# modules.dep and modules.alias; without them nothing is loaded and nothing fails.
aliases=
# evdev has no device of its own: the power button's events reach acpid through it.
extra="overlay evdev"
while :; do
	now=$(cat /sys/bus/*/devices/*/modalias 2>/dev/null | sort -u)
	[ "$now" != "$aliases" ] || break
	aliases=$now
	modprobe -abq $extra $aliases
	extra=
done

# The power button, when the kernel has its drivers (button, evdev): busybox acpid runs
# /etc/acpi/PWRF/00000080 when it is pressed.
for event in /dev/input/event*; do
	[ -e "$event" ] || break
	acpid -c /etc/acpi -l /var/log/acpid.log
	break
done

# The command port (see docs/init.md): a root shell for test drivers, only when asked.
if cmdline_has kitdsl.shell=1; then
	say "a root shell listens on the virtio port org.kitdsl.shell (kitdsl.shell=1)"
	setsid "$LIB/command-port" </dev/null >/dev/null 2>&1 &
fi

# --- identity and network --------------------------------------------------------------------
if [ -s /etc/hostname ]; then
	hostname -F /etc/hostname
elif [ -r /sys/class/net/eth0/address ]; then
	read -r mac </sys/class/net/eth0/address
	hostname "kitdsl-$(echo "$mac" | tr -d :)"
fi
ip link set lo up
# DHCP clients write the resolver configuration behind the symlink /etc/resolv.conf.
if [ -L /etc/resolv.conf ]; then
	target=$(readlink /etc/resolv.conf)
	mkdir -p "${target%/*}"
	[ -e "$target" ] || : >"$target"
fi
ulimit -n 1048576 2>/dev/null
ulimit -u unlimited 2>/dev/null

# --- volumes ---------------------------------------------------------------------------------
# containers/volumes/NAME/merged is the image (lower) with a writable layer on top; a read-only
# volume (built without tmp/) is lower itself, bound read-only.
for volume in /containers/volumes/*/; do
	[ -d "$volume/lower" ] || continue
	volume=${volume%/}
	if [ -d "$volume/tmp" ]; then
		mount -t tmpfs tmpfs "$volume/tmp" &&
			mkdir -p "$volume/tmp/upper" "$volume/tmp/work" &&
			mount -t overlay -o "lowerdir=$volume/lower,upperdir=$volume/tmp/upper,workdir=$volume/tmp/work" \
				overlay "$volume/merged"
	else
		mount --bind "$volume/lower" "$volume/merged" &&
			mount -o remount,bind,ro "$volume/merged"
	fi || say "volume ${volume##*/}: could not be mounted"
done

# --- scripts of init images, then the onboot containers --------------------------------------
for script in /etc/init.d/*; do
	[ -f "$script" ] && [ -x "$script" ] || continue
	"$script" || say "${script}: exited with code $?"
done

run_section onboot
say "onboot finished ($(seconds "$(uptime_cs)") since the kernel started)"
