"""The base every product starts from: kernel, init, sysctl, DHCP and a console."""

from kitdsl import Kernel, Onboot, Service, System

KERNEL = Kernel(image="linuxkit/kernel:6.6.71", cmdline="console=ttyS0 console=tty0")

INIT = [
    "linuxkit/init:8eea386739975a43af558eec757a7dcb3a3d2e7b",
    "linuxkit/runc:667e7ea2c426a2460ca21e3da065a57dbb3369c9",
    "linuxkit/containerd:a988a1a8bcbacb2c0c2ef9d9a0d7e2c1f5bd9a6c",
    "linuxkit/ca-certificates:7b32a26ca9c275d3ef32b11fe2a83dbd2aee2fdb",
]

sysctl = Onboot(name="sysctl", image="linuxkit/sysctl:5a374e4bf3e5a7deeacff6571d0f30f7ea8f56db")

dhcpcd = Onboot(
    name="dhcpcd",
    image="linuxkit/dhcpcd:157df9ef45a035f1542ec2270e374f18efef98a5",
    command=["/sbin/dhcpcd", "--nobackground", "-f", "/dhcpcd.conf", "-1"],
)

getty = Service(
    name="getty",
    image="linuxkit/getty:05eca453695984a69617f1f1f0bcdae7f7032967",
    env=["INSECURE=false"],
)

rngd = Service(name="rngd", image="linuxkit/rngd:1a18f2149e42a0a1cb9e7d37608a494342c26032")

system = System(kernel=KERNEL, init=INIT, onboot=[sysctl, dhcpcd], services=[getty, rngd])
"""The base system: boots, configures the network and gives a console."""
