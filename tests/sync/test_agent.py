"""The sync agent against the real registry app, called in-process (WsgiFetcher).

Every test builds a registry (SQLite, real keys, registry/server.py's app)
and a device (snapshot store, sync.db, journal.db) in a temporary
directory; the agent signs its requests with an enrolled device key. Time is
a shared fake clock so "three days" takes no time.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.outbox import Outbox
from appliance.records import Action, Batch, Entry, TokenKind
from appliance.snapshot import SnapshotStore, snapshot_path
from registry.publish import DocumentRef, EntryFields, PublishConfig
from registry.server import create_app
from registry.signing import generate_key_file, issue_cert, load_key_file
from sync.agent import AgentConfig, SyncAgent, backoff_delay
from sync.framing import parse_frames
from sync.agent_state import AgentState
from sync.errors import MalformedEnvelope
from sync.fetcher import DeviceCredentials, FetchError, RequestsFetcher, Response, WsgiFetcher
from sync.identity import DocumentClass, document_token, normalise_issuer
from sync.keys import raw_public_key

T0 = 1_750_000_000
DAY = 86_400
LIST = "nfl"
PASSPORT = ("DEU", "C01X00T47")


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


class World:
    """One registry and one enrolled device, sharing a clock."""

    def __init__(self, tmp: Path, publish: PublishConfig | None = None) -> None:
        self.clock = Clock()
        reg = tmp / "registry"
        reg.mkdir()
        self.root_public = generate_key_file(reg / "root.pem")
        signing_public = generate_key_file(reg / "signing.pem")
        (reg / "signing.cert").write_bytes(issue_cert(
            load_key_file(reg / "root.pem"), signing_public,
            not_before=T0 - DAY, not_after=T0 + 365 * DAY, sequence=1))
        self.app = create_app({
            "DATABASE_URL": f"sqlite:///{reg / 'registry.db'}", "SIGNING_KEY": str(reg / "signing.pem"),
            "SIGNING_CERT": str(reg / "signing.cert"), "CLOCK": self.clock, "MIN_WAIT_SECONDS": 2,
            "PUBLISH_CONFIG": publish or PublishConfig(),
        })
        services = self.app.extensions["gatecheck_registry"]
        self.registry, devices = services.registry, services.devices
        info = self.registry.create_list(
            LIST, name="No-fly list", authority="Civil Aviation Authority", legal_basis="Aviation Act s.12",
            scopes=["air_travel"], default_action=Action.DENY, by="admin")
        key = Ed25519PrivateKey.generate()
        code = devices.issue_code([LIST], ttl_seconds=3600, by="admin")
        device = devices.enroll(code, raw_public_key(key), "counter 1")
        self.devices, self.device_id = devices, device.device_id
        self.device_dir = tmp / "device"
        self.store = SnapshotStore(snapshot_path(self.device_dir))
        # Enrolment puts the list, with its token key, into the store at version 0.
        self.store.put_list(dataclasses.replace(info, version=0, state_digest=b""))
        self.state = AgentState(self.device_dir)
        self.outbox = Outbox(self.device_dir)
        self.fetcher = WsgiFetcher(self.app, DeviceCredentials(device.device_id, key), clock=self.clock)
        self.token_key = info.token_key

    def agent(self, **config) -> SyncAgent:
        settings = dict(first_poll_max_delay=0, long_poll_wait=0, backoff_base=30, backoff_cap=3600)
        settings.update(config)
        return SyncAgent(self.store, self.state, self.fetcher, self.root_public, outbox=self.outbox,
                         config=AgentConfig(**settings), clock=self.clock, rng=random.Random(7))

    def passport_entries(self, number: str = PASSPORT[1]) -> list[Entry]:
        token = document_token(self.token_key, DocumentClass.PASSPORT, normalise_issuer(PASSPORT[0]), number)
        return self.store.lookup([token])

    def list_traveller(self, reference: str = "NFL-2024-00012345", number: str = PASSPORT[1]) -> int:
        return self.registry.add_entry(LIST, EntryFields(
            surnames="Muller", given_names="Hans", reference=reference, category="aviation-security",
            date_of_birth=date(1970, 5, 17), documents=(DocumentRef("P", PASSPORT[0], number),),
            valid_from=date(2024, 1, 1), valid_until=date(2030, 12, 31)), by="officer-1")


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def test_a_listed_traveller_added_at_the_registry_is_deny_on_the_device_after_one_run(world):
    world.list_traveller()
    report = world.agent().run_once()
    assert report.ok, report.errors
    [entry] = world.passport_entries()
    assert entry.action is Action.DENY and entry.reference == "NFL-2024-00012345"
    assert world.store.get_list(LIST).version == 1
    assert world.state.get(LIST).state.version == 1
    assert world.state.status().last_success_at == T0


def test_a_removal_at_the_registry_propagates_to_the_device(world):
    entry_id = world.list_traveller()
    agent = world.agent()
    agent.run_once()
    world.registry.remove_entry(LIST, entry_id, by="reviewer")
    report = agent.run_once()
    assert report.ok, report.errors
    assert world.passport_entries() == []
    assert list(world.store.iter_entries(LIST)) == []
    assert world.store.get_list(LIST).version == 2


def test_a_heartbeat_proves_the_device_current_without_changing_it(world):
    agent = world.agent()
    assert agent.run_once().ok
    held = world.state.get(LIST).state
    assert (held.version, held.heartbeat_issued_at) == (0, T0)
    assert held.is_fresh(T0 + 60)
    assert world.store.get_list(LIST).heartbeat_at is not None


class Tampering:
    """A man in the middle: passes requests on, rewrites the updates answers."""

    def __init__(self, inner, rewrite) -> None:
        self.inner, self.rewrite = inner, rewrite

    def fetch(self, method, path, **kw) -> Response:
        response = self.inner.fetch(method, path, **kw)
        if "/updates" in path and response.status == 200:
            return dataclasses.replace(response, body=self.rewrite(response.body))
        return response


def _flip_last_payload_byte(body: bytes) -> bytes:
    frames = parse_frames(body, max_envelope_bytes=248)
    out = bytearray()
    for kind, envelope, payload in frames:
        if payload:
            payload = payload[:-1] + bytes([payload[-1] ^ 0x01])
        out += bytes([kind]) + len(envelope).to_bytes(4, "big") + envelope
        out += len(payload).to_bytes(8, "big") + payload
    return bytes(out)


def test_a_tampered_payload_is_rejected_and_the_store_stays_at_its_version(world):
    agent = world.agent()
    agent.run_once()
    world.list_traveller()
    agent.fetcher = Tampering(world.fetcher, _flip_last_payload_byte)
    report = agent.run_once()
    assert not report.ok
    assert "tampered" in report.errors[0]
    assert world.store.get_list(LIST).version == 0
    assert world.passport_entries() == []
    assert world.state.status().failures == 1
    agent.fetcher = world.fetcher  # the honest path recovers by itself
    assert agent.run_once().ok
    assert world.store.get_list(LIST).version == 1


def test_a_truncated_download_applies_nothing(world):
    world.list_traveller()
    agent = world.agent()
    agent.fetcher = Tampering(world.fetcher, lambda body: body[:-40])
    report = agent.run_once()
    assert not report.ok and "truncated" in report.errors[0]
    assert world.store.get_list(LIST).version == 0


def test_digest_mismatch_applies_nothing_and_triggers_a_snapshot_fetch(tmp_path, caplog):
    # Every delta from version 0 is still kept, yet the agent must get a
    # snapshot (full=1): a chain from 0 could not replace a state held at version 1.
    world = World(tmp_path)
    agent = world.agent()
    agent.run_once()
    # The device's copy drifts from what the registry signed: a stray entry
    # at a version the device believes verified (a damaged or tampered store).
    stray = Entry(b"\x07" * 12, LIST, TokenKind.DOCUMENT, "stray", Action.DENY, "X-1",
                  date(2024, 1, 1), date(2030, 1, 1))
    world.store.apply_batch(Batch(LIST, 0, 1, (stray,)))
    held = world.state.get(LIST)
    world.state.save(dataclasses.replace(held, state=dataclasses.replace(held.state, version=1)))
    world.list_traveller()  # registry 0 -> 1
    world.list_traveller(reference="NFL-2024-00012346", number="C01X00T48")  # registry 1 -> 2
    with caplog.at_level("ERROR", logger="gatecheck.sync"):
        report = agent.run_once()
    assert report.ok, report.errors
    assert "DIGEST MISMATCH" in caplog.text
    assert report.snapshots == [LIST]
    assert any("since=0&full=1" in path for _, path in world.fetcher.requests)
    assert world.store.lookup([stray.token]) == []
    assert [e.action for e in world.passport_entries()] == [Action.DENY]
    assert world.store.get_list(LIST).version == 2


def test_a_dead_registry_keeps_the_device_answering_and_back_off_grows(world):
    world.list_traveller()
    agent = world.agent()
    assert agent.run_once().ok
    world.fetcher.down = "connection refused"
    delays = []
    for _ in range(8):
        world.clock.now += 3600
        report = agent.run_once()
        assert not report.ok and "connection refused" in report.errors[0]
        delays.append(report.next_delay)
        assert [e.action for e in world.passport_entries()] == [Action.DENY]  # verdicts go on
    assert delays[:4] == sorted(delays[:4]) and delays[0] >= 30 and delays[3] >= 240
    assert max(delays) == 3600  # capped
    status = world.state.status()
    assert status.failures == 8 and status.last_success_at == T0
    assert not world.state.get(LIST).state.is_fresh(world.clock.now)  # staleness shows
    world.fetcher.down = None
    assert agent.run_once().ok  # recovers by itself
    assert world.state.status().failures == 0
    assert world.state.get(LIST).state.is_fresh(world.clock.now)


def test_back_off_follows_the_scaled_safe_browsing_rule():
    assert backoff_delay(1, base=30, cap=3600, rand=0.0) == 30
    assert backoff_delay(3, base=30, cap=3600, rand=0.5) == 180
    assert backoff_delay(40, base=30, cap=3600, rand=0.9) == 3600


def test_the_registry_min_wait_paces_the_next_poll(world):
    report = world.agent(poll_interval=0.5).run_once()
    assert report.ok and report.next_delay == 2


def test_outbox_reports_are_sent_once_and_acknowledged(world):
    first = world.outbox.enqueue({"kind": "suspicious", "flight": "LH400", "narrative": "x"})
    second = world.outbox.enqueue({"kind": "fraud", "flight": "LH401"})
    agent = world.agent()
    report = agent.run_once()
    assert report.ok, report.errors
    assert report.acknowledged == [first, second]
    assert world.outbox.state(first) == world.outbox.state(second) == "acknowledged"
    devices = world.app.extensions["gatecheck_registry"].devices
    assert devices.incident_count() == 2
    posts = lambda: [p for m, p in world.fetcher.requests if m == "POST"]  # noqa: E731
    sent = len(posts())
    assert agent.run_once().acknowledged == []
    assert len(posts()) == sent  # nothing sent twice


def test_an_outbox_report_survives_a_dead_registry_and_is_sent_when_it_returns(world):
    report_id = world.outbox.enqueue({"kind": "fraud", "flight": "LH401"})
    agent = world.agent()
    world.fetcher.down = "network unreachable"
    assert not agent.run_once().ok
    assert world.outbox.state(report_id) == "queued"
    world.fetcher.down = None
    assert agent.run_once().acknowledged == [report_id]


def test_a_restarted_agent_keeps_its_version_and_keys(world):
    world.list_traveller()
    world.agent().run_once()
    world.state.close()
    world.state = AgentState(world.device_dir)
    agent = world.agent()
    assert len(agent.keyring.certs) == 1
    assert world.state.get(LIST).state.version == 1
    assert agent.run_once().ok


def test_a_lost_sync_db_is_rebuilt_from_the_store_and_checked_by_the_next_signed_digest(world, tmp_path):
    world.list_traveller()
    world.agent().run_once()
    world.state.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(world.state.path) + suffix).unlink(missing_ok=True)
    world.state = AgentState(world.device_dir)
    world.list_traveller(reference="NFL-2024-00012346", number="C01X00T48")
    assert world.agent().run_once().ok
    assert world.state.get(LIST).state.version == 2


def test_a_frame_body_cut_short_is_refused_whole():
    body = bytes([1]) + (10).to_bytes(4, "big") + b"x" * 10 + (5).to_bytes(8, "big") + b"abc"
    with pytest.raises(MalformedEnvelope, match="truncated"):
        parse_frames(body, max_envelope_bytes=248)


def test_an_oversized_answer_stops_reading_at_the_limit(world):
    world.list_traveller()
    report = world.agent(max_updates_bytes=64).run_once()
    assert not report.ok and "limit is 64 bytes" in report.errors[0]
    assert world.store.get_list(LIST).version == 0


def test_a_device_far_behind_installs_a_snapshot_that_jumps_versions(tmp_path):
    world = World(tmp_path, PublishConfig(max_chain_deltas=1))
    world.list_traveller()
    world.list_traveller(reference="NFL-2024-00012346", number="C01X00T48")
    world.list_traveller(reference="NFL-2024-00012347", number="C01X00T49")
    report = world.agent().run_once()
    assert report.ok, report.errors
    assert world.store.get_list(LIST).version == 3


# -- over real HTTP on loopback, and the CLI ---------------------------------


@pytest.fixture
def serve():
    """Serve a WSGI app on 127.0.0.1 in a thread; yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    servers = []

    def start(app) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def test_the_requests_fetcher_syncs_a_listing_over_loopback_http(world, serve):
    world.list_traveller()
    agent = world.agent()
    agent.fetcher = RequestsFetcher(serve(world.app), world.fetcher.device, timeout=5, clock=world.clock)
    report = agent.run_once()
    assert report.ok, report.errors
    assert [e.action for e in world.passport_entries()] == [Action.DENY]


