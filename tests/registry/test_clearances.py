"""The register of namesake clearances (registry/clearances.py) over a real registry on SQLite.

What a clearance publishes is checked as a device reads it: the signed
delta, decoded by sync.wire, must carry the allow-token of the traveller's
document under that list's key, with the redress number. The last test runs
real processes: a counter refers a namesake, a clearance turns that into
CLEAR with the number, and withdrawing it refers them again.
"""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import requests
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from appliance.records import Action
from registry.accounts import Accounts
from registry.audit import AuditLog
from registry.cli import registry as registry_cli
from registry.clearance_policy import (
    DEFAULT_TERM_DAYS,
    MAX_TERM_DAYS,
    ClearanceError,
    clearance_term,
    damm_digit,
    parse_redress_number,
    redress_number,
)
from registry.clearances import EXPIRED, WITHDRAWN, ClearanceRegister, UnknownClearance, clearance_lists, clearances
from registry.db import list_clearances, make_engine
from registry.publish import DocumentRef, EntryFields, Registry
from registry.reports import Identity
from registry.server import RegistryPaths
from registry.signing import Signer
from sync.identity import DocumentClass, document_token
from sync.wire import decode_payload, join_reference, split_reference
from appliance.specimens.mrz import MRZFields, encode
from tests.sync.conftest import LIST as LIVE_LIST
from tests.sync.conftest import live_device, live_registry  # noqa: F401 (fixtures: real processes)

TODAY = date(2026, 11, 27)
BORN = date(1970, 5, 17)
#: The namesake: the listed person's name and birth date, another passport.
NAMESAKE = Identity("Eriksson", "Anna", BORN, (DocumentRef("P", "SWE", "91234567"),))
REASON = "Born in Malmö, not Hamburg; another passport and another face than the listed person."


