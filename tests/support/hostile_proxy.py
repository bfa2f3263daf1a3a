"""A hostile network between a real agent process and a real registry server.

The agent is pointed at this proxy instead of the registry. By default it
forwards every request unchanged (device signatures stay valid: they cover
the method, path and body, not the host) and records every answer. A test
then sets ``tamper`` to answer the next requests the way an attacker on the
path would: replay a recorded answer, flip a byte, cut the body short.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Answer:
    """One response as the registry sent it (or as the proxy will send it)."""

    path: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: Sent as Content-Length; differs from len(body) only for a response cut short on the wire.
    declared_length: int | None = None


class HostileProxy:
    """Forwards to ``upstream``; ``tamper(request_path, answer)`` may replace each answer."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port)
        self.recorded: list[Answer] = []
        self.tamper: Callable[[str, Answer], Answer] | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: pytest shows failures, not traffic
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = proxy._upstream(self.command, self.path, dict(self.headers), body)
                proxy.recorded.append(answer)
                if proxy.tamper is not None:
                    answer = proxy.tamper(self.path, answer)
                self.send_response(answer.status)
                for name, value in answer.headers:
                    self.send_header(name, value)
                length = answer.declared_length if answer.declared_length is not None else len(answer.body)
                self.send_header("Content-Length", str(length))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer.body)
                self.close_connection = True

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _upstream(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            conn.request(method, path, body=body or None, headers=sent)
            response = conn.getresponse()
            kept = tuple((k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP)
            return Answer(path, response.status, kept, response.read())
        finally:
            conn.close()

    def last(self, path_prefix: str) -> Answer:
        """The last recorded answer to a request whose path starts with ``path_prefix``."""
        return next(a for a in reversed(self.recorded) if a.path.startswith(path_prefix))

    def __enter__(self) -> "HostileProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
