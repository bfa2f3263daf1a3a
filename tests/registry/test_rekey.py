"""Re-keying a list (registry/rekey.py) over a real registry on SQLite.

What a re-key publishes is checked as a device checks it: a device that
was current before gets one signed snapshot (no chain of deltas crosses the
key change), whose header names the new key, whose records are every
entry's tokens made again under it, and whose digest a fresh device
reproduces from the records.
"""

from __future__ import annotations

import base64
import json
from datetime import date

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from appliance.records import Action
from registry import db
from registry.audit import AuditLog
from registry.cli import registry as registry_cli
from registry.clearances import ClearanceRegister, clearance_lists
from registry.entries import expand_entry, token_key_id
from registry.publish import DocumentRef, EntryFields
from registry.rekey import RekeyError, retired_keys, rotate_token_key
from registry.reports import Identity
from registry.snapshots import SnapshotPayload
from sync.digest import StateDigest
from sync.envelope import Kind, parse_envelope
from sync.identity import DocumentClass, document_token, token_key_hash
from sync.snapshot_wire import decode_snapshot
from tests.registry.test_publish import LIST, Device, World, mueller

REASON = "Counter 7 at FRA T1 was stolen overnight with its store."


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def eriksson(reference: str, **overrides) -> EntryFields:
    fields = dict(surnames="Eriksson", given_names="Anna", date_of_birth=date(1970, 5, 17), reference=reference,
                  category="aviation-security", valid_from=date(2024, 1, 1), valid_until=date(2030, 12, 31))
    fields.update(overrides)
    return EntryFields(**fields)


def populated(world: World) -> dict:
    """Entries that share tokens (two cases for one passport, DENY beats REFER), a lifted one, and a clearance."""
    reg = world.registry
    ids = {
        "deny": reg.add_entry(LIST, mueller("NFL-1", action=Action.DENY), by="officer"),
        "refer": reg.add_entry(LIST, mueller("NFL-2", action=Action.REFER, valid_until=date(2035, 1, 1)), by="officer"),
        "namesake": reg.add_entry(LIST, eriksson("NFL-3"), by="officer"),
        "lifted": reg.add_entry(LIST, mueller("NFL-4", documents=(DocumentRef("P", "DEU", "C99"),)), by="officer"),
    }
    reg.remove_entry(LIST, ids["lifted"], by="reviewer")
    register = ClearanceRegister(world.engine, reg, AuditLog(world.engine), serials=lambda: 1234567)
    register.issue(Identity("Eriksson", "Anna", date(1970, 5, 17), (DocumentRef("P", "SWE", "91234567"),)),
                   lists=[LIST], reason="A namesake: another passport, another person.", by="reviewer")
    return ids


def published(world: World) -> list[tuple]:
    """The published rows without their tokens: which entry each token's device record comes from."""
    t = db.list_tokens.c
    with world.engine.connect() as conn:
        rows = conn.execute(select(t.entry_id, t.kind, t.category, t.action, t.reference, t.valid_from,
                                   t.valid_until, t.redress).where(t.list_id == LIST)).all()
    return sorted(tuple(row) for row in rows)


def test_a_rekey_makes_every_token_again_under_a_new_key_and_keeps_entry_ids_and_winners(world):
    ids = populated(world)
    device = Device(world)
    device.sync()
    before_rows, old_key = published(world), world.registry.list_info(LIST).token_key
    head = world.registry.current_version(LIST)

    done = rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)

    info = world.registry.list_info(LIST)
    new_key = info.token_key
    assert new_key != old_key and len(new_key) == 32
    assert (done.version, info.version, done.old_key_id, done.new_key_id) == (
        head + 1, head + 1, token_key_id(old_key), token_key_id(new_key))
    assert published(world) == before_rows  # the same entries hold the same tokens' records
    for name in ("deny", "refer", "namesake"):
        fields = mueller("NFL-1") if name != "namesake" else eriksson("NFL-3")
        assert world.registry.tokens_of(ids[name]) == {t for t, _ in expand_entry(new_key, fields)}
    # A lifted entry keeps what it was published with, as history; nothing publishes from it.
    assert world.registry.tokens_of(ids["lifted"]) == {t for t, _ in expand_entry(old_key, mueller(
        "NFL-4", documents=(DocumentRef("P", "DEU", "C99"),)))}
    passport = document_token(new_key, DocumentClass.PASSPORT, "DEU", "C01X00T47")
    namesake_passport = document_token(new_key, DocumentClass.PASSPORT, "SWE", "91234567")
    with world.engine.connect() as conn:
        cleared = [bytes(t) for t in conn.execute(select(db.list_clearances.c.token)).scalars()]
        linked = [bytes(t) for t in conn.execute(select(clearance_lists.c.token)).scalars()]
    assert cleared == linked == [namesake_passport]

    # The device that was current takes one snapshot: the header names the new key, the records are
    # the new tokens, and its digest is the records' (Device.apply checks both).
    [(envelope, payload)] = world.registry.updates_since(LIST, device.state.version)
    assert parse_envelope(envelope).kind is Kind.SNAPSHOT
    header = decode_snapshot(payload.read_bytes(), max_entries=1000).header
    assert header.token_key_hash == token_key_hash(new_key)
    device.apply(envelope, payload)
    assert device.held[passport].action is Action.DENY and device.held[passport].reference == "NFL-1"
    assert set(device.cleared) == {namesake_passport}
    assert not {document_token(old_key, DocumentClass.PASSPORT, "DEU", "C01X00T47")} & set(device.held)
    assert device.digest == StateDigest.of([*device.held.values(), *device.cleared.values()])
    fresh = Device(world)  # a device enrolled after the re-key reaches the same state
    fresh.sync()
    assert fresh.held == device.held and fresh.digest == device.digest


