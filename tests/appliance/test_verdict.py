"""The verdict rules of issue 3, one test per rule, plus properties over random lookups."""

import json
import re
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance import verdict as rules
from appliance.documents import DocumentError, parse_payload
from appliance.documents.model import Document
from appliance.records import Action, Clearance, Entry, ListInfo, TokenKind
from appliance.verdict import (
    Decision,
    DeviceProfile,
    Verdict,
    decide,
    freshness,
    mask_document_number,
    strongest,
)
from sync.identity import identity_from_document

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "appliance" / "samples"
NOW = datetime(2025, 3, 10, 9, 30, tzinfo=timezone.utc)
TODAY = NOW.date()
AIR = DeviceProfile(scopes=frozenset({"air_travel"}))

NO_FLY = ListInfo(
    list_id="no-fly", name="National No-Fly List", authority="Ministry of Transport",
    legal_basis="Aviation Security Act s. 12", scopes=("air_travel",),
    default_action=Action.DENY, token_key=b"K" * 32, version=41,
    state_digest=bytes.fromhex("aa" * 32), heartbeat_at=NOW - timedelta(minutes=3),
    redress="Traveller Redress Office, form TR-1",
)
WATCH = ListInfo(
    list_id="watch", name="Sanctions Watch", authority="Treasury",
    legal_basis="Sanctions Act s. 4", scopes=("air_travel", "star_hotel"),
    default_action=Action.REFER, token_key=b"W" * 32, version=7,
    state_digest=bytes.fromhex("bb" * 32), heartbeat_at=NOW - timedelta(hours=2),
)
HOTEL = ListInfo(
    list_id="hotel", name="Hotel Ban Register", authority="Tourism Board",
    legal_basis="Hospitality Act s. 9", scopes=("star_hotel",),
    default_action=Action.DENY, token_key=b"H" * 32, version=3,
    state_digest=bytes.fromhex("cc" * 32), heartbeat_at=NOW - timedelta(days=30),
)
LISTS = [NO_FLY, WATCH, HOTEL]

PASSPORT = Document(
    format="mrz", layout="TD3", document_code="P", document_number="L898902C3",
    surname="ERIKSSON", given_names="ANNA MARIA", date_of_birth=date(1974, 8, 12),
    expiry_date=date(2030, 4, 15), sex="F", nationality="UTO", issuing_country="UTO",
    checks={"document_number": True, "date_of_birth": True, "expiry_date": True, "composite": True},
)
IDENTITY = identity_from_document(PASSPORT)


def doc_entry(info=NO_FLY, *, action=Action.DENY, reference="NF-2024-0117", **kw):
    fields = dict(
        token=IDENTITY.tokens(info.token_key).document, list_id=info.list_id,
        kind=TokenKind.DOCUMENT, category="aviation-security", action=action,
        reference=reference, valid_from=date(2024, 1, 1), valid_until=date(2026, 1, 1),
    )
    fields.update(kw)
    return Entry(**fields)


def person_entry(info=NO_FLY, *, which=0, action=Action.DENY, reference="NF-2024-0117", **kw):
    fields = dict(
        token=IDENTITY.tokens(info.token_key).persons[which], list_id=info.list_id,
        kind=TokenKind.PERSON, category="aviation-security", action=action,
        reference=reference, valid_from=date(2024, 1, 1), valid_until=date(2026, 1, 1),
    )
    fields.update(kw)
    return Entry(**fields)


def clearance(info=NO_FLY, *, redress_number="RN-5521", valid_until=date(2027, 1, 1)):
    return Clearance(
        token=IDENTITY.tokens(info.token_key).document, list_id=info.list_id,
        redress_number=redress_number, valid_until=valid_until,
    )


def check(document=PASSPORT, *, error=None, identity=None, entries=(), clearances=(), lists=LISTS,
          profile=AIR, now=NOW, channel="scanner", operator="agent-17") -> Decision:
    return decide(document=document, error=error, identity=identity, entries=list(entries),
                  clearances=list(clearances), lists=list(lists), profile=profile, now=now,
                  channel=channel, operator=operator)


# --- verdicts ---------------------------------------------------------------


def test_valid_document_with_no_match_on_fresh_lists_is_clear():
    decision = check()
    assert decision.verdict is Verdict.CLEAR
    assert decision.reasons == ()
    assert decision.matches == ()
    assert not decision.stale


def test_verdict_words_are_the_four_of_the_issue():
    assert [v.value for v in Verdict] == ["CLEAR", "REFER", "DENY", "UNREADABLE"]


# --- document-token hits ----------------------------------------------------


