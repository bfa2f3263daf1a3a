"""The registry's device API (registry/server.py) and admin CLI (registry/cli.py).

Most tests drive the real app through Flask's test client with real device
keys; one starts `registry serve` as a process on 127.0.0.1 and syncs a
device against it end to end. Every answer is checked the way a device
checks it: frames verified by sync.trust.TrustedSet against the keys from
/v1/keys and decoded by sync.wire.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.cli import registry as registry_cli
from registry.db import make_engine
from registry.publish import DocumentRef, EntryFields, Registry
from registry.server import MIN_WAIT_HEADER, RegistryPaths, create_app
from registry.signing import Signer, generate_key_file, issue_revocation, load_key_file, write_public_file
from sync.device_auth import b64url_encode, device_id_for, sign_request
from sync.digest import StateDigest
from sync.enrolment import parse_answer
from sync.envelope import Kind, parse_envelope
from sync.keys import KeyRing, key_id_for, raw_public_key
from sync.trust import TrustedListState, TrustedSet
from sync.wire import decode_payload

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from registry.cli import registry; registry(sys.argv[1:])"]


# -- helpers ---------------------------------------------------------------------

def cli(*args) -> str:
    result = CliRunner().invoke(registry_cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def parse_frames(body: bytes) -> list[tuple[int, bytes, bytes]]:
    """(kind, envelope or key statement, payload) per frame; an independent reading of the contract."""
    frames, pos = [], 0
    while pos < len(body):
        kind, size = struct.unpack_from(">BI", body, pos)
        pos += 5
        first = body[pos:pos + size]
        pos += size
        payload = b""
        if kind == 1:
            (psize,) = struct.unpack_from(">Q", body, pos)
            pos += 8
            payload = body[pos:pos + psize]
            pos += psize
        assert kind in (1, 2, 3) and pos <= len(body)
        frames.append((kind, first, payload))
    return frames


def mueller(reference: str = "NFL-2025-0001", number: str = "C01X00T47") -> EntryFields:
    return EntryFields(surnames="Müller", given_names="Hans", reference=reference, category="aviation-security",
                       date_of_birth=date(1970, 5, 17), documents=(DocumentRef("P", "DEU", number),))


class Counter:
    """A device as the registry sees it: a key pair and signed HTTP requests."""

    def __init__(self, client, root_public: bytes, key: Ed25519PrivateKey | None = None) -> None:
        self.client = client
        self.key = key or Ed25519PrivateKey.generate()
        self.device_id = device_id_for(raw_public_key(self.key))
        self.ring = KeyRing(root_public)
        self.states: dict[str, TrustedListState] = {}
        self.digests: dict[str, StateDigest] = {}
        self.held: dict[str, dict] = {}

    def enroll(self, code: str, name: str = "Counter 7"):
        return self.client.post("/v1/enroll", json={
            "code": code, "public_key": b64url_encode(raw_public_key(self.key)), "name": name})

    def request(self, method: str, path: str, body: bytes = b"", *, timestamp: int | None = None,
                content_type: str | None = "application/json", sign_path: str | None = None):
        headers = sign_request(self.key, method, sign_path or path, int(time.time()) if timestamp is None
                               else timestamp, body)
        if content_type and method == "POST":
            headers["Content-Type"] = content_type
        return self.client.open(path, method=method, data=body, headers=headers)

    def post_json(self, path: str, obj) -> object:
        return self.request("POST", path, json.dumps(obj).encode())

    def load_keys(self) -> None:
        response = self.request("GET", "/v1/keys")
        assert response.status_code == 200
        for kind, statement, _ in parse_frames(response.data):
            (self.ring.add_cert if kind == 2 else self.ring.add_revocation)(statement)

    def sync(self, list_id: str, wait: int = 0):
        """Fetch, verify, decode and apply one answer, as the agent does; returns the response."""
        state = self.states.get(list_id, TrustedListState(list_id))
        query = f"?since={state.version}" + (f"&wait={wait}" if wait else "")
        response = self.request("GET", f"/v1/lists/{list_id}/updates{query}")
        assert response.status_code == 200, response.data
        trusted = TrustedSet(self.ring)
        held = self.held.setdefault(list_id, {})
        for kind, envelope, payload in parse_frames(response.data):
            assert kind == 1
            update = trusted.verify_update(state, envelope, payload or None, now=time.time())
            digest = self.digests.get(list_id, StateDigest())
            if update.payload is not None:
                decoded = decode_payload(update.payload, max_bytes=1 << 24, max_entries=1 << 20)
                if update.replaces_state:
                    held.clear()
                    digest = StateDigest()
                gone = [held.pop(t) for t in decoded.removes if t in held]
                gone += [held[e.token] for e in decoded.adds if e.token in held]
                held.update({e.token: e for e in decoded.adds})
                digest.apply(adds=decoded.adds, removes=gone)
            state = trusted.confirm(state, update, digest.checksum())
            self.digests[list_id] = digest
        self.states[list_id] = state
        return response


def error_of(response) -> dict:
    assert response.is_json, response.data
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
    return error


# -- fixtures --------------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "registry"
    cli("init", "--data-dir", d)
    for list_id in ("nfl", "hotel"):
        cli("list", "create", "--data-dir", d, list_id, "--name", f"List {list_id}", "--authority", "CAA",
            "--legal-basis", "Act s.12", "--scope", "air_travel", "--default-action", "DENY")
    return d


@pytest.fixture
def app(data_dir):
    return create_app({"DATA_DIR": str(data_dir), "CHANGE_POLL_SECONDS": 0.2, "MAX_CONTENT_LENGTH": 8192})


@pytest.fixture
def root_public(data_dir) -> bytes:
    return RegistryPaths(data_dir).root_public.read_bytes()


@pytest.fixture
def device(app, data_dir, root_public) -> Counter:
    counter = Counter(app.test_client(), root_public)
    code = cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip()
    assert counter.enroll(code).status_code == 201
    counter.load_keys()
    return counter


def publish(app, fields: EntryFields | None = None, list_id: str = "nfl") -> int:
    return app.extensions["gatecheck_registry"].registry.add_entry(list_id, fields or mueller(), by="officer-1")


# -- enrolment -------------------------------------------------------------------

def test_enrolment_code_enrols_the_device_with_its_lists(app, data_dir, root_public):
    counter = Counter(app.test_client(), root_public)
    code = cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl,hotel").strip()
    response = counter.enroll(code)
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    answer = parse_answer(response.data, public_key=raw_public_key(counter.key))
    assert answer.device_id == counter.device_id and [i.list_id for i in answer.lists] == ["hotel", "nfl"]
    assert answer.root_public_key == root_public
    listed = json.loads(cli("device", "list", "--data-dir", data_dir))
    assert [(d["device_id"], d["name"], d["lists"]) for d in listed] == [
        (counter.device_id, "Counter 7", ["hotel", "nfl"])]


def test_enrolment_code_is_single_use(app, data_dir, root_public):
    code = cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip()
    assert Counter(app.test_client(), root_public).enroll(code).status_code == 201
    second = Counter(app.test_client(), root_public).enroll(code)
    assert second.status_code == 403
    assert "already used" in error_of(second)["message"]


def test_expired_enrolment_code_is_refused(app, root_public):
    devices = app.extensions["gatecheck_registry"].devices
    code = devices.issue_code(["nfl"], ttl_seconds=60, by="admin", now=time.time() - 120)
    response = Counter(app.test_client(), root_public).enroll(code)
    assert response.status_code == 403
    assert "expired" in error_of(response)["message"]


def test_enrolment_code_is_typed_loosely_but_stored_only_as_a_hash(app, data_dir, root_public):
    code = cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip()
    stored = RegistryPaths(data_dir).database.read_bytes()
    assert code.encode() not in stored and code.replace("-", "").encode() not in stored
    assert Counter(app.test_client(), root_public).enroll(code.lower().replace("-", " ")).status_code == 201


def test_registry_stores_only_the_device_public_key(device, data_dir):
    private = device.key.private_bytes_raw()
    assert private not in RegistryPaths(data_dir).database.read_bytes()


def test_same_key_enrolled_twice_conflicts_and_keeps_the_code(app, data_dir, device, root_public):
    code = cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip()
    again = Counter(app.test_client(), root_public, key=device.key).enroll(code)
    assert again.status_code == 409 and error_of(again)["code"] == "already_enrolled"
    assert Counter(app.test_client(), root_public).enroll(code).status_code == 201


@pytest.mark.parametrize("body", [
    {"code": "X", "public_key": "AAAA", "name": "n"},
    {"code": "X", "name": "n"},
    {"code": 5, "public_key": b64url_encode(bytes(32)), "name": "n"},
    {"code": "X", "public_key": b64url_encode(bytes(32)), "name": "n" * 500},
])
def test_malformed_enrolment_is_400(app, body):
    response = app.test_client().post("/v1/enroll", json=body)
    assert response.status_code == 400
    error_of(response)


def test_unknown_code_is_403(app, root_public):
    response = Counter(app.test_client(), root_public).enroll("AAAA-BBBB-CCCC-DDDD-EEEE")
    assert response.status_code == 403


# -- authentication --------------------------------------------------------------

def test_request_without_signature_is_401(device):
    response = device.client.get("/v1/keys")
    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_credentials"


def test_request_with_bad_signature_is_401(device):
    headers = sign_request(device.key, "GET", "/v1/keys", int(time.time()))
    headers["X-Gatecheck-Signature"] = b64url_encode(bytes(64))
    response = device.client.get("/v1/keys", headers=headers)
    assert response.status_code == 401 and error_of(response)["code"] == "bad_signature"


def test_signature_for_another_path_is_401(device):
    response = device.request("GET", "/v1/lists/nfl/updates?since=0", sign_path="/v1/lists/nfl/updates?since=1")
    assert response.status_code == 401 and error_of(response)["code"] == "bad_signature"


def test_tampered_body_is_401(device):
    body = json.dumps({"report_id": str(uuid.uuid4()), "report": {"verdict": "DENY"}}).encode()
    headers = sign_request(device.key, "POST", "/v1/incidents", int(time.time()), body)
    response = device.client.post("/v1/incidents", data=body.replace(b"DENY", b"PASS"),
                                  headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 401


def test_unknown_device_is_401(app, root_public):
    stranger = Counter(app.test_client(), root_public)
    response = stranger.request("GET", "/v1/keys")
    assert response.status_code == 401 and "unknown" in error_of(response)["message"]


def test_disabled_device_is_401_once_the_status_interval_has_passed(app, device, data_dir):
    cli("device", "disable", "--data-dir", data_dir, device.device_id)
    time.sleep(app.config["DEVICE_STATUS_SECONDS"])  # the server re-reads device status this often
    assert device.request("GET", "/v1/keys").status_code == 401


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_replayed_or_skewed_timestamp_outside_window_is_401(device, offset):
    response = device.request("GET", "/v1/keys", timestamp=int(time.time()) + offset)
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "stale_timestamp" and "clock" in error["message"]


# -- updates -----------------------------------------------------------------------

def test_current_device_gets_a_single_heartbeat_and_min_wait(device):
    response = device.sync("nfl")
    [(kind, envelope, payload)] = parse_frames(response.data)
    assert payload == b""
    assert response.headers[MIN_WAIT_HEADER] == "1"
    assert response.mimetype == "application/octet-stream"
    assert device.states["nfl"].heartbeat_valid_until is not None


def test_added_entry_arrives_as_a_verified_delta_then_heartbeat(app, device):
    publish(app)
    response = device.sync("nfl")
    frames = parse_frames(response.data)
    assert len(frames) == 2 and frames[1][2] == b""
    state = device.states["nfl"]
    assert state.version == 1 and state.heartbeat_issued_at is not None
    assert len(device.held["nfl"]) == len(app.extensions["gatecheck_registry"].registry.tokens_of(1))


def test_removal_reaches_the_device_like_an_addition(app, device):
    entry = publish(app)
    device.sync("nfl")
    app.extensions["gatecheck_registry"].registry.remove_entry("nfl", entry, by="reviewer")
    device.sync("nfl")
    assert device.states["nfl"].version == 2 and device.held["nfl"] == {}


def test_full_asks_for_a_snapshot_even_when_the_device_is_current(app, device):
    publish(app)
    device.sync("nfl")
    response = device.request("GET", "/v1/lists/nfl/updates?since=1&full=1")
    (kind, envelope, payload), (_, beat, beat_payload) = parse_frames(response.data)
    assert response.status_code == 200 and payload and beat_payload == b""
    snapshot = parse_envelope(envelope)
    assert (snapshot.kind, snapshot.to_version) == (Kind.SNAPSHOT, 1)
    bad = device.request("GET", "/v1/lists/nfl/updates?since=0&full=2")
    assert bad.status_code == 400 and "'full' must be 0 or 1" in error_of(bad)["message"]


def test_device_ahead_of_the_registry_gets_409(device):
    response = device.request("GET", "/v1/lists/nfl/updates?since=7")
    assert response.status_code == 409 and "since=0" in error_of(response)["message"]


def test_unknown_list_is_404_and_unsubscribed_list_is_403(device):
    assert device.request("GET", "/v1/lists/nope/updates?since=0").status_code == 404
    response = device.request("GET", "/v1/lists/hotel/updates?since=0")
    assert response.status_code == 403 and error_of(response)["code"] == "forbidden"


@pytest.mark.parametrize("query", ["", "?since=-1", "?since=x", "?since=1.5", "?since=0&wait=-3",
                                   "?since=99999999999999999999999"])
def test_bad_since_or_wait_is_400(device, query):
    response = device.request("GET", f"/v1/lists/nfl/updates{query}")
    assert response.status_code == 400
    error_of(response)


def test_long_poll_returns_early_when_this_process_publishes(data_dir, root_public):
    app = create_app({"DATA_DIR": str(data_dir), "CHANGE_POLL_SECONDS": 30})  # only the Condition can wake it
    counter = Counter(app.test_client(), root_public)
    counter.enroll(cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip())
    counter.load_keys()
    counter.sync("nfl")
    timer = threading.Timer(0.3, publish, args=(app,))
    started = time.monotonic()
    timer.start()
    counter.sync("nfl", wait=20)
    timer.join()
    assert time.monotonic() - started < 5
    assert counter.states["nfl"].version == 1


def test_long_poll_sees_another_process_publish_by_polling_the_database(app, device, data_dir):
    paths = RegistryPaths(data_dir)
    other = Registry(make_engine(paths.database_url), Signer.from_files(paths.signing_key, paths.signing_cert))
    timer = threading.Timer(0.3, other.add_entry, args=("nfl", mueller()), kwargs={"by": "cli"})
    started = time.monotonic()
    timer.start()
    device.sync("nfl", wait=20)
    timer.join()
    assert time.monotonic() - started < 5
    assert device.states["nfl"].version == 1


def test_long_poll_without_change_ends_with_a_heartbeat_after_the_wait(device):
    started = time.monotonic()
    response = device.sync("nfl", wait=1)
    assert time.monotonic() - started >= 1
    assert len(parse_frames(response.data)) == 1


def test_wait_is_clamped_to_the_maximum(data_dir, root_public):
    app = create_app({"DATA_DIR": str(data_dir), "MAX_WAIT_SECONDS": 1})
    counter = Counter(app.test_client(), root_public)
    counter.enroll(cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip())
    started = time.monotonic()
    assert counter.request("GET", "/v1/lists/nfl/updates?since=0&wait=30").status_code == 200
    assert time.monotonic() - started < 5


# -- keys ------------------------------------------------------------------------

def test_keys_are_the_signing_cert_and_published_revocations(data_dir, root_public):
    paths = RegistryPaths(data_dir)
    retired = generate_key_file(data_dir / "old-signing.pem")
    revocation = issue_revocation(load_key_file(paths.root_key), key_id_for(retired), revoked_at=1)
    write_public_file(paths.keys_dir / "old.rev", revocation)
    app = create_app({"DATA_DIR": str(data_dir)})
    counter = Counter(app.test_client(), root_public)
    counter.enroll(cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip())
    frames = parse_frames(counter.request("GET", "/v1/keys").data)
    assert [(k, s) for k, s, _ in frames] == [(2, paths.signing_cert.read_bytes()), (3, revocation)]
    counter.load_keys()
    assert [r.key_id for r in counter.ring.revocations] == [key_id_for(retired)]


# -- incidents and health ----------------------------------------------------------

def test_incident_is_acknowledged_once_and_idempotent(app, device):
    report_id = str(uuid.uuid4())
    body = {"report_id": report_id, "report": {"verdict": "DENY", "list": "nfl"}}
    first = device.post_json("/v1/incidents", body)
    again = device.post_json("/v1/incidents", body)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() == {"report_id": report_id, "status": "acknowledged"}
    devices = app.extensions["gatecheck_registry"].devices
    assert devices.incident_count() == 1
    assert devices.incident(report_id)["report"] == body["report"]


def test_same_report_id_with_different_content_is_409(device):
    report_id = str(uuid.uuid4())
    assert device.post_json("/v1/incidents", {"report_id": report_id, "report": {"a": 1}}).status_code == 200
    response = device.post_json("/v1/incidents", {"report_id": report_id, "report": {"a": 2}})
    assert response.status_code == 409 and error_of(response)["code"] == "report_conflict"


@pytest.mark.parametrize("body", [
    {"report_id": "not-a-uuid", "report": {}}, {"report_id": str(uuid.uuid4())},
    {"report_id": str(uuid.uuid4()), "report": [1, 2]}, {"report": {}}, [1, 2, 3],
])
def test_malformed_incident_is_400(device, body):
    response = device.post_json("/v1/incidents", body)
    assert response.status_code == 400
    error_of(response)


def test_health_report_is_204_and_stored(app, device):
    response = device.post_json("/v1/health", {"lists": {"nfl": 3}, "disk_free": 1024})
    assert response.status_code == 204 and response.data == b""
    assert app.extensions["gatecheck_registry"].devices.health(device.device_id) == {
        "disk_free": 1024, "lists": {"nfl": 3}}


# -- bad input -------------------------------------------------------------------

def test_wrong_content_type_is_415(device):
    response = device.request("POST", "/v1/health", b"{}", content_type="text/plain")
    assert response.status_code == 415 and error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"NaN", b'{"a": NaN}', b""])
def test_malformed_json_is_400(device, body):
    response = device.request("POST", "/v1/health", body)
    assert response.status_code == 400 and error_of(response)["code"] == "malformed_json"


def test_oversized_body_is_413_before_anything_else(device):
    response = device.request("POST", "/v1/incidents", b'{"report": "' + b"x" * 10_000 + b'"}')
    assert response.status_code == 413
    error_of(response)


def test_unknown_route_and_wrong_method_are_json(device):
    assert error_of(device.request("GET", "/v1/nothing"))["code"] == "not_found"
    response = device.request("GET", "/v1/health")
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10).map(lambda v: json.dumps(v).encode())))
def test_arbitrary_signed_bodies_never_cause_a_server_error(device, body):
    for path in ("/v1/incidents", "/v1/health", "/v1/enroll"):
        response = device.request("POST", path, body)
        assert response.status_code < 500, (path, body, response.data)
        if response.status_code != 204:
            assert response.is_json


# -- CLI -----------------------------------------------------------------------------

def test_every_cli_command_has_help():
    groups = [registry_cli]
    while groups:
        group = groups.pop()
        for name, command in group.commands.items():
            assert command.help, name
            if hasattr(command, "commands"):
                groups.append(command)


def test_init_refuses_to_replace_keys_and_keeps_the_root_private(data_dir):
    result = CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "refusing" in result.output
    assert os.stat(RegistryPaths(data_dir).root_key).st_mode & 0o777 == 0o600
    assert os.stat(RegistryPaths(data_dir).signing_key).st_mode & 0o777 == 0o600


def test_cli_entry_add_and_remove_publish_versions(data_dir):
    added = json.loads(cli("entry", "add", "--data-dir", data_dir, "--list", "nfl", "--surnames", "Müller",
                           "--given-names", "Hans", "--dob", "1970-05-17", "--document", "P:DEU:C01X00T47",
                           "--category", "aviation-security", "--reference", "NFL-1", "--valid-until",
                           "2030-12-31", "--action", "REFER", "--variant", "Mueller,Hans"))
    assert added["version"] == 1 and added["tokens"] > 1
    removed = json.loads(cli("entry", "remove", "--data-dir", data_dir, "--list", "nfl",
                             "--entry-id", added["entry_id"]))
    assert removed["version"] == 2


def test_cli_categories_let_a_list_take_reports_and_are_audited(data_dir):
    from registry.audit import AuditLog
    from registry.reports import ReportQueue

    engine = make_engine(RegistryPaths(data_dir).database_url)
    queue = ReportQueue(engine, Registry(engine, None))
    with pytest.raises(Exception, match="takes no reports"):
        queue.policy("hotel")
    out = json.loads(cli("list", "categories", "--data-dir", data_dir, "hotel", "--preset", "hotel",
                         "--reviewers", "2", "--by", "list-admin-1", "--reason", "group policy 2026"))
    assert out["categories"] == ["violence_against_staff", "property_damage", "non_payment"]
    policy = queue.policy("hotel")
    assert policy.reviewers_required == 2 and policy.category("non_payment").default_days == 365
    changes = [r for r in AuditLog(engine).records() if r.action == "list.policy"]
    assert [(r.actor, r.reason) for r in changes] == [("list-admin-1", "group policy 2026")]


@pytest.mark.parametrize("args,reason", [
    (["entry", "add", "--list", "nope", "--surnames", "X", "--dob", "1970-01-01", "--category", "c",
      "--reference", "r"], "no list"),
    (["entry", "add", "--list", "nfl", "--surnames", "X", "--category", "c", "--reference", "r"], "no token"),
    (["entry", "remove", "--list", "nfl", "--entry-id", "99"], "no entry"),
    (["device", "enroll-code", "--lists", "nfl,nope"], "no list"),
    (["list", "categories", "nope", "--preset", "aviation"], "no list"),
])
def test_cli_refusals_are_one_line(data_dir, args, reason):
    result = CliRunner().invoke(registry_cli, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and reason in result.output
    assert "Traceback" not in result.output


# -- a real server process -----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpClient:
    """Just enough of Flask's test-client interface over real HTTP, for Counter."""

    class Answer:
        def __init__(self, status: int, data: bytes, headers) -> None:
            self.status_code, self.data, self.headers = status, data, headers
            self.is_json = headers.get("Content-Type", "").startswith("application/json")

        def get_json(self):
            return json.loads(self.data)

    def __init__(self, base: str) -> None:
        self.base = base

    def open(self, path: str, *, method: str = "GET", data: bytes = b"", headers=None, json_body=None):
        if json_body is not None:
            data, headers = json.dumps(json_body).encode(), {**(headers or {}), "Content-Type": "application/json"}
        req = urllib.request.Request(self.base + path, data=data or None, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return self.Answer(resp.status, resp.read(), resp.headers)
        except urllib.error.HTTPError as exc:
            return self.Answer(exc.code, exc.read(), exc.headers)

    def post(self, path: str, *, json=None):
        return self.open(path, method="POST", json_body=json)


@pytest.fixture
def server(data_dir):
    port = _free_port()
    proc = subprocess.Popen([*CLI, "serve", "--data-dir", str(data_dir), "--port", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"registry did not start: {proc.stderr.read().decode()}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_end_to_end_enrol_publish_by_cli_and_sync_over_http(server, data_dir, root_public):
    counter = Counter(HttpClient(server), root_public)
    code = cli("device", "enroll-code", "--data-dir", data_dir, "--lists", "nfl").strip()
    enrolled = counter.enroll(code)
    assert enrolled.status_code == 201 and enrolled.get_json()["device_id"] == counter.device_id
    counter.load_keys()

    subprocess.run([*CLI, "entry", "add", "--data-dir", str(data_dir), "--list", "nfl", "--surnames", "Müller",
                    "--given-names", "Hans", "--dob", "1970-05-17", "--document", "P:DEU:C01X00T47",
                    "--category", "aviation-security", "--reference", "NFL-2025-1"], cwd=REPO, check=True,
                   capture_output=True)
    response = counter.sync("nfl")
    assert response.headers[MIN_WAIT_HEADER] == "1"
    kinds = [parse_envelope(envelope).kind for _, envelope, _ in parse_frames(response.data)]
    assert kinds == [Kind.DELTA, Kind.HEARTBEAT] and counter.states["nfl"].version == 1
    held = set(counter.held["nfl"])
    assert len(held) > 1

    # A removal by another process wakes a waiting long-poll within seconds.
    waiter = threading.Thread(target=counter.sync, args=("nfl",), kwargs={"wait": 20})
    started = time.monotonic()
    waiter.start()
    time.sleep(0.5)
    subprocess.run([*CLI, "entry", "remove", "--data-dir", str(data_dir), "--list", "nfl", "--entry-id", "1"],
                   cwd=REPO, check=True, capture_output=True)
    waiter.join(timeout=25)
    assert time.monotonic() - started < 8
    assert counter.states["nfl"].version == 2 and counter.held["nfl"] == {}

    incident = {"report_id": str(uuid.uuid4()), "report": {"verdict": "DENY"}}
    assert counter.post_json("/v1/incidents", incident).get_json()["status"] == "acknowledged"
    assert counter.request("GET", "/v1/keys", timestamp=int(time.time()) - 400).status_code == 401