def test_a_never_ending_response_is_cut_off_at_the_byte_limit(serve):
    from flask import Flask

    app = Flask(__name__)

    @app.get("/v1/keys")
    def endless():
        def forever():
            while True:
                yield b"\x02" * 65536
        return app.response_class(forever(), mimetype="application/octet-stream")

    fetcher = RequestsFetcher(serve(app), None, timeout=5)
    with pytest.raises(FetchError, match="limit is 1048576 bytes"):
        fetcher.fetch("GET", "/v1/keys", max_bytes=1 << 20)


def test_a_dead_registry_port_is_one_fetch_error():
    fetcher = RequestsFetcher("http://127.0.0.1:9", None, timeout=2)
    with pytest.raises(FetchError):
        fetcher.fetch("GET", "/v1/keys", max_bytes=1024)


def test_sync_status_shows_last_success_versions_and_next_poll(world):
    from click.testing import CliRunner

    from sync.cli import sync

    world.list_traveller()
    world.agent().run_once()
    result = CliRunner().invoke(sync, ["status", "--data-dir", str(world.device_dir)])
    assert result.exit_code == 0, result.output
    assert "last success:  2025-06-15T15:06:40+00:00" in result.output
    assert "list nfl: version 1" in result.output and "next poll:" in result.output


def test_a_backlog_larger_than_one_batch_is_sent_in_one_run(world):
    ids = [world.outbox.enqueue({"kind": "suspicious", "narrative": f"report {i}"}) for i in range(8)]
    report = world.agent(outbox_batch=3).run_once()
    assert report.ok and sorted(report.acknowledged) == sorted(ids)
    assert world.outbox.depth() == 0


