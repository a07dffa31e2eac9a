"""HTTP from archives into a content-addressed cache: every file verified by sha256 and size
while it streams, published atomically, retried with backoff when the network hiccups.

Files live at ``<cache>/debian/sha256/<hex>``: a name that is its content's digest, so a file
is either complete and correct or absent. A download goes to a temporary file beside it and is
renamed into place only after its digest and size matched; on any failure the temporary file
is removed. A hash mismatch is not retried: the mirror would send the same bytes again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from kitdsl.fsutil import file_sha256, fsync_dir
from kitdsl.oci.failures import RetryPolicy, is_transient, parse_retry_after
from kitdsl.pkg.debian.errors import DownloadError

CHUNK = 1 << 20
USER_AGENT = "kitdsl"
_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
)


@dataclass(frozen=True)
class FetchItem:
    """A file to fetch: where, and what it must hash to."""

    url: str
    sha256: str
    size: int
    fallback_urls: tuple[str, ...] = ()
    """Tried in order when ``url`` answers 404 (a ``by-hash`` URL falls back to the path)."""
    what: str = ""
    """What the file is, for messages (``runc 1.1.5``)."""


class _Transient(Exception):
    """A failure worth another try after a pause."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Fetcher:
    """Downloads from archives into ``<cache>/debian``; thread-safe (one HTTP session per
    thread)."""

    def __init__(
        self, cache: str | Path, *, retry: RetryPolicy | None = None, timeout: float = 60.0
    ) -> None:
        self.root = Path(cache) / "debian"
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    def path(self, sha256: str) -> Path:
        """Where the file with this digest is (or would be) stored."""
        return self.root / "sha256" / sha256

    def close(self) -> None:
        """Close every thread's HTTP session."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def get(self, url: str, *, max_size: int = 64 << 20) -> bytes:
        """A small file (an ``InRelease``) into memory; 404 raises :class:`DownloadError`
        with ``status`` 404."""
        chunks: list[bytes] = []

        def run() -> None:
            chunks.clear()
            with self._request(url) as response:
                total = 0
                for chunk in response.iter_content(CHUNK):
                    total += len(chunk)
                    if total > max_size:
                        raise DownloadError(f"{url} is larger than {max_size} bytes", url=url)
                    chunks.append(chunk)

        self._with_retries(url, run)
        return b"".join(chunks)

    def have(self, sha256: str, size: int) -> Path | None:
        """The cached file with this digest, checked (a damaged one is removed)."""
        path = self.path(sha256)
        try:
            if path.stat().st_size == size and file_sha256(path) == sha256:
                return path
        except FileNotFoundError:
            return None
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None

    def fetch(self, item: FetchItem) -> Path:
        """The file, from the cache or downloaded and verified into it."""
        cached = self.have(item.sha256, item.size)
        if cached is not None:
            return cached
        *first, last = (item.url, *item.fallback_urls)
        for url in first:
            try:
                return self._download(url, item)
            except DownloadError as exc:
                if exc.status != 404:
                    raise
        return self._download(last, item)

    def fetch_all(self, items: Sequence[FetchItem], *, jobs: int = 4) -> list[Path]:
        """Every item, ``jobs`` at a time; the paths in the order given. The first failure
        stops what has not started and is raised once the running downloads have ended (each
        of them complete and verified, or gone)."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="deb") as pool:
            futures: list[Future[Path]] = [pool.submit(self.fetch, item) for item in items]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                for future in futures:
                    future.cancel()
                wait(futures)
                error = failed[0].exception()
                assert error is not None
                raise error
            return [future.result() for future in futures]

    def _download(self, url: str, item: FetchItem) -> Path:
        target = self.path(item.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)

        def run() -> None:
            handle, temporary = tempfile.mkstemp(
                prefix=f".tmp-{item.sha256[:16]}-", dir=target.parent
            )
            try:
                with os.fdopen(handle, "wb") as out, self._request(url) as response:
                    length = response.headers.get("Content-Length", "")
                    if length.isdigit() and int(length) != item.size:
                        raise DownloadError(
                            f"{url} is {length} bytes, but {item.size} were expected",
                            url=url,
                            hint="the mirror serves another file than its index lists; "
                            "it may be updating or damaged: try again later or another mirror",
                        )
                    digest = hashlib.sha256()
                    total = 0
                    for chunk in response.iter_content(CHUNK):
                        total += len(chunk)
                        if total > item.size:
                            break
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if total != item.size or digest.hexdigest() != item.sha256:
                    got = f"{total} bytes" if total != item.size else f"sha256 {digest.hexdigest()}"
                    raise DownloadError(
                        f"{url} does not match its checksum: expected sha256 {item.sha256} "
                        f"and {item.size} bytes, got {got}",
                        url=url,
                        hint="the file is corrupt or was replaced on the mirror; nothing "
                        "was kept. Try again later or another mirror",
                    )
                os.chmod(temporary, 0o644)
                os.replace(temporary, target)
                fsync_dir(target.parent)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
                raise

        self._with_retries(url, run)
        return target

    @contextlib.contextmanager
    def _request(self, url: str) -> Iterator[requests.Response]:
        try:
            response = self._session().get(url, stream=True, timeout=(10.0, self.timeout))
        except _TRANSIENT as exc:
            raise _Transient(_reason(exc)) from None
        try:
            status = response.status_code
            if status in (404, 410):
                raise DownloadError(
                    f"{url} was not found on the mirror (HTTP {status})", url=url, status=404
                )
            if is_transient(status):
                raise _Transient(
                    f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After"))
                )
            if status != 200:
                raise DownloadError(
                    f"{url} answered HTTP {status} {response.reason}", url=url, status=status
                )
            yield response
        except _TRANSIENT as exc:
            raise _Transient(_reason(exc)) from None
        finally:
            response.close()

    def _with_retries(self, url: str, run: Callable[[], None]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                run()
                return
            except _Transient as exc:
                if attempt >= self.retry.attempts:
                    raise DownloadError(
                        f"cannot download {url}: {exc} (after {attempt} tries)",
                        url=url,
                        hint="check the network and the mirror URL, or try another mirror",
                    ) from None
                delay = self.retry.delay(attempt, exc.retry_after)
                time.sleep(min(delay, self.retry.max_retry_after))


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "the host name does not resolve"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return text.splitlines()[0][:200] if text else type(exc).__name__
