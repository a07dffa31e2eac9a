#!/bin/sh
# /usr/sbin/apply-sysctl: applies the kernel settings of /etc/sysctl.d/*.conf (this image's
# defaults), then of the system's /etc/sysctl.d/*.conf (seen here as /hostroot/etc/sysctl.d), in
# name order, so that the system's files win. Lines are "key = value" ("net.ipv4.ip_forward = 1");
# "#" and ";" start comments; a key written "-key" may be missing from the kernel without
# complaint. A setting that cannot be applied is reported and the others still are; the exit
# code is 1 if any could not be (2 if a file could not be read).
#
# SYSCTL_DIRS and SYSCTL_ROOT name other folders of settings and another /proc/sys.
dirs=${SYSCTL_DIRS:-/etc/sysctl.d /hostroot/etc/sysctl.d}
root=${SYSCTL_ROOT:-/proc/sys}
status=0
applied=0
# Sets $trimmed to $1 without leading and trailing blanks (no subshell: this runs per line).
trim() {
	trimmed=${1#"${1%%[! 	]*}"}
	trimmed=${trimmed%"${trimmed##*[! 	]}"}
}
files=
for dir in $dirs; do
	files="$files $dir/*.conf"
done
for file in $files; do
	[ -e "$file" ] || continue
	[ -r "$file" ] || { echo "sysctl: cannot read $file"; status=2; continue; }
	number=0
	while IFS= read -r line || [ -n "$line" ]; do
		number=$((number + 1))
		trim "$line"
		line=$trimmed
		case $line in "" | "#"* | ";"*) continue ;; esac
		case $line in *=*) ;; *)
			echo "sysctl: $file:$number: not key = value: $line"
			[ "$status" = 2 ] || status=1
			continue
			;;
		esac
		trim "${line%%=*}"
		key=$trimmed
		trim "${line#*=}"
		value=$trimmed
		optional=
		case $key in -*) optional=1 key=${key#-} ;; esac
		path=$root/${key//.//}
		if [ -w "$path" ] && printf '%s\n' "$value" >"$path" 2>/dev/null; then
			applied=$((applied + 1))
		elif [ -z "$optional" ]; then
			echo "sysctl: $file:$number: cannot set $key = $value"
			[ "$status" = 2 ] || status=1
		fi
	done <"$file"
done
echo "sysctl: $applied settings applied"
exit "$status"