def test_a_refused_report_stops_the_run_without_a_tight_loop_and_the_others_still_go(world):
    ids = [world.outbox.enqueue({"kind": "suspicious", "narrative": f"report {i}"}) for i in range(5)]
    world.devices.record_incident(world.device_id, ids[1], {"kind": "other content under the same id"})
    agent = world.agent(outbox_batch=3)
    first = agent.run_once()
    assert not first.ok and first.errors == [f"report {ids[1]}: the registry holds different content under this id"]
    assert first.acknowledged == [ids[0], ids[2]]  # the rest of the refused report's batch still went
    second = agent.run_once()
    assert second.acknowledged == [ids[3], ids[4]] and world.outbox.state(ids[1]) != "acknowledged"


def test_the_agent_reports_its_health_to_the_registry_once_per_interval(world):
    world.list_traveller()
    agent = world.agent(health_interval=300)
    world.outbox.enqueue({"kind": "suspicious", "narrative": "queued while the registry answers"})
    assert agent.run_once().health_sent
    health = world.devices.health(world.device_id)
    assert health["lists"][LIST]["version"] == 1 and health["lists"][LIST]["tokens"] > 0
    assert health["failures"] == 0 and health["outbox_pending"] == 0  # sent before the report was made
    assert health["disk_free_bytes"] > 0 and health["store"]["tokens"] == health["lists"][LIST]["tokens"]

    world.clock.now += 60
    assert not agent.run_once().health_sent  # not due yet
    world.clock.now += 300
    assert agent.run_once().health_sent