def test_no_chain_of_deltas_crosses_a_rekey(world):
    world.registry.add_entry(LIST, mueller("NFL-1"), by="officer")
    world.registry.add_entry(LIST, eriksson("NFL-2"), by="officer")
    done = rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)
    with world.engine.connect() as conn:
        kept = conn.execute(select(db.deltas.c.from_version)).scalars().all()
    assert kept == []  # the old key's deltas are gone, and the re-key version has none
    for since in range(done.version):
        [(envelope, payload)] = world.registry.updates_since(LIST, since)
        assert parse_envelope(envelope).kind is Kind.SNAPSHOT and isinstance(payload, SnapshotPayload)
    world.registry.add_entry(LIST, eriksson("NFL-3", date_of_birth=date(1971, 1, 1)), by="officer")
    [(envelope, _)] = world.registry.updates_since(LIST, done.version)  # after the re-key: deltas again
    assert parse_envelope(envelope).kind is Kind.DELTA
    [(envelope, _)] = world.registry.updates_since(LIST, done.version - 1)  # across it: never
    assert parse_envelope(envelope).kind is Kind.SNAPSHOT


def test_the_old_key_leaves_the_database_files_and_only_its_id_is_kept(world):
    for i in range(140):  # enough publishes to move the list row around its page
        world.registry.add_entry(LIST, eriksson(f"NFL-{i}", date_of_birth=date(1950, 1, 1 + i % 28)), by="officer")
    old = world.registry.list_info(LIST).token_key
    done = rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)
    new = world.registry.list_info(LIST).token_key
    files = sorted(world.db_path.parent.glob("registry.db*"))
    assert done.wal_truncated is True
    assert any(new in f.read_bytes() for f in files)  # the search would find a key
    assert not any(old in f.read_bytes() for f in files)
    [retired] = retired_keys(world.engine, LIST)
    assert (retired.key_id, retired.last_version, retired.replaced_by, retired.retired_by) == (
        token_key_id(old), done.version - 1, token_key_id(new), "it-admin")


def test_the_audit_record_says_who_why_and_which_keys_but_never_a_key(world):
    world.registry.add_entry(LIST, mueller("NFL-1"), by="officer")
    old = world.registry.list_info(LIST).token_key
    done = rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)
    new = world.registry.list_info(LIST).token_key
    [record] = [r for r in AuditLog(world.engine).records(subject=f"list:{LIST}") if r.action == "list.rekey"]
    assert (record.actor, record.reason) == ("it-admin", REASON)
    assert json.loads(record.before) == {"token_key_id": done.old_key_id, "version": done.version - 1}
    assert json.loads(record.after)["token_key_id"] == done.new_key_id
    text = json.dumps(record.to_dict(), default=str)
    for key in (old, new):
        for form in (key.hex(), base64.urlsafe_b64encode(key).decode().rstrip("="), base64.b64encode(key).decode()):
            assert form not in text
    assert AuditLog(world.engine).verify()[1] == []


def test_a_rekey_without_a_reason_is_refused_and_changes_nothing(world):
    before = world.registry.list_info(LIST)
    with pytest.raises(RekeyError, match="say why"):
        rotate_token_key(world.registry, LIST, by="it-admin", reason="  ")
    assert world.registry.list_info(LIST) == before


def test_an_entry_that_no_longer_tokenises_refuses_the_whole_rekey(world):
    good = world.registry.add_entry(LIST, mueller("NFL-1"), by="officer")
    bad = world.registry.add_entry(LIST, mueller("NFL-2", documents=(DocumentRef("P", "DEU", "X1"),)), by="officer")
    with world.engine.begin() as conn:  # a stored document an older registry accepted and this one does not
        conn.execute(update(db.entry_documents).where(db.entry_documents.c.entry_id == bad).values(issuer="ZZZZ"))
    before, tokens = world.registry.list_info(LIST), world.registry.tokens_of(good)
    with pytest.raises(RekeyError, match=f"entry {bad} cannot be tokenised again, so nothing was re-keyed"):
        rotate_token_key(world.registry, LIST, by="it-admin", reason=REASON)
    assert world.registry.list_info(LIST) == before and world.registry.tokens_of(good) == tokens
    assert retired_keys(world.engine, LIST) == []


def test_the_cli_rekeys_in_one_json_answer_and_refuses_an_unknown_list_in_one_line(tmp_path):
    data_dir = tmp_path / "registry"
    runner = CliRunner()
    assert runner.invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    assert runner.invoke(registry_cli, ["list", "create", "--data-dir", str(data_dir), LIST, "--name", "No-fly",
                                        "--authority", "CAA", "--legal-basis", "Act", "--scope", "air_travel"]
                         ).exit_code == 0
    result = runner.invoke(registry_cli, ["list", "rekey", "--data-dir", str(data_dir), LIST, "--reason", REASON,
                                          "--by", "it-admin"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["version"] == 1 and answer["old_key_id"] != answer["new_key_id"]
    missing = runner.invoke(registry_cli, ["list", "rekey", "--data-dir", str(data_dir), "nope", "--reason", REASON])
    assert missing.exit_code == 1 and missing.stderr.strip() == "gatecheck: no list 'nope' in the registry"