class Clock:
    """Starts at the real time (the signing certificate made by ``registry init`` is valid from then)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class World:
    """A registry with two lists, each listing an Anna Eriksson born 1970-05-17 by name and birth date."""

    def __init__(self, tmp_path) -> None:
        data_dir = tmp_path / "registry"
        runner = CliRunner()
        assert runner.invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
        paths = RegistryPaths(data_dir)
        self.engine = make_engine(paths.database_url)
        self.clock = Clock()
        self.today = datetime.fromtimestamp(self.clock.now, timezone.utc).date()
        self.registry = Registry(self.engine, Signer.from_files(paths.signing_key, paths.signing_cert),
                                 clock=self.clock)
        for list_id, scope in (("nfl", "air_travel"), ("hotel", "star_hotel")):
            self.registry.create_list(list_id, name=f"{list_id} list", authority="A", legal_basis="B", scopes=[scope],
                                      default_action=Action.DENY, by="admin")
        self.listed = {list_id: self.registry.add_entry(list_id, EntryFields(
            surnames="Eriksson", given_names="Anna", date_of_birth=BORN, reference=f"{list_id.upper()}-1",
            category="c", documents=(DocumentRef("P", "DEU", "C01X00T47"),)), by="admin")
            for list_id in ("nfl", "hotel")}
        self.serial = 1_000_000
        self.audit = AuditLog(self.engine)
        self.register = ClearanceRegister(self.engine, self.registry, self.audit, clock=self.clock,
                                          serials=self._serial)

    def _serial(self) -> int:
        self.serial += 1
        return self.serial

    def key(self, list_id: str) -> bytes:
        return self.registry.list_info(list_id).token_key

    def delta(self, list_id: str, from_version: int):
        [(_, payload)] = self.registry.updates_since(list_id, from_version)[:1]
        return decode_payload(payload, max_bytes=1 << 20, max_entries=64)


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.engine.dispose()


def issue(world: World, identity: Identity = NAMESAKE, lists=("nfl",), **kw):
    return world.register.issue(identity, lists=list(lists), reason=kw.pop("reason", REASON),
                                by=kw.pop("by", "rita"), **kw)


# -- redress numbers and terms (pure) --------------------------------------------


def test_a_redress_number_survives_the_wire_format_as_it_was_issued():
    for serial in (0, 1, 1234567, 9_999_999):
        number = redress_number(serial)
        assert join_reference(*split_reference(number)) == number
        assert parse_redress_number(number) == number


@given(st.integers(0, 9_999_999), st.integers(0, 7), st.integers(1, 9))
def test_one_wrong_digit_in_a_redress_number_is_caught_by_its_check_digit(serial, position, delta):
    digits = redress_number(serial).replace("CLR-", "").replace("-", "")
    wrong = digits[:position] + str((int(digits[position]) + delta) % 10) + digits[position + 1:]
    with pytest.raises(ClearanceError, match="a digit is wrong"):
        parse_redress_number(wrong)


@given(st.integers(0, 9_999_999), st.integers(0, 6))
def test_two_swapped_neighbouring_digits_are_caught_by_the_check_digit(serial, position):
    digits = redress_number(serial).replace("CLR-", "").replace("-", "")
    swapped = digits[:position] + digits[position + 1] + digits[position] + digits[position + 2:]
    if swapped != digits:
        assert damm_digit(swapped) != 0


def test_a_redress_number_read_out_loosely_is_found_in_its_one_written_form():
    number = redress_number(4_821_773)
    assert parse_redress_number(number.lower().replace("-", " ")) == number
    assert parse_redress_number(number[4:].replace("-", "")) == number  # the prefix left off
    for bad in ("", "CLR-1234", "XYZ-" + number[4:], "NFL-2024-00012345"):
        with pytest.raises(ClearanceError, match="not a redress number"):
            parse_redress_number(bad)


def test_the_term_is_a_year_by_default_at_most_three_and_ends_with_the_document():
    assert clearance_term(TODAY) == TODAY + timedelta(days=DEFAULT_TERM_DAYS)
    assert clearance_term(TODAY, days=30) == TODAY + timedelta(days=30)
    assert clearance_term(TODAY, days=MAX_TERM_DAYS, document_expiry=date(2027, 3, 1)) == date(2027, 3, 1)
    with pytest.raises(ClearanceError, match=f"at most {MAX_TERM_DAYS} days"):
        clearance_term(TODAY, days=MAX_TERM_DAYS + 1)
    with pytest.raises(ClearanceError, match="expired on 2026-11-01"):
        clearance_term(TODAY, document_expiry=date(2026, 11, 1))
    with pytest.raises(ClearanceError, match="at least 1"):
        clearance_term(TODAY, days=0)


# -- matching --------------------------------------------------------------------


def test_the_lists_suggested_are_those_where_the_namesakes_name_and_birth_date_hit_an_active_entry(world):
    world.registry.remove_entry("hotel", world.listed["hotel"], by="admin")
    found = {m.list_id: m for m in world.register.matches(NAMESAKE)}
    assert found["nfl"].eligible and [e.entry_id for e in found["nfl"].entries] == [world.listed["nfl"]]
    assert found["nfl"].entries[0].reference == "NFL-1"
    assert not found["hotel"].eligible and "no active entry on hotel list" in found["hotel"].refusal
    # the name typed in another case and order of given names still matches, as at the counter
    assert world.register.matches(Identity("ERIKSSON", "anna", BORN, NAMESAKE.documents))[1].eligible


def test_a_clearance_on_a_list_where_nobody_matches_is_refused_and_nothing_is_published(world):
    other = Identity("Eriksson", "Anna", date(1971, 5, 17), NAMESAKE.documents)  # another birth date
    with pytest.raises(ClearanceError, match="no active entry on nfl list matches"):
        issue(world, other)
    assert world.registry.current_version("nfl") == 1
    with world.engine.connect() as conn:
        assert conn.execute(clearances.select()).all() == []


def test_the_listed_persons_own_document_is_never_cleared(world):
    listed = Identity("Eriksson", "Anna", BORN, (DocumentRef("P", "DEU", "C01X00T47"),))
    with pytest.raises(ClearanceError, match="lists this document itself.*appeal"):
        issue(world, listed)
    assert world.registry.current_version("nfl") == 1


@pytest.mark.parametrize("identity, words", [
    (Identity("Eriksson", "Anna", BORN), "needs the traveller's document"),
    (Identity("Eriksson", "Anna", None, NAMESAKE.documents), "surname and date of birth"),
    (Identity("Eriksson", "Anna", BORN, (DocumentRef("P", "SW", "9123"),)), "ISO 3166-1"),
    (Identity("Eriksson", "Anna", BORN, (DocumentRef("B", "SWE", "9123"),)), "passport, ID card"),
    (Identity("Eriksson", "Anna", BORN, (DocumentRef("P", "SWE", " - "),)), "with its number"),
])
def test_a_clearance_needs_a_real_document_and_says_what_is_missing_in_one_line(world, identity, words):
    with pytest.raises(ClearanceError, match=words) as refused:
        issue(world, identity)
    assert "\n" not in refused.value.message


def test_a_clearance_needs_a_reason_another_reviewer_can_follow(world):
    with pytest.raises(ClearanceError, match="give the reason"):
        issue(world, reason="ok")


# -- issuing ---------------------------------------------------------------------


def test_issuing_publishes_an_allow_token_for_the_travellers_document_with_the_redress_number(world):
    record = issue(world, days=90)
    assert record.redress_number == redress_number(1_000_001) and record.status == "active"
    assert record.valid_until == world.today + timedelta(days=90)
    [published] = world.delta("nfl", 1).add_clearances
    assert published.token == document_token(world.key("nfl"), DocumentClass.PASSPORT, "SWE", "91234567")
    assert (published.redress_number, published.valid_until) == (record.redress_number, record.valid_until)
    assert [(link.list_id, link.published_in_version, link.open) for link in record.lists] == [("nfl", 2, True)]
    with world.engine.connect() as conn:
        [row] = conn.execute(list_clearances.select()).all()
    assert row.clearance_id == record.clearance_id
    assert world.registry.current_version("hotel") == 1  # not asked for: not touched


def test_issuing_is_audited_with_who_why_and_what_without_the_travellers_name_or_number(world):
    record = issue(world)
    [entry] = world.register.history(record.redress_number)
    assert (entry.actor, entry.action, entry.subject, entry.reason) == (
        "rita", "clearance.issue", f"clearance:{record.redress_number}", REASON)
    after = json.loads(entry.after)
    assert after["list_id"] == "nfl" and after["version"] == 2 and after["matched_entries"] == [world.listed["nfl"]]
    assert "91234567" not in entry.after and "Eriksson" not in entry.after
    assert world.audit.verify()[1] == []


def test_one_clearance_on_two_lists_has_one_redress_number_and_a_token_under_each_lists_key(world):
    record = issue(world, lists=("nfl", "hotel"))
    assert [link.list_id for link in record.lists] == ["hotel", "nfl"]
    for list_id in ("nfl", "hotel"):
        [published] = world.delta(list_id, 1).add_clearances
        assert published.redress_number == record.redress_number
        assert published.token == document_token(world.key(list_id), "P", "SWE", "91234567")
    assert world.register.get(record.redress_number.lower()) == record


def test_the_same_document_cannot_hold_two_clearances_on_one_list(world):
    first = issue(world)
    with pytest.raises(ClearanceError, match=f"already holds clearance {first.redress_number}"):
        issue(world)
    assert world.registry.current_version("nfl") == 2


def test_a_second_reviewer_racing_for_the_same_document_is_refused_and_publishes_nothing(world):
    # Both checked the lists before either published; the register's
    # one-open-clearance-per-document rule fails the loser's whole publish.
    [stale] = [m for m in world.register.matches(NAMESAKE) if m.list_id == "nfl"]
    issue(world)
    with pytest.raises(ClearanceError, match="already holds clearance"):
        world.register._publish_issue(NAMESAKE, NAMESAKE.documents[0], stale, None, reason=REASON,
                                      valid_until=date(2027, 1, 1), document_expiry=None, by="sam")
    assert world.registry.current_version("nfl") == 2
    with world.engine.connect() as conn:
        assert len(conn.execute(clearances.select()).all()) == 1


def test_a_redress_number_drawn_twice_is_drawn_again_not_issued_twice(world):
    taken = issue(world)
    draws = iter([int(taken.redress_number[4:].replace("-", "")[:7]), 7_654_321])
    world.register.serials = lambda: next(draws)
    other = Identity("Eriksson", "Anna", BORN, (DocumentRef("P", "SWE", "55555555"),))
    assert issue(world, other).redress_number == redress_number(7_654_321)


# -- withdrawing and expiry ------------------------------------------------------------


def test_withdrawing_publishes_the_removal_at_once_and_records_who_and_why(world):
    record = issue(world, lists=("nfl", "hotel"))
    ended = world.register.withdraw(record.redress_number, by="sam", reason="Matched the listed person after all.")
    assert ended.status == WITHDRAWN and ended.ended_by == "sam" and not any(link.open for link in ended.lists)
    for list_id in ("nfl", "hotel"):
        assert world.delta(list_id, 2).remove_clearances == (document_token(world.key(list_id), "P", "SWE",
                                                                            "91234567"),)
    with world.engine.connect() as conn:
        assert conn.execute(list_clearances.select()).all() == []
    actions = [(h.actor, h.action) for h in world.register.history(record.redress_number)]
    assert actions == [("rita", "clearance.issue")] * 2 + [("sam", "clearance.withdraw")] * 2
    last = world.register.history(record.redress_number)[-1]
    assert json.loads(last.before)["status"] == "active" and json.loads(last.after)["status"] == WITHDRAWN
    with pytest.raises(ClearanceError, match="withdrawn already"):
        world.register.withdraw(record.redress_number, by="sam", reason="Once more, to be sure.")
    # the document may be cleared again later, as a new clearance with a new number
    assert issue(world).redress_number != record.redress_number


def test_expiry_takes_off_only_lapsed_clearances_in_one_version_per_list(world):
    short = issue(world, days=10)
    other = Identity("Eriksson", "Anna", BORN, (DocumentRef("I", "SWE", "X1234567"),))
    lasting = issue(world, other, lists=("nfl", "hotel"))
    assert world.register.expire(today=short.valid_until) == []  # valid through its last day
    version = world.registry.current_version("nfl")
    assert world.register.expire(today=short.valid_until + timedelta(days=1)) == [short.redress_number]
    assert world.registry.current_version("nfl") == version + 1
    assert world.registry.current_version("hotel") == 2  # nothing of it lapsed
    assert world.register.get(short.redress_number).status == EXPIRED
    assert world.register.get(lasting.redress_number).status == "active"
    [record] = [h for h in world.register.history(short.redress_number) if h.action == "clearance.expire"]
    assert record.actor == "registry:expiry"
    assert world.register.expire(today=short.valid_until + timedelta(days=1)) == []


def test_an_unknown_redress_number_is_told_apart_from_a_mistyped_one(world):
    with pytest.raises(UnknownClearance, match="no clearance CLR-"):
        world.register.get(redress_number(42))
    with pytest.raises(ClearanceError, match="a digit is wrong"):
        world.register.get("CLR-0000-0001")


def test_the_register_keeps_the_plaintext_and_the_published_state_only_tokens(world):
    issue(world)
    with world.engine.connect() as conn:
        [row] = conn.execute(clearances.select()).all()
        [link] = conn.execute(clearance_lists.select()).all()
        [published] = conn.execute(list_clearances.select()).all()
    assert (row.surnames, row.document_number) == ("Eriksson", "91234567")
    assert bytes(link.token) == bytes(published.token)
    assert set(published._mapping) == {"list_id", "token", "clearance_id", "redress_number", "valid_until"}


# -- live: a counter, a reviewer on the registry's pages, and the agent between them ----------


def _verdict(device, scan: str) -> dict:
    proc = device.gatecheck("check", input=scan.encode())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _csrf(web, url: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', web.get(url, timeout=10).text).group(1)


def test_live_a_referred_namesake_is_cleared_at_the_counter_and_referred_again_once_withdrawn(live_registry,
                                                                                              live_device):
    server, device = live_registry, live_device
    server.api.add_entry(LIVE_LIST, EntryFields(
        surnames="Eriksson", given_names="Anna", date_of_birth=BORN, reference="NFL-2024-0042",
        category="aviation-security", documents=(DocumentRef("P", "DEU", "C01X00T47"),)), by="caa")
    namesake = "\n".join(encode(MRZFields("TD3", "P", "SWE", "91234567", "ERIKSSON", "ANNA", BORN, "F",
                                          date(2035, 1, 31), "SWE")))
    assert device.run_agent().returncode == 0
    referred = _verdict(device, namesake)
    assert referred["verdict"] == "REFER" and [m["kind"] for m in referred["matches"]] == ["person"]

    Accounts(server.api.engine).create_user("rita", "a long enough passphrase", roles=["reviewer"], by="admin")
    web = requests.Session()
    signed = web.post(f"{server.url}/login", timeout=10, allow_redirects=False, data={
        "username": "rita", "password": "a long enough passphrase", "csrf_token": _csrf(web, f"{server.url}/login")})
    assert signed.status_code == 302
    issued = web.post(f"{server.url}/clearances/new", timeout=10, allow_redirects=False, data={
        "csrf_token": _csrf(web, f"{server.url}/clearances/new"), "scan": namesake, "lists": LIVE_LIST,
        "reason": REASON, "action": "issue"})
    assert issued.status_code == 302, issued.text
    number = re.search(r"CLR-\d{4}-\d{4}", issued.headers["Location"]).group(0)

    assert device.run_agent().returncode == 0
    cleared = _verdict(device, namesake)
    assert cleared["verdict"] == "CLEAR" and cleared["matches"] == []
    assert any(f"redress no. {number}" in note for note in cleared["notes"]), cleared["notes"]

    detail = f"{server.url}/clearances/{number}"
    withdrawn = web.post(f"{detail}/withdraw", timeout=10, allow_redirects=False, data={
        "csrf_token": _csrf(web, detail), "reason": "Withdrawn at the traveller's request."})
    assert withdrawn.status_code == 302
    assert device.run_agent().returncode == 0
    again = _verdict(device, namesake)
    assert again["verdict"] == "REFER" and again["notes"] == []
