"""The bundled container packages (sysctl, dhcpcd, modprobe, getty, sshd, httpd), built from
deb.debian.org: their contents, their ``org.mobyproject.config`` labels, and their scripts run
with the busybox they ship.

Builds share one temporary cache with tests/test_packages_init.py (needs deb.debian.org).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kitdsl.packages import busybox, dhcpcd, getty, httpd, modprobe, sshd, sysctl
from tests.test_packages_init import (  # noqa: F401 (fixtures)
    Builder,
    build,
    busybox_path,
    sh,
)

pytestmark = pytest.mark.slow


def test_every_container_package_shares_the_busybox_layer(build: Builder) -> None:  # noqa: F811
    base = build(busybox)
    assert set(base.files) >= {"bin/busybox", "bin/sh", "etc/passwd", "etc/group"}
    assert base.text("etc/passwd").startswith("root:x:0:0:root:/root:/bin/sh\n")
    for package in (sysctl, dhcpcd, modprobe, getty, sshd, httpd):
        image = build(package)
        diff_ids = image.config["rootfs"]["diff_ids"]
        assert (
            diff_ids[: len(base.config["rootfs"]["diff_ids"])] == base.config["rootfs"]["diff_ids"]
        ), package.name
        assert image.files["usr/sbin/httpd"].linkname == "../../bin/busybox"


def test_sysctl(build: Builder) -> None:  # noqa: F811
    image = build(sysctl)
    assert image.config["config"]["Cmd"] == ["/usr/sbin/apply-sysctl"]
    defaults = image.text("etc/sysctl.d/00-kitdsl.conf")
    for setting in ("kernel.kptr_restrict = 2", "net.ipv4.tcp_syncookies = 1"):
        assert f"\n{setting}\n" in defaults
    assert image.files["hostroot/etc/sysctl.d"].isdir()
    assert image.label == {
        "binds": ["/etc/sysctl.d:/hostroot/etc/sysctl.d:ro"],
        "capabilities": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"],
        "readonly": True,
    }


def test_sysctl_applies_defaults_then_the_systems_files(
    build: Builder,  # noqa: F811
    busybox_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    script = tmp_path / "apply-sysctl"
    script.write_text(build(sysctl).text("usr/sbin/apply-sysctl"))
    proc = tmp_path / "proc"
    for key in ("net/core/somaxconn", "vm/max_map_count", "kernel/kptr_restrict"):
        (proc / key).parent.mkdir(parents=True, exist_ok=True)
        (proc / key).write_text("0\n")
    image, system = tmp_path / "image", tmp_path / "system"
    image.mkdir()
    system.mkdir()
    (image / "00-defaults.conf").write_text(
        "# comment\n; another\n\nnet.core.somaxconn = 1024\n vm.max_map_count=1\n"
        "-kernel.yama.ptrace_scope = 1\n"
    )
    (system / "10-mine.conf").write_text("vm.max_map_count = 262144\nkernel.nosuch = 1\nbroken")
    result = subprocess.run(
        [str(busybox_path), "sh", str(script)],
        env={"SYSCTL_DIRS": f"{image} {system}", "SYSCTL_ROOT": str(proc)},
        capture_output=True,
        text=True,
        check=False,
    )
    # A missing "-key" is fine; a missing key and a line that is not key = value are not.
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"sysctl: {system}/10-mine.conf:2: cannot set kernel.nosuch = 1",
        f"sysctl: {system}/10-mine.conf:3: not key = value: broken",
        "sysctl: 3 settings applied",
    ]
    assert (proc / "net/core/somaxconn").read_text() == "1024\n"
    assert (proc / "vm/max_map_count").read_text() == "262144\n"  # the system's file wins
    assert (proc / "kernel/kptr_restrict").read_text() == "0\n"


def test_dhcpcd(build: Builder) -> None:  # noqa: F811
    image = build(dhcpcd)
    assert image.config["config"]["Cmd"] == ["/usr/sbin/dhcpcd"]
    assert image.files["usr/share/udhcpc/default.script"].mode & 0o111
    assert image.files["sbin/udhcpc"].linkname == "../bin/busybox"
    assert image.label == {
        "binds": ["/run/resolvconf:/etc"],
        "capabilities": ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
        "readonly": True,
    }


def lease_event(
    busybox_path: Path,  # noqa: F811
    script: Path,
    event: str,
    lease: dict[str, str],
    resolv: Path,
) -> list[str]:
    """The ``ip`` commands the udhcpc script runs for ``event`` (``ip`` records them)."""
    env = " ".join(f"{key}='{value}'" for key, value in lease.items())
    out = sh(
        busybox_path,
        f'ip() {{ echo "ip $*"; }}\nexport RESOLV_CONF={resolv} {env}\nset -- {event}\n. {script}',
    )
    return out.splitlines()


def test_the_udhcpc_script_configures_the_interface(
    build: Builder,  # noqa: F811
    busybox_path: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    script = tmp_path / "default.script"
    script.write_text(build(dhcpcd).text("usr/share/udhcpc/default.script"))
    resolv = tmp_path / "resolv.conf"
    lease = {
        "interface": "eth0",
        "ip": "10.0.2.15",
        "mask": "24",
        "broadcast": "10.0.2.255",
        "router": "10.0.2.2 10.0.2.1",
        "dns": "10.0.2.3 1.1.1.1",
        "domain": "example.org",
        "mtu": "1400",
        "lease": "86400",
    }
    assert lease_event(busybox_path, script, "bound", lease, resolv) == [
        "ip link set eth0 mtu 1400",
        "ip -4 addr flush dev eth0",
        "ip addr add 10.0.2.15/24 broadcast 10.0.2.255 dev eth0",
        "ip route replace default via 10.0.2.2 dev eth0 metric 0",
        "ip route replace default via 10.0.2.1 dev eth0 metric 1",
        "dhcpcd: eth0: bound 10.0.2.15/24, gateway 10.0.2.2 10.0.2.1, DNS 10.0.2.3 1.1.1.1, "
        "lease 86400 s",
    ]
    assert resolv.read_text() == "search example.org\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n"
    # Classless static routes replace the router option; a renewal keeps the address.
    routes = {**lease, "staticroutes": "0.0.0.0/0 10.0.2.9 192.168.0.0/16 10.0.2.8"}
    assert lease_event(busybox_path, script, "renew", routes, resolv)[1:4] == [
        "ip addr add 10.0.2.15/24 broadcast 10.0.2.255 dev eth0",
        "ip route replace 0.0.0.0/0 via 10.0.2.9 dev eth0",
        "ip route replace 192.168.0.0/16 via 10.0.2.8 dev eth0",
    ]
    assert lease_event(busybox_path, script, "deconfig", {"interface": "eth0"}, resolv) == [
        "ip link set eth0 up",
        "ip -4 addr flush dev eth0",
    ]


def test_modprobe(build: Builder) -> None:  # noqa: F811
    image = build(modprobe)
    assert image.config["config"]["Cmd"] == ["/usr/sbin/load-modules"]
    assert image.files["lib/modules"].isdir()  # the bind's mount point, in a read-only image
    assert image.label == {
        "binds": ["/lib/modules:/lib/modules:ro"],
        "capabilities": ["CAP_SYS_MODULE"],
        "net": "none",
        "readonly": True,
    }


def test_getty(build: Builder) -> None:  # noqa: F811
    image = build(getty)
    settings = image.config["config"]
    assert settings["Cmd"] == ["/usr/sbin/rungetty"]
    assert "INSECURE=false" in settings["Env"]
    assert image.text("etc/shadow").startswith("root:*:")  # locked unless the system says
    assert image.text("usr/libexec/autologin").endswith("exec /bin/login -f root\n")
    label = image.label
    assert label is not None
    assert label["pid"] == "host"
    assert label["capabilities"] == ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]
    assert label["binds"] == ["/var/log:/var/log:ro", "/etc:/hostroot/etc:ro"]
    consoles = {device["path"]: device for device in label["devices"]}
    assert consoles["/dev/ttyS0"] == {
        "path": "/dev/ttyS0",
        "type": "c",
        "major": 4,
        "minor": 64,
        "mode": "0600",
    }
    assert {"/dev/console", "/dev/tty0", "/dev/hvc0", "/dev/ttyAMA0"} <= set(consoles)


def test_sshd(build: Builder, tmp_path: Path) -> None:  # noqa: F811
    image = build(sshd)
    assert image.config["config"]["Cmd"] == ["/usr/sbin/sshd"]
    for folder in ("etc/dropbear", "root/.ssh"):
        assert image.files[folder].isdir() and image.files[folder].mode & 0o777 == 0o700
    libraries = sorted(name.rsplit("/", 1)[1] for name in image.files if ".so" in name)
    assert libraries == [
        "ld-linux-x86-64.so.2",
        "ld-linux-x86-64.so.2",
        "libc.so.6",
        "libcrypt.so.1",
        "libcrypt.so.1.1.0",
        "libgmp.so.10",
        "libgmp.so.10.4.1",
        "libtomcrypt.so.1",
        "libtomcrypt.so.1.0.1",
        "libtommath.so.1",
        "libtommath.so.1.2.0",
        "libz.so.1",
        "libz.so.1.2.13",
    ]
    # What is kept is enough to run dropbear's tools: they make a host key here.
    tree = image.extract(tmp_path / "sshd")
    library_path = f"{tree}/lib/x86_64-linux-gnu:{tree}/usr/lib/x86_64-linux-gnu"
    result = subprocess.run(
        [
            str(tree / "lib64/ld-linux-x86-64.so.2"),
            "--library-path",
            library_path,
            str(tree / "usr/bin/dropbearkey"),
            "-t",
            "ed25519",
            "-f",
            str(tmp_path / "key"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ssh-ed25519 " in result.stdout
    assert image.label == {
        "binds": ["/var/log:/var/log:ro", "/root/.ssh:/root/.ssh:ro"],
        "capabilities": ["CAP_CHOWN", "CAP_SETUID", "CAP_SETGID", "CAP_NET_BIND_SERVICE"],
        "pid": "host",
    }


def test_httpd(build: Builder) -> None:  # noqa: F811
    image = build(httpd)
    assert image.config["config"]["Cmd"] == [
        "/usr/sbin/httpd",
        "-f",
        "-v",
        "-p",
        "80",
        "-h",
        "/www",
    ]
    assert image.files["www"].isdir()
    assert image.label == {
        "ambient": ["CAP_NET_BIND_SERVICE"],
        "binds": ["/srv/www:/www:ro"],
        "capabilities": ["CAP_NET_BIND_SERVICE"],
        "gid": 33,
        "noNewPrivileges": True,
        "readonly": True,
        "uid": 33,
    }
