"""The one seam between the sync agent and the network.

Modelled on python-tuf's ``ngclient/fetcher.py`` and httpx's transports: a
:class:`Fetcher` has one method, ``fetch``, which returns the whole response
or raises :class:`FetchError`, whatever went wrong underneath (refused
connection, timeout, reset, oversized or never-ending body). The agent never
sees a ``requests`` exception. Every response is read with a byte limit the
caller chooses, and reading stops the moment it is passed (issue 4,
"Enforce byte limits on every download, against endless data").

A snapshot answer is too big to hold in memory, so the real fetchers also
``stream``: the same request, with the body read on demand
(:class:`StreamedResponse`) under a limit the caller may raise once it has
verified what comes next. ``open_stream`` reads a fetch-only fetcher (a test
double answering from bytes) the same way.

:class:`RequestsFetcher` talks HTTP to the registry and signs each request
with the device key (docs/sync-agent.md, "Device authentication");
:class:`WsgiFetcher` calls a Flask/WSGI app in-process, for tests.
"""

from __future__ import annotations

import io
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.errors import SyncError

CHUNK_BYTES = 64 * 1024


class FetchError(SyncError):
    """The registry could not be reached, or its answer could not be read whole."""

    code = "fetch"


class ResponseTooLarge(FetchError):
    """The response went past the byte limit; reading stopped there."""

    code = "response_too_large"


@dataclass(frozen=True)
class Response:
    """A complete response. ``headers`` keys are lower-case."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


class Fetcher(Protocol):
    """What the agent needs from the network: one request in, one bounded response out.

    A fetcher may also offer ``stream`` (same arguments, plus ``ceiling``),
    a context manager yielding a StreamedResponse; see open_stream.
    """

    def fetch(self, method: str, path: str, *, body: bytes | None = None,
              headers: Mapping[str, str] | None = None, max_bytes: int) -> Response:
        """Send ``method path`` (path with query, from the registry root); raise FetchError on failure."""
        ...


@dataclass(frozen=True)
class DeviceCredentials:
    """Who this device is to the registry: its id and its Ed25519 private key."""

    device_id: str
    private_key: Ed25519PrivateKey


def signed_headers(credentials: DeviceCredentials | None, method: str, path: str,
                   body: bytes, now: float) -> dict[str, str]:
    """The device-authentication headers (docs/sync-agent.md); sync/device_auth.py signs."""
    if credentials is None:
        return {}
    from sync.device_auth import sign_request  # owned by the registry side; imported late

    return sign_request(credentials.private_key, method.upper(), path, int(now), body,
                        device_id=credentials.device_id)


def _check_length(headers: Mapping[str, str], max_bytes: int) -> None:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"response declares {declared} bytes, limit is {max_bytes} bytes")


class StreamedResponse:
    """An open response whose body is read on demand, under a byte limit and a deadline.

    ``read(n)`` returns up to n bytes, b"" at the end. Reading stops the
    moment the limit is passed (ResponseTooLarge) or the deadline is (a
    registry dripping a byte a second). ``allow`` raises both once the
    caller has verified what it is about to read: a signed snapshot
    envelope announces its payload size, so the agent lets exactly that
    many more bytes through.
    """

    def __init__(self, status: int, headers: Mapping[str, str], read_raw: Callable[[int], bytes],
                 max_bytes: int, deadline: float | None, *, check_length: bool = True) -> None:
        self.status = status
        self.headers = headers
        self._read_raw = read_raw
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.size = 0
        declared = headers.get("content-length") if check_length else None
        self._declared = int(declared) if declared is not None and declared.isdigit() else None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def allow(self, extra_bytes: int, extra_seconds: float = 0.0) -> None:
        self.max_bytes += extra_bytes
        if self.deadline is not None:
            self.deadline += extra_seconds

    def read(self, size: int) -> bytes:
        # One byte past the limit is enough to know the limit was passed.
        chunk = self._read_raw(max(1, min(size, self.max_bytes - self.size + 1)))
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise ResponseTooLarge(f"response goes past the limit: limit is {self.max_bytes} bytes; stopped reading")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise FetchError("response is still arriving after the deadline; gave up")
        if not chunk and self._declared is not None and self.size != self._declared:
            raise FetchError(f"response ended after {self.size} of {self._declared} bytes")
        return chunk

    def rest(self) -> bytes:
        """Everything left, in memory (under the same limit)."""
        parts = []
        while chunk := self.read(CHUNK_BYTES):
            parts.append(chunk)
        return b"".join(parts)


def open_stream(fetcher: "Fetcher", method: str, path: str, *, headers: Mapping[str, str] | None = None,
                max_bytes: int, ceiling: int | None = None):
    """``fetcher.stream(...)``, or, for a fetcher that can only ``fetch`` whole bodies, its answer as a stream.

    ``max_bytes`` is the limit until the caller ``allow``s more; ``ceiling``
    bounds what a declared Content-Length may be at the start (default
    ``max_bytes``). Fetchers that answer from bytes in memory (test doubles
    such as a tampering proxy) need only implement ``fetch``.
    """
    stream = getattr(fetcher, "stream", None)
    if stream is not None:
        return stream(method, path, headers=headers, max_bytes=max_bytes, ceiling=ceiling)
    return _whole(fetcher.fetch(method, path, headers=headers, max_bytes=ceiling or max_bytes), max_bytes)


@contextmanager
def _whole(response: Response, max_bytes: int):
    body = io.BytesIO(response.body)
    # The body is already whole (or was cut by whoever built it): frames tell a truncation.
    yield StreamedResponse(response.status, {k.lower(): v for k, v in response.headers.items()}, body.read,
                           max_bytes, None, check_length=False)


class _Streaming:
    """A fetcher whose ``fetch`` is its ``stream``, read to the end under the same limit."""

    def fetch(self, method: str, path: str, *, body: bytes | None = None,
              headers: Mapping[str, str] | None = None, max_bytes: int) -> Response:
        with self.stream(method, path, body=body, headers=headers, max_bytes=max_bytes) as response:
            return Response(response.status, response.headers, response.rest())


class RequestsFetcher(_Streaming):
    """HTTP(S) to the registry with ``requests``, streaming every body under its limit.

    ``timeout`` bounds connecting and each wait for bytes; ``deadline`` the
    whole exchange, so a registry that drips a byte a second cannot hold the
    agent (a long-poll's ``wait`` must fit inside it).
    """

    def __init__(self, base_url: str, device: DeviceCredentials | None, timeout: float = 40.0,
                 *, deadline: float = 120.0, clock=time.time) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.device = device
        self.timeout = timeout
        self.deadline = deadline
        self._clock = clock
        self._requests = requests
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    @contextmanager
    def stream(self, method: str, path: str, *, body: bytes | None = None,
               headers: Mapping[str, str] | None = None, max_bytes: int,
               ceiling: int | None = None) -> Iterator[StreamedResponse]:
        """The response, open: its body is read on demand (a snapshot goes to disk, not memory)."""
        data = body or b""
        sent = {**signed_headers(self.device, method, path, data, self._clock()), **(headers or {})}
        requests = self._requests
        import urllib3

        errors = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)
        try:
            r = self._session.request(method, self.base_url + path, data=data or None, headers=sent,
                                      timeout=self.timeout, stream=True, allow_redirects=False)
        except errors as exc:
            raise FetchError(f"{method} {path}: {network_reason(exc, self.base_url, self.timeout)}") from None

        def read_raw(size: int) -> bytes:
            try:
                return r.raw.read(size, decode_content=False)
            except errors as exc:  # urllib3's own errors (reset, read timeout), not requests'
                raise FetchError(f"{method} {path}: {network_reason(exc, self.base_url, self.timeout)}") from None

        try:
            got = {k.lower(): v for k, v in r.headers.items()}
            _check_length(got, ceiling or max_bytes)
            yield StreamedResponse(r.status_code, got, read_raw, max_bytes, time.monotonic() + self.deadline)
        finally:
            r.close()


#: Phrases of the OS and urllib3 errors, and what they mean to the person reading `sync status`.
_NETWORK_REASONS = (
    ("Connection refused", "nothing answers at {url} (connection refused): is the registry running?"),
    ("Name or service not known", "the registry's host name in {url} does not resolve"),
    ("Temporary failure in name resolution", "the registry's host name in {url} does not resolve (DNS failure)"),
    ("No route to host", "no network route to {url}"),
    ("Network is unreachable", "the network is unreachable; {url} cannot be reached"),
    ("Connection reset", "the registry closed the connection (reset)"),
    ("IncompleteRead", "the connection broke before the whole answer arrived"),
    ("Connection broken", "the connection broke before the whole answer arrived"),
    ("Connection aborted", "the registry closed the connection without an answer"),
)


def network_reason(exc: BaseException, url: str, timeout: float) -> str:
    """One readable line for a network failure; the library's repr is no user interface."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"could not connect to {url} within {timeout:g} s"
    if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc):
        return f"the registry at {url} did not answer within {timeout:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS with {url} failed: the certificate or the protocol was refused"
    text = str(exc)
    for phrase, reason in _NETWORK_REASONS:
        if phrase in text:
            return reason.format(url=url)
    return f"network error talking to {url} ({type(exc).__name__})"


