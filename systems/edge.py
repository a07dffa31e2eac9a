"""Edge node: the base system, remote access, and a web server with its page."""

from kitdsl import File, Service, packages
from systems.common import base, ssh

httpd = Service(name="httpd", image=packages.httpd)

page = File(
    path="srv/www/index.html",
    contents="<!doctype html>\n<title>edge</title>\n<h1>edge is up</h1>\n",
    mode=0o644,
)

system = base.system.override("getty", env=["INSECURE=true"]).extend(
    services=[ssh.sshd, httpd],
    files=[ssh.root_ssh, ssh.authorized_keys, page],
)
"""The edge product."""
