"""The base every product starts from: kernel, init, sysctl, DHCP and a console."""

from kitdsl import Kernel, Onboot, Service, System, packages

KERNEL = Kernel(image=packages.kernel, cmdline="console=ttyS0")

INIT = [packages.init]

sysctl = Onboot(name="sysctl", image=packages.sysctl)

dhcpcd = Onboot(name="dhcpcd", image=packages.dhcpcd)

getty = Service(name="getty", image=packages.getty, env=["INSECURE=false"])

system = System(kernel=KERNEL, init=INIT, onboot=[sysctl, dhcpcd], services=[getty])
"""The base system: boots, configures the network and gives a console."""
