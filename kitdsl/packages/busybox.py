"""Busybox: the shell and tools of every bundled package, and the files its installation lacks.

Debian's ``busybox-static`` ships one file, ``/bin/busybox``. The symlinks that make ``sh``,
``mount`` or ``httpd`` commands are made on a Debian system by whoever installs busybox (the
``busybox`` package's maintainer script, or ``busybox --install``); packages here run no
maintainer scripts, so :func:`applet_links` writes them into the image instead, relative so
they hold inside containers and on the host alike.

:data:`busybox` is the base image of the bundled container packages: busybox, its applets and
a minimal ``/etc`` (``passwd``, ``group``, ``shells``), one layer shared by all of them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from pathlib import Path

from kitdsl.dsl import File
from kitdsl.pkg.package import Package

__all__ = ["APPLETS", "ETC_GROUP", "ETC_PASSWD", "applet_links", "busybox", "data_file"]

FILES = Path(__file__).resolve().parent / "files"
"""The scripts and configuration files of the bundled packages (package data)."""

# `busybox --list-full` of Debian bookworm's busybox-static 1.35.0: where each applet is
# installed. An applet a later build lacks leaves a dangling link ("applet not found").
_APPLETS = """
usr/bin/[ usr/bin/[[ sbin/acpid sbin/adjtimex usr/bin/ar bin/arch sbin/arp usr/sbin/arping
usr/bin/ascii bin/ash usr/bin/awk bin/base64 usr/bin/basename usr/bin/bc usr/bin/blkdiscard
sbin/blockdev usr/sbin/brctl usr/bin/bunzip2 usr/bin/bzcat usr/bin/bzip2 usr/bin/cal bin/cat
bin/chgrp bin/chmod bin/chown usr/sbin/chroot usr/bin/chvt usr/bin/clear usr/bin/cmp bin/cp
bin/cpio usr/bin/crc32 usr/sbin/crond usr/bin/crontab bin/cttyhack usr/bin/cut bin/date
usr/bin/dc bin/dd usr/bin/deallocvt sbin/depmod sbin/devmem bin/df usr/bin/diff
usr/bin/dirname bin/dmesg bin/dnsdomainname usr/bin/dos2unix usr/bin/dpkg usr/bin/dpkg-deb
usr/bin/du bin/dumpkmap usr/bin/dumpleases bin/echo bin/ed bin/egrep usr/bin/env
usr/bin/expand usr/bin/expr usr/bin/factor usr/bin/fallocate bin/false bin/fatattr sbin/fdisk
bin/fgrep usr/bin/find sbin/findfs usr/bin/fold usr/bin/free sbin/freeramdisk usr/sbin/fsfreeze
sbin/fstrim usr/bin/ftpget usr/bin/ftpput bin/getopt sbin/getty bin/grep usr/bin/groups
bin/gunzip bin/gzip sbin/halt usr/bin/head usr/bin/hexdump usr/bin/hostid bin/hostname
usr/sbin/httpd sbin/hwclock usr/sbin/i2cdetect usr/sbin/i2cdump usr/sbin/i2cget usr/sbin/i2cset
usr/sbin/i2ctransfer usr/bin/id sbin/ifconfig sbin/ifdown sbin/ifup sbin/init sbin/insmod
bin/ionice sbin/ip bin/ipcalc sbin/ipneigh bin/kill usr/bin/killall sbin/klogd usr/bin/last
usr/bin/less bin/link bin/linux32 bin/linux64 linuxrc bin/ln usr/sbin/loadfont sbin/loadkmap
usr/bin/logger bin/login usr/bin/logname sbin/logread sbin/losetup bin/ls sbin/lsmod
usr/bin/lsscsi usr/bin/lzcat usr/bin/lzma bin/lzop usr/bin/md5sum sbin/mdev usr/bin/microcom
usr/sbin/mim bin/mkdir sbin/mkdosfs sbin/mke2fs usr/bin/mkfifo bin/mknod usr/bin/mkpasswd
sbin/mkswap bin/mktemp sbin/modinfo sbin/modprobe bin/more bin/mount bin/mt bin/mv
sbin/nameif usr/bin/nc bin/netstat usr/bin/nl usr/sbin/nologin usr/bin/nproc usr/bin/nsenter
usr/bin/nslookup bin/nuke usr/bin/od usr/bin/openvt usr/sbin/partprobe usr/bin/passwd
usr/bin/paste usr/bin/patch bin/pidof bin/ping bin/ping6 sbin/pivot_root sbin/poweroff
usr/bin/printf bin/ps bin/pwd usr/sbin/rdate bin/readlink usr/bin/realpath sbin/reboot
usr/bin/renice usr/bin/reset bin/resume bin/rev bin/rm bin/rmdir sbin/rmmod sbin/route bin/rpm
usr/bin/rpm2cpio sbin/run-init bin/run-parts bin/sed usr/bin/seq usr/bin/setkeycodes
bin/setpriv usr/bin/setsid bin/sh usr/bin/sha1sum usr/bin/sha256sum usr/bin/sha3sum
usr/bin/sha512sum usr/bin/shred usr/bin/shuf bin/sleep usr/bin/sort usr/bin/ssl_client
sbin/start-stop-daemon bin/stat usr/bin/strings bin/stty bin/su sbin/sulogin usr/bin/svc
usr/bin/svok sbin/swapoff sbin/swapon sbin/switch_root bin/sync sbin/sysctl sbin/syslogd
usr/bin/tac usr/bin/tail bin/tar usr/bin/taskset sbin/tc usr/bin/tee usr/bin/telnet
usr/sbin/telnetd usr/bin/test usr/bin/tftp usr/bin/time usr/bin/timeout usr/bin/top bin/touch
usr/bin/tr usr/bin/traceroute usr/bin/traceroute6 bin/true usr/bin/truncate usr/bin/ts
usr/bin/tty sbin/tunctl usr/sbin/ubirename sbin/udhcpc usr/sbin/udhcpd sbin/uevent bin/umount
bin/uname bin/uncompress usr/bin/unexpand usr/bin/uniq usr/bin/unix2dos usr/bin/unlink
usr/bin/unlzma usr/bin/unshare usr/bin/unxz usr/bin/unzip usr/bin/uptime bin/usleep
usr/bin/uudecode usr/bin/uuencode sbin/vconfig bin/vi usr/bin/w bin/watch sbin/watchdog
usr/bin/wc usr/bin/wget usr/bin/which usr/bin/who usr/bin/whoami usr/bin/xargs usr/bin/xxd
usr/bin/xz usr/bin/xzcat usr/bin/yes bin/zcat
"""
APPLETS: tuple[str, ...] = tuple(_APPLETS.split())
"""Where each busybox applet is installed (``bin/sh``, ``usr/sbin/httpd``...)."""

ETC_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
"""The accounts every bundled image knows (Debian's numbers)."""

ETC_GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nwww-data:x:33:\nnogroup:x:65534:\n"
"""The groups every bundled image knows (``tty`` is the group of terminals, 5)."""


def applet_links(applets: Iterable[str] = APPLETS, *, skip: Iterable[str] = ()) -> list[File]:
    """Relative symlinks to ``/bin/busybox`` for ``applets`` (paths such as ``bin/sh``),
    except those in ``skip``; ``bin/busybox`` itself is never linked."""
    skipped = {"bin/busybox", *skip}
    return [
        File(path=path, symlink=posixpath.relpath("bin/busybox", posixpath.dirname(path)))
        for path in applets
        if path not in skipped
    ]


def data_file(name: str, path: str, *, mode: int = 0o644) -> File:
    """``files/<name>`` (package data) as the file ``path`` of an image.

    The contents are inlined rather than given as a ``source``: the package's tag then
    depends on what the file says, not on where kitdsl is installed.
    """
    return File(path=path, contents=(FILES / name).read_text(encoding="utf-8"), mode=mode)


busybox = Package(
    name="busybox",
    debian=["busybox-static"],
    keep=["bin/busybox"],
    files=[
        *applet_links(skip=["linuxrc", "sbin/init"]),
        File(path="etc/passwd", contents=ETC_PASSWD, mode=0o644),
        File(path="etc/group", contents=ETC_GROUP, mode=0o644),
        File(path="etc/shells", contents="/bin/sh\n/bin/ash\n", mode=0o644),
        File(path="root", directory=True, mode=0o700),
        File(path="tmp", directory=True, mode=0o1777),
        File(path="run", directory=True, mode=0o755),
        File(path="var/run", symlink="../run"),
    ],
)
"""busybox-static with its applets and a minimal ``/etc``: the base of the bundled container
packages (``sh``, ``ip``, ``httpd``, ``getty``, ``udhcpc``, ``modprobe``, ``sysctl``...)."""
