"""Bundled service packages: ``getty``, ``sshd`` and ``httpd``.

getty and sshd give operators a root shell. It runs in a container that sees the host's
processes and network and reads its logs (``/var/log``, read-only), with the capabilities a
login needs and no more: it can look at the system and signal its processes, not change it (no
mounts, modules or tracing; every host file it sees is read-only; the system is changed by
rebuilding it). A system that wants more widens it where it uses the package, for example
``Service(name="getty", image=getty, capabilities=["all"], binds_add=[...])``.
"""

from __future__ import annotations

from kitdsl.dsl import ContainerConfig, Device, File
from kitdsl.dsl.types import Capability
from kitdsl.packages.busybox import busybox, data_file
from kitdsl.pkg.package import Package

__all__ = ["LOGIN_CAPABILITIES", "getty", "httpd", "sshd"]

LOGIN_CAPABILITIES: list[Capability] = ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]
"""What logging in takes: giving the terminal to the user (chown) and becoming them (setuid,
setgid, which also sets the groups)."""

_DROPBEAR_LIBS = ("libtomcrypt.so.1", "libtommath.so.1", "libgmp.so.10")

_OPERATOR_BINDS = ["/var/log:/var/log:ro"]

_CONSOLES = [
    Device(path="/dev/console", type="c", major=5, minor=1, mode=0o600),
    Device(path="/dev/tty0", type="c", major=4, minor=0, mode=0o600),
    Device(path="/dev/tty1", type="c", major=4, minor=1, mode=0o600),
    Device(path="/dev/ttyS0", type="c", major=4, minor=64, mode=0o600),
    Device(path="/dev/ttyS1", type="c", major=4, minor=65, mode=0o600),
    Device(path="/dev/hvc0", type="c", major=229, minor=0, mode=0o600),
    Device(path="/dev/ttyAMA0", type="c", major=204, minor=64, mode=0o600),
]

_SHELL_FILES = [
    data_file("getty/profile", "etc/profile"),
    data_file("getty/motd", "etc/motd"),
]

getty = Package(
    name="getty",
    base=[busybox],
    files=[
        data_file("getty/rungetty.sh", "usr/sbin/rungetty", mode=0o755),
        data_file("getty/autologin.sh", "usr/libexec/autologin", mode=0o755),
        data_file("getty/issue", "etc/issue"),
        *_SHELL_FILES,
        # Root's password is locked unless the system gives one (/etc/getty.shadow).
        File(path="etc/shadow", contents="root:*:19000:0:99999:7:::\n", mode=0o640),
        File(path="hostroot/etc", directory=True, mode=0o755),
    ],
    cmd=["/usr/sbin/rungetty"],
    env=["INSECURE=false"],
    config=ContainerConfig(
        pid="host",
        capabilities=LOGIN_CAPABILITIES,
        binds=[*_OPERATOR_BINDS, "/etc:/hostroot/etc:ro"],
        devices=_CONSOLES,
    ),
)
"""A login on each ``console=`` of the kernel command line (busybox ``getty`` and
``login``). ``env=["INSECURE=true"]`` logs root in without a password, as LinuxKit's getty
does; otherwise root's password hash comes from the system's ``/etc/getty.shadow``."""

sshd = Package(
    name="sshd",
    base=[busybox],
    debian=["dropbear-bin"],
    # dropbear and the libraries it links (readelf -d), not the rest of glibc.
    keep=[
        "usr/sbin/dropbear",
        "usr/bin/dropbearkey",
        *(f"lib/*-linux-gnu*/{lib}*" for lib in ("libc.so.6", "libcrypt.so.1", "libz.so.1")),
        *(f"usr/lib/*-linux-gnu*/{lib}*" for lib in _DROPBEAR_LIBS),
        "lib/*-linux-gnu*/ld-linux*.so*",
        "lib64/ld-linux*.so*",
        "lib/ld-linux*.so*",
    ],
    # Debian's maintainer scripts would make these; none are run here.
    files=[
        data_file("sshd/sshd.sh", "usr/sbin/sshd", mode=0o755),
        *_SHELL_FILES,
        File(path="etc/dropbear", directory=True, mode=0o700),
        File(path="root/.ssh", directory=True, mode=0o700),
        File(path="var/log", directory=True, mode=0o755),
    ],
    cmd=["/usr/sbin/sshd"],
    config=ContainerConfig(
        pid="host",
        capabilities=[*LOGIN_CAPABILITIES, "CAP_NET_BIND_SERVICE"],
        binds=[*_OPERATOR_BINDS, "/root/.ssh:/root/.ssh:ro"],
    ),
)
"""SSH logins (dropbear) with keys only, for root, from the system's
``/root/.ssh/authorized_keys``: ``File(path="root/.ssh/authorized_keys", source="key.pub",
mode=0o600)``. Host keys (ed25519, ECDSA) are made on the first start."""

httpd = Package(
    name="httpd",
    base=[busybox],
    files=[File(path="www", directory=True, mode=0o755)],
    cmd=["/usr/sbin/httpd", "-f", "-v", "-p", "80", "-h", "/www"],
    config=ContainerConfig(
        readonly=True,
        # www-data, with only the right to listen on port 80.
        uid=33,
        gid=33,
        capabilities=["CAP_NET_BIND_SERVICE"],
        ambient=["CAP_NET_BIND_SERVICE"],
        no_new_privileges=True,
        binds=["/srv/www:/www:ro"],
    ),
)
"""busybox ``httpd`` on port 80 serving the system's ``/srv/www`` (fill it with ``files``:
``File(path="srv/www/index.html", contents=...)``), as www-data, read-only."""