def test_a_health_report_the_registry_cannot_take_does_not_fail_the_sync(world):
    world.list_traveller()
    agent = world.agent(health_interval=300)
    agent.fetcher = RequestsFetcher("http://127.0.0.1:9", world.fetcher.device)  # registry gone
    report = agent.run_once()
    assert not report.ok and not report.health_sent  # the poll failed, the health report is retried later
    agent.fetcher = world.fetcher
    report = agent.run_once()
    assert report.ok and report.health_sent


def test_the_store_is_compacted_in_the_quiet_hour_only_when_deltas_loosened_it(world):
    world.list_traveller()
    quiet = datetime.fromtimestamp(world.clock.now).hour
    assert world.agent(compact_hour=(quiet + 1) % 24, compact_min_tokens=0, compact_above=0).run_once().compacted is None
    assert world.agent(compact_hour=quiet).run_once().compacted is None  # a small, tight store: nothing to do
    agent = world.agent(compact_hour=quiet, compact_min_tokens=0, compact_above=0)
    assert agent.run_once().compacted is not None
    world.clock.now += 3600
    assert agent.run_once().compacted is None  # at most once a day


def test_every_sync_command_has_help():
    from click.testing import CliRunner

    from sync.cli import sync

    for name in sync.commands:
        result = CliRunner().invoke(sync, [name, "--help"])
        assert result.exit_code == 0 and len(result.output) > 100


