"""Real registries for tests: the reference registry (``docker-registry``) on loopback ports,
with no auth, htpasswd, token auth (a small token server here) or TLS, and a fault-injecting
proxy to put in front of one.

Import the fixtures into a test module to use them (each ``<name>_fixture`` provides the
fixture ``<name>``)::

    from tests.registry import registry_fixture, store_fixture  # noqa: F401
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from kitdsl.oci.auth import StaticCredentials
from kitdsl.oci.registry import RegistryClient, RetryPolicy
from kitdsl.oci.store import TEMP_PREFIX, ContentStore

REGISTRY_BINARY = shutil.which("docker-registry")
INSTALL_HINT = "the reference registry is not installed: apt-get install docker-registry"
SERVICE = "kitdsl-test-registry"
ISSUER = "kitdsl-test-issuer"
USERS = {"alice": "wonderland"}
REFRESH_TOKENS = {"refresh-for-alice": "alice"}
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)
"""Retries that keep fault tests quick."""


def require_registry() -> str:
    """The ``docker-registry`` binary, or skip the test saying how to install it."""
    if REGISTRY_BINARY is None:
        pytest.skip(INSTALL_HINT)
    return REGISTRY_BINARY


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_client(**options: Any) -> RegistryClient:
    """A client that ignores the developer's docker config and retries quickly."""
    options.setdefault("credentials", StaticCredentials({}))
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("timeout", 10.0)
    return RegistryClient(**options)


def unverified_blobs(store: ContentStore) -> list[str]:
    """Blobs whose content does not hash to their name (temporary files ignored)."""
    if not store.blobs.is_dir():
        return []
    bad = []
    for path in sorted(store.blobs.iterdir()):
        if path.name.startswith(TEMP_PREFIX):
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
            bad.append(path.name)
    return bad


# --- certificates and tokens ---------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CertificateAuthority:
    """A throw-away CA that issues server certificates for loopback names."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("kitdsl test CA"))
            .issuer_name(_name("kitdsl test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, folder: Path) -> tuple[Path, Path]:
        """A certificate and key for ``127.0.0.1`` and ``localhost``, written to ``folder``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1"))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = folder / "server.crt", folder / "server.key"
        cert_path.write_bytes(_pem(cert))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs the registry trusts: anonymous users may pull, ``USERS`` may push."""

    def __init__(self, *, lifetime: int = 300) -> None:
        self.lifetime = lifetime
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(ISSUER))
            .issuer_name(_name(ISSUER))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.grants: list[tuple[str, tuple[str, ...]]] = []
        """(user, scopes) of every token issued, ``""`` for anonymous."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
        self._server.daemon_threads = True
        self._server.tokens = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def realm(self) -> str:
        """The URL registries send clients to."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def issue(self, user: str, scopes: list[str]) -> dict[str, Any]:
        """A token answer for ``user`` (``""``: anonymous) asking for ``scopes``."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if user or a == "pull"]
            access.append({"type": kind, "name": name, "actions": sorted(granted)})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        self.grants.append((user, tuple(scopes)))
        token = f"{signing_input}.{_b64url(signature)}"
        return {"token": token, "access_token": token, "expires_in": self.lifetime}


class _TokenHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        server: TokenServer = self.server.tokens  # type: ignore[attr-defined]
        query = parse_qs(urlsplit(self.path).query)
        user = ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if USERS.get(name) != password:
                self._answer(401, {"details": "incorrect username or password"})
                return
            user = name
        self._answer(200, server.issue(user, query.get("scope", [])))

    def do_POST(self) -> None:
        server: TokenServer = self.server.tokens  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        user = REFRESH_TOKENS.get(form.get("refresh_token", [""])[0])
        if form.get("grant_type") != ["refresh_token"] or user is None:
            self._answer(401, {"error": "invalid_grant"})
            return
        self._answer(200, server.issue(user, form.get("scope", [""])[0].split()))


# --- the registry --------------------------------------------------------------------------