@pytest.mark.parametrize("action", [Action.DENY, Action.REFER])
def test_document_token_hit_on_in_scope_list_gets_the_entry_action(action):
    decision = check(entries=[doc_entry(action=action)])
    assert decision.verdict == Verdict(action.value)
    assert decision.reasons == (
        "document listed on National No-Fly List (aviation-security, ref. NF-2024-0117)",)
    (match,) = decision.matches
    assert (match.list_id, match.action, match.kind) == ("no-fly", action, TokenKind.DOCUMENT)


def test_document_token_hit_on_list_outside_the_profile_is_ignored():
    hotel_hit = doc_entry(HOTEL, reference="HB-9")
    decision = check(entries=[hotel_hit])
    assert decision.verdict is Verdict.CLEAR
    assert decision.matches == ()


def test_hotel_desk_profile_counts_the_hotel_list_and_ignores_the_airline_list():
    desk = DeviceProfile(scopes=frozenset({"star_hotel"}), max_age=timedelta(days=60))
    decision = check(entries=[doc_entry(NO_FLY), doc_entry(HOTEL, reference="HB-9")], profile=desk)
    assert decision.verdict is Verdict.DENY
    assert [m.list_id for m in decision.matches] == ["hotel"]


def test_list_applies_when_any_of_its_scopes_is_in_the_profile():
    decision = check(entries=[doc_entry(WATCH, action=Action.REFER, reference="SW-1")])
    assert decision.verdict is Verdict.REFER
    assert decision.matches[0].list_id == "watch"


def test_entry_of_a_list_unknown_to_the_device_is_ignored():
    stray = replace(doc_entry(), list_id="not-on-this-device")
    assert check(entries=[stray]).verdict is Verdict.CLEAR


# --- person-token hits ------------------------------------------------------


def test_person_token_hit_is_at_most_refer_with_possible_match_reason():
    decision = check(entries=[person_entry(action=Action.DENY)])
    assert decision.verdict is Verdict.REFER
    assert decision.reasons == ("possible match — verify identity",)
    (match,) = decision.matches
    assert match.kind is TokenKind.PERSON and match.action is Action.REFER


def test_person_token_hit_is_suppressed_by_a_clearance_for_this_document_with_a_note():
    decision = check(entries=[person_entry(), person_entry(which=1)], clearances=[clearance()])
    assert decision.verdict is Verdict.CLEAR
    assert decision.matches == ()
    assert decision.notes == ("cleared namesake on National No-Fly List (redress no. RN-5521)",)


def test_clearance_on_another_list_does_not_suppress_a_person_hit():
    decision = check(entries=[person_entry(NO_FLY)], clearances=[clearance(WATCH)])
    assert decision.verdict is Verdict.REFER
    assert decision.notes == ()


def test_expired_clearance_does_not_suppress_and_the_note_says_so():
    lapsed = clearance(valid_until=TODAY - timedelta(days=1))
    decision = check(entries=[person_entry()], clearances=[lapsed])
    assert decision.verdict is Verdict.REFER
    assert decision.notes == (
        "namesake clearance on National No-Fly List (redress no. RN-5521) expired on 2025-03-09",)


def test_clearance_never_suppresses_a_document_token_hit():
    decision = check(entries=[doc_entry(), person_entry()], clearances=[clearance()])
    assert decision.verdict is Verdict.DENY
    assert [m.kind for m in decision.matches] == [TokenKind.DOCUMENT]


def test_clearance_with_no_person_hit_adds_no_note():
    assert check(clearances=[clearance()]).notes == ()


# --- entry expiry -----------------------------------------------------------


def test_entry_past_valid_until_is_ignored_on_the_device():
    decision = check(entries=[doc_entry(valid_until=TODAY - timedelta(days=1))])
    assert decision.verdict is Verdict.CLEAR
    assert decision.matches == ()


def test_entry_before_valid_from_is_ignored_on_the_device():
    assert check(entries=[doc_entry(valid_from=TODAY + timedelta(days=1))]).verdict is Verdict.CLEAR


def test_entry_counts_on_its_first_and_last_day():
    assert check(entries=[doc_entry(valid_until=TODAY)]).verdict is Verdict.DENY
    assert check(entries=[doc_entry(valid_from=TODAY)]).verdict is Verdict.DENY


# --- document problems ------------------------------------------------------


def test_failed_check_digits_are_referred_naming_the_failed_checks():
    damaged = replace(PASSPORT, checks={**PASSPORT.checks, "document_number": False, "composite": False})
    decision = check(damaged)
    assert decision.verdict is Verdict.REFER
    assert decision.reasons == (
        "document checks failed (document number, composite) — verify the document by hand",)


