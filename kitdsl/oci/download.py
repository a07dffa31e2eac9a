"""Streaming one manifest or blob from a registry into the store: verified, and resumed when
the connection drops.

The bytes go straight into :meth:`ContentStore.write_blob`, which checks digest and size and
publishes the blob only if they match. When the body stops early we ask for the rest with a
``Range`` request; a server that answers the whole blob instead (no range support) makes us start
a fresh file. A body that ends cleanly but short, or bytes that do not match the digest, are
errors, not retried: the same server would send the same thing again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence

import requests
import urllib3

from kitdsl.errors import ImageError
from kitdsl.oci.digest import DigestError, is_digest
from kitdsl.oci.failures import RegistryError, describe
from kitdsl.oci.store import BlobWriter, ContentStore
from kitdsl.oci.transport import Endpoint

Progress = Callable[[int], None]
"""Called with the number of bytes of one blob received so far."""
CHUNK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_BODY_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


class _Interrupted(Exception):
    """The body stopped before its end (the connection dropped or timed out)."""


class _Restart(Exception):
    """The server sent the whole content again: start a fresh file with ``response``."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__()
        self.response = response


class Download:
    """One GET of a manifest or blob from ``endpoint``; :meth:`run` stores it and returns its
    digest. ``digest`` and ``size`` are what to verify against (for a manifest asked for by
    tag, the registry's ``Docker-Content-Digest`` header is used when the digest is unknown)."""

    def __init__(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        what: str,
        scopes: Sequence[str],
        digest: str | None,
        size: int | None,
        limit: int | None = None,
        headers: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.path = path
        self.what = what
        self.scopes = list(scopes)
        self.digest = digest
        self.size = size
        self.limit = limit
        self.headers = dict(headers or {})
        self.progress = progress
        self.content_type: str | None = None
        """The ``Content-Type`` the registry answered with."""
        self.interruptions = 0

    def run(self, store: ContentStore) -> str:
        """Download into ``store``; return the digest of what was stored."""
        response = self._open(0)
        while True:
            expected = self.digest
            announced = response.headers.get("Docker-Content-Digest", "")
            if expected is None and is_digest(announced):
                expected = announced
            try:
                with store.write_blob(digest=expected, size=self.size, what=self.what) as writer:
                    self._fill(response, writer)
                return writer.verifier.digest
            except _Restart as restart:
                response = restart.response
            except DigestError as error:
                error.details = (*error.details, f"url: {self.endpoint.url}{self.path}")
                raise

    def _open(self, offset: int) -> requests.Response:
        headers = {**self.headers, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self.endpoint.request(
            "GET", self.path, scopes=self.scopes, what=self.what, headers=headers, stream=True
        )
        status = response.status_code
        if status == 206 and offset:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if match is not None and int(match[1]) == offset:
                return response
            response.close()
            return self._open(0)  # a range we did not ask for: start over
        if status != 200:
            raise self.endpoint.fail(response, self.what)
        self.content_type = response.headers.get("Content-Type")
        length = response.headers.get("Content-Length", "")
        if self.limit is not None and length.isdigit() and int(length) > self.limit:
            response.close()
            raise ImageError(
                f"{self.what} from {self.endpoint.url} is {int(length)} bytes, more than the "
                f"{self.limit} a manifest may have"
            )
        return response

    def _fill(self, response: requests.Response, writer: BlobWriter) -> None:
        """Copy the body into ``writer``, resuming after interruptions."""
        while True:
            try:
                self._copy(response, writer)
                return
            except _Interrupted as interrupted:
                self.interruptions += 1
                retry = self.endpoint.retry
                if self.interruptions >= retry.attempts:
                    raise RegistryError(
                        f"cannot get {self.what} from {self.endpoint.url}: the connection broke "
                        f"{self.interruptions} times, last at byte {writer.size}: "
                        f"{describe(interrupted.__cause__ or interrupted)}",
                        url=self.endpoint.url + self.path,
                        hint="check the network, and that the registry is running",
                    ) from None
                time.sleep(retry.delay(self.interruptions))
                response = self._open(writer.size)
                if response.status_code == 200 and writer.size:
                    raise _Restart(response) from None

    def _copy(self, response: requests.Response, writer: BlobWriter) -> None:
        raw = response.raw
        try:
            while True:
                try:
                    # Whatever has arrived, up to CHUNK: a connection that drops loses nothing
                    # already received, so a resume starts exactly where the data stopped.
                    chunk = raw.read1(CHUNK, decode_content=True)
                except _BODY_ERRORS as error:
                    raise _Interrupted() from error
                if not chunk:
                    return
                if self.limit is not None and writer.size + len(chunk) > self.limit:
                    raise ImageError(
                        f"{self.what} from {self.endpoint.url} is larger than the "
                        f"{self.limit} bytes a manifest may have"
                    )
                writer.write(chunk)
                if self.progress is not None:
                    self.progress(writer.size)
        finally:
            response.close()
