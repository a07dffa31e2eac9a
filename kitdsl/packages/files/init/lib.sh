# Functions the init's scripts share (sourced, busybox sh). Installed as /usr/lib/kitdsl/lib.sh.
#
# A container bundle is LinuxKit's: BUNDLE/config.json (the OCI runtime spec), runtime.json (what
# the init does around it), and the image under lower/ or rootfs/. Running one is
#   prepare_bundle BUNDLE ID   mounts, mkdir and cgroups of runtime.json
#   run_bundle BUNDLE ID LOG   runc run, output to LOG and the console; sets $code
#   cleanup_bundle BUNDLE      unmounts what prepare_bundle mounted (one-shot containers)

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LIB=/usr/lib/kitdsl
STATE=/run/kitdsl
RUNC=/usr/sbin/runc
[ -x /usr/lib/kitdsl/bin/runc ] && RUNC=/usr/lib/kitdsl/bin/runc

# A line on the console (init's standard output) and, when given, in a log file.
say() {
	echo "kitdsl: $1"
	[ -z "$2" ] || echo "kitdsl: $1" >>"$2"
}

# Hundredths of a second since the kernel started (from /proc/uptime, without a fork).
uptime_cs() {
	read -r _up _ </proc/uptime
	# "12.05" -> 1205; the "1" prefix keeps "05" from being read as octal.
	echo $((${_up%.*} * 100 + 1${_up#*.} - 100))
}

# "1.23 s" for a number of hundredths.
seconds() {
	printf '%d.%02d s' $(($1 / 100)) $(($1 % 100))
}

# Whether the kernel command line holds the word $1 (for example kitdsl.shell=1).
cmdline_has() {
	case " $(cat /proc/cmdline) " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

# --- runtime.json ----------------------------------------------------------------------------
# runtime.awk turns runtime.json into calls of the rt_* functions below, in the order LinuxKit
# applies them: mounts, mkdir, cgroups, then (after the container is created) interfaces and
# bindNS. prepare_bundle does the first three; the createRuntime hook does the last two.

rt_mount() { # DESTINATION TYPE SOURCE OPTIONS(comma-separated)
	_dest=$1 _type=$2 _source=$3 _options='' _propagation=''
	_ifs=$IFS
	IFS=,
	set -- $4
	IFS=$_ifs
	mkdir -p "$_dest" 2>/dev/null
	for _o in "$@"; do
		case $_o in
		upperdir=* | workdir=*)
			mkdir -p "${_o#*=}" || return 1
			_options=$_options,$_o
			;;
		shared | rshared | private | rprivate | slave | rslave | unbindable | runbindable)
			# The kernel takes a propagation change on its own, not with other flags.
			_propagation="$_propagation $_o"
			;;
		*) _options=$_options,$_o ;;
		esac
	done
	_options=${_options#,}
	# A lone "remount" (LinuxKit's "remount,private") changes nothing but the propagation.
	if [ -n "$_type$_source" ] || { [ -n "$_options" ] && [ "$_options" != remount ]; }; then
		mount ${_type:+-t "$_type"} ${_options:+-o "$_options"} "${_source:-none}" "$_dest" ||
			return 1
	fi
	for _p in $_propagation; do
		mount --make-"$_p" "$_dest" || return 1
	done
}

rt_mkdir() { # PATH (relative paths are in the container's root file system)
	case $1 in
	/*) mkdir -p "$1" ;;
	*) mkdir -p "$_bundle/rootfs/$1" ;;
	esac
}

rt_cgroup() { # NAME
	mkdir -p "/sys/fs/cgroup/$1"
}

# Interfaces and namespace binds need the container's process: a hook does them.
rt_iface() { _hook=1; }
rt_bindns() { _hook=1; }

# BUNDLE's config.json with a hook that runc runs between creating the container and starting
# its process (the OCI createRuntime hook), as the first key of the document. Inserted as text
# after the opening brace: the rest of the document is left exactly as it was written.
hooked_config() { # BUNDLE
	awk -v hook='"hooks":{"createRuntime":[{"path":"/usr/lib/kitdsl/hook","args":["hook","'"$1"'"]}]},' '
		!done && (at = index($0, "{")) { $0 = substr($0, 1, at) hook substr($0, at + 1); done = 1 }
		{ print }' "$1/config.json"
}

prepare_bundle() { # BUNDLE ID
	_bundle=$1 _hook=''
	[ -f "$1/runtime.json" ] || return 0
	_script=$(awk -f "$LIB/runtime.awk" "$1/runtime.json") || {
		echo "cannot read $1/runtime.json"
		return 1
	}
	eval "$_script" || {
		echo "cannot prepare $1 as its runtime.json says"
		return 1
	}
	[ -n "$_hook" ] || return 0
	# The image's config.json stays as built; a copy with the hook is bound over it.
	# A top-level key of config.json (written by kitdsl or LinuxKit: 4-space indent).
	if grep -q '^    "hooks":' "$1/config.json"; then
		echo "$1/config.json has hooks of its own: its interfaces and bindNS are not applied"
		return 0
	fi
	mkdir -p "$STATE/config"
	hooked_config "$1" >"$STATE/config/$2.json" &&
		mount --bind "$STATE/config/$2.json" "$1/config.json" &&
		mount -o remount,bind,ro "$STATE/config/$2.json" "$1/config.json"
}

cleanup_bundle() { # BUNDLE (what is not mounted is skipped)
	for _m in "$1/config.json" "$1/rootfs" "$1/tmp"; do
		umount -l "$_m" 2>/dev/null
	done
	return 0
}

run_bundle() { # BUNDLE ID LOG; sets $code to the container's exit code
	# A container left behind by a runc that was killed would block its ID.
	[ ! -d "/run/runc/$2" ] || "$RUNC" delete --force "$2" >/dev/null 2>&1
	{
		"$RUNC" run --bundle "$1" "$2" </dev/null 2>&1
		echo $? >"$STATE/$2.code"
	} | awk -v name="$2" -v file="$3" -v size="$(stat -c %s "$3" 2>/dev/null)" -f "$LIB/log.awk"
	read -r code <"$STATE/$2.code" || code=255
}

# Run the one-shot containers of a section (onboot, onshutdown) in name order.
run_section() { # SECTION
	for _dir in /containers/"$1"/*/; do
		[ -d "$_dir" ] || continue
		_dir=${_dir%/}
		_id=${_dir##*/}
		_log=/var/log/$1.$_id.log
		_start=$(uptime_cs)
		if ! _why=$(prepare_bundle "$_dir" "$_id" 2>&1); then
			say "$1 $_id: FAILED, not started: $_why" "$_log"
			cleanup_bundle "$_dir"
			continue
		fi
		[ -z "$_why" ] || say "$1 $_id: $_why" "$_log"
		run_bundle "$_dir" "$_id" "$_log"
		cleanup_bundle "$_dir"
		_took=$(seconds $(($(uptime_cs) - _start)))
		if [ "$code" = 0 ]; then
			say "$1 $_id: exited with code 0 ($_took)" "$_log"
		else
			say "$1 $_id: FAILED, exited with code $code ($_took); see $_log" "$_log"
		fi
	done
}
