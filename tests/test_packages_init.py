"""The bundled ``init`` package, built from deb.debian.org: its contents, and its scripts run
with the busybox it ships (runtime.json parsing, mount options, the hooked config.json).

The package tests build from Debian's real archive into a temporary cache (one per test run,
shared with tests/test_packages_services.py), so they need the network to deb.debian.org.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kitdsl.oci.image_config import MOBY_CONFIG_LABEL
from kitdsl.oci.media import Manifest, Platform
from kitdsl.oci.store import ContentStore
from kitdsl.packages import busybox, init
from kitdsl.pkg.build import build_package
from kitdsl.pkg.context import PackageContext
from kitdsl.pkg.package import Package
from kitdsl.pkg.system import context_for

pytestmark = pytest.mark.slow

AMD64 = Platform(os="linux", architecture="amd64")


@dataclass
class BuiltImage:
    """A package's image, its layers applied in order."""

    files: dict[str, tarfile.TarInfo] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> dict[str, Any] | None:
        """The ``org.mobyproject.config`` label, parsed."""
        labels = self.config["config"].get("Labels") or {}
        text = labels.get(MOBY_CONFIG_LABEL)
        return json.loads(text) if text is not None else None

    def text(self, path: str) -> str:
        return self.data[path].decode()

    def extract(self, folder: Path) -> Path:
        """The image's files and symlinks under ``folder`` (modes kept, owners not)."""
        for name, info in sorted(self.files.items()):
            target = folder / name
            if info.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif info.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(info.linkname)
            elif info.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.data[name])
                target.chmod(info.mode & 0o7777)
        return folder


@dataclass
class Builder:
    """Builds packages into one temporary cache, each once."""

    context: PackageContext
    store: ContentStore
    built: dict[str, BuiltImage] = field(default_factory=dict)

    def __call__(self, package: Package) -> BuiltImage:
        if package.repository not in self.built:
            image = build_package(self.context.resolved(package), self.store, self.context)
            self.built[package.repository] = self._read(image.manifest.digest)
        return self.built[package.repository]

    def _read(self, manifest_digest: str) -> BuiltImage:
        manifest = Manifest.model_validate_json(self.store.read_blob(manifest_digest))
        image = BuiltImage(config=json.loads(self.store.read_blob(manifest.config.digest)))
        for layer in manifest.layers:
            with tarfile.open(fileobj=io.BytesIO(self.store.read_blob(layer.digest))) as tar:
                for info in tar:
                    image.files[info.name] = info
                    image.data.pop(info.name, None)
                    if info.isfile():
                        handle = tar.extractfile(info)
                        assert handle is not None
                        image.data[info.name] = handle.read()
        return image


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builder]:
    """Builds bundled packages from Debian's archive (the mirror a build would use)."""
    cache = tmp_path_factory.mktemp("packages-cache")
    context = context_for(AMD64, cache_dir=cache)
    try:
        yield Builder(context, ContentStore(cache))
    finally:
        context.close()


