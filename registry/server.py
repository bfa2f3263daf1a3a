"""The registry's device API (v1): an app factory and the ``device_api`` blueprint.

A thin edge over the publishing core (registry/publish.py) and the device
tables (registry/devices.py): it authenticates each request with the
device's enrolled public key (sync/device_auth.py), serves signed updates as
binary frames, long-polls for changes and takes incident and health reports.
Every refusal is a JSON ``{"error": {"code", "message"}}``; bad input is a
4xx, never a 500. The HTTP contract is docs/registry-api.md.

Long-poll: a publish in this process wakes the waiting requests through a
``threading.Condition`` at once; a publish by another process (the admin CLI,
another server process) is seen by a short database poll
(``CHANGE_POLL_SECONDS``) that all waiting requests share.

No-change polls take a fast path below Flask (registry/fast_poll.py, with
the caches of registry/poll_cache.py): the device from a cache, one Ed25519
check of the request, one prepared read of the list's version, and the
heartbeat this process signed for that version in the current second.
Several server processes serve one database (registry/serving.py); each has
its own caches.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from registry.db import RegistryError, make_engine
from registry.devices import (
    MAX_NAME_CHARS,
    AlreadyEnrolled,
    Device,
    DeviceRegistry,
    InvalidEnrolment,
    InvalidReport,
    ReportConflict,
)
from registry.fast_poll import (
    DEVICE_ENVIRON_KEY,
    MIN_WAIT_HEADER,
    NoChangePolls,
    authenticate,
    current_heartbeat,
)
from registry.poll_cache import DeviceCache, HeadCache, HeadReader, HeartbeatCache
from registry.publish import PublishConfig, Registry, UnknownList, VersionAhead
from registry.signing import SigningError, Signer
from registry.snapshots import SnapshotPayload, chunks as snapshot_chunks
from sync.device_auth import (
    DEFAULT_MAX_SKEW_SECONDS,
    RequestAuthError,
    b64url_encode,
    device_id_for,
    parse_public_key,
)
from sync.envelope import parse_envelope
from sync.framing import FRAME_CERT, FRAME_REVOCATION, frame_key_statement, frame_update, frame_update_head
from sync.errors import SyncError
from sync.enrolment import EnrolmentAnswer, answer_to_json
from sync.identity import token_key_id
from sync.keys import parse_cert, parse_revocation

log = logging.getLogger(__name__)

DEFAULTS = {
    #: Largest request body (incident reports are the biggest): 64 KiB.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    #: Seconds a device must wait before polling the same list again.
    "MIN_WAIT_SECONDS": 1,
    #: Longest long-poll a device may ask for (``wait`` is clamped to it).
    "MAX_WAIT_SECONDS": 30,
    #: How often a long-poll re-reads the list's version from the database.
    "CHANGE_POLL_SECONDS": 0.5,
    "CLOCK_SKEW_SECONDS": DEFAULT_MAX_SKEW_SECONDS,
    #: A device's last_seen_at is written at most this often.
    "SEEN_WRITE_SECONDS": 60,
    #: How stale a device's status may be: `registry device disable` takes effect within this.
    "DEVICE_STATUS_SECONDS": 1,
}

#: Devices' last contact is written in one transaction at most this often, however many devices poll.
SEEN_FLUSH_SECONDS = 1.0


class ConfigError(RegistryError):
    code = "config"


@dataclass(frozen=True)
class RegistryPaths:
    """Where ``gatecheck registry init`` puts things in a data directory."""

    data_dir: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "registry.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    @property
    def root_key(self) -> Path:
        return self.data_dir / "root.pem"

    @property
    def root_public(self) -> Path:
        return self.data_dir / "root.pub"

    @property
    def signing_key(self) -> Path:
        return self.data_dir / "signing.pem"

    @property
    def signing_cert(self) -> Path:
        return self.data_dir / "signing.cert"

    @property
    def keys_dir(self) -> Path:
        """Further certificates (``*.cert``) and revocations (``*.rev``) served at /v1/keys."""
        return self.data_dir / "keys"


class ListChanges:
    """Wakes long-polls when a list changes.

    ``notify`` is called after a publish in this process; waiters also
    re-check the database every ``poll_seconds``, which is how publishes by
    other processes are seen.
    """

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._cond = threading.Condition()
        self._generation = 0
        self._closing = False

    def notify(self, list_id: str) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def close(self) -> None:
        """The server is stopping: every wait ends now, and later ones do not wait."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def wait_until(self, changed: Callable[[], bool], timeout: float) -> bool:
        """Block until ``changed()`` is true or ``timeout`` seconds pass; return ``changed()``'s last answer."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                seen = self._generation
            if changed():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                return False
            with self._cond:
                if self._generation == seen and not self._closing:  # a notify since the check is not lost
                    self._cond.wait(min(remaining, self.poll_seconds))


@dataclass
class Services:
    """What the blueprint works with; one per app (so one per server process), in ``app.extensions``."""

    registry: Registry
    devices: DeviceRegistry
    changes: ListChanges
    head_of: HeadReader
    heads: HeadCache
    heartbeats: HeartbeatCache
    device_cache: DeviceCache
    keys_body: bytes
    clock: Callable[[], float]
    seen_write_seconds: int
    #: The root public key devices pin, handed out at enrolment (None: not configured, no enrolment).
    root_public_key: bytes | None = None
    _seen: dict[str, float] = field(default_factory=dict)
    _unwritten: list[str] = field(default_factory=list)
    _seen_lock: threading.Lock = field(default_factory=threading.Lock)

    def list_changed(self, list_id: str) -> None:
        """After a publish through this process: drop what the caches hold, then wake the long-polls."""
        self.heads.invalidate(list_id)
        self.heartbeats.invalidate(list_id)
        self.changes.notify(list_id)

    def mark_seen(self, device_id: str) -> None:
        """Record a device's last contact, at most every ``seen_write_seconds`` per device.

        Polls must stay reads: marks are collected and written together, in
        one transaction ``SEEN_FLUSH_SECONDS`` after the first of a batch.
        """
        now = self.clock()
        with self._seen_lock:
            if now - self._seen.get(device_id, float("-inf")) < self.seen_write_seconds:
                return
            self._seen[device_id] = now
            self._unwritten.append(device_id)
            if len(self._unwritten) > 1:
                return  # a write is already due
        timer = threading.Timer(SEEN_FLUSH_SECONDS, self.write_seen)
        timer.daemon = True
        timer.start()

    def write_seen(self) -> None:
        with self._seen_lock:
            batch, self._unwritten = self._unwritten, []
        if batch:
            try:
                self.devices.mark_seen_many(batch, now=self.clock())
            except Exception:  # last_seen_at is advisory; a locked database must not kill the timer thread loudly
                log.warning("could not record %d devices' last contact", len(batch), exc_info=True)


def services() -> Services:
    return current_app.extensions["gatecheck_registry"]


# -- framing (docs/registry-api.md, "Framing of binary bodies") ---------------

def _keys_body(signing_cert: bytes, keys_dir: Path | None) -> bytes:
    """Frames of the current certificate, then every further cert and revocation, validated now."""
    frames = [frame_key_statement(FRAME_CERT, signing_cert)]
    if keys_dir is not None and keys_dir.is_dir():
        for path in sorted(keys_dir.iterdir()):
            if path.suffix not in (".cert", ".rev"):
                continue
            data = path.read_bytes()
            try:
                if path.suffix == ".cert":
                    parse_cert(data)
                else:
                    parse_revocation(data)
            except SyncError as exc:
                raise ConfigError(f"{path}: {exc.message}") from None
            if data != signing_cert:
                frames.append(frame_key_statement(FRAME_CERT if path.suffix == ".cert" else FRAME_REVOCATION, data))
    return b"".join(frames)


def _root_public_key(path: str | None, signer: Signer) -> bytes | None:
    """The root key devices are told to pin: read once, and checked against the signing key's certificate.

    Handing a device a root that did not certify our signing key would make
    every update fail on it; better that the registry does not start.
    """
    if not path:
        return None
    try:
        root = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the root public key {path}: {exc.strerror}") from None
    if len(root) != 32:
        raise ConfigError(f"{path} must hold the 32-byte raw root public key (root.pub from `registry init`)")
    try:
        signer.check_root(root)
    except RegistryError as exc:
        raise ConfigError(f"{path} is not the root that certified the signing key: {exc.message}") from None
    return root


# -- app factory ---------------------------------------------------------------

def create_app(config: Mapping | None = None) -> Flask:
    """The registry's device API.

    ``config`` takes ``DATA_DIR`` (the layout of :class:`RegistryPaths`) or
    explicit ``DATABASE_URL``, ``SIGNING_KEY``, ``SIGNING_CERT`` and
    ``KEYS_DIR`` and ``ROOT_PUBLIC_KEY`` (the 32-byte root.pub that
    enrolment hands to devices); plus the keys of :data:`DEFAULTS`, ``PUBLISH_CONFIG`` (a
    :class:`PublishConfig`) and ``CLOCK`` (a callable returning Unix seconds).
    """
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.update(config or {})
    if app.config.get("DATA_DIR"):
        paths = RegistryPaths(Path(app.config["DATA_DIR"]))
        app.config.setdefault("DATABASE_URL", paths.database_url)
        app.config.setdefault("SIGNING_KEY", str(paths.signing_key))
        app.config.setdefault("SIGNING_CERT", str(paths.signing_cert))
        app.config.setdefault("KEYS_DIR", str(paths.keys_dir))
        app.config.setdefault("ROOT_PUBLIC_KEY", str(paths.root_public))
    for key in ("DATABASE_URL", "SIGNING_KEY", "SIGNING_CERT"):
        if not app.config.get(key):
            raise ConfigError(f"registry config needs {key} (or DATA_DIR)")
    for key in ("MIN_WAIT_SECONDS", "MAX_WAIT_SECONDS", "CLOCK_SKEW_SECONDS", "SEEN_WRITE_SECONDS",
                "DEVICE_STATUS_SECONDS"):
        if type(app.config[key]) is not int or app.config[key] < 0:
            raise ConfigError(f"registry config {key} must be a non-negative integer")
    if not isinstance(app.config["CHANGE_POLL_SECONDS"], (int, float)) or app.config["CHANGE_POLL_SECONDS"] <= 0:
        raise ConfigError("registry config CHANGE_POLL_SECONDS must be a positive number of seconds")

    clock = app.config.get("CLOCK") or time.time
    signer = Signer.from_files(app.config["SIGNING_KEY"], app.config["SIGNING_CERT"])
    engine = make_engine(app.config["DATABASE_URL"])
    keys_dir = Path(app.config["KEYS_DIR"]) if app.config.get("KEYS_DIR") else None
    svc: Services | None = None

    def published(list_id: str) -> None:
        svc.list_changed(list_id)

    registry = Registry(engine, signer, config=app.config.get("PUBLISH_CONFIG") or PublishConfig(),
                        clock=clock, on_publish=published)
    devices = DeviceRegistry(engine, clock=clock)
    head_of = HeadReader(engine)
    svc = Services(
        registry=registry,
        devices=devices,
        changes=ListChanges(app.config["CHANGE_POLL_SECONDS"]),
        head_of=head_of,
        heads=HeadCache(head_of, app.config["CHANGE_POLL_SECONDS"]),
        heartbeats=HeartbeatCache(lambda list_id, second: registry.heartbeat(list_id, now=second)),
        device_cache=DeviceCache(devices, app.config["DEVICE_STATUS_SECONDS"]),
        keys_body=_keys_body(signer.cert_bytes, keys_dir),
        clock=clock,
        seen_write_seconds=app.config["SEEN_WRITE_SECONDS"],
        root_public_key=_root_public_key(app.config.get("ROOT_PUBLIC_KEY"), signer),
    )
    app.extensions["gatecheck_registry"] = svc
    app.wsgi_app = NoChangePolls(app.wsgi_app, svc, app.config)
    app.register_blueprint(device_api)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RegistryError, _registry_error)
    app.register_error_handler(RequestAuthError, _auth_error)
    app.register_error_handler(Exception, _internal_error)
    from registry.web import init_ui  # the people's pages (issue 5), on the same app

    init_ui(app, engine, data_dir=Path(app.config["DATA_DIR"]) if app.config.get("DATA_DIR") else None)
    return app


# -- errors --------------------------------------------------------------------

class BadInput(RegistryError):
    """A request the API cannot read: wrong content type, malformed JSON, bad parameter."""

    code = "bad_request"

    def __init__(self, message: str, *, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        if code:
            self.code = code


class Forbidden(RegistryError):
    code = "forbidden"


class NoRootKey(RegistryError):
    """Enrolment hands devices the root key to pin; without one configured it cannot be offered."""

    code = "no_root_key"
    status = 503


_STATUS = {
    UnknownList: 404, VersionAhead: 409, Forbidden: 403, InvalidEnrolment: 403, AlreadyEnrolled: 409,
    InvalidReport: 400, ReportConflict: 409, SigningError: 503,
}


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _http_error(exc: HTTPException) -> Response:
    from registry.web import CSRFError, is_page_request, render_error

    if is_page_request():
        if isinstance(exc, CSRFError):
            return render_error(400, "Form expired", "The form was open too long or came from another site. "
                                                     "Go back, reload the page and try again.")
        return render_error(exc.code or 500, exc.name, exc.description or exc.name)
    code = (exc.name or "error").lower().replace(" ", "_")
    response = error_response(exc.code or 500, code, exc.description or exc.name)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _registry_error(exc: RegistryError) -> Response:
    status = getattr(exc, "status", None) or next(
        (s for cls, s in _STATUS.items() if isinstance(exc, cls)), 500)
    if status >= 500:
        log.error("registry cannot answer: %s", exc.message)
    return error_response(status, exc.code, exc.message)


def _auth_error(exc: RequestAuthError) -> Response:
    return error_response(401, exc.code, exc.message)


def _internal_error(exc: Exception) -> Response:
    from registry.web import is_page_request, render_error

    log.exception("unhandled error in the registry")
    if is_page_request():
        return render_error(500, "Something went wrong", "The registry could not answer. It has been logged; "
                                                          "try again, and tell IT if it keeps happening.")
    return error_response(500, "internal_error", "the registry failed to answer; see its log")


# -- request helpers -------------------------------------------------------------

def json_body() -> dict:
    """The request's JSON object, or BadInput (415 for another content type, 400 otherwise)."""
    if request.mimetype != "application/json":
        raise BadInput(f"content type must be application/json, not {request.mimetype or 'none'!r}",
                       status=415, code="unsupported_media_type")
    data = request.get_data(cache=True)
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"body is not valid UTF-8 JSON: {exc}", code="malformed_json") from None
    if not isinstance(value, dict):
        raise BadInput("body must be a JSON object", code="malformed_json")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def int_arg(name: str, *, default: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        if default is None:
            raise BadInput(f"query parameter {name!r} is required")
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise BadInput(f"query parameter {name!r} must be a non-negative integer")
    return int(raw)


# -- the device API ------------------------------------------------------------

device_api = Blueprint("device_api", __name__, url_prefix="/v1")


@device_api.before_request
def authenticate_device() -> None:
    """Every endpoint but enrolment needs a valid request signature from an active device."""
    if request.endpoint == "device_api.enroll":
        return
    g.device = request.environ.get(DEVICE_ENVIRON_KEY) or authenticate(  # NoChangePolls may have checked it
        services(), request.environ, request.get_data(cache=True), current_app.config["CLOCK_SKEW_SECONDS"])


@device_api.post("/enroll")
def enroll():
    body = json_body()
    try:
        public_key = parse_public_key(body.get("public_key"))
    except SyncError as exc:
        raise BadInput(exc.message, code="invalid_public_key") from None
    code = body.get("code")
    if not isinstance(code, str) or not code or len(code) > 64:
        raise BadInput("code must be the enrolment code, as a string", code="invalid_enrolment")
    name = body.get("name") or f"device {device_id_for(public_key)}"
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise BadInput(f"name must be a string of at most {MAX_NAME_CHARS} characters", code="invalid_enrolment")
    svc = services()
    if svc.root_public_key is None:  # checked before the code is spent
        raise NoRootKey("this registry has no root public key configured (ROOT_PUBLIC_KEY); it cannot enrol devices")
    device: Device = svc.devices.enroll(code, public_key, name)
    # Lists are never deleted, and a token key changes only by re-keying, which moves every device on anyway.
    lists = tuple(dataclasses.replace(svc.registry.list_info(list_id), version=0, state_digest=b"")
                  for list_id in device.lists)
    answer = EnrolmentAnswer(device.device_id, device.name, device.enrolled_at, device.profile, lists,
                             svc.root_public_key)
    response = jsonify(answer_to_json(answer))
    response.headers["Cache-Control"] = "no-store"  # it carries the lists' token keys
    return response, 201


@device_api.get("/keys")
def keys():
    return Response(services().keys_body, 200, mimetype="application/octet-stream")


@device_api.get("/lists/<list_id>/key")
def token_key(list_id: str):
    """A subscribed list's current token key: how a device moves on after the list was re-keyed.

    The device trusts it only if it hashes to the key hash in the signed
    snapshot it is about to install (sync/token_keys.py).
    """
    info = services().registry.list_info(list_id)  # UnknownList -> 404
    if list_id not in g.device.lists:
        raise Forbidden(f"device {g.device.device_id} is not subscribed to list {list_id!r}")
    response = jsonify({"list_id": list_id, "token_key": b64url_encode(info.token_key),
                        "token_key_id": token_key_id(info.token_key)})
    response.headers["Cache-Control"] = "no-store"  # a secret: no cache on the way may keep it
    return response


@device_api.get("/lists/<list_id>/updates")
def updates(list_id: str):
    since = int_arg("since")
    wait = min(int_arg("wait", default=0), current_app.config["MAX_WAIT_SECONDS"])
    full = int_arg("full", default=0)
    if full > 1:
        raise BadInput("query parameter 'full' must be 0 or 1")
    svc = services()
    if list_id in g.device.lists and not full:  # a subscribed list exists: lists are never deleted
        beat = current_heartbeat(svc, list_id, since, wait)
        if beat is not None:
            return _updates_response([(beat, b"")])
    registry = svc.registry
    head = registry.current_version(list_id)  # UnknownList -> 404
    if list_id not in g.device.lists:
        raise Forbidden(f"device {g.device.device_id} is not subscribed to list {list_id!r}")
    if since > head:
        raise VersionAhead(f"list {list_id!r} is at version {head}; the device claims {since}: "
                           "fetch a snapshot with since=0&full=1")
    if since == head and wait > 0 and not full:
        svc.changes.wait_until(lambda: registry.current_version(list_id) != since, wait)
    return _updates_response(_updates_with_heartbeat(registry, list_id, since, full=bool(full)))


def _updates_response(frames: list[tuple[bytes, bytes | SnapshotPayload]]) -> Response:
    if any(isinstance(p, SnapshotPayload) for _, p in frames):
        response = _streamed_updates(frames)
    else:
        response = Response(b"".join(frame_update(e, p) for e, p in frames), 200,
                            mimetype="application/octet-stream")
    response.headers[MIN_WAIT_HEADER] = str(current_app.config["MIN_WAIT_SECONDS"])
    response.headers["Cache-Control"] = "no-store"
    return response


def _streamed_updates(frames: list[tuple[bytes, bytes | SnapshotPayload]]) -> Response:
    """A snapshot answer: envelope first (the device verifies it before the payload), then the file, streamed.

    The payload file is opened here, before the response starts, so a newer
    build deleting its name cannot cut the stream short.
    """
    parts, length = [], 0
    for envelope, payload in frames:
        if isinstance(payload, SnapshotPayload):
            parts.append((frame_update_head(envelope, payload.size), payload.open(), payload.size))
            length += len(parts[-1][0]) + payload.size
        else:
            parts.append((frame_update(envelope, payload), None, 0))
            length += len(parts[-1][0])

    def body():
        for head, handle, size in parts:
            yield head
            if handle is not None:
                yield from snapshot_chunks(handle, size)

    response = Response(body(), 200, mimetype="application/octet-stream", direct_passthrough=True)
    response.headers["Content-Length"] = str(length)
    response.call_on_close(lambda: [handle.close() for _, handle, _ in parts if handle is not None])
    return response


def _updates_with_heartbeat(registry: Registry, list_id: str, since: int, *,
                            full: bool = False) -> list[tuple[bytes, bytes]]:
    """Deltas or a snapshot up to the head, ending with a heartbeat for the version they reach.

    Only heartbeats prove freshness (docs/envelope.md), so every answer ends
    with one. If the list moves on between the two reads, the read is
    retried; a heartbeat for a version the device cannot have reached is
    never sent after updates.
    """
    for _ in range(3):
        frames = registry.updates_since(list_id, since, full=full)
        reached = parse_envelope(frames[-1][0]).to_version if frames else since
        beat = registry.heartbeat(list_id)
        if parse_envelope(beat).to_version == reached:
            return [*frames, (beat, b"")]
    return frames or [(beat, b"")]


@device_api.post("/incidents")
def incidents():
    body = json_body()
    if "report" not in body:
        raise BadInput("body needs a report object", code="invalid_report")
    report_id = services().devices.record_incident(g.device.device_id, body.get("report_id"), body["report"])
    # Stored is acknowledged: filing into the review queue is retried by IncidentIntake.sweep.
    try:
        current_app.extensions["gatecheck_ui"].intake.take(g.device.device_id, report_id, body["report"])
    except Exception:  # noqa: BLE001 - the device's copy is safe either way; never fail its ack
        log.exception("incident %s stored but not queued; the next sweep files it", report_id)
    return jsonify({"report_id": report_id, "status": "acknowledged"}), 200


@device_api.post("/health")
def health():
    services().devices.record_health(g.device.device_id, json_body())
    return Response(status=204)
