#!/bin/sh
# Installed as /usr/lib/kitdsl/hook. runc runs it as a createRuntime hook (added by
# prepare_bundle) once the container's namespaces exist and before its process starts, with
# the container's state as JSON on standard input: it moves or creates the network interfaces
# of runtime.json in the container's network namespace and binds its namespaces where bindNS
# says, as LinuxKit does between `runc create` and `runc start`. Doing it from a hook keeps
# `runc run` as the container's parent, so the container's exit code is not lost.
#
# Usage: hook BUNDLE   (runc passes no PATH: lib.sh sets it)
. /usr/lib/kitdsl/lib.sh
bundle=$1
pid=$(sed -n 's/.*"pid"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p')
if [ -z "$pid" ]; then
	echo "kitdsl hook: no pid in the container state" >&2
	exit 1
fi

rt_mount() { :; }
rt_mkdir() { :; }
rt_cgroup() { :; }

# The name of the interface whose index is $1.
iface_by_index() {
	for _i in /sys/class/net/*/ifindex; do
		read -r _n <"$_i"
		[ "$_n" = "$1" ] || continue
		_i=${_i%/ifindex}
		echo "${_i##*/}"
		return 0
	done
	return 1
}

rt_iface() { # NAME ADD PEER CREATE_IN_ROOT
	[ -n "$1" ] || { echo "an interface of runtime.json has no name" >&2; return 1; }
	_add=$2
	[ -n "$3" ] && [ -z "$_add" ] && _add=veth
	case $_add in
	veth)
		[ -n "$3" ] || { echo "veth $1 needs a peer" >&2; return 1; }
		# busybox ip cannot name a veth's peer, which the kernel calls vethN. So: make the
		# pair under a temporary name, move the kernel-named end into the container and
		# name it there, then give the end left here the peer's name.
		_tmp=kitdsl$$
		ip link add "$_tmp" type veth || return 1
		read -r _index <"/sys/class/net/$_tmp/iflink"
		_end=$(iface_by_index "$_index") || { echo "veth $_tmp has no other end" >&2; return 1; }
		ip link set "$_end" netns "$pid" || return 1
		[ "$_end" = "$1" ] || nsenter -t "$pid" -n ip link set "$_end" name "$1" || return 1
		ip link set "$_tmp" name "$3"
		;;
	"")
		ip link set "$1" netns "$pid"
		;;
	*)
		if [ "$4" = true ]; then
			ip link add "$1" type "$_add" && ip link set "$1" netns "$pid"
		else
			nsenter -t "$pid" -n ip link add "$1" type "$_add"
		fi
		;;
	esac
}

rt_bindns() { # NAMESPACE PATH
	mkdir -p "${2%/*}" && { [ -e "$2" ] || : >"$2"; } &&
		mount --bind "/proc/$pid/ns/$1" "$2"
}

apply() {
	_script=$(awk -f "$LIB/runtime.awk" "$bundle/runtime.json") || return 1
	eval "$_script"
}
apply