@pytest.fixture(scope="session")
def busybox_path(build: Builder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox the bundled images ship, to run their scripts on this machine."""
    path = tmp_path_factory.mktemp("busybox") / "busybox"
    path.write_bytes(build(busybox).data["bin/busybox"])
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def init_tree(build: Builder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The init image's files, extracted."""
    return build(init).extract(tmp_path_factory.mktemp("init"))


def sh(busybox_path: Path, script: str, *args: str, cwd: Path | None = None) -> str:
    """Run ``script`` with busybox sh; its standard output (standard error fails the test)."""
    result = subprocess.run(
        [str(busybox_path), "sh", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


# --- contents -------------------------------------------------------------------------------


def test_init_holds_busybox_runc_and_the_scripts(build: Builder) -> None:
    image = build(init)
    files = image.files
    assert files["bin/busybox"].isfile() and files["usr/sbin/runc"].isfile()
    # Applets are links to busybox, made here since no maintainer script runs.
    for applet, target in (
        ("bin/sh", "busybox"),
        ("sbin/modprobe", "../bin/busybox"),
        ("usr/bin/awk", "../../bin/busybox"),
    ):
        assert files[applet].issym() and files[applet].linkname == target
    # runc's libraries and nothing else of glibc.
    libraries = {name for name in files if ".so" in name}
    assert libraries == {
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "lib64/ld-linux-x86-64.so.2",
        "usr/lib/x86_64-linux-gnu/libseccomp.so.2",
        "usr/lib/x86_64-linux-gnu/libseccomp.so.2.5.4",
    }
    assert not any(name.startswith(("usr/share", "etc/ld.so")) for name in files)
    # The scripts replace busybox's init; /etc/inittab is written at boot.
    for script in ("init", "sbin/init", "usr/lib/kitdsl/rc.init", "usr/lib/kitdsl/supervise"):
        assert files[script].isfile() and files[script].mode & 0o111, script
    assert image.text("init").startswith("#!/bin/busybox sh\n")
    assert image.text("etc/inittab").startswith("#")
    assert files["root/.ssh"].mode & 0o777 == 0o700
    assert image.label is None


def test_runc_runs_with_the_libraries_it_ships(init_tree: Path) -> None:
    loader = init_tree / "lib64/ld-linux-x86-64.so.2"
    libraries = f"{init_tree}/lib/x86_64-linux-gnu:{init_tree}/usr/lib/x86_64-linux-gnu"
    result = subprocess.run(
        [str(loader), "--library-path", libraries, str(init_tree / "usr/sbin/runc"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("runc version 1.1")
    assert "libseccomp: 2.5" in result.stdout


def test_every_script_parses(init_tree: Path, busybox_path: Path) -> None:
    scripts = [init_tree / "init", init_tree / "sbin/init", init_tree / "etc/acpi/PWRF/00000080"]
    scripts += sorted(p for p in (init_tree / "usr/lib/kitdsl").iterdir() if p.suffix != ".awk")
    for script in scripts:
        result = subprocess.run([str(busybox_path), "sh", "-n", str(script)], capture_output=True)
        assert result.returncode == 0, (script, result.stderr)


# --- runtime.json ---------------------------------------------------------------------------

KITDSL_RUNTIME = {
    "cgroups": [],
    "mounts": [
        {"destination": "/containers/onboot/001-b/tmp", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/containers/onboot/001-b/tmp", "options": ["remount", "private"]},
        {
            "destination": "/containers/onboot/001-b/rootfs",
            "type": "overlay",
            "source": "overlay",
            "options": [
                "lowerdir=/containers/onboot/000-a/lower",
                "upperdir=/containers/onboot/001-b/tmp/upper",
                "workdir=/containers/onboot/001-b/tmp/work",
            ],
        },
    ],
    "mkdir": [],
    "interfaces": [],
    "bindNS": dict.fromkeys(("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"), ""),
    "namespace": "",
}

# As LinuxKit writes it (Go's MarshalIndent, HTML-safe escapes), with every action.
LINUXKIT_RUNTIME = """{
    "cgroups": [
        "wg"
    ],
    "mounts": [
        {
            "destination": "/containers/onboot/000-wg0/rootfs",
            "source": "/containers/onboot/000-wg0/rootfs",
            "options": [
                "bind"
            ]
        }
    ],
    "mkdir": [
        "/var/lib/it's",
        "relative"
    ],
    "interfaces": [
        {
            "name": "wg0",
            "add": "wireguard",
            "createInRoot": true
        },
        {
            "name": "eth1",
            "peer": "veth1",
            "createInRoot": false
        }
    ],
    "bindNS": {
        "cgroup": "",
        "ipc": "",
        "mnt": "",
        "net": "/run/netns/wg",
        "pid": "",
        "user": "",
        "uts": "/run/\\u003cuts\\u003e \\u00e9"
    },
    "namespace": ""
}"""


def run_runtime_awk(
    busybox_path: Path, init_tree: Path, document: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """runtime.awk run by busybox on ``document``, written to ``tmp_path / "runtime.json"``."""
    path = tmp_path / "runtime.json"
    path.write_text(document)
    awk = init_tree / "usr/lib/kitdsl/runtime.awk"
    return subprocess.run(
        [str(busybox_path), "awk", "-f", str(awk), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def runtime_calls(busybox_path: Path, init_tree: Path, document: str, tmp_path: Path) -> str:
    result = run_runtime_awk(busybox_path, init_tree, document, tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_runtime_json_as_kitdsl_writes_it(
    busybox_path: Path, init_tree: Path, tmp_path: Path
) -> None:
    for document in (json.dumps(KITDSL_RUNTIME), json.dumps(KITDSL_RUNTIME, indent=4)):
        assert runtime_calls(busybox_path, init_tree, document, tmp_path).splitlines() == [
            "rt_mount '/containers/onboot/001-b/tmp' 'tmpfs' 'tmpfs' '' || return 1",
            "rt_mount '/containers/onboot/001-b/tmp' '' '' 'remount,private' || return 1",
            "rt_mount '/containers/onboot/001-b/rootfs' 'overlay' 'overlay' "
            "'lowerdir=/containers/onboot/000-a/lower,upperdir=/containers/onboot/001-b/tmp/upper,"
            "workdir=/containers/onboot/001-b/tmp/work' || return 1",
        ]


def test_runtime_json_as_linuxkit_writes_it(
    busybox_path: Path, init_tree: Path, tmp_path: Path
) -> None:
    calls = runtime_calls(busybox_path, init_tree, LINUXKIT_RUNTIME, tmp_path)
    assert calls.splitlines() == [
        "rt_mount '/containers/onboot/000-wg0/rootfs' '' "
        "'/containers/onboot/000-wg0/rootfs' 'bind' || return 1",
        "rt_mkdir '/var/lib/it'\\''s' || return 1",
        "rt_mkdir 'relative' || return 1",
        "rt_cgroup 'wg' || return 1",
        "rt_iface 'wg0' 'wireguard' '' 'true' || return 1",
        "rt_iface 'eth1' '' 'veth1' 'false' || return 1",
        "rt_bindns net '/run/netns/wg' || return 1",
        "rt_bindns uts '/run/<uts> é' || return 1",
    ]
    # The quoting holds: a shell reads back exactly the values.
    script = "rt_mkdir() { printf '%s\\n' \"$1\"; }\nrt_bindns() { printf '%s\\n' \"$2\"; }\n"
    script += "f() {\n" + "\n".join(
        line for line in calls.splitlines() if line.startswith(("rt_mkdir", "rt_bindns uts"))
    )
    script += "\n}\nf\n"
    assert sh(busybox_path, script) == "/var/lib/it's\nrelative\n/run/<uts> é\n"


def test_malformed_runtime_json_is_refused(
    busybox_path: Path, init_tree: Path, tmp_path: Path
) -> None:
    result = run_runtime_awk(busybox_path, init_tree, '{"mounts": [}', tmp_path)
    path = tmp_path / "runtime.json"
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"runtime.awk: {path}: unexpected '}}' at character 13\n"


@pytest.mark.parametrize(
    ("escaped", "problem"),
    [
        ("\\ud83d\\ude00", None),  # a surrogate pair: one code point beyond the BMP
        ("\\u00e9\\u4e2d", None),
        ("\\ud83d", "a lone high surrogate in a string"),
        ("\\ud83dx", "a lone high surrogate in a string"),
        ("\\ud83d\\u0041", "a high surrogate without its low surrogate in a string"),
        ("\\ude00", "a lone low surrogate in a string"),
        ("a\\u0000b", "a NUL character (\\u0000) in a string"),
        ("\\u12g4", "a \\u escape without four hexadecimal digits"),
    ],
)
def test_unicode_escapes_in_runtime_json(
    busybox_path: Path, init_tree: Path, tmp_path: Path, escaped: str, problem: str | None
) -> None:
    document = '{"bindNS": {"uts": "/run/' + escaped + '"}}'
    result = run_runtime_awk(busybox_path, init_tree, document, tmp_path)
    if problem is None:
        assert result.returncode == 0, result.stderr
        value = json.loads(f'"/run/{escaped}"')
        quoted = "'" + value + "'"
        assert result.stdout == f"rt_bindns uts {quoted} || return 1\n"
    else:
        assert result.returncode == 1
        assert result.stdout == ""
        assert problem in result.stderr


# --- lib.sh ---------------------------------------------------------------------------------


def lib_calls(busybox_path: Path, init_tree: Path, calls: str) -> list[str]:
    """Run ``calls`` after lib.sh, with mount and mkdir recording their arguments."""
    script = (
        f". {init_tree}/usr/lib/kitdsl/lib.sh\n"
        'mount() { echo "mount $*"; }\n'
        'mkdir() { echo "mkdir $*"; }\n'
        f"{calls}\n"
    )
    return sh(busybox_path, script).splitlines()


def test_mounts_are_made_as_runtime_json_says(busybox_path: Path, init_tree: Path) -> None:
    calls = lib_calls(
        busybox_path,
        init_tree,
        "rt_mount /b/tmp tmpfs tmpfs ''\n"
        "rt_mount /b/tmp '' '' remount,private\n"
        "rt_mount /b/rootfs overlay overlay lowerdir=/a/lower,upperdir=/b/tmp/upper,"
        "workdir=/b/tmp/work\n"
        "rt_mount /b/rootfs '' /a/rootfs bind\n"
        "rt_mount /data ext4 /dev/vda rw,noatime,rshared",
    )
    assert calls == [
        "mkdir -p /b/tmp",
        "mount -t tmpfs tmpfs /b/tmp",
        # LinuxKit's "remount,private" only changes the propagation.
        "mkdir -p /b/tmp",
        "mount --make-private /b/tmp",
        # The overlay's layers are made first.
        "mkdir -p /b/rootfs",
        "mkdir -p /b/tmp/upper",
        "mkdir -p /b/tmp/work",
        "mount -t overlay -o lowerdir=/a/lower,upperdir=/b/tmp/upper,workdir=/b/tmp/work "
        "overlay /b/rootfs",
        "mkdir -p /b/rootfs",
        "mount -o bind /a/rootfs /b/rootfs",
        "mkdir -p /data",
        "mount -t ext4 -o rw,noatime /dev/vda /data",
        "mount --make-rshared /data",
    ]


def test_relative_mkdir_is_in_the_container(busybox_path: Path, init_tree: Path) -> None:
    calls = lib_calls(busybox_path, init_tree, "_bundle=/b\nrt_mkdir /var/x\nrt_mkdir y/z")
    assert calls == ["mkdir -p /var/x", "mkdir -p /b/rootfs/y/z"]


def test_the_hooked_config_is_the_same_document_with_a_hook(
    busybox_path: Path, init_tree: Path, tmp_path: Path
) -> None:
    config = {"ociVersion": "1.2.1", "process": {"args": ["sh", "-c", "a && b"]}, "root": {}}
    bundle = tmp_path / "containers" / "services" / "web"
    bundle.mkdir(parents=True)
    for text in (json.dumps(config), json.dumps(config, indent=4)):
        (bundle / "config.json").write_text(text)
        out = sh(busybox_path, f". {init_tree}/usr/lib/kitdsl/lib.sh\nhooked_config {bundle}")
        hooked = json.loads(out)
        hook = {"path": "/usr/lib/kitdsl/hook", "args": ["hook", str(bundle)]}
        assert hooked.pop("hooks") == {"createRuntime": [hook]}
        assert hooked == config


def test_durations_from_uptime(busybox_path: Path, init_tree: Path) -> None:
    out = sh(busybox_path, f". {init_tree}/usr/lib/kitdsl/lib.sh\nseconds 5; seconds 1209")
    assert out == "0.05 s12.09 s"


def test_kernel_command_line_words(busybox_path: Path, init_tree: Path, tmp_path: Path) -> None:
    lib = (init_tree / "usr/lib/kitdsl/lib.sh").read_text()
    fake = tmp_path / "cmdline"
    fake.write_text("console=ttyS0 kitdsl.shell=10 quiet\n")
    (tmp_path / "lib.sh").write_text(lib.replace("/proc/cmdline", str(fake)))
    script = f". {tmp_path}/lib.sh\n"
    script += "cmdline_has kitdsl.shell=1 && echo yes || echo no\n"
    script += "cmdline_has quiet && echo yes || echo no\n"
    assert sh(busybox_path, script) == "no\nyes\n"
