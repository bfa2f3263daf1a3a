"""From scanned bytes to a journaled verdict, over a real snapshot and journal."""

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from appliance.checker import Checker
from appliance.documents.manual import ManualEntryError, manual_document
from appliance.config import load_config
from appliance.documents import parse_payload
from appliance.journal import Journal
from appliance.records import Action, Batch, Clearance, Entry, ListInfo, TokenKind
from appliance.snapshot import SnapshotStore, snapshot_path
from sync.identity import identity_from_document

SAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "samples"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
AIR_KEY = bytes(range(32))
HOTEL_KEY = bytes(range(32, 64))


def _list(list_id, key, scopes):
    return ListInfo(list_id=list_id, name=f"{list_id} list", authority="Test Authority",
                    legal_basis="test", scopes=scopes, default_action=Action.DENY, token_key=key,
                    redress="Write to the authority quoting the reference.")


def _entry(token, list_id, kind, action=Action.DENY, until=date(2027, 12, 31), ref="CASE-1"):
    return Entry(token=token, list_id=list_id, kind=kind, category="assault_of_crew", action=action,
                 reference=ref, valid_from=date(2025, 1, 1), valid_until=until)


def _identity(sample):
    return identity_from_document(parse_payload((SAMPLES / sample).read_bytes(), today=NOW.date()))


@pytest.fixture
def device(tmp_path):
    (tmp_path / "gatecheck.toml").write_text('scopes = ["air_travel"]\n')
    config = load_config(tmp_path, env={})
    store = SnapshotStore(snapshot_path(tmp_path))
    journal = Journal(tmp_path)
    store.put_list(_list("air-ban", AIR_KEY, ("air_travel",)))
    store.put_list(_list("hotel-dnr", HOTEL_KEY, ("star_hotel",)))
    for list_id in ("air-ban", "hotel-dnr"):
        store.record_heartbeat(list_id, signed_at=NOW, valid_until=NOW + timedelta(days=1),
                               heartbeat_at=NOW - timedelta(minutes=5))
    yield store, journal, config
    store.close()
    journal.close()


def _apply(store, list_id, *entries, clearances=()):
    info = store.get_list(list_id)
    store.apply_batch(Batch(list_id=list_id, from_version=info.version, to_version=info.version + 1,
                            add=tuple(entries), add_clearances=tuple(clearances),
                            state_digest=b"\x01" * 32, signed_at=NOW - timedelta(minutes=1)))


def test_listed_licence_is_denied_and_the_verdict_is_journaled(device):
    store, journal, config = device
    token = _identity("licence-ca.txt").tokens(AIR_KEY).document
    _apply(store, "air-ban", _entry(token, "air-ban", TokenKind.DOCUMENT))
    decision = Checker(store, journal, config).check(
        (SAMPLES / "licence-ca.txt").read_bytes(), operator="op7", now=NOW)
    out = decision.to_dict()
    assert out["verdict"] == "DENY"
    assert [m["reference"] for m in out["matches"]] == ["CASE-1"]
    assert out["snapshot"]["lists"]["air-ban"]["version"] == 1
    record = journal.latest(1)[0]
    assert record.verdict == "DENY"
    assert journal.verify().ok


def test_same_document_on_a_hotel_list_is_ignored_at_an_airline_counter(device):
    store, journal, config = device
    token = _identity("licence-ca.txt").tokens(HOTEL_KEY).document
    _apply(store, "hotel-dnr", _entry(token, "hotel-dnr", TokenKind.DOCUMENT))
    decision = Checker(store, journal, config).check((SAMPLES / "licence-ca.txt").read_bytes(), now=NOW)
    assert decision.to_dict()["verdict"] == "CLEAR"


def test_name_and_birth_date_match_only_refers(device):
    store, journal, config = device
    person = _identity("licence-ca.txt").tokens(AIR_KEY).persons[0]
    _apply(store, "air-ban", _entry(person, "air-ban", TokenKind.PERSON))
    out = Checker(store, journal, config).check((SAMPLES / "licence-ca.txt").read_bytes(), now=NOW).to_dict()
    assert out["verdict"] == "REFER"
    assert "possible match — verify identity" in out["reasons"]


