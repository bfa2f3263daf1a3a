"""Bytes-arrived reporting for a fetcher: what draws `gatecheck provision`'s progress bars.

A decorator at the seam (sync/fetcher.py), so the agent stays unaware of
it: every streamed answer to a list's ``updates`` request is counted as the
agent reads it, against the Content-Length the registry sends (a snapshot
answer declares its whole length before the first byte). Other requests
(keys, health, reports) are small and pass through uncounted.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator, Mapping, Protocol

from sync.fetcher import CHUNK_BYTES, Fetcher, Response, open_stream

_UPDATES = re.compile(r"/v1/lists/([^/?]+)/updates")


class Meter(Protocol):
    def update(self, n_bytes: int) -> None: ...


#: ``(list_id, total bytes or None) -> a context manager yielding a Meter``; click.progressbar fits.
MeterFactory = Callable[[str, "int | None"], ContextManager[Meter]]


class ProgressFetcher:
    """``inner``, with each list's updates answer reported to a meter as it is read."""

    def __init__(self, inner: Fetcher, meter: MeterFactory) -> None:
        self.inner = inner
        self.meter = meter

    def fetch(self, method: str, path: str, *, body: bytes | None = None,
              headers: Mapping[str, str] | None = None, max_bytes: int) -> Response:
        return self.inner.fetch(method, path, body=body, headers=headers, max_bytes=max_bytes)

    @contextmanager
    def stream(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
               max_bytes: int, ceiling: int | None = None) -> Iterator:
        with open_stream(self.inner, method, path, headers=headers, max_bytes=max_bytes,
                         ceiling=ceiling) as response:
            match = _UPDATES.match(path)
            if match is None or response.status != 200:
                yield response
                return
            declared = response.header("content-length")
            total = int(declared) if declared is not None and declared.isdigit() else None
            with self.meter(match.group(1), total) as meter:
                yield _Counted(response, meter)


class _Counted:
    """A StreamedResponse whose reads are reported; everything else is the response's own."""

    def __init__(self, response, meter: Meter) -> None:
        self._response = response
        self._meter = meter

    def read(self, size: int) -> bytes:
        chunk = self._response.read(size)
        if chunk:
            self._meter.update(len(chunk))
        return chunk

    def rest(self) -> bytes:
        parts = []
        while chunk := self.read(CHUNK_BYTES):
            parts.append(chunk)
        return b"".join(parts)

    def __getattr__(self, name: str):
        return getattr(self._response, name)
