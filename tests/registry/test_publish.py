"""The publishing core (registry/publish.py) over real SQLite files.

Every update is checked the way a device checks it: verified by
sync.trust.TrustedSet against the pinned root, decoded by sync.wire, and
applied to a held state whose StateDigest must equal the signed one.
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.records import Action, Clearance, Entry
from registry.db import make_engine
from registry.publish import (
    ClearanceChange,
    DocumentRef,
    EntryFields,
    InvalidEntry,
    Name,
    PublishConfig,
    Registry,
    UnknownEntry,
    VersionAhead,
)
from registry.signing import Signer, generate_key_file, issue_cert, load_key_file
from registry.snapshots import SnapshotPayload
from sync.digest import StateDigest
from sync.envelope import Kind, parse_envelope
from sync.identity import DocumentClass, document_token, person_token
from sync.keys import KeyRing
from sync.trust import TrustedListState, TrustedSet
from sync.snapshot_wire import decode_snapshot
from sync.wire import decode_payload

T0 = 1_750_000_000
LIST = "nfl"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class World:
    """A registry on a SQLite file, and a device's trust anchors for it."""

    def __init__(self, directory: Path, config: PublishConfig | None = None, on_publish=None) -> None:
        root_pub = generate_key_file(directory / "root.pem")
        signing_pub = generate_key_file(directory / "signing.pem")
        cert = issue_cert(load_key_file(directory / "root.pem"), signing_pub,
                          not_before=T0 - 3_600, not_after=T0 + 400 * 86_400, sequence=1)
        self.db_path = directory / "registry.db"
        self.engine = make_engine(f"sqlite:///{self.db_path}")
        self.clock = Clock()
        self.registry = Registry(self.engine, Signer(load_key_file(directory / "signing.pem"), cert),
                                 config=config, clock=self.clock, on_publish=on_publish)
        ring = KeyRing(root_pub)
        ring.add_cert(cert)
        self.trusted = TrustedSet(ring)
        self.info = self.registry.create_list(
            LIST, name="No-fly list", authority="Civil Aviation Authority", legal_basis="Aviation Act s.12",
            scopes=["aviation"], default_action=Action.DENY, redress="Redress office, RDN-7", by="admin")
        self.key = self.info.token_key


