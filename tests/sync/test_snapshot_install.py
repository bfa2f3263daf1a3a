"""Full-list snapshots end to end: streamed to disk, verified, installed as a new store generation.

The registry app is the real one, called in-process (WsgiFetcher), as in
test_agent.py; one case runs real processes and kills the agent in the
middle of an install.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import sqlite3
import time
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from appliance.records import Action, Batch, Entry, TokenKind
from appliance.snapshot import SnapshotStore, snapshot_path
from bench.bench_wire import realistic_entries
from sync.agent import AgentConfig, SyncAgent
from sync.agent_snapshot import DOWNLOAD_SUFFIX, audit_list
from sync.cli import sync as sync_cli
from sync.digest import StateDigest
from sync.envelope import EnvelopeFields, Kind, parse_envelope
from sync.fetcher import Response
from sync.framing import frame_update, parse_frames
from sync.identity import token_key_hash
from sync.snapshot_wire import encode_snapshot
from sync.trust import TrustConfig
from tests.sync.test_agent import LIST, PublishConfig, World

OTHER = "other"


def far_behind_world(tmp_path: Path, listings: int = 3) -> World:
    """A device whose only way to the head is a snapshot (one delta per chain), with another list beside it."""
    world = World(tmp_path, PublishConfig(max_chain_deltas=1))
    for i in range(listings):
        world.list_traveller(reference=f"NFL-2024-{i:08d}", number=f"C01X00T{i:02d}")
    info = dataclasses.replace(world.registry.list_info(LIST), list_id=OTHER, version=0, state_digest=b"")
    world.store.put_list(info)
    world.other = realistic_entries(500, seed=9, list_id=OTHER)
    world.store.apply_batch(Batch(OTHER, 0, 1, tuple(world.other)))
    return world


def agent_for(world: World, **config) -> SyncAgent:
    """The device's agent for the registry's list only (``other`` is a local list the registry does not know)."""
    settings = dict(first_poll_max_delay=0, long_poll_wait=0, backoff_base=30, backoff_cap=3600)
    settings.update(config)
    return SyncAgent(world.store, world.state, world.fetcher, world.root_public, outbox=world.outbox,
                     config=AgentConfig(**settings), clock=world.clock, lists=[LIST])


def registry_entries(world: World) -> set[Entry]:
    _, payload = world.registry.snapshot(LIST)
    from sync.snapshot_wire import decode_snapshot

    return set(decode_snapshot(payload.read_bytes(), max_entries=10_000).entries)


def downloads(world: World) -> list[Path]:
    return list(world.device_dir.glob(f"*{DOWNLOAD_SUFFIX}"))


class Rewriting:
    """A man in the middle that rewrites the snapshot payload of an updates answer."""

    def __init__(self, inner, rewrite) -> None:
        self.inner, self.rewrite = inner, rewrite

    def fetch(self, method, path, **kw) -> Response:
        response = self.inner.fetch(method, path, **kw)
        if "/updates" not in path or response.status != 200:
            return response
        out = b""
        for _, envelope, payload in parse_frames(response.body, max_envelope_bytes=248):
            if parse_envelope(envelope).kind is Kind.SNAPSHOT:
                envelope, payload = self.rewrite(envelope, payload)
            out += frame_update(envelope, payload)
        return dataclasses.replace(response, body=out)


def test_a_snapshot_streams_to_disk_and_installs_as_a_new_generation_beside_other_lists(tmp_path):
    world = far_behind_world(tmp_path)
    reader = SnapshotStore(snapshot_path(world.device_dir), readonly=True)  # a counter, open throughout
    report = agent_for(world).run_once()
    assert report.ok, report.errors
    assert report.snapshots == [LIST]
    store = world.store
    assert store.path.is_symlink() and store.file.name == "gen-000001.db"
    assert set(store.iter_entries(LIST)) == registry_entries(world)
    assert set(store.iter_entries(OTHER)) == set(world.other)  # the other list came through untouched
    assert store.get_list(LIST).version == 3 and store.get_list(OTHER).version == 1
    assert store.check_integrity() == []
    held = world.state.get(LIST)
    assert held.lanes == bytes(world.registry.list_info(LIST).state_digest) or \
        StateDigest.from_bytes(held.lanes).checksum() == held.state.digest
    assert audit_list(store, world.state, LIST).ok  # the lanes taken on trust are the records' digest
    assert downloads(world) == []
    assert reader.get_list(LIST).version == 3  # the open reader moved to the new generation by itself
    reader.close()


def test_a_tampered_snapshot_chunk_is_refused_before_anything_is_installed(tmp_path):
    world = far_behind_world(tmp_path)
    agent = agent_for(world)

    def flip(envelope, payload):
        middle = len(payload) // 2
        return envelope, payload[:middle] + bytes([payload[middle] ^ 0x40]) + payload[middle + 1:]

    agent.fetcher = Rewriting(world.fetcher, flip)
    before = world.store.file
    report = agent.run_once()
    assert not report.ok and "tampered" in report.errors[0]
    assert world.store.get_list(LIST).version == 0 and world.store.file == before
    assert not world.store.path.is_symlink()
    assert downloads(world) == []


def test_snapshot_lanes_that_do_not_match_the_signed_checksum_are_refused(tmp_path, caplog):
    world = far_behind_world(tmp_path)
    agent = agent_for(world)
    signer = world.app.extensions["gatecheck_registry"].registry.signer
    entries = sorted(registry_entries(world), key=lambda e: e.token)

    def wrong_lanes(envelope, payload):
        env = parse_envelope(envelope)
        key = world.app.extensions["gatecheck_registry"].registry.list_info(LIST).token_key
        forged = encode_snapshot(LIST, env.to_version, StateDigest.of(entries[1:]).to_bytes(), entries,
                                 token_key_hash=token_key_hash(key))
        fields = EnvelopeFields(Kind.SNAPSHOT, LIST, 0, env.to_version, env.issued_at, env.valid_until,
                                env.post_state_digest, hashlib.sha256(forged).digest(), len(forged))
        return signer.sign(fields), forged

    agent.fetcher = Rewriting(world.fetcher, wrong_lanes)
    with caplog.at_level("ERROR", logger="gatecheck.sync"):
        report = agent.run_once()
    assert not report.ok
    assert "DIGEST MISMATCH" in caplog.text
    assert world.store.get_list(LIST).version == 0 and list(world.store.iter_entries(LIST)) == []
    assert downloads(world) == []


def test_a_snapshot_over_the_size_limit_is_refused_before_its_download(tmp_path):
    world = far_behind_world(tmp_path)
    report = agent_for(world, trust=TrustConfig(max_snapshot_bytes=64)).run_once()
    assert not report.ok and "limit is 64" in report.errors[0]
    assert world.store.get_list(LIST).version == 0
    assert downloads(world) == []


def test_a_snapshot_cut_short_in_transit_applies_nothing(tmp_path):
    world = far_behind_world(tmp_path)
    agent = agent_for(world)

    class Cut:
        def fetch(self, method, path, **kw):
            response = world.fetcher.fetch(method, path, **kw)
            if "/updates" in path:
                frames = parse_frames(response.body, max_envelope_bytes=248)
                envelope, payload = frames[0][1], frames[0][2]
                body = frame_update(envelope, payload)[:-len(payload) // 2]
                return dataclasses.replace(response, body=body)
            return response

    agent.fetcher = Cut()
    report = agent.run_once()
    assert not report.ok and "truncated" in report.errors[0]
    assert world.store.get_list(LIST).version == 0 and not world.store.path.is_symlink()
    assert downloads(world) == []


def test_a_snapshot_without_room_on_disk_is_refused_with_one_line(tmp_path):
    world = far_behind_world(tmp_path)
    report = agent_for(world, disk_reserve_bytes=1 << 60).run_once()
    assert not report.ok
    [error] = report.errors
    assert "not enough free disk" in error and "\n" not in error
    assert world.store.get_list(LIST).version == 0 and downloads(world) == []


def test_sync_verify_recomputes_the_digest_and_a_mismatch_brings_a_fresh_snapshot(tmp_path):
    world = far_behind_world(tmp_path)
    agent = agent_for(world)
    assert agent.run_once().ok
    verify = CliRunner().invoke(sync_cli, ["verify", "--data-dir", str(world.device_dir), "--list", LIST])
    assert verify.exit_code == 0, verify.output
    assert "digest matches the verified one" in verify.output
    # The store drifts behind the agent's back (a bug, a damaged file): a stray
    # entry at the version the agent believes verified.
    stray = Entry(b"\x07" * 12, LIST, TokenKind.DOCUMENT, "stray", Action.DENY, "X-1",
                  date(2024, 1, 1), date(2030, 1, 1))
    world.store.apply_batch(Batch(LIST, 3, 4, (stray,)))
    held = world.state.get(LIST)
    world.state.save(dataclasses.replace(held, state=dataclasses.replace(held.state, version=4)))
    verify = CliRunner().invoke(sync_cli, ["verify", "--data-dir", str(world.device_dir), "--list", LIST])
    assert verify.exit_code == 1 and "MISMATCH" in verify.output
    world.list_traveller(reference="NFL-2024-00000099", number="C01X00T99")  # registry 3 -> 4
    report = agent.run_once()
    assert report.ok and report.snapshots == [LIST], report.errors
    assert world.store.lookup([stray.token]) == []
    assert audit_list(world.store, world.state, LIST).ok


# -- real processes: kill -9 in the middle of an install -------------------------------


def _fill_registry_list(registry, entries: list[Entry]) -> None:
    """Put ``entries`` at version head+1 straight into list_tokens (the API would take minutes for this many)."""
    database = Path(registry.engine.url.database)
    head = registry.current_version(LIST)
    digest = StateDigest.of(entries)
    conn = sqlite3.connect(database)
    conn.executemany(
        "INSERT INTO list_tokens (list_id, token, entry_id, kind, category, action, reference, valid_from,"
        " valid_until, redress) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(LIST, e.token, 1, e.kind.value, e.category, e.action.value, e.reference, e.valid_from.isoformat(),
          e.valid_until.isoformat(), e.redress) for e in entries])
    conn.execute("INSERT INTO versions (list_id, version, published_at, published_by, digest, checksum,"
                 " token_count) VALUES (?, ?, ?, 'test', ?, ?, ?)",
                 (LIST, head + 1, int(time.time()), digest.to_bytes(), digest.checksum(), len(entries)))
    conn.execute("UPDATE lists SET current_version = ? WHERE list_id = ?", (head + 1, LIST))
    conn.commit()
    conn.close()


def _kill_when(agent, seen) -> bool:
    """SIGKILL the agent as soon as ``seen()`` holds; False if it finished first."""
    while agent.poll() is None:
        if seen():
            agent.send_signal(signal.SIGKILL)
            agent.wait()
            return True
        time.sleep(0.001)
    return False


def test_an_agent_killed_during_an_install_leaves_the_old_generation_and_recovers(live_registry, live_device):
    entries = realistic_entries(300_000, seed=12, list_id=LIST)
    _fill_registry_list(live_registry.api, entries)
    live_registry.api.snapshot(LIST)  # built once here; the server serves the cached file
    device = live_device
    generations = device.data_dir / "snapshot-generations"

    def building() -> bool:
        return generations.is_dir() and any(p.name.endswith(".building") for p in generations.iterdir())

    killed = _kill_when(device.start_agent(), building)
    assert killed, "the agent finished before the kill; make the list bigger"
    with device.store() as store:  # the old generation: the plain file, version 0, intact
        assert not store.path.is_symlink()
        assert store.get_list(LIST).version == 0 and store.check_integrity() == []

    # Killed again just after the pointer moved: the new generation is in place.
    killed = _kill_when(device.start_agent(), lambda: snapshot_path(device.data_dir).is_symlink())
    with device.store() as store:
        assert store.get_list(LIST).version in (0, 1) and store.check_integrity() == []

    done = device.run_agent(timeout=120)
    assert done.returncode == 0, done.stderr
    with device.store() as store:
        assert store.get_list(LIST).version == 1
        assert store.stats()["tokens_per_list"][LIST] == len(entries)
        assert store.check_integrity() == []
        leftovers = sorted(p.name for p in store.file.parent.iterdir())
        assert leftovers == [store.file.name, store.file.name + "-shm", store.file.name + "-wal"] or \
            leftovers == [store.file.name]
    assert not list(device.data_dir.glob(f"*{DOWNLOAD_SUFFIX}"))
    assert not [p for p in os.listdir(device.data_dir) if p.endswith(".building")]
