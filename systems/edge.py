"""Edge node: the base system, remote access, and a web server with its page."""

from kitdsl import File, Service
from systems.common import base, ssh

httpd = Service(
    name="httpd",
    image="linuxkit/httpd:a4d9a4e2f3a8b3c7d1e0f9a8b7c6d5e4f3a2b1c0",
    capabilities=["CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"],
    binds=["/var/www:/var/www:ro"],
    uid="httpd",
    gid="httpd",
)

page = File(
    path="var/www/index.html",
    contents="<!doctype html>\n<title>edge</title>\n<h1>edge is up</h1>\n",
    mode=0o644,
)

system = base.system.override("getty", env=["INSECURE=true"]).extend(
    services=[ssh.sshd, httpd],
    files=[ssh.root_ssh, ssh.authorized_keys, page],
)
"""The edge product."""