class WsgiFetcher(_Streaming):
    """Calls a WSGI app (the registry's Flask app) in-process: the tests' transport.

    The request is signed exactly as on the wire and the body is read in
    chunks under the same limit, so tests exercise the real registry code
    and the agent's limits without a socket.
    """

    def __init__(self, app, device: DeviceCredentials | None = None, *, clock=time.time) -> None:
        self.app = app
        self.device = device
        self._clock = clock
        #: Set to an exception to simulate a dead registry (every fetch raises it as FetchError).
        self.down: str | None = None
        self.requests: list[tuple[str, str]] = []

    @contextmanager
    def stream(self, method: str, path: str, *, body: bytes | None = None,
               headers: Mapping[str, str] | None = None, max_bytes: int,
               ceiling: int | None = None) -> Iterator[StreamedResponse]:
        self.requests.append((method, path))
        if self.down is not None:
            raise FetchError(f"{method} {path}: {self.down}")
        data = body or b""
        sent = {**signed_headers(self.device, method, path, data, self._clock()), **(headers or {})}
        try:
            client = self.app.test_client()
            response = client.open(path, method=method, data=data, headers=sent, buffered=False)
        except Exception as exc:  # the in-process "network": any crash is a failed fetch
            raise FetchError(f"{method} {path}: registry app raised {type(exc).__name__}: {exc}") from None
        try:
            got = {k.lower(): v for k, v in response.headers.items()}
            _check_length(got, ceiling or max_bytes)
            yield StreamedResponse(response.status_code, got, _ChunkReader(response.iter_encoded()).read,
                                   max_bytes, None)
        finally:
            response.close()


class _ChunkReader:
    """read(n) over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int) -> bytes:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._buffer = bytes(chunk)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out
