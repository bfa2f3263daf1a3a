"""The one seam between the sync agent and the network.

Modelled on python-tuf's ``ngclient/fetcher.py`` and httpx's transports: a
:class:`Fetcher` has one method, ``fetch``, which returns the whole response
or raises :class:`FetchError`, whatever went wrong underneath (refused
connection, timeout, reset, oversized or never-ending body). The agent never
sees a ``requests`` exception. Every response is read with a byte limit the
caller chooses, and reading stops the moment it is passed (issue 4,
"Enforce byte limits on every download, against endless data").

:class:`RequestsFetcher` talks HTTP to the registry and signs each request
with the device key (docs/sync-agent.md, "Device authentication");
:class:`WsgiFetcher` calls a Flask/WSGI app in-process, for tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping, Protocol

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
    """What the agent needs from the network: one request in, one bounded response out."""

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


class _Bounded:
    """Collects chunks until the limit or the deadline, whichever comes first."""

    def __init__(self, max_bytes: int, deadline: float | None) -> None:
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise ResponseTooLarge(f"response goes past the limit: limit is {self.max_bytes} bytes; stopped reading")
        self.parts.append(bytes(chunk))
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise FetchError("response is still arriving after the deadline; gave up")

    def body(self) -> bytes:
        return b"".join(self.parts)


class RequestsFetcher:
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

    def fetch(self, method: str, path: str, *, body: bytes | None = None,
              headers: Mapping[str, str] | None = None, max_bytes: int) -> Response:
        data = body or b""
        sent = {**signed_headers(self.device, method, path, data, self._clock()), **(headers or {})}
        requests = self._requests
        import urllib3

        try:
            with self._session.request(method, self.base_url + path, data=data or None, headers=sent,
                                       timeout=self.timeout, stream=True, allow_redirects=False) as r:
                got = {k.lower(): v for k, v in r.headers.items()}
                _check_length(got, max_bytes)
                sink = _Bounded(max_bytes, time.monotonic() + self.deadline)
                for chunk in r.raw.stream(CHUNK_BYTES, decode_content=False):
                    sink.add(chunk)
                if "content-length" in got and got["content-length"].isdigit() \
                        and sink.size != int(got["content-length"]):
                    raise FetchError(f"response ended after {sink.size} of {got['content-length']} bytes")
                return Response(r.status_code, got, sink.body())
        except FetchError:
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # r.raw.stream raises urllib3's errors (reset, read timeout), not requests'.
            raise FetchError(f"{method} {path}: {type(exc).__name__}: {exc}") from None


class WsgiFetcher:
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

    def fetch(self, method: str, path: str, *, body: bytes | None = None,
              headers: Mapping[str, str] | None = None, max_bytes: int) -> Response:
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
            _check_length(got, max_bytes)
            sink = _Bounded(max_bytes, None)
            for chunk in response.iter_encoded():
                sink.add(chunk)
            return Response(response.status_code, got, sink.body())
        finally:
            response.close()
