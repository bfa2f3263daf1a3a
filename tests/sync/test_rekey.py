"""A re-keyed list on the device: the snapshot under the new key and the key itself, installed together or not at all.

The registry app is the real one, called in-process (WsgiFetcher), as in
test_agent.py. The attacks are a man in the middle: a wrong key, no key, a
snapshot header whose key hash was changed. One case runs real processes:
the registry server, the admin CLI and the agent (tests/sync/conftest.py).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from appliance.records import Action, Batch
from appliance.snapshot import SnapshotError, SnapshotStore, snapshot_path
from registry.rekey import rotate_token_key
from sync.agent_snapshot import DOWNLOAD_SUFFIX
from sync.agent_state import AgentState
from sync.device_auth import b64url_encode
from sync.fetcher import Response
from sync.framing import frame_update, parse_frames
from sync.identity import DocumentClass, document_token, normalise_issuer, token_key_hash, token_key_id
from sync.token_keys import TokenKeyRefused, parse_key_answer
from tests.sync.conftest import LIST as LIVE_LIST
from tests.sync.conftest import _admin
from tests.sync.test_agent import LIST, PASSPORT, World
from tests.sync.test_attacks_live import person, verdict

REASON = "Counter 7 at FRA T1 stolen with its store"


@pytest.fixture
def world(tmp_path) -> World:
    world = World(tmp_path)
    world.list_traveller()
    assert world.agent().run_once().ok
    assert [e.action for e in world.passport_entries()] == [Action.DENY]  # DENY under the key it was enrolled with
    return world


def held_passport(world: World) -> list:
    """What the counter finds for the listed passport: tokens made with the key the store holds now."""
    key = world.store.get_list(LIST).token_key
    return world.store.lookup([document_token(key, DocumentClass.PASSPORT, normalise_issuer(PASSPORT[0]),
                                              PASSPORT[1])])


class Intercepting:
    """A man in the middle: passes requests on, and answers the paths ``answer`` takes with its own response."""

    def __init__(self, inner, answer) -> None:
        self.inner, self.answer = inner, answer
        self.seen: list[str] = []

    def fetch(self, method, path, **kw) -> Response:
        self.seen.append(path)
        response = self.inner.fetch(method, path, **kw)
        return self.answer(path, response) or response


def test_after_a_rekey_one_run_moves_the_device_to_the_new_key_and_the_listed_passport_stays_deny(world):
    old_key = world.token_key
    done = rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)
    report = world.agent().run_once()
    assert report.ok, report.errors
    assert report.snapshots == [LIST] and report.versions == {LIST: done.version}
    info = world.store.get_list(LIST)
    assert info.token_key == world.registry.list_info(LIST).token_key != old_key
    [entry] = held_passport(world)
    assert entry.action is Action.DENY and entry.reference == "NFL-2024-00012345"
    assert world.passport_entries() == []  # the old key's token is gone from the store
    assert world.store.check_integrity() == []
    # Later changes come as deltas again, under the new key.
    world.list_traveller(reference="NFL-2024-00012399", number="C01X00T99")
    report = world.agent().run_once()
    assert report.ok and report.snapshots == []
    key = info.token_key
    [second] = world.store.lookup([document_token(key, DocumentClass.PASSPORT, "DEU", "C01X00T99")])
    assert second.action is Action.DENY


def test_a_device_that_already_holds_the_new_key_installs_without_asking_for_it(world):
    rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)
    # A device enrolled after the re-key gets the new key in its enrolment answer (here: put into the store).
    fresh = World.__new__(World)
    fresh.__dict__.update(world.__dict__)
    fresh.device_dir = world.device_dir.parent / "device-2"
    fresh.store = SnapshotStore(snapshot_path(fresh.device_dir))
    fresh.store.put_list(dataclasses.replace(world.registry.list_info(LIST), version=0, state_digest=b""))
    fresh.state = AgentState(fresh.device_dir)
    spy = Intercepting(world.fetcher, lambda path, response: None)
    agent = fresh.agent()
    agent.fetcher = spy
    assert agent.run_once().ok
    assert not any(path.endswith("/key") for path in spy.seen)
    assert [e.action for e in held_passport(fresh)] == [Action.DENY]


def wrong_key(path, response):
    if path.endswith("/key"):
        return Response(200, {"content-type": "application/json"}, json.dumps(
            {"list_id": LIST, "token_key": b64url_encode(bytes(32)), "token_key_id": "0" * 16}).encode())
    return None


def no_key(path, response):
    if path.endswith("/key"):
        return Response(503, {}, b'{"error": {"code": "busy", "message": "try later"}}')
    return None


@pytest.mark.parametrize("answer, words", [
    (wrong_key, "but the registry handed out key"),
    (no_key, "GET /v1/lists/nfl/key answered HTTP 503: try later"),
], ids=["wrong key", "no key"])
def test_a_snapshot_whose_key_cannot_be_had_or_verified_is_refused_and_the_store_keeps_its_state(
        world, answer, words):
    before = world.store.get_list(LIST)
    done = rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)
    agent = world.agent()
    agent.fetcher = Intercepting(world.fetcher, answer)
    report = agent.run_once()
    assert not report.ok
    [error] = report.errors
    assert error.startswith(f"list {LIST}: snapshot ") and words in error and "\n" not in error
    assert world.store.get_list(LIST) == before and world.state.get(LIST).state.version == before.version
    assert [e.action for e in world.passport_entries()] == [Action.DENY]  # old key, old tokens: still DENY
    assert list(world.device_dir.glob(f"*{DOWNLOAD_SUFFIX}")) == []
    agent.fetcher = world.fetcher  # the honest registry moves it on
    assert agent.run_once().ok and world.store.get_list(LIST).version == done.version
    assert [e.action for e in held_passport(world)] == [Action.DENY]


def test_a_snapshot_header_naming_another_key_is_refused_as_tampered(world):
    rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)
    mark = token_key_hash(world.registry.list_info(LIST).token_key)

    def swap_key_hash(path, response):
        if "/updates" not in path or response.status != 200:
            return None
        frames = parse_frames(response.body, max_envelope_bytes=248)
        body = b"".join(frame_update(envelope, payload.replace(mark, token_key_hash(world.token_key), 1))
                        for _, envelope, payload in frames)
        return dataclasses.replace(response, body=body)

    agent = world.agent()
    agent.fetcher = Intercepting(world.fetcher, swap_key_hash)
    report = agent.run_once()
    assert not report.ok and "tampered" in report.errors[0]
    assert world.store.get_list(LIST).token_key == world.token_key
    assert [e.action for e in world.passport_entries()] == [Action.DENY]


def test_a_delta_never_carries_a_new_token_key(world):
    info = world.store.get_list(LIST)
    with pytest.raises(SnapshotError, match="never with a delta"):
        world.store.apply_batch(Batch(LIST, info.version, info.version + 1, token_key=bytes(32)))
    assert world.store.get_list(LIST) == info


def test_live_a_rekey_by_the_cli_leaves_the_counter_at_deny_after_one_agent_run(live_device):
    fields, scan = person(0)
    live_device.registry.api.add_entry(LIVE_LIST, dataclasses.replace(fields, action=Action.DENY), by="officer-1")
    assert live_device.run_agent().returncode == 0
    assert verdict(live_device, scan) == "DENY"
    with live_device.store() as store:
        old_key = store.get_list(LIVE_LIST).token_key
    _admin("list", "rekey", "--data-dir", live_device.registry.data_dir, LIVE_LIST, "--reason", REASON,
           "--by", "it-admin")
    run = live_device.run_agent()
    assert run.returncode == 0, run.stderr
    with live_device.store() as store:
        info = store.get_list(LIVE_LIST)
    assert info.token_key != old_key and info.token_key == live_device.registry.api.list_info(LIVE_LIST).token_key
    assert verdict(live_device, scan) == "DENY"


def test_the_key_endpoint_serves_subscribed_lists_only_and_never_to_a_cache(world):
    registry = world.registry
    registry.create_list("hotel", name="Hotel list", authority="A", legal_basis="B", scopes=["star_hotel"],
                         default_action=Action.DENY, by="admin")
    answer = world.fetcher.fetch("GET", f"/v1/lists/{LIST}/key", max_bytes=4096)
    assert answer.status == 200 and answer.header("Cache-Control") == "no-store"
    assert parse_key_answer(answer.body, list_id=LIST) == registry.list_info(LIST).token_key
    assert json.loads(answer.body)["token_key_id"] == token_key_id(registry.list_info(LIST).token_key)
    refused = world.fetcher.fetch("GET", "/v1/lists/hotel/key", max_bytes=4096)
    assert refused.status == 403 and "not subscribed to list 'hotel'" in json.loads(refused.body)["error"]["message"]
    assert world.fetcher.fetch("GET", "/v1/lists/nope/key", max_bytes=4096).status == 404
    world.fetcher.device = None  # no device signature: nothing
    assert world.fetcher.fetch("GET", f"/v1/lists/{LIST}/key", max_bytes=4096).status == 401


@pytest.mark.parametrize("body, words", [
    (b"not json", "is not JSON"),
    (b'{"list_id": "other", "token_key": "AAAA"}', "is not for list nfl"),
    (b'{"list_id": "nfl", "token_key": "c2hvcnQ"}', "base64url of 16-64 bytes"),
    (b'{"list_id": "nfl", "token_key": "AAAAAAAAAAAAAAAAAAAAAA=="}', "base64url of 16-64 bytes"),
    (b'{"list_id": "nfl", "token_key": 7}', "base64url of 16-64 bytes"),
])
def test_a_malformed_key_answer_is_one_line_naming_the_problem(body, words):
    with pytest.raises(TokenKeyRefused, match=words):
        parse_key_answer(body, list_id=LIST)