def test_cleared_namesake_is_clear_with_a_note(device):
    store, journal, config = device
    tokens = _identity("licence-ca.txt").tokens(AIR_KEY)
    _apply(store, "air-ban", _entry(tokens.persons[0], "air-ban", TokenKind.PERSON),
           clearances=[Clearance(token=tokens.document, list_id="air-ban", redress_number="RN-0042",
                                 valid_until=date(2027, 1, 1))])
    out = Checker(store, journal, config).check((SAMPLES / "licence-ca.txt").read_bytes(), now=NOW).to_dict()
    assert out["verdict"] == "CLEAR"
    assert any("RN-0042" in note for note in out["notes"])


def test_expired_entry_is_ignored_before_sync_removes_it(device):
    store, journal, config = device
    token = _identity("licence-ca.txt").tokens(AIR_KEY).document
    _apply(store, "air-ban", _entry(token, "air-ban", TokenKind.DOCUMENT, until=date(2026, 11, 1)))
    out = Checker(store, journal, config).check((SAMPLES / "licence-ca.txt").read_bytes(), now=NOW).to_dict()
    assert out["verdict"] == "CLEAR"


def test_garbage_is_unreadable_with_the_parsers_reason_and_still_journaled(device):
    store, journal, config = device
    out = Checker(store, journal, config).check(b"hello", now=NOW).to_dict()
    assert out["verdict"] == "UNREADABLE" and "AAMVA" in " ".join(out["reasons"])
    assert journal.latest(1)[0].verdict == "UNREADABLE"


def test_manual_entry_matches_the_same_token_as_the_scanned_licence(device):
    store, journal, config = device
    token = _identity("licence-ca.txt").tokens(AIR_KEY).document
    _apply(store, "air-ban", _entry(token, "air-ban", TokenKind.DOCUMENT))
    doc = parse_payload((SAMPLES / "licence-ca.txt").read_bytes())
    manual = {"document_class": "D", "issuing_country": "USA", "issuing_authority": "CA",
              "document_number": doc.document_number, "surname": doc.surname,
              "given_names": doc.given_names, "date_of_birth": doc.date_of_birth.isoformat()}
    out = Checker(store, journal, config).check(channel="manual", manual=manual, now=NOW).to_dict()
    assert out["verdict"] == "DENY" and out["channel"] == "manual"


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"document_class": "X"}, "choose the document type"),
     ({"document_class": "P", "document_number": "1"}, "surname"),
     ({"document_class": "P", "document_number": "1", "surname": "A", "issuing_country": "U5A"}, "alpha-3"),
     ({"document_class": "P", "document_number": "1", "surname": "A", "issuing_country": "UTO",
       "date_of_birth": "12/01/1990"}, "YYYY-MM-DD")],
)
def test_bad_manual_entry_says_what_to_fix(fields, message):
    with pytest.raises(ManualEntryError, match=message):
        manual_document(fields)


def test_check_command_prints_the_verdict_json_and_journals_it(tmp_path):
    gatecheck = Path(sys.executable).with_name("gatecheck")
    env = {**os.environ, "GATECHECK_HOME": str(tmp_path)}
    proc = subprocess.run([str(gatecheck), "check", "--operator", "op1"],
                          input=(SAMPLES / "passport-td3.txt").read_bytes(),
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"verdict", "reasons", "matches", "document", "snapshot"} <= out.keys()
    assert out["snapshot"]["stale"] is True  # no lists yet: never a silent CLEAR
    assert out["verdict"] == "REFER" and out["operator"] == "op1"
    verify = subprocess.run([str(gatecheck), "journal", "verify"], capture_output=True, env=env, timeout=60)
    assert verify.returncode == 0 and b"1 record" in verify.stdout


def test_check_command_with_a_bad_config_is_one_line(tmp_path):
    (tmp_path / "gatecheck.toml").write_text("max_age_hours = 'abc'\n")
    gatecheck = Path(sys.executable).with_name("gatecheck")
    proc = subprocess.run([str(gatecheck), "check", "--data-dir", str(tmp_path)], input=b"x",
                          capture_output=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.decode().count("\n") == 1 and b"max_age_hours" in proc.stderr


def test_a_document_number_that_appears_in_a_reason_never_loses_the_verdict(device):
    """Number 2012, expired on 2012-04-15: the verdict is shown and journaled, masked."""
    store, journal, config = device
    manual = {"document_class": "P", "issuing_country": "UTO", "document_number": "2012",
              "surname": "ERIKSSON", "expiry_date": "2012-04-15"}
    out = Checker(store, journal, config).check(channel="manual", manual=manual, now=NOW).to_dict()
    assert out["verdict"] == "REFER"
    assert journal.latest(1)[0].verdict == "REFER" and journal.verify().ok
