"""HTTP to one registry: scheme and TLS, authentication, and retries.

An :class:`Endpoint` is one registry host (an origin or a mirror). Its :meth:`Endpoint.request`
adds credentials (basic, or bearer tokens from the registry's challenge, cached per scope),
retries 429, 5xx and dropped connections with exponential backoff and jitter (honouring
``Retry-After``), and returns every other response to the caller, which knows what a 404 means.

Loopback hosts and hosts marked insecure are reached the way Docker reaches them: HTTPS first,
then plain HTTP; for insecure hosts the certificate is not checked. Everyone else gets HTTPS,
verified with requests' CAs (``certifi``, or ``REQUESTS_CA_BUNDLE``) plus any the user adds.

Endpoints are shared by threads: each thread has its own ``requests.Session`` (sessions are not
thread-safe), while tokens, credentials and the chosen scheme are shared under locks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import certifi
import requests
import urllib3
from requests.adapters import HTTPAdapter

from kitdsl.errors import ImageError
from kitdsl.oci.auth import (
    Challenge,
    CredentialSource,
    TokenCache,
    parse_challenges,
    parse_token_response,
    token_request,
)
from kitdsl.oci.failures import (
    NotFoundError,
    RegistryAuthError,
    RegistryError,
    RetryPolicy,
    describe,
    error_codes,
    is_transient,
    login_hint,
    parse_retry_after,
    public_url,
)

USER_AGENT = "kitdsl"
PROBE_TIMEOUT = 5.0


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``[::1]``, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class TrustStore:
    """The CAs HTTPS is verified with: certifi's (as requests does) plus ``extra_cas`` (files,
    or folders whose ``*.crt`` and ``*.pem`` files all count, like Docker's ``certs.d``).

    requests takes a single bundle file (a folder only works once ``c_rehash``'d), so with extra
    CAs the bundle is written to a private temporary file, removed by :meth:`close`.
    """

    def __init__(self, extra_cas: str | Path | Iterable[str | Path] = ()) -> None:
        items = [extra_cas] if isinstance(extra_cas, str | Path) else list(extra_cas)
        files: list[Path] = []
        for item in map(Path, items):
            if item.is_dir():
                files += sorted(p for p in item.iterdir() if p.suffix in (".crt", ".pem"))
            else:
                files.append(item)
        self.verify: bool | str = True
        """What to pass to requests as ``verify``."""
        self._remove: Callable[[], None] = lambda: None
        if not files:
            return
        parts = [Path(certifi.where()).read_bytes()]
        for file in files:
            try:
                ssl.create_default_context().load_verify_locations(cafile=str(file))
                parts.append(file.read_bytes())
            except (OSError, ssl.SSLError) as exc:
                raise ImageError(f"cannot load CA certificates from {file}: {exc}") from None
        handle, name = tempfile.mkstemp(prefix="kitdsl-ca-", suffix=".pem")
        with os.fdopen(handle, "wb") as bundle:
            bundle.write(b"\n".join(parts))
        self.verify = name
        self._remove = weakref.finalize(self, _unlink, name)

    def close(self) -> None:
        """Remove the temporary bundle."""
        self._remove()


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class Sessions:
    """One ``requests.Session`` per thread, all closed by :meth:`close`."""

    def __init__(self, trust: TrustStore) -> None:
        self.trust = trust
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[requests.Session] = []

    def get(self) -> requests.Session:
        """This thread's session."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            adapter = HTTPAdapter(pool_connections=16, pool_maxsize=16)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._local.session = session
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        """Close every thread's session and remove the CA bundle."""
        with self._lock:
            sessions, self._all = self._all, []
        for session in sessions:
            session.close()
        self.trust.close()


class _SetAuthorization(requests.auth.AuthBase):
    """Sets (or leaves out) ``Authorization``; passing an auth object also stops requests from
    reading ``~/.netrc`` over our credentials."""

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.value is not None:
            request.headers["Authorization"] = self.value
        return request


_TRANSIENT = (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError)


class Endpoint:
    """One registry host, reached at ``url`` (``scheme://host[:port]``) or found by probing."""

    def __init__(
        self,
        host: str,
        *,
        sessions: Sessions,
        credentials: CredentialSource,
        tokens: TokenCache,
        retry: RetryPolicy,
        url: str | None = None,
        insecure: bool = False,
        timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.insecure = insecure
        self.retry = retry
        self.timeout = timeout
        self._sessions = sessions
        self._credentials = credentials
        self._tokens = tokens
        self._lock = threading.Lock()
        self._url = url.rstrip("/") if url else None
        self._challenge: Challenge | None = None
        self.unreachable: RegistryError | None = None
        """Set when the host could not be reached at all, so mirrors are not retried forever."""

    @property
    def _verify(self) -> bool | str:
        return False if self.insecure else self._sessions.trust.verify

    @property
    def url(self) -> str:
        """The base URL, probing the scheme first if needed."""
        with self._lock:
            if self._url is None:
                self._url = self._probe()
            return self._url

    def _probe(self) -> str:
        """HTTPS, then plain HTTP: the first that answers ``/v2/`` as a registry does (200, or
        401 with a challenge). Only for loopback and insecure hosts; retried while nothing
        listens (a registry may be starting)."""
        if not (self.insecure or is_loopback(self.host)):
            return f"https://{self.host}"
        attempt = 0
        while True:
            attempt += 1
            problems: list[str] = []
            refused = 0
            for scheme in ("https", "http"):
                base = f"{scheme}://{self.host}"
                try:
                    response = self._sessions.get().get(
                        f"{base}/v2/",
                        timeout=PROBE_TIMEOUT,
                        verify=self._verify,
                        auth=_SetAuthorization(None),
                    )
                except requests.exceptions.SSLError as exc:
                    problems.append(f"{base}: {describe(exc)}")
                    continue
                except _TRANSIENT as exc:
                    problems.append(f"{base}: {describe(exc)}")
                    refused += 1
                    continue
                response.close()
                if response.status_code == 200 or "WWW-Authenticate" in response.headers:
                    self._learn(response)
                    return base
                problems.append(f"{base}: HTTP {response.status_code} at /v2/, not a registry")
            if refused < 2 or attempt >= self.retry.attempts:
                break
            time.sleep(self.retry.delay(attempt))
        error = RegistryError(
            f"cannot reach registry {self.host}: " + "; ".join(problems),
            hint="check that the registry runs; a TLS registry may need its CA (ca_certs=...)",
        )
        self.unreachable = error
        raise error

    def _learn(self, response: requests.Response) -> tuple[str, ...]:
        """Remember how the registry wants us to log in; return the scopes this one response
        asked for (they must not leak into requests for other repositories)."""
        for challenge in parse_challenges(response.headers.get("WWW-Authenticate", "")):
            if challenge.scheme in ("bearer", "basic"):
                params = {k: v for k, v in challenge.params.items() if k not in ("scope", "error")}
                self._challenge = Challenge(challenge.scheme, params)
                return challenge.scopes
        return ()

    def _authorization(self, scopes: Sequence[str], *, fresh: bool = False) -> str | None:
        with self._lock:
            challenge = self._challenge
        if challenge is None:
            return None
        credentials = self._credentials.credentials(self.host)
        if challenge.scheme == "basic":
            return credentials.basic() if credentials is not None else None
        if credentials is not None and credentials.registry_token:
            return f"Bearer {credentials.registry_token}"
        wanted = sorted(set(scopes))
        who = credentials.username or credentials.source if credentials is not None else ""
        key = TokenCache.key(challenge, wanted, who or "")
        if fresh:
            self._tokens.drop(key)
        cached = self._tokens.get(key)
        if cached is not None:
            return f"Bearer {cached}"
        ask = token_request(challenge, wanted, credentials)
        response = self._send(
            ask.method,
            ask.url,
            what="a token",
            params=ask.params,
            data=ask.form,
            authorization=ask.authorization,
        )
        if response.status_code != 200:
            codes, message = error_codes(response)
            user = f" as {credentials.username}" if credentials and credentials.username else ""
            raise RegistryAuthError(
                f"the token server of {self.host} refused{user} ({' '.join(wanted)}): "
                f"HTTP {response.status_code} {message}".rstrip(),
                url=ask.url,
                status=response.status_code,
                codes=codes,
                hint=login_hint(self.host, credentials is not None),
            )
        token = parse_token_response(response.content)
        self._tokens.put(key, token)
        return f"Bearer {token.value}"

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: Sequence[str],
        what: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send a request to the registry, logged in for ``scopes``, retrying what is
        transient; other responses (404, 202, ...) go back to the caller. ``what`` names the
        thing for error messages ("blob sha256:... of repository x")."""
        url = path_or_url if "://" in path_or_url else self.url + path_or_url
        authorization = self._authorization(scopes)
        refreshed = False
        while True:
            response = self._send(
                method,
                url,
                what=what,
                headers=headers,
                params=params,
                data=data,
                stream=stream,
                authorization=authorization,
            )
            if response.status_code != 401 or refreshed:
                break
            # Learn (or re-learn) how the registry wants us to log in, and try once more with
            # a new token that also covers what this response asked for.
            response.close()
            asked = self._learn(response)
            refreshed = True
            authorization = self._authorization([*scopes, *asked], fresh=True)
        if response.status_code in (401, 403):
            codes, message = error_codes(response)
            credentials = self._credentials.credentials(self.host)
            raise RegistryAuthError(
                f"registry {self.url} refused access to {what}: HTTP {response.status_code} "
                f"{message or 'unauthorized'}",
                url=public_url(url),
                status=response.status_code,
                codes=codes,
                hint=login_hint(self.host, credentials is not None),
            )
        return response

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        stream: bool = False,
        authorization: str | None = None,
    ) -> requests.Response:
        """One request with retries of transient failures; the last response otherwise."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._sessions.get().request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    params=params,
                    data=data,
                    stream=stream,
                    timeout=(min(self.timeout, 15.0), self.timeout),
                    verify=self._verify,
                    auth=_SetAuthorization(authorization),
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryError(
                    f"TLS failed talking to {self.host} for {what}: {describe(exc)}",
                    url=public_url(url),
                    hint="if the registry uses a private CA, pass its certificate (ca_certs=...)",
                ) from None
            except _TRANSIENT as exc:
                if attempt >= self.retry.attempts:
                    error = RegistryError(
                        f"cannot reach {self.url if self._url else self.host} for {what} "
                        f"after {attempt} attempts: {describe(exc)}",
                        url=public_url(url),
                        hint="check the network, and that the registry is running",
                    )
                    self.unreachable = error
                    raise error from None
                time.sleep(self.retry.delay(attempt))
                continue
            if not is_transient(response.status_code):
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if attempt >= self.retry.attempts or (
                retry_after is not None and retry_after > self.retry.max_retry_after
            ):
                return response
            response.close()
            time.sleep(self.retry.delay(attempt, retry_after))

    def fail(self, response: requests.Response, what: str, *, verb: str = "get") -> RegistryError:
        """The error to raise for an unexpected ``response`` about ``what``."""
        codes, message = error_codes(response)
        status = response.status_code
        direction = "to" if verb == "push" else "from"
        text = f"cannot {verb} {what} {direction} {self.url}: HTTP {status}"
        if message:
            text += f" {message}"
        hint = None
        if status == 404:
            hint = "check the name, tag and digest (a private image may also need 'docker login')"
        elif status == 429:
            hint = "the registry limits request rates; log in, use a mirror, or try later"
        elif is_transient(status):
            hint = f"the registry failed {self.retry.attempts} times; try again later"
        kind = NotFoundError if status == 404 else RegistryError
        first = response.history[0] if response.history else response
        return kind(text, url=public_url(first.url), status=status, codes=codes, hint=hint)


def quiet_insecure_warnings() -> None:
    """Silence urllib3's per-request warning for hosts the user marked insecure on purpose."""
    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