class RegistryServer:
    """``docker-registry serve`` on a free loopback port, with its storage under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        htpasswd: Path | None = None,
        token: TokenServer | None = None,
        tls: tuple[Path, Path] | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.root = root
        self.htpasswd = htpasswd
        self.token = token
        self.tls = tls
        self.ca_file = ca_file
        """The CA that signed the TLS certificate, for clients."""
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the domain of references to this registry."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def config(self) -> dict[str, Any]:
        """The registry's configuration (YAML is a superset of JSON)."""
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "kitdsl-tests"},
        }
        if self.tls:
            config["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        if self.htpasswd:
            config["auth"] = {"htpasswd": {"realm": "kitdsl", "path": str(self.htpasswd)}}
        if self.token:
            bundle = self.root / "token-issuer.pem"
            bundle.write_bytes(_pem(self.token.cert))
            config["auth"] = {
                "token": {
                    "realm": self.token.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(bundle),
                }
            }
        return config

    def start(self, timeout: float = 15.0) -> None:
        """Start the registry and wait until ``/v2/`` answers."""
        binary = require_registry()
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(json.dumps(self.config(), indent=2))
        log = (self.root / "registry.log").open("ab")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)}
        self.process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=log, env=env
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                requests.get(
                    f"{self.url}/v2/", timeout=1, verify=str(self.ca_file) if self.ca_file else True
                )
                return
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        output = (self.root / "registry.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"docker-registry did not start on {self.host}:\n{output}")

    def stop(self) -> None:
        """Stop the registry (its storage stays until the temporary folder goes)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> RegistryServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- the fault-injecting proxy -------------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
MAX_PROXIED = 64 * 1024 * 1024


@dataclass
class Fault:
    """What to do to requests whose method matches and whose path matches ``path`` (a regex)."""

    path: str
    method: str = "GET"
    times: int | None = 1
    """How many requests it applies to; ``None``: all of them."""
    status: int | None = None
    """Answer this status (with ``headers`` and ``body``) instead of asking the registry."""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    drop_after: int | None = None
    """Send this many bytes of the body, then cut the connection."""
    truncate_to: int | None = None
    """Announce and send only this many bytes: a response that looks complete but is short."""
    corrupt: bool = False
    """Flip one byte in the middle of the body."""
    no_ranges: bool = False
    """Behave like a server without range support (drop ``Range``, ``Accept-Ranges``)."""
    hits: int = 0


@dataclass(frozen=True)
class Seen:
    """A request the proxy received."""

    method: str
    path: str
    headers: dict[str, str]


class FaultProxy:
    """A loopback HTTP proxy in front of a registry that misbehaves as told, and logs."""

    def __init__(self, upstream: RegistryServer) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def add(self, path: str, **options: Any) -> Fault:
        """Add a fault (see :class:`Fault`); the first matching fault with hits left applies."""
        fault = Fault(path, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests(self, method: str, path: str = "") -> list[Seen]:
        """The requests seen with ``method`` whose path matches ``path``."""
        with self._lock:
            return [s for s in self.seen if s.method == method and re.search(path, s.path)]

    def take(self, method: str, path: str, headers: dict[str, str]) -> Fault | None:
        """Log a request and return the fault that applies to it."""
        with self._lock:
            self.seen.append(Seen(method, path, headers))
            for fault in self.faults:
                if fault.method != method or not re.search(fault.path, path):
                    continue
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                fault.hits += 1
                return fault
        return None

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        self.close_connection = True
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PROXIED:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        fault = proxy.take(self.command, self.path, dict(headers))
        if fault is not None and fault.status is not None:
            self._send(fault.status, list(fault.headers.items()), fault.body, len(fault.body))
            return
        if fault is not None and fault.no_ranges:
            headers = {k: v for k, v in headers.items() if k.lower() != "range"}
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream.port, timeout=10)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read(MAX_PROXIED)
            answer = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        except OSError:
            self.send_error(502)
            return
        finally:
            upstream.close()
        declared = len(data)
        if self.command == "HEAD":
            declared = int(response.getheader("Content-Length") or 0)
        if fault is not None:
            if fault.no_ranges:
                answer = [(k, v) for k, v in answer if k.lower() != "accept-ranges"]
            if fault.corrupt and data:
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
            if fault.truncate_to is not None:
                data = data[: fault.truncate_to]
                declared = len(data)
        cut = fault.drop_after if fault is not None else None
        self._send(response.status, answer, data[:cut] if cut is not None else data, declared)
        if cut is not None:
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, length: int) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in ("content-length", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module", name="registry")
def registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry without authentication."""
    require_registry()
    with RegistryServer(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="module", name="basic_registry")
def basic_registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry with htpasswd basic auth for ``USERS``."""
    require_registry()
    root = tmp_path_factory.mktemp("basic-registry")
    htpasswd = root / "htpasswd"
    lines = []
    for user, password in USERS.items():
        line = subprocess.run(
            ["htpasswd", "-Bbn", user, password], capture_output=True, check=True, text=True
        ).stdout.strip()
        lines.append(line)
    htpasswd.write_text("\n".join(lines) + "\n")
    with RegistryServer(root, htpasswd=htpasswd) as server:
        yield server


@pytest.fixture(scope="module", name="token_server")
def token_server_fixture() -> Iterator[TokenServer]:
    """A token server for :func:`token_registry`."""
    with TokenServer() as server:
        yield server


@pytest.fixture(scope="module", name="token_registry")
def token_registry_fixture(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[RegistryServer]:
    """A registry with token auth: anyone may pull, ``USERS`` may push."""
    require_registry()
    with RegistryServer(tmp_path_factory.mktemp("token-registry"), token=token_server) as server:
        yield server


@pytest.fixture(scope="module", name="tls_registry")
def tls_registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry serving HTTPS with a certificate from a throw-away CA (``ca_file``)."""
    require_registry()
    root = tmp_path_factory.mktemp("tls-registry")
    authority = CertificateAuthority()
    ca_file = root / "ca" / "ca.crt"
    ca_file.parent.mkdir()
    ca_file.write_bytes(_pem(authority.cert))
    with RegistryServer(root, tls=authority.issue(root), ca_file=ca_file) as server:
        yield server


@pytest.fixture(name="proxy")
def proxy_fixture(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of :func:`registry`, with no faults yet."""
    with FaultProxy(registry) as server:
        yield server


@pytest.fixture(name="store")
def store_fixture(tmp_path: Path) -> ContentStore:
    """An empty content store."""
    return ContentStore(tmp_path / "cache")