def test_expired_document_is_referred():
    expired = replace(PASSPORT, expiry_date=TODAY - timedelta(days=1))
    decision = check(expired)
    assert decision.verdict is Verdict.REFER
    assert decision.reasons == ("document expired on 2025-03-09",)


def test_document_expiring_today_is_still_valid():
    assert check(replace(PASSPORT, expiry_date=TODAY)).verdict is Verdict.CLEAR


def test_boarding_pass_alone_is_a_weak_identity_and_referred():
    boarding_pass = parse_payload((SAMPLES / "boarding-pass.txt").read_bytes(), today=TODAY)
    decision = check(boarding_pass)
    assert decision.verdict is Verdict.REFER
    assert decision.reasons == ("a boarding pass carries only a name, which is a weak identity",)
    assert decision.masked_document_number is None


def test_document_problem_does_not_weaken_a_deny():
    expired = replace(PASSPORT, expiry_date=date(2020, 1, 1))
    decision = check(expired, entries=[doc_entry()])
    assert decision.verdict is Verdict.DENY
    assert decision.reasons[-1] == "document expired on 2020-01-01"


# --- unreadable input -------------------------------------------------------


def test_unparseable_input_is_unreadable_with_the_parser_reason():
    with pytest.raises(DocumentError) as caught:
        parse_payload(b"hello, this is not a travel document")
    decision = check(None, error=caught.value)
    assert decision.verdict is Verdict.UNREADABLE
    assert decision.reasons == (caught.value.message,)
    out = decision.to_dict()
    assert out["document"] is None
    assert out["error"] == {"code": caught.value.code, "message": caught.value.message}


def test_nothing_scanned_is_unreadable():
    decision = check(None)
    assert decision.verdict is Verdict.UNREADABLE
    assert decision.reasons == ("nothing was scanned",)


def test_document_and_error_together_are_a_caller_bug():
    with pytest.raises(ValueError):
        check(PASSPORT, error=DocumentError("x"))


def test_unknown_channel_is_a_caller_bug():
    with pytest.raises(ValueError, match="channel"):
        check(channel="fax")


# --- freshness --------------------------------------------------------------


def test_snapshot_age_counts_from_the_stalest_in_scope_heartbeat():
    # no-fly 3 min, watch 2 h; the 30-day-old hotel list is out of scope.
    decision = check()
    assert decision.to_dict()["snapshot"]["age_seconds"] == 2 * 3600
    assert decision.freshness.as_of == WATCH.heartbeat_at
    assert not decision.stale


def test_stale_snapshot_turns_clear_into_refer_when_failing_closed():
    old = replace(WATCH, heartbeat_at=NOW - timedelta(hours=25))
    decision = check(lists=[NO_FLY, old])
    assert decision.stale
    assert decision.verdict is Verdict.REFER
    assert decision.reasons == ("deny-lists out of date (as of 2025-03-09 08:30 UTC)",)


def test_stale_snapshot_keeps_clear_with_a_warning_when_failing_open():
    old = replace(WATCH, heartbeat_at=NOW - timedelta(hours=25))
    decision = check(lists=[NO_FLY, old], profile=replace(AIR, fail_closed=False))
    assert decision.stale
    assert decision.verdict is Verdict.CLEAR
    assert decision.reasons == (
        "deny-lists out of date (as of 2025-03-09 08:30 UTC); CLEAR kept by the fail-open policy",)


def test_stale_snapshot_never_weakens_a_deny():
    old = replace(NO_FLY, heartbeat_at=NOW - timedelta(days=3))
    decision = check(entries=[doc_entry()], lists=[old])
    assert decision.verdict is Verdict.DENY
    assert decision.reasons[-1].startswith("deny-lists out of date")


def test_max_age_is_configurable_and_its_boundary_is_still_fresh():
    profile = replace(AIR, max_age=timedelta(hours=2))
    assert not check(profile=profile).stale  # exactly 2 h old
    assert check(profile=replace(AIR, max_age=timedelta(hours=1))).stale


def test_list_never_heartbeated_is_stale_with_unknown_age():
    never = replace(WATCH, heartbeat_at=None)
    decision = check(lists=[NO_FLY, never])
    assert decision.stale and decision.verdict is Verdict.REFER
    assert decision.to_dict()["snapshot"]["age_seconds"] is None
    assert decision.reasons == ("deny-lists out of date (no verified update yet)",)


def test_device_with_no_in_scope_lists_is_stale_and_never_silently_clear():
    decision = check(lists=[HOTEL])
    assert decision.stale
    assert decision.verdict is Verdict.REFER
    assert decision.reasons == ("no deny-list on this device covers air_travel",)
    assert decision.to_dict()["snapshot"]["lists"] == {}


