"""A small signed Debian archive built in Python, served over HTTP, with faults on demand.

- :class:`Gpg` makes throw-away keys with the real ``gpg`` and signs with them (and runs
  ``gpgv``, the reference verifier, for cross-checks).
- :func:`build_deb` writes a ``.deb`` (``ar`` + ``control.tar`` + ``data.tar``) from a spec.
- :class:`SignedArchive` lays out ``pool/`` and ``dists/SUITE/`` (``Packages`` in several
  compressions, ``by-hash``, ``Release``, ``InRelease``, ``Release.gpg``).
- :class:`ArchiveServer` serves it from a thread and can answer 404/500, corrupt or cut a
  body, or go down.
"""

from __future__ import annotations

import atexit
import bz2
import functools
import gzip
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kitdsl.oci.failures import RetryPolicy
from kitdsl.pkg.debian import Archive, Keyring, Mirror

MTIME = 1_700_000_000


class Gpg:
    """gpg with a private home folder (removed, and its agent stopped, by :meth:`close`)."""

    def __init__(self) -> None:
        # A short path: gpg-agent's socket must fit in a sockaddr_un.
        self.home = Path(tempfile.mkdtemp(prefix="kdg", dir="/tmp"))
        self.env = {**os.environ, "GNUPGHOME": str(self.home)}

    def run(self, *args: str, data: bytes | None = None, faked_time: int | None = None) -> bytes:
        """Run gpg in batch mode; its output."""
        command = ["gpg", "--batch", "--yes", "--quiet", "--no-tty"]
        if faked_time is not None:
            command.append(f"--faked-system-time={faked_time}!")
        result = subprocess.run(
            [*command, *args], input=data, capture_output=True, env=self.env, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)} failed: {result.stderr.decode()}")
        return result.stdout

    def generate(
        self, uid: str, algorithm: str = "ed25519", *, faked_time: int | None = None
    ) -> str:
        """A new signing key without passphrase; its fingerprint."""
        self.run(
            "--passphrase", "", "--quick-gen-key", uid, algorithm, "sign", "never",
            faked_time=faked_time,
        )  # fmt: skip
        listing = self.run("--with-colons", "--list-keys", uid).decode()
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))

    def export(self, *fingerprints: str, armor: bool = False) -> bytes:
        """The public keys (binary, or armoured)."""
        return self.run(*(["--armor"] if armor else []), "--export", *fingerprints)

    def clearsign(self, data: bytes, *fingerprints: str, faked_time: int | None = None) -> bytes:
        """``data`` cleartext-signed by each key."""
        users = [arg for fpr in fingerprints for arg in ("--local-user", fpr)]
        return self.run(*users, "--clearsign", data=data, faked_time=faked_time)

    def detach_sign(self, data: bytes, *fingerprints: str, armor: bool = True) -> bytes:
        """A detached signature of ``data`` by each key."""
        users = [arg for fpr in fingerprints for arg in ("--local-user", fpr)]
        return self.run(*users, *(["--armor"] if armor else []), "--detach-sign", data=data)

    def set_expiry(self, fingerprint: str, expiry: str, *, faked_time: int) -> None:
        """Give the key a new expiry (a new self-signature made at ``faked_time``)."""
        self.run(
            "--passphrase", "", "--pinentry-mode", "loopback", "--quick-set-expire",
            fingerprint, expiry, faked_time=faked_time,
        )  # fmt: skip

    def revoke(self, fingerprint: str) -> None:
        """Import the revocation certificate gpg made with the key (no reason given: a
        revocation for all time)."""
        text = (self.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
        self.run("--import", data=text.replace(":-----BEGIN", "-----BEGIN").encode())

    def gpgv(self, keyring: bytes, signed: bytes, data: bytes | None = None) -> bool:
        """Whether gpgv accepts ``signed`` (a cleartext message, or the detached signature
        of ``data``) with ``keyring``, judged as apt judges it: a ``GOODSIG`` status line
        (gpgv exits 0 for a revoked key's signature too, reporting ``REVKEYSIG``)."""
        with tempfile.TemporaryDirectory(prefix="kdgv", dir="/tmp") as folder:
            ring = Path(folder, "ring.gpg")
            ring.write_bytes(keyring)
            signature = Path(folder, "signed")
            signature.write_bytes(signed)
            args = ["gpgv", "--status-fd", "1", "--keyring", str(ring), str(signature)]
            if data is not None:
                Path(folder, "data").write_bytes(data)
                args.append(str(Path(folder, "data")))
            env = {**self.env, "GNUPGHOME": folder}
            result = subprocess.run(args, capture_output=True, env=env, check=False)
        return result.returncode == 0 and b"[GNUPG:] GOODSIG " in result.stdout

    def close(self) -> None:
        """Stop the agent and remove the home folder."""
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass(frozen=True)
class ArchiveKeys:
    """Keys shared by the tests of one run (making them costs little, but no need twice)."""

    gpg: Gpg
    ed25519: str
    rsa: str
    other: str
    """A key that is in no test keyring."""

    def keyring(self, *fingerprints: str, armor: bool = False) -> bytes:
        """The public keys, exported by gpg."""
        return self.gpg.export(*(fingerprints or (self.ed25519, self.rsa)), armor=armor)


@functools.cache
def shared_keys() -> ArchiveKeys:
    """The keys of this test run: an Ed25519 and an RSA key, and an untrusted one."""
    gpg = Gpg()
    atexit.register(gpg.close)
    return ArchiveKeys(
        gpg=gpg,
        ed25519=gpg.generate("Kit Ed25519 <ed25519@example.org>", "ed25519"),
        rsa=gpg.generate("Kit RSA <rsa@example.org>", "rsa2048"),
        other=gpg.generate("Someone Else <else@example.org>", "ed25519"),
    )


# --- .deb files ---------------------------------------------------------------------------


def ar_archive(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A System V ``ar`` archive, as ``.deb`` files use."""
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{MTIME:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}".encode() + b"`\n"
        assert len(header) == 60
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def compress(data: bytes, compression: str) -> bytes:
    """``data`` as ``.xz``, ``.gz``, ``.bz2``, ``.lzma`` or ``""`` (none)."""
    if compression == ".xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ)
    if compression == ".gz":
        return gzip.compress(data, mtime=0)
    if compression == ".bz2":
        return bz2.compress(data)
    if compression == ".lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    assert compression == "", compression
    return data


Entry = tuple[tarfile.TarInfo, bytes | None]


def tar_entry(
    name: str, data: bytes | None = None, *, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> Entry:
    """A tar member: a file with ``data``, or a directory/link by ``kind``."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = link
    info.uname = info.gname = "root"
    if data is not None:
        info.size = len(data)
    return info, data


def tar_bytes(entries: Iterable[Entry], compression: str = "") -> bytes:
    """A GNU tar of ``entries``, compressed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return compress(buffer.getvalue(), compression)


@dataclass
class DebSpec:
    """A binary package to build and publish."""

    name: str
    version: str
    architecture: str = "amd64"
    depends: str = ""
    pre_depends: str = ""
    recommends: str = ""
    provides: str = ""
    multi_arch: str = ""
    essential: bool = False
    files: dict[str, bytes] = field(default_factory=dict)
    """Path in the image → content; a default ``usr/share/doc/NAME/copyright`` is added."""
    scripts: dict[str, str] = field(default_factory=dict)
    """Maintainer scripts by name (``postinst``)."""
    triggers: str = ""
    compression: str = ".xz"
    data_entries: list[Entry] | None = None
    """Raw data.tar entries, replacing those made from ``files`` (for hostile archives)."""

    def control(self) -> str:
        """The control file."""
        fields = {
            "Package": self.name,
            "Version": self.version,
            "Architecture": self.architecture,
            "Maintainer": "Kit Tests <tests@example.org>",
            "Installed-Size": "1",
            "Pre-Depends": self.pre_depends,
            "Depends": self.depends,
            "Recommends": self.recommends,
            "Provides": self.provides,
            "Multi-Arch": self.multi_arch,
            "Essential": "yes" if self.essential else "",
            "Description": f"test package {self.name}\n This is {self.name}.\n .\n Depends: none",
        }
        return "".join(f"{key}: {value}\n" for key, value in fields.items() if value)


def build_deb(spec: DebSpec) -> bytes:
    """The ``.deb`` of ``spec``."""
    control_entries = [tar_entry("./", kind=tarfile.DIRTYPE)]
    control_entries.append(tar_entry("./control", spec.control().encode()))
    for name, text in sorted(spec.scripts.items()):
        info, data = tar_entry(f"./{name}", text.encode())
        info.mode = 0o755
        control_entries.append((info, data))
    if spec.triggers:
        control_entries.append(tar_entry("./triggers", spec.triggers.encode()))
    entries = spec.data_entries
    if entries is None:
        files = {f"usr/share/doc/{spec.name}/copyright": b"public domain\n", **spec.files}
        entries = [tar_entry("./", kind=tarfile.DIRTYPE)]
        folders: set[str] = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    entries.append(tar_entry(f"./{folder}/", kind=tarfile.DIRTYPE))
            entries.append(tar_entry(f"./{path}", files[path]))
    return ar_archive(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", tar_bytes(control_entries, ".xz")),
            (f"data.tar{spec.compression}", tar_bytes(entries, spec.compression)),
        ]
    )


# --- the archive ----------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class SignedArchive:
    """An archive folder: ``pool/`` and ``dists/CODENAME/`` for one component and
    architecture, signed with ``signers`` (fingerprints of :func:`shared_keys` keys)."""

    root: Path
    packages: list[DebSpec]
    signers: tuple[str, ...] = ()
    suite: str = "stable"
    codename: str = "kit"
    component: str = "main"
    architecture: str = "amd64"
    by_hash: bool = True
    formats: tuple[str, ...] = (".xz", ".gz", "")
    date: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(hours=1))
    valid_until: datetime | None = None
    inrelease: bool = True
    wrong_hash: set[str] = field(default_factory=set)
    """Packages whose index entry lists a sha256 that is not their file's."""
    debs: dict[str, bytes] = field(default_factory=dict)
    """Package name → the bytes of its ``.deb``, once published."""

    def publish(self) -> SignedArchive:
        """Write every file; returns itself."""
        paragraphs: list[str] = []
        for spec in self.packages:
            deb = build_deb(spec)
            self.debs[spec.name] = deb
            filename = f"pool/{self.component}/{spec.name[0]}/{spec.name}/" + (
                f"{spec.name}_{spec.version.partition(':')[2] or spec.version}"
                f"_{spec.architecture}.deb"
            )
            self._write(filename, deb)
            sha = _sha256(deb if spec.name not in self.wrong_hash else deb + b"x")
            paragraphs.append(
                spec.control() + f"Filename: {filename}\nSize: {len(deb)}\nSHA256: {sha}\n"
            )
        packages = "\n".join(paragraphs).encode()
        folder = f"{self.component}/binary-{self.architecture}"
        listed: dict[str, bytes] = {}
        for suffix in self.formats:
            listed[f"{folder}/Packages{suffix}"] = compress(packages, suffix)
        # Debian lists the uncompressed index (its checksum is checked after decompression)
        # without necessarily serving it.
        listed_plain = {f"{folder}/Packages": packages} if "" not in self.formats else {}
        dists = f"dists/{self.codename}"
        for path, data in listed.items():
            self._write(f"{dists}/{path}", data)
            if self.by_hash:
                self._write(f"{dists}/{folder}/by-hash/SHA256/{_sha256(data)}", data)
        release = self.release_text({**listed, **listed_plain})
        self._write(f"{dists}/Release", release)
        keys = shared_keys()
        if self.signers:
            self._write(f"{dists}/Release.gpg", keys.gpg.detach_sign(release, *self.signers))
            if self.inrelease:
                self._write(f"{dists}/InRelease", keys.gpg.clearsign(release, *self.signers))
        return self

    def release_text(self, files: dict[str, bytes]) -> bytes:
        """The Release file listing ``files``."""
        lines = [
            "Origin: Kit",
            "Label: Kit",
            f"Suite: {self.suite}",
            f"Codename: {self.codename}",
            f"Date: {self.date:%a, %d %b %Y %H:%M:%S} UTC",
        ]
        if self.valid_until is not None:
            lines.append(f"Valid-Until: {self.valid_until:%a, %d %b %Y %H:%M:%S} UTC")
        lines += [
            f"Acquire-By-Hash: {'yes' if self.by_hash else 'no'}",
            f"Architectures: {self.architecture} all",
            f"Components: {self.component}",
            "No-Support-for-Architecture-all: Packages",
            "Description: a test archive",
            "SHA256:",
        ]
        lines += [f" {_sha256(data)} {len(data):>8} {path}" for path, data in sorted(files.items())]
        return ("\n".join(lines) + "\n").encode()

    def _write(self, relative: str, data: bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def filename(self, name: str) -> str:
        """The pool path of a package's ``.deb``."""
        return next(
            str(p.relative_to(self.root)) for p in (self.root / "pool").rglob(f"{name}_*.deb")
        )


# --- the server -----------------------------------------------------------------------------


@dataclass
class Fault:
    """What to do instead of serving a file: answer ``status``, serve ``body`` instead, or
    cut the body after ``cut`` bytes; ``times`` limits how often (``None``: always)."""

    status: int | None = None
    body: bytes | None = None
    cut: int | None = None
    times: int | None = None


class ArchiveServer:
    """Serves a folder at ``{url}/...`` from a thread; ``faults`` maps paths below the
    archive (``dists/kit/InRelease``) to :class:`Fault`; ``requests`` lists what was asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults: dict[str, Fault] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._serve(self)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/debian"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.removeprefix("/debian/")
        with self._lock:
            self.requests.append(path)
            fault = self.faults.get(path)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times < 0:
                    fault = None
        file = self.root / path
        if fault is not None and fault.status is not None:
            handler.send_error(fault.status)
            return
        if ".." in path.split("/") or not file.is_file():
            handler.send_error(404)
            return
        data = fault.body if fault is not None and fault.body is not None else file.read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if fault is not None and fault.cut is not None:
            handler.wfile.write(data[: fault.cut])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(data)

    def stop(self) -> None:
        """Shut the server down: its port refuses connections from now on."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def count(self, suffix: str) -> int:
        """How many requests were for paths ending with ``suffix``."""
        return sum(1 for path in self.requests if path.endswith(suffix))


def standard_packages() -> list[DebSpec]:
    """A small world with the shapes resolution must handle."""
    return [
        DebSpec("httpd", "2.0-1", depends="libfoo (>= 1.0), mime-support | media-types",
                files={"usr/sbin/httpd": b"#!/bin/sh\necho httpd\n"},
                scripts={"postinst": "#!/bin/sh\nadduser www\n"},
                triggers="activate-noawait ldconfig\n"),
        DebSpec("libfoo", "1.2-1", depends="libc6 (>= 2.30)", multi_arch="same",
                files={"usr/lib/x86_64-linux-gnu/libfoo.so.1": b"\x7fELF libfoo"}),
        DebSpec("libc6", "2.36-9", files={"usr/lib/x86_64-linux-gnu/libc.so.6": b"\x7fELF libc"}),
        DebSpec("media-types", "10.0.0", architecture="all",
                files={"etc/mime.types": b"text/plain txt\n"}),
        DebSpec("tool", "1:3.0-2", depends="mail-transport-agent, perl:any",
                pre_depends="libc6", recommends="httpd"),
        DebSpec("postfix", "3.7-1", provides="mail-transport-agent", depends="libc6"),
        DebSpec("perl", "5.36-1", multi_arch="allowed", depends="libc6"),
    ]  # fmt: skip


FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
"""Retries that keep fault tests quick."""


def served_archive(root: Path, **options: Any) -> tuple[SignedArchive, ArchiveServer]:
    """:func:`standard_packages` published under ``root``, signed by both test keys unless
    ``signers`` says otherwise, and served."""
    keys = shared_keys()
    options.setdefault("signers", (keys.ed25519, keys.rsa))
    options.setdefault("packages", standard_packages())
    archive = SignedArchive(root, **options).publish()
    return archive, ArchiveServer(root)


def client(server: ArchiveServer, cache: Path, **options: Any) -> Archive:
    """An :class:`Archive` of the served test archive, trusting the test keys."""
    mirror = Mirror(
        url=server.url,
        suite=options.pop("suite", "kit"),
        components=options.pop("components", ("main",)),
        check_valid_until=options.pop("check_valid_until", True),
    )
    options.setdefault("keyring", Keyring.from_bytes(shared_keys().keyring()))
    options.setdefault("retry", FAST_RETRY)
    return Archive(mirror, cache=cache, **options)
