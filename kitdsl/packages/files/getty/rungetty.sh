#!/bin/sh
# /usr/sbin/rungetty: a login prompt on every console of the kernel command line (console=...),
# prompting again after each logout. With INSECURE=true, root is logged in without a password.
#
# Without INSECURE, root's password hash comes from the system's /etc/getty.shadow (seen here
# as /hostroot/etc/getty.shadow); without that file root cannot log in on the console at all.
if [ -r /hostroot/etc/getty.shadow ]; then
	cat /hostroot/etc/getty.shadow >/etc/shadow
fi
set --
if [ "$INSECURE" = true ]; then
	echo "rungetty: INSECURE=true: root is logged in on the consoles without a password"
	set -- -n -l /usr/libexec/autologin
fi

ttys=
for word in $(cat /proc/cmdline); do
	case $word in
	console=*)
		tty=${word#console=}
		tty=${tty%%,*}
		case " $ttys " in *" $tty "*) ;; *) ttys="$ttys $tty" ;; esac
		;;
	esac
done
[ -n "$ttys" ] || ttys=console

for tty in $ttys; do
	[ -c "/dev/$tty" ] || {
		echo "rungetty: /dev/$tty is not a device of this container; no login there"
		continue
	}
	case $tty in tty[0-9]*) term=linux ;; *) term=vt100 ;; esac
	(
		while :; do
			getty -L "$@" 115200 "$tty" "$term"
			sleep 1
		done
	) &
done
wait