def test_stale_list_outside_the_profile_does_not_make_the_snapshot_stale():
    assert not check(lists=[NO_FLY, HOTEL]).stale


def test_heartbeat_ahead_of_the_device_clock_counts_as_age_zero():
    ahead = replace(NO_FLY, heartbeat_at=NOW + timedelta(minutes=5))
    decision = check(lists=[ahead])
    assert decision.freshness.age == timedelta(0) and not decision.stale


def test_naive_times_are_taken_as_utc():
    naive = replace(NO_FLY, heartbeat_at=datetime(2025, 3, 10, 8, 30))
    fresh = freshness([naive], AIR, NOW)
    assert fresh.age == timedelta(hours=1)


# --- provenance -------------------------------------------------------------


def test_provenance_records_lists_versions_digests_references_channel_and_operator():
    decision = check(entries=[doc_entry()], channel="camera", operator="agent-17")
    out = decision.to_dict()
    assert out["snapshot"]["lists"] == {
        "no-fly": {"version": 41, "digest": "aa" * 32},
        "watch": {"version": 7, "digest": "bb" * 32},
    }
    assert [m["reference"] for m in out["matches"]] == ["NF-2024-0117"]
    assert (out["channel"], out["operator"]) == ("camera", "agent-17")


def test_match_shows_where_the_traveller_can_seek_redress():
    (own,) = check(entries=[doc_entry(redress="Appeal ref. A-77")]).matches
    (inherited,) = check(entries=[doc_entry()]).matches
    assert own.redress == "Appeal ref. A-77"
    assert inherited.redress == "Traveller Redress Office, form TR-1"


def test_decision_never_carries_a_list_token_key():
    text = json.dumps(check(entries=[doc_entry()]).to_dict())
    for info in LISTS:
        assert info.token_key.hex() not in text and info.token_key.decode() not in text


# --- several matches --------------------------------------------------------


def test_strongest_action_wins_and_all_matches_are_listed():
    entries = [
        person_entry(WATCH, reference="SW-1", action=Action.REFER),
        doc_entry(NO_FLY, reference="NF-2024-0117"),
        doc_entry(WATCH, reference="SW-2", action=Action.REFER),
    ]
    decision = check(entries=entries)
    assert decision.verdict is Verdict.DENY
    assert [(m.list_id, m.reference, m.action) for m in decision.matches] == [
        ("no-fly", "NF-2024-0117", Action.DENY),
        ("watch", "SW-2", Action.REFER),
        ("watch", "SW-1", Action.REFER),
    ]
    assert decision.reasons == (
        "document listed on National No-Fly List (aviation-security, ref. NF-2024-0117)",
        "document listed on Sanctions Watch (aviation-security, ref. SW-2)",
        "possible match — verify identity",
    )


def test_same_listed_record_reached_by_several_tokens_is_one_match_at_its_strongest():
    entries = [person_entry(which=0), doc_entry(), person_entry(which=1), doc_entry()]
    decision = check(entries=entries)
    assert decision.verdict is Verdict.DENY
    assert [(m.reference, m.kind) for m in decision.matches] == [("NF-2024-0117", TokenKind.DOCUMENT)]


def test_strongest_of_nothing_is_clear():
    assert strongest([]) is Verdict.CLEAR
    assert strongest([Action.REFER, Verdict.CLEAR, Action.DENY]) is Verdict.DENY


# --- the `gatecheck check` JSON ---------------------------------------------


def test_check_json_has_the_contract_keys_and_is_serialisable():
    out = check(entries=[doc_entry()]).to_dict()
    assert {"verdict", "reasons", "matches", "document", "snapshot", "channel", "operator",
            "masked_document_number", "notes"} <= set(out)
    assert set(out["snapshot"]) >= {"lists", "age_seconds", "stale"}
    assert set(out["matches"][0]) >= {"list", "action", "category", "reference", "kind",
                                      "valid_until", "redress", "list_name"}
    assert out["verdict"] == "DENY"
    assert out["document"]["document_number"] == "L898902C3"
    assert json.loads(json.dumps(out)) == out


def test_masked_document_number_shows_only_the_last_three_characters():
    assert check().masked_document_number == "******2C3"
    assert mask_document_number("123-456-567") == "******567"


def test_short_document_numbers_always_keep_three_characters_hidden():
    assert mask_document_number("AB12") == "******2"
    assert mask_document_number("123") == "******"
    assert mask_document_number(None) is None


