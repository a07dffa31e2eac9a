#!/bin/sh
# /usr/sbin/sshd: dropbear, after making its host keys if this is its first start (they are
# kept in /etc/dropbear while the container's layer lives: across restarts of the service, not
# across reboots, unless the system binds a persistent folder there). Logins use keys only, for
# root, from /root/.ssh/authorized_keys (the system's, bound read-only). Arguments are added to
# dropbear's.
mkdir -p /etc/dropbear
for type in ed25519 ecdsa; do
	key=/etc/dropbear/dropbear_${type}_host_key
	[ -s "$key" ] && continue
	dropbearkey -t "$type" -f "$key" 2>&1 | grep -i fingerprint | sed "s/^/sshd: new $type host key: /"
done
[ -s /root/.ssh/authorized_keys ] || echo "sshd: /root/.ssh/authorized_keys is empty: nobody can log in"
# -F foreground, -E log to standard error, -s keys only (no passwords), -j -k no port forwarding.
exec dropbear -F -E -s -j -k -p 22 \
	-r /etc/dropbear/dropbear_ed25519_host_key -r /etc/dropbear/dropbear_ecdsa_host_key "$@"
