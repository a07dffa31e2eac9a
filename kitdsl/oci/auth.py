"""Registry credentials and tokens: Docker's ``config.json``, credential helpers, and the
bearer-token exchange of the distribution spec.

Nothing here talks to a registry. :mod:`kitdsl.oci.transport` asks this module what to send and
hands back what the registry answered, so the rules can be tested without a server.

Credentials are looked up the way the ``docker`` CLI does, so ``docker login`` is all a user
needs: ``credHelpers[host]``, then ``credsStore``, then the ``auths`` entry of
``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json`` by default).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from kitdsl.errors import ImageError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
"""The name under which ``docker login`` stores Docker Hub credentials."""
DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
HELPER_TIMEOUT = 30.0
_NOT_FOUND = "credentials not found"
TOKEN_DEFAULT_LIFETIME = 60
"""Seconds a token lives when the server does not say (the distribution spec's default)."""


class AuthError(ImageError):
    """Credentials are missing, refused, or could not be read."""


@dataclass(frozen=True)
class Credentials:
    """What to log in to one registry with."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    """An OAuth2 refresh token (``docker login`` with some identity providers)."""
    registry_token: str | None = field(default=None, repr=False)
    """A bearer token to send as it is."""
    source: str = ""
    """Where they came from, for error messages (a file or a helper's name)."""

    def basic(self) -> str | None:
        """The ``Authorization`` header for basic auth, if there is a username and password."""
        if self.username is None or self.password is None:
            return None
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


class CredentialSource(Protocol):
    """Anything that can say how to log in to a registry host (``host[:port]``)."""

    def credentials(self, host: str) -> Credentials | None:
        """Credentials for ``host``, or ``None`` to go anonymous."""
        ...


class StaticCredentials:
    """Credentials given in code: ``StaticCredentials({"ghcr.io": Credentials(...)})``."""

    def __init__(self, by_host: Mapping[str, Credentials]) -> None:
        self._by_host = {config_key_host(key): value for key, value in by_host.items()}

    def credentials(self, host: str) -> Credentials | None:
        """The credentials given for ``host``."""
        return self._by_host.get(config_key_host(host))


def config_key_host(key: str) -> str:
    """``https://registry.example/v2/`` → ``registry.example``; Docker Hub's names → ``docker.io``.

    ``docker login`` writes keys in several shapes over the years; comparing hosts only is what
    the docker CLI does too.
    """
    text = key if "://" in key else "//" + key
    host = urlsplit(text).netloc or key
    return "docker.io" if host in DOCKER_HUB_HOSTS else host


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    folder = env.get("DOCKER_CONFIG")
    return Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"


class DockerConfig:
    """Credentials the way the docker CLI stores them (thread-safe; each helper runs once per host).

    ``path`` overrides the location of ``config.json``; a missing file means anonymous access.
    """

    def __init__(self, path: Path | None = None, *, environ: Mapping[str, str] | None = None):
        self.path = path if path is not None else default_config_path(environ)
        self._environ = dict(os.environ if environ is None else environ)
        self._lock = threading.Lock()
        self._data: dict[str, object] | None = None
        self._found: dict[str, Credentials | None] = {}

    def credentials(self, host: str) -> Credentials | None:
        """Credentials for ``host``: credHelpers, then credsStore, then ``auths``."""
        host = config_key_host(host)
        with self._lock:
            if host not in self._found:
                self._found[host] = self._lookup(host)
            return self._found[host]

    def _load(self) -> dict[str, object]:
        if self._data is None:
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                text = "{}"
            except OSError as exc:
                raise AuthError(f"cannot read {self.path}: {exc.strerror}") from None
            try:
                data = json.loads(text) if text.strip() else {}
            except ValueError as exc:
                raise AuthError(f"{self.path} is not valid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise AuthError(f"{self.path} must hold a JSON object")
            self._data = data
        return self._data

    def _lookup(self, host: str) -> Credentials | None:
        data = self._load()
        helpers = data.get("credHelpers")
        helper: object = None
        if isinstance(helpers, dict):
            helper = next(
                (name for key, name in helpers.items() if config_key_host(key) == host), None
            )
        if helper is None:
            helper = data.get("credsStore")
        if isinstance(helper, str) and helper:
            found = run_helper(helper, host, environ=self._environ)
            if found is not None:
                return found
        return self._from_auths(host, data.get("auths"))

    def _from_auths(self, host: str, auths: object) -> Credentials | None:
        if not isinstance(auths, dict):
            return None
        for key, entry in sorted(auths.items()):
            if config_key_host(key) != host or not isinstance(entry, dict):
                continue
            return self._entry(key, entry)
        return None

    def _entry(self, key: str, entry: dict[str, object]) -> Credentials | None:
        source = f"{self.path} (auths[{key!r}])"

        def text(name: str) -> str | None:
            value = entry.get(name)
            return value if isinstance(value, str) and value else None

        username, password = text("username"), text("password")
        encoded = text("auth")
        if encoded is not None:
            try:
                decoded = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise AuthError(f"{source}: 'auth' is not base64 of 'user:password'") from None
            username, sep, password = decoded.partition(":")
            if not sep:
                raise AuthError(f"{source}: 'auth' must encode 'user:password'")
        token = text("identitytoken")
        registry_token = text("registrytoken")
        if username is None and token is None and registry_token is None:
            return None
        return Credentials(username, password, token, registry_token, source)


def run_helper(
    name: str, host: str, *, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """Ask ``docker-credential-<name> get`` for ``host``; ``None`` when it has nothing."""
    program = f"docker-credential-{name}"
    server = DOCKER_HUB_KEY if host == "docker.io" else host
    try:
        result = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            env=dict(environ) if environ is not None else None,
            check=False,
        )
    except FileNotFoundError:
        raise AuthError(
            f"the credential helper {program} is not installed",
            hint="install it, or remove it from credsStore/credHelpers in your docker config",
        ) from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"{program} did not answer within {HELPER_TIMEOUT:.0f} s") from None
    output = result.stdout.decode(errors="replace").strip()
    if result.returncode != 0:
        if _NOT_FOUND in output.lower():
            return None
        message = result.stderr.decode(errors="replace").strip() or output
        raise AuthError(f"{program} failed for {server}: {message or f'exit {result.returncode}'}")
    try:
        data = json.loads(output)
        username, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"{program} answered something that is not credentials JSON") from None
    if username == "<token>":  # the helper protocol's marker for an identity token
        return Credentials(identity_token=secret, source=program)
    return Credentials(username, secret, source=program)


# --- WWW-Authenticate challenges -----------------------------------------------------------

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_ITEM = re.compile(
    rf"[\s,]*(?:(?P<key>{_TOKEN})\s*=\s*(?P<value>{_TOKEN}|{_QUOTED})|(?P<word>[^\s,]+))"
)


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: ``Bearer realm="...",service="..."``."""

    scheme: str
    """Lower case: ``bearer`` or ``basic``."""
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        """Where to ask for a token (bearer) or the protection space's name (basic)."""
        return self.params.get("realm", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes the registry asked for (space-separated in the header)."""
        return tuple(self.params.get("scope", "").split())


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` header (RFC 7235), leniently: unknown shapes are skipped."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        match = _ITEM.match(header, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        if match["word"] is not None:
            challenges.append(Challenge(match["word"].lower(), {}))
        elif challenges:
            value = match["value"]
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params = dict(challenges[-1].params)
            params[match["key"].lower()] = value
            challenges[-1] = Challenge(challenges[-1].scheme, params)
    return challenges


# --- bearer tokens -------------------------------------------------------------------------


def pull_scope(repository: str) -> str:
    """The token scope to read ``repository``."""
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    """The token scope to read and write ``repository``."""
    return f"repository:{repository}:pull,push"


@dataclass(frozen=True)
class TokenRequest:
    """How to ask a token server for a token (the distribution spec's two flavours)."""

    method: str
    url: str
    params: list[tuple[str, str]]
    form: dict[str, str] | None
    authorization: str | None = field(default=None, repr=False)


def token_request(
    challenge: Challenge, scopes: Sequence[str], credentials: Credentials | None
) -> TokenRequest:
    """The request for a token covering ``scopes``: OAuth2 with a refresh token, else a GET
    with basic auth when there is a password, else an anonymous GET."""
    service = challenge.params.get("service")
    if credentials is not None and credentials.identity_token:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": credentials.identity_token,
            "client_id": "kitdsl",
            "scope": " ".join(scopes),
        }
        if service:
            form["service"] = service
        return TokenRequest("POST", challenge.realm, [], form)
    params = [("service", service)] if service else []
    params += [("scope", scope) for scope in scopes]
    authorization = credentials.basic() if credentials is not None else None
    if authorization is not None and credentials is not None and credentials.username:
        params.append(("account", credentials.username))
    return TokenRequest("GET", challenge.realm, params, None, authorization)


@dataclass(frozen=True)
class Token:
    """A bearer token and the monotonic time after which it must not be used."""

    value: str = field(repr=False)
    expires_at: float


def parse_token_response(body: bytes, *, now: float | None = None) -> Token:
    """Read a token server's answer: ``token`` (or ``access_token``) and ``expires_in``.

    The token is considered expired a little early (a tenth of its life, at most 30 s) so a
    request never leaves with a token that dies on the way.
    """
    try:
        data = json.loads(body)
        value = data.get("token") or data.get("access_token")
        lifetime = int(data.get("expires_in") or TOKEN_DEFAULT_LIFETIME)
    except (ValueError, AttributeError, TypeError):
        raise AuthError("the token server answered something that is not a token") from None
    if not isinstance(value, str) or not value:
        raise AuthError("the token server's answer holds no token")
    lifetime = max(lifetime, 1)
    start = time.monotonic() if now is None else now
    return Token(value, start + lifetime - min(30.0, lifetime / 10))


class TokenCache:
    """Tokens by (realm, service, scopes, who): shared by every thread of a client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, ...], Token] = {}

    @staticmethod
    def key(challenge: Challenge, scopes: Sequence[str], who: str) -> tuple[str, ...]:
        """The cache key of a token request."""
        return (challenge.realm, challenge.params.get("service", ""), who, *sorted(set(scopes)))

    def get(self, key: tuple[str, ...], *, now: float | None = None) -> str | None:
        """The cached token for ``key`` if it has not expired."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_at <= moment:
                self._tokens.pop(key, None)
                return None
            return token.value

    def put(self, key: tuple[str, ...], token: Token) -> None:
        """Remember ``token``."""
        with self._lock:
            self._tokens[key] = token

    def drop(self, key: tuple[str, ...]) -> None:
        """Forget the token for ``key`` (the registry refused it)."""
        with self._lock:
            self._tokens.pop(key, None)