def test_real_passport_scan_against_a_document_token_entry_is_denied():
    passport = parse_payload((SAMPLES / "passport-td3.txt").read_bytes(), today=date(2011, 1, 1))
    now = datetime(2011, 6, 1, 12, 0, tzinfo=timezone.utc)
    listed = replace(NO_FLY, heartbeat_at=now - timedelta(hours=1))
    entry = replace(doc_entry(), valid_from=date(2010, 1, 1))
    decision = check(passport, entries=[entry], lists=[listed], now=now)
    assert decision.verdict is Verdict.DENY
    assert decision.masked_document_number == "******2C3"


def test_every_reason_text_is_written_down_in_docs_verdicts():
    docs = (ROOT / "docs" / "verdicts.md").read_text(encoding="utf-8")
    texts = [value for name, value in vars(rules).items()
             if re.fullmatch(r"(REASON|NOTE)_[A-Z_]+", name)]
    assert len(texts) >= 10
    for text in texts:
        assert text in docs, text


# --- properties -------------------------------------------------------------

ALL_LISTS = {info.list_id: info for info in LISTS}


@st.composite
def entries(draw):
    info = draw(st.sampled_from(LISTS))
    kind = draw(st.sampled_from(list(TokenKind)))
    maker = doc_entry if kind is TokenKind.DOCUMENT else person_entry
    extra = {"which": draw(st.integers(0, 1))} if kind is TokenKind.PERSON else {}
    start = draw(st.dates(date(2024, 1, 1), date(2026, 1, 1)))
    return maker(info, action=draw(st.sampled_from(list(Action))),
                 reference=draw(st.sampled_from(["R1", "R2", "R3"])),
                 valid_from=start, valid_until=start + timedelta(days=draw(st.integers(0, 900))), **extra)


entry_lists = st.lists(entries(), max_size=6)
clearance_lists = st.lists(st.builds(clearance, st.sampled_from(LISTS)), max_size=2)
documents = st.sampled_from([PASSPORT, replace(PASSPORT, expiry_date=date(2020, 1, 1)),
                             replace(PASSPORT, checks={"composite": False})])
profiles = st.builds(DeviceProfile, st.frozensets(st.sampled_from(["air_travel", "star_hotel"])),
                     st.sampled_from([timedelta(hours=1), timedelta(hours=24), timedelta(days=40)]),
                     st.booleans())
PROPS = settings(max_examples=200, deadline=None)


@PROPS
@given(entry_lists, clearance_lists, profiles, documents)
def test_person_only_hits_never_yield_deny(found, cleared, profile, document):
    people = [e for e in found if e.kind is TokenKind.PERSON]
    assert check(document, entries=people, clearances=cleared, profile=profile).verdict is not Verdict.DENY


@PROPS
@given(entry_lists, entries(), clearance_lists, profiles, documents)
def test_verdict_is_monotonic_in_matches(found, more, cleared, profile, document):
    before = check(document, entries=found, clearances=cleared, profile=profile)
    after = check(document, entries=found + [more], clearances=cleared, profile=profile)
    assert rules.strength(after.verdict) >= rules.strength(before.verdict)


@PROPS
@given(entry_lists, clearance_lists, profiles, documents, st.sampled_from(["air_travel", "star_hotel"]))
def test_removing_a_scope_from_the_profile_never_makes_the_verdict_stronger(
        found, cleared, profile, document, scope):
    # Fail-open, so only the matches decide: under fail-closed, dropping the
    # last list in scope rightly makes the device stale and so REFER.
    wide = replace(profile, scopes=profile.scopes | {scope}, fail_closed=False)
    narrow = replace(wide, scopes=wide.scopes - {scope})
    strong = check(document, entries=found, clearances=cleared, profile=wide).verdict
    weak = check(document, entries=found, clearances=cleared, profile=narrow).verdict
    assert rules.strength(weak) <= rules.strength(strong)


@PROPS
@given(entry_lists, clearance_lists, profiles, documents)
def test_every_match_comes_from_an_in_force_entry_of_an_in_scope_list(found, cleared, profile, document):
    decision = check(document, entries=found, clearances=cleared, profile=profile)
    for match in decision.matches:
        assert profile.covers(ALL_LISTS[match.list_id])
        assert any(e.list_id == match.list_id and e.reference == match.reference and e.in_force(TODAY)
                   for e in found)
    keys = [(m.list_id, m.reference) for m in decision.matches]
    assert len(keys) == len(set(keys))


@PROPS
@given(st.text(alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=1, max_size=20))
def test_masking_always_hides_at_least_three_characters(number):
    masked = mask_document_number(number)
    shown = masked.removeprefix("******")
    assert len(number) - len(shown) >= min(3, len(number)) and number.endswith(shown)
