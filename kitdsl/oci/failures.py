"""What goes wrong talking to registries, and how we respond: the error classes, which
failures are worth retrying and how long to wait, and turning a registry's answer or a network
exception into a message a person can act on."""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3

from kitdsl.errors import ImageError
from kitdsl.oci.auth import AuthError

NEVER_RETRY = frozenset({501, 505})
"""5xx statuses that will not change on retry: the server cannot do what we ask."""


class RegistryError(ImageError):
    """A registry answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        codes: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, details=(f"url: {url}",) if url else ())
        self.url = url
        self.status = status
        self.codes = codes


class NotFoundError(RegistryError):
    """The registry does not have the repository, tag, manifest or blob."""


class RegistryAuthError(RegistryError, AuthError):
    """The registry refused us: not logged in, wrong credentials, or no access."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures."""

    attempts: int = 5
    """Tries per request, the first included."""
    base_delay: float = 0.5
    """The first backoff; it doubles with every try, with jitter."""
    max_delay: float = 30.0
    """The longest backoff between two tries."""
    max_retry_after: float = 120.0
    """The longest ``Retry-After`` we wait for; a registry asking for more gets an error."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1).

        "Equal jitter": half the exponential backoff is fixed, half random, so clients that
        failed together do not retry together. ``Retry-After`` is a floor.
        """
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        wait = backoff / 2 + random.uniform(0, backoff / 2)
        return max(wait, retry_after) if retry_after is not None else wait


def is_transient(status: int) -> bool:
    """429, 408 and most 5xx: worth another try after a pause."""
    return status in (408, 429) or (status >= 500 and status not in NEVER_RETRY)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def error_codes(response: requests.Response) -> tuple[tuple[str, ...], str]:
    """The codes and messages of a registry's ``{"errors": [{"code", "message"}]}`` body."""
    try:
        body = response.content
    except (requests.RequestException, urllib3.exceptions.HTTPError):
        body = b""
    finally:
        response.close()
    try:
        errors = json.loads(body).get("errors") or []
        codes = tuple(str(item.get("code", "")) for item in errors)
        messages = "; ".join(
            f"{item.get('code', '')}: {item.get('message', '')}".strip(": ") for item in errors
        )
    except (ValueError, AttributeError, TypeError):
        text = body.decode(errors="replace").strip() if len(body) < 1000 else ""
        return (), text.splitlines()[0] if text else ""
    return codes, messages


def public_url(url: str | None) -> str:
    """``url`` without its query: upload states and signed redirect URLs hold secrets."""
    return urlsplit(url or "")._replace(query="", fragment="").geturl()


def login_hint(host: str, had_credentials: bool) -> str:
    """What to do when ``host`` refuses us, with or without credentials."""
    target = "" if host == "docker.io" else f" {host}"
    if had_credentials:
        return f"check the credentials for {host} (docker login{target}), and the access rights"
    return f"log in with 'docker login{target}' (credentials are read from ~/.docker/config.json)"


def describe(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 exception, without object addresses."""
    reason: BaseException = exc
    for _ in range(10):
        inner = getattr(reason, "reason", None)
        if not isinstance(inner, BaseException) and reason.args:
            inner = reason.args[0]
        if not isinstance(inner, BaseException):
            break
        reason = inner
    text = str(reason) or type(reason).__name__
    text = re.sub(r"<[^<>]* at 0x[0-9a-f]+>: |^\w*Connection\([^()]*\): ", "", text)
    return re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)
