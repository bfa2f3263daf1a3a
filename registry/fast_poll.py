"""The no-change poll, answered below Flask (issue 4: >= 2,000 polls/s on 2 cores).

Most requests a registry gets are ``GET /v1/lists/<id>/updates?since=<head>``
from a device that is already current. Flask's request context, routing and
response objects cost about as much as the rest of such a poll together, so
:class:`NoChangePolls`, a WSGI middleware in front of the app, answers
exactly that case itself. It authenticates the device the same way (one
Ed25519 check of the request signature, by :func:`authenticate`, which the
Flask blueprint calls too) and answers with the heartbeat that
:func:`current_heartbeat` finds. Every other request, and every request this
path cannot answer with a 200 (a bad signature, a device behind, an unknown
list, an odd query, a long-poll), goes to Flask unchanged, which answers it
and every error exactly as before.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Iterable, Mapping
from urllib.parse import quote, urlsplit

from registry.devices import Device
from sync.device_auth import (
    HEADER_DEVICE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    RequestAuthError,
    request_device_id,
    verify_request,
)
from sync.framing import frame_update

if TYPE_CHECKING:
    from registry.server import Services

MIN_WAIT_HEADER = "X-Gatecheck-Min-Wait"
_UPDATES_PATH = re.compile(r"/v1/lists/([^/]+)/updates")
_VERSION = re.compile(r"[0-9]{1,19}")  # what int_arg accepts, in registry/server.py
_AUTH_ENVIRON = {name: "HTTP_" + name.upper().replace("-", "_")
                 for name in (HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_SIGNATURE)}
#: Where this path leaves the device it authenticated for Flask (a client cannot set a key without HTTP_).
DEVICE_ENVIRON_KEY = "gatecheck.device"


def request_target(environ: Mapping) -> str:
    """The path and query exactly as the device sent them (what it signed)."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        if not raw.startswith("/"):  # absolute-form target (via a proxy)
            parts = urlsplit(raw)
            raw = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return raw
    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=-._~")
    query = environ.get("QUERY_STRING", "")
    return path + (f"?{query}" if query else "")


def auth_headers(environ: Mapping) -> dict[str, str]:
    """The three authentication headers from a WSGI environ (a small dict is quicker to search)."""
    return {name: environ[key] for name, key in _AUTH_ENVIRON.items() if key in environ}


def authenticate(svc: Services, environ: Mapping, body: bytes, max_skew: int) -> Device:
    """The active device whose enrolled key signed this request; RequestAuthError (401) otherwise."""
    headers = auth_headers(environ)
    device_id = request_device_id(headers)
    device = svc.device_cache.active(device_id)
    if device is None:
        raise RequestAuthError(f"device {device_id} is unknown or disabled")
    verify_request(device.public_key, environ.get("REQUEST_METHOD", ""), request_target(environ), headers, body,
                   svc.clock(), max_skew=max_skew)
    svc.mark_seen(device_id)
    return device


def current_heartbeat(svc: Services, list_id: str, since: int, wait: int) -> bytes | None:
    """For a device at the head, the heartbeat of this second, after waiting up to ``wait`` s for a change.

    None sends the request the slow way: the device is behind or ahead, or
    the list changed while it waited.
    """
    if svc.head_of(list_id) != since:
        return None
    # Versions only grow: a shared cached head below the device's is merely older, not a change.
    if wait > 0 and svc.changes.wait_until(lambda: (svc.heads.version(list_id) or 0) > since, wait):
        return None
    return svc.heartbeats.for_version(list_id, since, svc.clock())


def _since(query: str) -> int | None:
    """``since`` from ``since=N`` or ``since=N&wait=0``; None for anything else (Flask reads it)."""
    since, _, rest = query.partition("&")
    if rest not in ("", "wait=0") or not since.startswith("since="):
        return None
    digits = since[6:]
    return int(digits) if _VERSION.fullmatch(digits) else None


class NoChangePolls:
    """WSGI middleware: answers a current device's ``wait=0`` poll; hands everything else to ``app``."""

    def __init__(self, app: Callable, svc: Services, config: Mapping) -> None:
        self.app = app
        self.svc = svc
        self.config = config  # the Flask app's config, read per request like the blueprint does

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        try:
            beat = self._answer(environ)
        except Exception:  # not answered here: Flask tries again and answers in its one format
            beat = None  # (a 401 for a bad signature, a 503 for an expired signing key, a logged 500)
        if beat is None:
            return self.app(environ, start_response)
        body = frame_update(beat, b"")
        start_response("200 OK", [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(body))),
            (MIN_WAIT_HEADER, str(self.config["MIN_WAIT_SECONDS"])),
            ("Cache-Control", "no-store"),
        ])
        return [body]

    def _answer(self, environ: dict) -> bytes | None:
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("CONTENT_LENGTH", "") not in ("", "0") \
                or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        route = _UPDATES_PATH.fullmatch(environ.get("PATH_INFO", ""))
        since = _since(environ.get("QUERY_STRING", "")) if route else None
        if since is None:
            return None
        device = environ[DEVICE_ENVIRON_KEY] = authenticate(self.svc, environ, b"",
                                                            self.config["CLOCK_SKEW_SECONDS"])
        list_id = route.group(1)
        if list_id not in device.lists:
            return None
        return current_heartbeat(self.svc, list_id, since, 0)