class Device:
    """What a counter holds for one list: verified state, entries and digest."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.state = TrustedListState(LIST)
        self.held: dict[bytes, Entry] = {}
        self.cleared: dict[bytes, Clearance] = {}
        self.digest = StateDigest()

    def sync(self) -> list:
        updates = self.world.registry.updates_since(LIST, self.state.version)
        for envelope, payload in updates:
            self.apply(envelope, payload)
        return updates

    def apply(self, envelope: bytes, payload: bytes | SnapshotPayload) -> None:
        now = self.world.clock.now
        if isinstance(payload, SnapshotPayload):  # a file the server streams
            payload = payload.read_bytes()
        update = self.world.trusted.verify_update(self.state, envelope, payload, now=now)
        if update.replaces_state:
            snapshot = decode_snapshot(update.payload, max_entries=1 << 20)
            self.held = {e.token: e for e in snapshot.entries}
            self.cleared = {c.token: c for c in snapshot.clearances}
            self.digest = StateDigest.from_bytes(snapshot.header.lanes)
            # the lanes sent are the digest of the records and clearances sent
            assert StateDigest.of([*snapshot.entries, *snapshot.clearances]) == self.digest
            self.state = self.world.trusted.confirm(self.state, update, snapshot.header.checksum)
            return
        decoded = decode_payload(update.payload, max_bytes=1 << 24, max_entries=1 << 20)
        # docs/wire-format.md: removals first; adding a held token replaces its entry.
        gone = [self.held.pop(t) for t in decoded.removes if t in self.held]
        gone += [self.held[e.token] for e in decoded.adds if e.token in self.held]
        gone += [self.cleared.pop(t) for t in decoded.remove_clearances if t in self.cleared]
        gone += [self.cleared[c.token] for c in decoded.add_clearances if c.token in self.cleared]
        self.held.update({e.token: e for e in decoded.adds})
        self.cleared.update({c.token: c for c in decoded.add_clearances})
        self.digest.apply(adds=[*decoded.adds, *decoded.add_clearances], removes=gone)
        self.state = self.world.trusted.confirm(self.state, update, self.digest.checksum())


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def mueller(reference: str = "NFL-2024-00012345", **overrides) -> EntryFields:
    fields = dict(
        surnames="Müller", given_names="Hans Peter", reference=reference, category="aviation-security",
        date_of_birth=date(1970, 5, 17), latin_variants=(Name("Mueller", "Hans"),),
        documents=(DocumentRef("P", "DEU", "C01X00T47"),), valid_from=date(2024, 1, 1),
        valid_until=date(2030, 12, 31),
    )
    fields.update(overrides)
    return EntryFields(**fields)


def test_added_entry_publishes_a_delta_that_verifies_against_the_pinned_root(world):
    entry_id = world.registry.add_entry(LIST, mueller(), by="officer-1")
    device = Device(world)
    [(envelope, payload)] = device.sync()
    parsed = parse_envelope(envelope)
    assert (parsed.kind, parsed.from_version, parsed.to_version) == (Kind.DELTA, 0, 1)
    assert device.state.version == 1
    assert set(device.held) == world.registry.tokens_of(entry_id)
    assert all(e.action is Action.DENY and e.reference == "NFL-2024-00012345" for e in device.held.values())


def test_entry_expands_into_document_and_name_variant_tokens(world):
    entry_id = world.registry.add_entry(LIST, mueller(), by="officer-1")
    tokens = world.registry.tokens_of(entry_id)
    dob = date(1970, 5, 17)
    assert document_token(world.key, DocumentClass.PASSPORT, "DEU", "C01X00T47") in tokens
    for names in (["MUELLER", "HANS", "PETER"], ["MULLER", "HANS", "PETER"], ["MUELLER", "HANS"],
                  ["MULLER", "HANS"]):
        assert person_token(world.key, names, dob) in tokens, names


def test_applying_each_delta_reproduces_the_signed_post_state_digest(world):
    device = Device(world)
    first = world.registry.add_entry(LIST, mueller(), by="officer-1")
    device.sync()
    world.registry.add_entry(LIST, mueller("NFL-2024-00000002", surnames="Zhang", given_names="Wei",
                                           latin_variants=(), documents=()), by="officer-2")
    device.sync()
    world.registry.remove_entry(LIST, first, by="reviewer")
    device.sync()
    assert device.state.version == 3
    head = world.registry.list_info(LIST)
    assert device.digest == StateDigest.from_bytes(head.state_digest)
    assert device.digest == StateDigest.of(device.held.values())


def test_same_delta_bytes_are_served_on_repeated_requests(world):
    world.registry.add_entry(LIST, mueller(), by="officer-1")
    world.registry.add_entry(LIST, mueller("NFL-2024-00000009", date_of_birth=date(1981, 1, 1)), by="officer-1")
    first = world.registry.updates_since(LIST, 0)
    world.clock.now += 3_600
    again = world.registry.updates_since(LIST, 0)
    assert len(first) == 2 and first == again


def test_removal_delta_removes_exactly_the_entry_tokens(world):
    keep = world.registry.add_entry(LIST, mueller("NFL-2024-00000001", surnames="Ivanov", given_names="Ivan",
                                                  latin_variants=(), documents=()), by="officer-1")
    gone = world.registry.add_entry(LIST, mueller(), by="officer-1")
    device = Device(world)
    device.sync()
    world.registry.remove_entry(LIST, gone, by="reviewer")
    [(envelope, payload)] = world.registry.updates_since(LIST, 2)
    decoded = decode_payload(payload, max_bytes=1 << 20, max_entries=1 << 16)
    assert set(decoded.removes) == world.registry.tokens_of(gone)
    assert decoded.adds == ()
    device.apply(envelope, payload)
    assert set(device.held) == world.registry.tokens_of(keep)


def test_removed_entry_cannot_be_removed_twice(world):
    entry_id = world.registry.add_entry(LIST, mueller(), by="officer-1")
    world.registry.remove_entry(LIST, entry_id, by="reviewer")
    with pytest.raises(UnknownEntry, match="already removed"):
        world.registry.remove_entry(LIST, entry_id, by="reviewer")
    assert world.registry.current_version(LIST) == 2


def test_token_shared_by_two_entries_is_held_once_with_the_stronger_action(world):
    device = Device(world)
    doc = (DocumentRef("P", "DEU", "C01X00T47"),)
    refer = world.registry.add_entry(LIST, mueller("REF-1", action=Action.REFER, documents=doc), by="a")
    deny = world.registry.add_entry(LIST, mueller("DENY-2", action=Action.DENY, documents=doc), by="b")
    device.sync()
    token = document_token(world.key, "P", "DEU", "C01X00T47")
    assert device.held[token].action is Action.DENY
    world.registry.remove_entry(LIST, deny, by="reviewer")
    device.sync()  # the token stays, now carrying the REFER entry
    assert device.held[token].action is Action.REFER and device.held[token].reference == "REF-1"
    world.registry.remove_entry(LIST, refer, by="reviewer")
    device.sync()
    assert device.held == {}
    assert device.digest == StateDigest()


def test_far_behind_device_gets_one_snapshot(tmp_path):
    world = World(tmp_path, PublishConfig(max_chain_deltas=3))
    for i in range(5):
        world.registry.add_entry(LIST, mueller(f"NFL-2024-{i:08d}", date_of_birth=date(1960 + i, 1, 1),
                                               documents=()), by="officer")
    device = Device(world)
    [(envelope, _)] = device.sync()
    assert parse_envelope(envelope).kind is Kind.SNAPSHOT
    assert device.state.version == 5
    assert device.digest == StateDigest.of(device.held.values())


def test_device_behind_the_retention_window_gets_a_snapshot(tmp_path):
    world = World(tmp_path, PublishConfig(delta_retention_versions=2))
    for i in range(4):
        world.registry.add_entry(LIST, mueller(f"NFL-2024-{i:08d}", date_of_birth=date(1960 + i, 1, 1)), by="o")
    assert world.registry.delta_count(LIST) == 2
    assert parse_envelope(world.registry.updates_since(LIST, 1)[0][0]).kind is Kind.SNAPSHOT
    chain = world.registry.updates_since(LIST, 2)
    assert [parse_envelope(e).kind for e, _ in chain] == [Kind.DELTA, Kind.DELTA]


def _big_list_then_small_changes(world, changes: int) -> None:
    world.registry.add_entries(LIST, [mueller(f"BULK-{i:06d}", date_of_birth=date(1950, 1, 1 + i % 28),
                                              surnames=f"Person{chr(65 + i % 26)}{chr(65 + i // 26)}")
                                      for i in range(40)], by="import")
    for i in range(changes):
        world.registry.add_entry(LIST, mueller(f"NFL-2024-{i:08d}", date_of_birth=date(1960 + i, 1, 1)), by="o")


def test_chain_over_the_byte_bound_becomes_a_snapshot(world):
    _big_list_then_small_changes(world, 3)
    chain = world.registry.updates_since(LIST, 1)
    size = sum(len(e) + len(p) for e, p in chain)
    assert [parse_envelope(e).kind for e, _ in chain] == [Kind.DELTA] * 3
    [(envelope, _)] = world.registry.updates_since(LIST, 1, max_bytes=size - 1)
    assert parse_envelope(envelope).kind is Kind.SNAPSHOT


def test_chain_bigger_than_a_snapshot_becomes_a_snapshot(world):
    _big_list_then_small_changes(world, 0)
    for entry_id in range(1, 36):  # most of the list withdrawn, one appeal at a time
        world.registry.remove_entry(LIST, entry_id, by="reviewer")
    device = Device(world)
    [(envelope, payload)] = device.sync()
    assert parse_envelope(envelope).kind is Kind.SNAPSHOT and device.state.version == 36
    assert len(device.held) == len(set().union(*(world.registry.tokens_of(i) for i in range(36, 41))))


def test_deltas_older_than_retention_days_are_pruned_and_snapshot_still_served(tmp_path):
    world = World(tmp_path, PublishConfig(delta_retention_seconds=86_400, delta_validity_seconds=2 * 86_400))
    world.registry.add_entry(LIST, mueller(), by="officer")
    world.clock.now += 3 * 86_400
    world.registry.add_entry(LIST, mueller("NFL-2024-00000002", date_of_birth=date(1990, 2, 2)), by="officer")
    assert world.registry.delta_count(LIST) == 1
    device = Device(world)
    [(envelope, _)] = device.sync()
    assert parse_envelope(envelope).kind is Kind.SNAPSHOT and device.state.version == 2


def test_snapshot_is_reused_while_fresh_and_rebuilt_when_stale(world):
    world.registry.add_entry(LIST, mueller(), by="officer")
    first = world.registry.snapshot(LIST)
    world.clock.now += 60
    assert world.registry.snapshot(LIST) == first
    world.clock.now += 7 * 86_400
    envelope, payload = world.registry.snapshot(LIST)
    assert payload == first[1] and envelope != first[0]
    assert parse_envelope(envelope).issued_at == world.clock.now


def test_heartbeat_verifies_and_proves_the_device_current(world):
    device = Device(world)
    world.registry.add_entry(LIST, mueller(), by="officer")
    device.sync()
    world.clock.now += 600
    assert device.sync() == []
    beat = world.registry.heartbeat(LIST)
    update = world.trusted.verify_update(device.state, beat, now=world.clock.now)
    device.state = world.trusted.confirm(device.state, update, device.digest.checksum())
    assert device.state.heartbeat_issued_at == world.clock.now
    assert device.state.is_fresh(world.clock.now + 3_000)
    assert not device.state.is_fresh(world.clock.now + 3_700)


def test_device_claiming_a_version_never_published_is_refused(world):
    with pytest.raises(VersionAhead):
        world.registry.updates_since(LIST, 5)


def test_entry_without_document_or_birth_date_is_refused_and_nothing_is_published(world):
    with pytest.raises(InvalidEntry, match="yields no token"):
        world.registry.add_entry(LIST, mueller(documents=(), date_of_birth=None), by="officer")
    with pytest.raises(InvalidEntry):
        world.registry.add_entry(LIST, mueller(documents=(DocumentRef("P", "Germany", "X1"),)), by="officer")
    assert world.registry.current_version(LIST) == 0


def test_expired_entries_are_removed_in_one_version(world):
    device = Device(world)
    world.registry.add_entry(LIST, mueller("A-1", valid_until=date(2025, 1, 31)), by="o")
    world.registry.add_entry(LIST, mueller("A-2", date_of_birth=date(1999, 9, 9), documents=()), by="o")
    device.sync()
    published = world.registry.expire_entries(LIST, today=date(2025, 2, 1))
    assert published.version == 3 and published.removed
    device.sync()
    assert {e.reference for e in device.held.values()} == {"A-2"}
    assert world.registry.expire_entries(LIST, today=date(2025, 2, 1)) is None


def test_registry_db_holds_plaintext_but_payloads_hold_no_name_or_number(world):
    world.registry.add_entry(LIST, mueller(original_script="Мюллер Ганс"), by="officer")
    world.registry.remove_entry(LIST, 1, by="reviewer")
    world.registry.add_entry(LIST, mueller("NFL-2024-00000077", surnames="Ng", given_names="Kai",
                                           latin_variants=(), documents=(DocumentRef("I", "SGP", "S1234567D"),)),
                             by="officer")
    world.engine.dispose()
    raw = world.db_path.read_bytes() + (Path(f"{world.db_path}-wal").read_bytes()
                                        if Path(f"{world.db_path}-wal").exists() else b"")
    assert "Müller".encode() in raw and b"C01X00T47" in raw
    secrets = [b"MULLER", b"MUELLER", b"Mueller", "Müller".encode(), "Мюллер".encode(), b"HANS", b"Hans",
               b"C01X00T47", b"S1234567D", b"1970"]
    updates = world.registry.updates_since(LIST, 0) + [world.registry.snapshot(LIST)]
    for envelope, payload in updates:
        if isinstance(payload, SnapshotPayload):
            payload = payload.read_bytes()
        for blob in (envelope, payload):
            for secret in secrets:
                assert secret not in blob and secret.lower() not in blob


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5), st.sampled_from([Action.DENY, Action.REFER])),
                min_size=1, max_size=8))
def test_any_sequence_of_changes_keeps_device_and_snapshot_in_step(ops):
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        device = Device(world)
        live: list[int] = []
        for i, (add, person, action) in enumerate(ops):
            if add or not live:
                # persons 0-5 share documents in pairs, so tokens collide across entries
                doc = DocumentRef("P", "FRA", f"X{person // 2:04d}")
                live.append(world.registry.add_entry(LIST, mueller(
                    f"C-{i:04d}", surnames=f"Dupont{'e' * person}", given_names="Marie", latin_variants=(),
                    date_of_birth=date(1980, 1, 1 + person), documents=(doc,), action=action), by="o"))
            else:
                world.registry.remove_entry(LIST, live.pop(person % len(live)), by="r")
            device.sync()
        fresh = Device(world)
        world.clock.now += 1
        envelope, payload = world.registry.snapshot(LIST)
        fresh.apply(envelope, payload)
        assert fresh.held == device.held and fresh.digest == device.digest
        assert device.state.version == len(ops)
        world.engine.dispose()


def _namesake_clearance(world, number: str = "9876543", *, until: date = date(2027, 6, 30)) -> Clearance:
    token = document_token(world.key, DocumentClass.PASSPORT, "DEU", "L01X00T99")
    return Clearance(token, LIST, f"GC-CLR-{number}", until)


def test_clearance_publishes_an_allow_token_that_the_signed_digest_covers(world):
    world.registry.add_entry(LIST, mueller(), by="officer-1")
    device = Device(world)
    device.sync()
    clearance = _namesake_clearance(world)
    published = world.registry.publish_clearances(LIST, ClearanceChange(add=((clearance, 1),)), by="reviewer-2")
    assert published.cleared == (clearance.token,) and published.added == ()
    device.sync()
    assert device.state.version == 2 and device.cleared == {clearance.token: clearance}
    assert device.digest == StateDigest.from_bytes(world.registry.list_info(LIST).state_digest)


def test_withdrawn_clearance_travels_as_a_removal_and_a_far_device_gets_it_by_snapshot(world):
    clearance = _namesake_clearance(world)
    world.registry.publish_clearances(LIST, ClearanceChange(add=((clearance, 1),)), by="reviewer-2")
    device = Device(world)
    device.sync()
    fresh = Device(world)
    world.clock.now += 1
    fresh.apply(*world.registry.snapshot(LIST))
    assert fresh.cleared == device.cleared == {clearance.token: clearance}

    world.registry.publish_clearances(LIST, ClearanceChange(remove=(clearance.token,)), by="reviewer-3")
    [(envelope, payload)] = world.registry.updates_since(LIST, 1)
    assert decode_payload(payload, max_bytes=1 << 20, max_entries=16).remove_clearances == (clearance.token,)
    device.apply(envelope, payload)
    assert device.cleared == {} and device.digest == StateDigest()


def test_republishing_the_same_clearance_changes_nothing_but_a_new_term_replaces_it(world):
    clearance = _namesake_clearance(world)
    world.registry.publish_clearances(LIST, ClearanceChange(add=((clearance, 1),)), by="r")
    device = Device(world)
    device.sync()
    same = world.registry.publish_clearances(LIST, ClearanceChange(add=((clearance, 1),)), by="r")
    assert same.cleared == ()
    longer = Clearance(clearance.token, LIST, clearance.redress_number, date(2028, 6, 30))
    world.registry.publish_clearances(LIST, ClearanceChange(add=((longer, 1),)), by="r")
    device.sync()
    assert device.cleared == {longer.token: longer}
    assert device.digest == StateDigest.from_bytes(world.registry.list_info(LIST).state_digest)


def test_clearance_for_another_list_or_twice_in_one_change_is_refused_and_nothing_is_published(world):
    clearance = _namesake_clearance(world)
    other = Clearance(clearance.token, "hotel-dnr", clearance.redress_number, clearance.valid_until)
    with pytest.raises(InvalidEntry, match="cannot be published"):
        world.registry.publish_clearances(LIST, ClearanceChange(add=((other, 1),)), by="r")
    with pytest.raises(InvalidEntry, match="twice"):
        world.registry.publish_clearances(
            LIST, ClearanceChange(add=((clearance, 1),), remove=(clearance.token,)), by="r")
    assert world.registry.current_version(LIST) == 0


def test_publish_hook_hears_every_committed_version_and_no_refused_one(tmp_path):
    heard: list[str] = []
    world = World(tmp_path, on_publish=heard.append)
    entry_id = world.registry.add_entry(LIST, mueller(), by="o")
    world.registry.remove_entry(LIST, entry_id, by="r")
    world.registry.publish_clearances(LIST, ClearanceChange(add=((_namesake_clearance(world), 1),)), by="r")
    with pytest.raises(InvalidEntry):
        world.registry.add_entry(LIST, mueller("X", documents=(), date_of_birth=None), by="o")
    assert heard == [LIST, LIST, LIST]
