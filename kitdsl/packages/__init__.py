"""The bundled packages: a kernel, an init and the containers of a small system.

::

    from kitdsl import Kernel, Onboot, Service, System
    from kitdsl.packages import dhcpcd, getty, httpd, init, kernel, sysctl

    system = System(
        kernel=Kernel(image=kernel, cmdline="console=ttyS0"),
        init=[init],
        onboot=[Onboot(name="sysctl", image=sysctl), Onboot(name="dhcpcd", image=dhcpcd)],
        services=[Service(name="getty", image=getty), Service(name="httpd", image=httpd)],
    )

Each is a :class:`~kitdsl.pkg.package.Package` built from Debian's packages on first use (see
docs/packages.md); ``kernel`` is Debian's cloud kernel, ``init`` busybox init with runc (see
docs/init.md).
"""

from kitdsl.packages.base_system import init
from kitdsl.packages.busybox import busybox
from kitdsl.packages.kernel import kernel
from kitdsl.packages.onboot import dhcpcd, modprobe, sysctl
from kitdsl.packages.services import getty, httpd, sshd

__all__ = ["busybox", "dhcpcd", "getty", "httpd", "init", "kernel", "modprobe", "sshd", "sysctl"]
