#!/bin/sh
# /usr/lib/kitdsl/supervise NAME: runs the service container /containers/services/NAME and
# starts it again whenever it exits. busybox init starts one per service (a respawn line of the
# inittab) once the onboot containers are done, and starts this script again should it die.
#
# Restarts back off: 1 s after the first exit, then twice as long each time the service exits
# within 10 s of starting, up to 60 s; a service that ran 10 s or more is restarted after 1 s.
# Five quick exits in a row are reported as a crash loop. Output goes to /var/log/NAME.log and
# to the console, with the init's messages about the service.
. /usr/lib/kitdsl/lib.sh
name=$1
bundle=/containers/services/$name
log=/var/log/$name.log
ulimit -n 1048576 2>/dev/null
ulimit -u unlimited 2>/dev/null

delay=1
quick=0
backoff() {
	sleep "$delay"
	delay=$((delay * 2))
	[ "$delay" -le 60 ] || delay=60
}

until why=$(prepare_bundle "$bundle" "$name" 2>&1); do
	say "service $name: cannot be prepared: $why; trying again in $delay s" "$log"
	cleanup_bundle "$bundle"
	backoff
done
[ -z "$why" ] || say "service $name: $why" "$log"

while :; do
	[ ! -e "$STATE/stopping" ] || exit 0
	start=$(uptime_cs)
	say "service $name: starting" "$log"
	code=
	run_bundle "$bundle" "$name" "$log"
	[ ! -e "$STATE/stopping" ] || exit 0
	ran=$(($(uptime_cs) - start))
	if [ "$ran" -ge 1000 ]; then
		delay=1
		quick=0
	else
		quick=$((quick + 1))
	fi
	what="service $name: exited with code $code after $(seconds "$ran")"
	if [ "$quick" -ge 5 ]; then
		what="$what; crash loop ($quick exits within 10 s of starting)"
	fi
	say "$what; restarting in $delay s" "$log"
	backoff
done