def test_the_collector_is_off_during_an_apply_and_back_on_after_even_when_it_fails(world):
    import gc

    from sync.agent import collector_paused

    seen = []
    original = world.store.apply_batch

    def spy(batch, **kwargs):
        seen.append(gc.isenabled())
        return original(batch, **kwargs)

    world.store.apply_batch = spy
    world.list_traveller()
    assert world.agent().run_once().ok and seen == [False] and gc.isenabled()
    with pytest.raises(RuntimeError):
        with collector_paused():
            raise RuntimeError("the apply failed")
    assert gc.isenabled()


class RecordingFetcher:
    """The world's fetcher, noting each request path (to see whether the agent long-polls)."""

    def __init__(self, inner) -> None:
        self.inner, self.paths = inner, []

    def fetch(self, method, path, **kwargs):
        self.paths.append(path)
        return self.inner.fetch(method, path, **kwargs)

    def stream(self, method, path, **kwargs):
        self.paths.append(path)
        return self.inner.stream(method, path, **kwargs)


def test_a_device_not_proven_current_asks_without_waiting_so_its_lists_are_fresh_at_once(world):
    recorder = RecordingFetcher(world.fetcher)
    world.fetcher = recorder
    updates = f"/v1/lists/{LIST}/updates"

    def polls(fetcher: RecordingFetcher) -> list[str]:
        return [p for p in fetcher.paths if p.startswith(updates)]
    assert world.agent(long_poll_wait=25).run_once().ok
    assert polls(recorder)[-1] == f"{updates}?since=0"  # just enrolled: no heartbeat yet, so no wait
    assert world.store.get_list(LIST).heartbeat_at is not None

    world.list_traveller()  # version 1 is waiting: a long-poll answers at once
    assert world.agent(long_poll_wait=25).run_once().ok
    assert polls(recorder)[-1] == f"{updates}?since=0&wait=25"  # proven current a moment ago: it long-polls

    world.clock.now += 3 * 3600  # three hours without contact
    assert world.agent(long_poll_wait=25).run_once().ok
    assert polls(recorder)[-1] == f"{updates}?since=1"
