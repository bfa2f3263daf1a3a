"""The local JSON API: what the scanner daemon, tests and integrators use (docs/counter.md).

- ``POST /api/scan``: a raw payload (application/octet-stream or text/plain,
  at most 16 KiB; ``?channel=camera`` when a camera read it) or a multipart
  ``image`` field -> the verdict JSON plus
  its journal ``seq``. An unreadable payload is journaled as UNREADABLE and
  answered 422 with the verdict and its ``error``.
- ``GET /api/status``: list versions, freshness, outbox depth, journal size.
- ``GET /api/events``: Server-Sent Events, ``id:`` = journal seq, replay
  from ``Last-Event-ID`` (or ``?after=``).
- ``GET /api/scans?after=N``: the same events by polling.

Every refusal is ``{"error": {"code", "message"}}`` with a 4xx status.
"""

from __future__ import annotations

import json
import threading
import time

from flask import Blueprint, Response, current_app, jsonify, request

from appliance.documents.model import MAX_PAYLOAD_BYTES
from appliance.web.access import api_error, reader, scanner_only
from appliance.web.inputs import (
    RAW_TYPES,
    InputRefused,
    accepts_image,
    payload_from_upload,
)

bp = Blueprint("api", __name__, url_prefix="/api")

#: An event stream ends after this long; the browser reconnects with Last-Event-ID.
STREAM_SECONDS = 300.0
#: How often a stream re-reads the journal (scans journaled by other processes).
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
#: Each stream holds a server thread; past this many the client is told to poll.
MAX_STREAMS = 8
_streams = threading.BoundedSemaphore(MAX_STREAMS)
#: Channels a raw payload may be journaled under (``?channel=``; default scanner).
RAW_CHANNELS = ("scanner", "camera")


def _state():
    return current_app.extensions["gatecheck"]


@bp.route("/scan", methods=["POST"])
@scanner_only
@accepts_image
def scan():
    """One scan -> verdict JSON. The operator is whoever is signed in at the counter."""
    mimetype = request.mimetype
    if mimetype in RAW_TYPES:
        request.max_content_length = MAX_PAYLOAD_BYTES
        payload = request.get_data(cache=False)
        # A camera the scanner daemon decodes itself sends the payload with
        # ?channel=camera, so the journal says how it was read.
        channel = request.args.get("channel", "scanner")
        if channel not in RAW_CHANNELS:
            return api_error(400, "bad_channel", f"channel must be {' or '.join(RAW_CHANNELS)}")
        if not payload:
            return api_error(400, "empty", "empty body: nothing was scanned")
    elif mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            return api_error(400, "missing_image", "send the camera frame in a multipart field named 'image'")
        try:
            payload = payload_from_upload(upload)
        except InputRefused as exc:
            return api_error(exc.status, exc.code, exc.message)
        channel = "camera"
    else:
        return api_error(415, "unsupported_media_type",
                         f"send the payload as {' or '.join(RAW_TYPES)}, or an image as "
                         f"multipart/form-data; got {mimetype or 'no content type'}")
    scan = _state().check(payload, channel=channel)
    status = 422 if scan.decision.error is not None else 200
    return jsonify(scan.to_dict()), status


@bp.route("/status", methods=["GET"])
@reader
def status():
    return jsonify(_state().status())


def _after_param() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise _BadCursor(raw)
    return int(raw)


class _BadCursor(Exception):
    pass


@bp.route("/scans", methods=["GET"])
@reader
def scans():
    """Polling fallback: events after ``after`` (oldest first) and the newest seq."""
    try:
        after = _after_param()
        limit = int(request.args.get("limit", "50"))
    except (_BadCursor, ValueError):
        return api_error(400, "bad_cursor", "after and limit must be whole numbers")
    limit = max(1, min(limit, 200))
    events = _state().events_after(after, limit=limit)
    last = events[-1]["seq"] if events else max(after, 0)
    return jsonify({"events": events, "last_seq": last, "head_seq": _state().head_seq()})


@bp.route("/events", methods=["GET"])
@reader
def events():
    """Server-Sent Events: one ``scan`` event per journaled verdict, id = journal seq."""
    try:
        after = _after_param()
    except _BadCursor:
        return api_error(400, "bad_cursor", "Last-Event-ID must be a journal seq (a whole number)")
    if not _streams.acquire(blocking=False):
        return api_error(503, "busy", "too many open event streams; poll /api/scans instead",
                         **{"Retry-After": "5"})
    state = _state()
    # Waitress (with channel_request_lookahead) says when the client has gone,
    # so a closed page frees its stream slot within a second, not at the next write.
    gone = request.environ.get("waitress.client_disconnected", lambda: False)

    def stream():
        last = after
        yield "retry: 2000\n\n"
        deadline = time.monotonic() + STREAM_SECONDS
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and not state.closing.is_set() and not gone():
            batch = state.events_after(last, limit=100)
            for event in batch:
                last = event["seq"]
                data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
                yield f"id: {last}\nevent: scan\ndata: {data}\n\n"
            if batch:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"  # also how a closed connection is noticed
                quiet_since = time.monotonic()
            state.wait_for_scan(last, POLL_SECONDS)

    response = Response(stream(), mimetype="text/event-stream")
    # Called by the WSGI server when the stream ends or the client goes away,
    # even if the generator never started (a generator's own finally would not run).
    response.call_on_close(_streams.release)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
