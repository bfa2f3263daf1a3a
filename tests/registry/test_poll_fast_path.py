"""The no-change poll's fast path (registry/fast_poll.py) and its caches (registry/poll_cache.py).

Real apps over a real SQLite registry made by the admin CLI; "another
process" is a second engine on the same file, as the admin CLI or a second
server process is. Every answer is verified the way a device verifies it
(tests/registry/test_server.py's ``Counter``): a heartbeat older than the
one held, or one for the wrong version, fails the test by itself.
"""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import request_started

from registry.db import make_engine
from registry.devices import DeviceRegistry
from registry.poll_cache import DeviceCache, HeartbeatCache
from registry.publish import Registry
from registry.server import MIN_WAIT_HEADER, RegistryPaths, create_app
from registry.signing import Signer
from sync.device_auth import b64url_encode, sign_request
from sync.envelope import Kind, parse_envelope
from tests.registry.test_server import Counter, cli, error_of, mueller, parse_frames


class Clock:
    """A registry clock the test moves by whole seconds (Unix time, near now)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "registry"
    cli("init", "--data-dir", d)
    for list_id in ("nfl", "hotel"):
        cli("list", "create", "--data-dir", d, list_id, "--name", f"List {list_id}", "--authority", "CAA",
            "--legal-basis", "Act s.12", "--scope", "air_travel", "--default-action", "DENY")
    return d


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(data_dir, clock):
    return create_app({"DATA_DIR": str(data_dir), "CHANGE_POLL_SECONDS": 0.2, "CLOCK": clock})


@pytest.fixture
def root_public(data_dir) -> bytes:
    return RegistryPaths(data_dir).root_public.read_bytes()


def enrolled(app, data_dir, root_public, lists: str = "nfl") -> Counter:
    counter = Counter(app.test_client(), root_public)
    assert counter.enroll(cli("device", "enroll-code", "--data-dir", data_dir, "--lists", lists).strip()
                          ).status_code == 201
    counter.load_keys()
    return counter


@pytest.fixture
def device(app, data_dir, root_public) -> Counter:
    return enrolled(app, data_dir, root_public)


def other_process(data_dir) -> Registry:
    """The publishing core on its own engine: what the admin CLI or another server process is."""
    paths = RegistryPaths(data_dir)
    return Registry(make_engine(paths.database_url), Signer.from_files(paths.signing_key, paths.signing_cert))


def kinds(response) -> list[Kind]:
    return [parse_envelope(envelope).kind for _, envelope, _ in parse_frames(response.data)]


def heartbeat_issued_at(response) -> int:
    *_, (_, envelope, _) = parse_frames(response.data)
    beat = parse_envelope(envelope)
    assert beat.kind is Kind.HEARTBEAT
    return beat.issued_at


# -- the fast path answers what the slow path would ---------------------------------

def test_current_device_is_answered_below_flask_with_a_verified_heartbeat(app, device):
    reached_flask = []
    with request_started.connected_to(lambda sender, **_: reached_flask.append(1), app):
        response = device.sync("nfl")
        assert kinds(response) == [Kind.HEARTBEAT] and reached_flask == []
        device.request("GET", "/v1/keys")
        assert reached_flask == [1]
    assert response.headers[MIN_WAIT_HEADER] == "1" and response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/octet-stream"
    assert device.states["nfl"].heartbeat_issued_at == int(app.config["CLOCK"]())


def test_devices_polling_in_one_second_share_its_heartbeat_and_the_next_second_gets_a_new_one(
        app, data_dir, root_public, device, clock):
    other = enrolled(app, data_dir, root_public)
    first, second = device.sync("nfl"), other.sync("nfl")
    assert first.data == second.data
    clock.now += 1
    later = device.sync("nfl")
    assert heartbeat_issued_at(later) == heartbeat_issued_at(first) + 1


def test_behind_ahead_unknown_and_unsubscribed_polls_take_the_slow_path(app, device):
    app.extensions["gatecheck_registry"].registry.add_entry("nfl", mueller(), by="officer-1")
    assert kinds(device.sync("nfl")) == [Kind.DELTA, Kind.HEARTBEAT]
    ahead = device.request("GET", "/v1/lists/nfl/updates?since=5")
    assert ahead.status_code == 409 and error_of(ahead)["code"] == "version_ahead"
    assert device.request("GET", "/v1/lists/nope/updates?since=0").status_code == 404
    assert device.request("GET", "/v1/lists/hotel/updates?since=0").status_code == 403


# -- changes become visible at once ----------------------------------------------------

def test_publish_by_another_process_reaches_the_next_poll_within_the_same_second(app, data_dir, device):
    assert kinds(device.sync("nfl")) == [Kind.HEARTBEAT]  # this second's heartbeat for version 0 is cached
    other_process(data_dir).add_entry("nfl", mueller(), by="cli")
    response = device.sync("nfl")  # same registry second
    assert kinds(response) == [Kind.DELTA, Kind.HEARTBEAT] and device.states["nfl"].version == 1
    assert kinds(device.sync("nfl")) == [Kind.HEARTBEAT]  # and current again: the fast path, for version 1


def test_publish_in_this_process_replaces_the_heartbeat_of_the_second(app, device):
    device.sync("nfl")
    app.extensions["gatecheck_registry"].registry.add_entry("nfl", mueller(), by="officer-1")
    device.sync("nfl")
    assert device.states["nfl"].version == 1
    beat = device.sync("nfl")
    assert kinds(beat) == [Kind.HEARTBEAT]
    assert parse_envelope(parse_frames(beat.data)[0][1]).to_version == 1


# -- heartbeats never go back ------------------------------------------------------------

def test_heartbeat_is_never_older_than_the_held_one_across_server_processes(data_dir, root_public, clock):
    """Two apps on one database are two server processes: each has its own heartbeat cache."""
    apps = [create_app({"DATA_DIR": str(data_dir), "CLOCK": clock}) for _ in range(2)]
    counter = enrolled(apps[0], data_dir, root_public)
    clients = [a.test_client() for a in apps]
    issued = []
    for step in range(8):
        counter.client = clients[step % 2]
        if step == 3:
            other_process(data_dir).add_entry("nfl", mueller(), by="cli")  # mid-second, seen by both
        if step in (2, 5, 6):
            clock.now += 1
        response = counter.sync("nfl")  # Counter verifies: an older heartbeat raises Rollback
        issued.append(heartbeat_issued_at(response))
    assert issued == sorted(issued) and issued[-1] == int(clock.now)
    assert counter.states["nfl"].version == 1


def test_heartbeat_cache_signs_once_per_list_second_and_version(data_dir):
    registry = other_process(data_dir)
    signed: list[int] = []

    def sign(list_id: str, second: int) -> bytes:
        signed.append(second)
        return registry.heartbeat(list_id, now=second)

    cache, now = HeartbeatCache(sign), int(time.time())
    first = cache.for_version("nfl", 0, now + 0.1)
    assert cache.for_version("nfl", 0, now + 0.9) == first and signed == [now]
    assert parse_envelope(cache.for_version("nfl", 0, now + 1.2)).issued_at == now + 1
    registry.add_entry("nfl", mueller(), by="cli")
    assert cache.for_version("nfl", 1, now + 1.5) is not None and signed == [now, now + 1, now + 1]
    assert cache.for_version("nfl", 0, now + 1.6) is None  # the list has moved on: the slow path answers


# -- device status ----------------------------------------------------------------------------

def test_disabled_device_is_refused_within_the_status_interval(data_dir, root_public):
    app = create_app({"DATA_DIR": str(data_dir), "DEVICE_STATUS_SECONDS": 1})
    counter = enrolled(app, data_dir, root_public)
    assert counter.sync("nfl").status_code == 200  # the device is in the server's cache now
    cli("device", "disable", "--data-dir", data_dir, counter.device_id)  # another process
    disabled_at = time.monotonic()
    while counter.request("GET", "/v1/lists/nfl/updates?since=0").status_code == 200:
        assert time.monotonic() - disabled_at < 1.5, "a disabled device was still served after the interval"
        time.sleep(0.05)
    assert counter.request("GET", "/v1/keys").status_code == 401


def test_device_cache_rereads_status_only_after_the_interval(data_dir, root_public):
    devices = DeviceRegistry(make_engine(RegistryPaths(data_dir).database_url))
    app = create_app({"DATA_DIR": str(data_dir)})
    counter = enrolled(app, data_dir, root_public)
    t = [100.0]
    cache = DeviceCache(devices, 1.0, clock=lambda: t[0])
    assert cache.active(counter.device_id).public_key == devices.device(counter.device_id).public_key
    devices.set_status(counter.device_id, "disabled")
    t[0] += 0.5
    assert cache.active(counter.device_id) is not None  # within the interval: the status read 0.5 s ago
    t[0] += 0.5
    assert cache.active(counter.device_id) is None
    assert cache.active("0123456789abcdef") is None  # unknown


# -- authentication stays mandatory ------------------------------------------------------------

def test_unauthenticated_polls_are_401(app, data_dir, root_public, device, clock):
    path = "/v1/lists/nfl/updates?since=0"
    client = app.test_client()
    assert error_of(client.get(path))["code"] == "missing_credentials"
    forged = sign_request(device.key, "GET", path, int(time.time()))
    forged["X-Gatecheck-Signature"] = b64url_encode(bytes(64))
    assert error_of(client.get(path, headers=forged))["code"] == "bad_signature"
    other_path = sign_request(device.key, "GET", "/v1/lists/nfl/updates?since=1", int(time.time()))
    assert error_of(client.get(path, headers=other_path))["code"] == "bad_signature"
    stale = sign_request(device.key, "GET", path, int(clock.now) - 400)
    assert error_of(client.get(path, headers=stale))["code"] == "stale_timestamp"
    stranger = sign_request(Ed25519PrivateKey.generate(), "GET", path, int(time.time()))
    response = client.get(path, headers=stranger)
    assert response.status_code == 401 and "unknown" in error_of(response)["message"]
    for headers in ({}, forged, other_path, stale, stranger):
        assert client.get(path, headers=headers).status_code == 401


def test_an_expired_signing_key_is_a_json_503_on_the_fast_path_too(data_dir, device):
    """The fast path answers only 200s: an error it meets goes to Flask, which answers it in JSON."""
    later = time.time() + 400 * 86_400  # past the signing certificate's 365 days
    app = create_app({"DATA_DIR": str(data_dir), "CLOCK": lambda: later})
    device.client = app.test_client()
    response = device.request("GET", "/v1/lists/nfl/updates?since=0", timestamp=int(later))
    assert response.status_code == 503 and error_of(response)["code"] == "signing"


def test_polling_devices_are_marked_seen_together_about_a_second_later(app, data_dir, root_public, device):
    other = enrolled(app, data_dir, root_public)
    device.sync("nfl")
    other.sync("nfl")
    devices = DeviceRegistry(make_engine(RegistryPaths(data_dir).database_url))
    deadline = time.monotonic() + 5
    while any(devices.device(c.device_id).last_seen_at is None for c in (device, other)):
        assert time.monotonic() < deadline, "last_seen_at was never written"
        time.sleep(0.1)
    assert {devices.device(c.device_id).last_seen_at for c in (device, other)} == {int(app.config["CLOCK"]())}
