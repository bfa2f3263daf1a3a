"""The list state digest: order-independent, incremental, and reproducible from docs/wire-format.md."""

import hashlib
from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.records import Action, Clearance, Entry, TokenKind
from sync.digest import DIGEST_BYTES, DigestError, StateDigest, encode_element

ENTRY = Entry(
    bytes(range(12)), "nfl", TokenKind.PERSON, "aviation-security", Action.DENY,
    "NFL-2024-00012345", date(2024, 3, 1), date(2027, 12, 31), "Redress office, ref. RDN-7",
)
CLEARANCE = Clearance(bytes(range(12, 24)), "nfl", "RDN-2024-000017", date(2026, 6, 30))

days = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
entries = st.builds(
    Entry,
    token=st.binary(min_size=12, max_size=12),
    list_id=st.sampled_from(["nfl", "hotel-ban", "ü-list"]),
    kind=st.sampled_from(TokenKind),
    category=st.text(max_size=12),
    action=st.sampled_from(Action),
    reference=st.text(max_size=20),
    valid_from=days,
    valid_until=days,
    redress=st.text(max_size=20),
)
clearances = st.builds(
    Clearance,
    token=st.binary(min_size=12, max_size=12),
    list_id=st.sampled_from(["nfl", "hotel-ban"]),
    redress_number=st.text(max_size=20),
    valid_until=days,
)
elements = st.lists(st.one_of(entries, clearances), max_size=12)
SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(items=elements, seed=st.randoms(use_true_random=False))
def test_digest_does_not_depend_on_element_order(items, seed):
    shuffled = list(items)
    seed.shuffle(shuffled)
    one_by_one = StateDigest()
    for item in shuffled:
        one_by_one.add(item)
    assert StateDigest.of(items) == one_by_one
    assert StateDigest.of(items).checksum() == one_by_one.checksum()


@SETTINGS
@given(held=elements, change=elements)
def test_adding_then_removing_a_delta_restores_the_previous_digest(held, change):
    before = StateDigest.of(held)
    after = before.copy().apply(change, ())
    assert after.apply((), change) == before
    for item in change:
        before.add(item)
    for item in reversed(change):
        before.remove(item)
    assert before == StateDigest.of(held)


@SETTINGS
@given(held=elements, adds=elements, data=st.data())
def test_incremental_update_equals_digest_from_scratch(held, adds, data):
    removes = data.draw(st.lists(st.sampled_from(held), unique_by=id) if held else st.just([]))
    incremental = StateDigest.of(held).apply(adds, removes)
    remaining = list(held)
    for item in removes:
        remaining.remove(item)
    assert incremental == StateDigest.of(remaining + adds)


def test_a_delta_of_thousands_updates_like_a_rebuild_across_hashing_chunks():
    many = [Entry(i.to_bytes(12, "big"), "nfl", TokenKind.DOCUMENT, "fraud", Action.REFER,
                  f"C-{i}", date(2024, 1, 1), date(2025, 1, 1)) for i in range(9000)]
    stepwise = StateDigest.of(many[:100]).apply(many[100:], many[:50])
    assert stepwise == StateDigest.of(many[50:])


# Entries of a real delta share their metadata; the bulk path encodes it once per combination.
shared_entries = st.builds(
    Entry,
    token=st.binary(min_size=12, max_size=12),
    list_id=st.sampled_from(["nfl", "ü-list"]),
    kind=st.sampled_from([*TokenKind, "person", "document"]),
    category=st.sampled_from(["a", "ab", ""]),
    action=st.sampled_from([*Action, "DENY"]),
    reference=st.sampled_from(["", "b", "NFL-1", "ü"]),
    valid_from=st.sampled_from([date(2024, 1, 1), date(999, 12, 31)]),
    valid_until=st.sampled_from([date(2025, 1, 1), date(2024, 1, 1)]),
    redress=st.sampled_from(["", "c", "Redress office"]),
)


@SETTINGS
@given(items=st.lists(st.one_of(shared_entries, clearances), max_size=40))
def test_entries_sharing_metadata_hash_in_bulk_exactly_as_one_at_a_time(items):
    one_by_one = StateDigest()
    for item in items:
        one_by_one.add(item)  # encode_element, field by field
    assert StateDigest.of(items) == one_by_one
    assert StateDigest().apply(items, items) == StateDigest()


@pytest.mark.parametrize(
    "changed",
    [
        {"token": bytes(range(1, 13))},
        {"list_id": "hotel-ban"},
        {"kind": TokenKind.DOCUMENT},
        {"category": "violence"},
        {"action": Action.REFER},
        {"reference": "NFL-2024-00012346"},
        {"valid_from": date(2024, 3, 2)},
        {"valid_until": date(2027, 12, 30)},
        {"redress": ""},
    ],
    ids=lambda changed: next(iter(changed)),
)
def test_changing_any_metadata_field_changes_the_digest(changed):
    assert StateDigest.of([replace(ENTRY, **changed)]) != StateDigest.of([ENTRY])


def test_field_boundaries_cannot_be_shifted_between_fields():
    a = Entry(ENTRY.token, "nfl", TokenKind.PERSON, "ab", Action.DENY, "c", ENTRY.valid_from, ENTRY.valid_until)
    b = Entry(ENTRY.token, "nfl", TokenKind.PERSON, "a", Action.DENY, "bc", ENTRY.valid_from, ENTRY.valid_until)
    assert encode_element(a) != encode_element(b)


def test_a_clearance_and_an_entry_with_the_same_token_are_different_elements():
    clearance = Clearance(ENTRY.token, "nfl", ENTRY.reference, ENTRY.valid_until)
    assert StateDigest.of([clearance]) != StateDigest.of([ENTRY])


def test_element_encoding_matches_the_layout_in_wire_format_doc():
    def text(s):
        raw = s.encode("utf-8")
        return len(raw).to_bytes(4, "big") + raw

    entry = (b"GCDIG1" + b"\x01" + ENTRY.token + text("nfl") + text("person") + text("aviation-security")
             + text("DENY") + text("NFL-2024-00012345") + b"20240301" + b"20271231"
             + text("Redress office, ref. RDN-7"))
    clearance = b"GCDIG1" + b"\x02" + CLEARANCE.token + text("nfl") + text("RDN-2024-000017") + b"20260630"
    assert encode_element(ENTRY) == entry
    assert encode_element(CLEARANCE) == clearance
    lanes = np.frombuffer(hashlib.shake_256(entry).digest(2048), "<u2").astype(np.uint32)
    lanes += np.frombuffer(hashlib.shake_256(clearance).digest(2048), "<u2")
    by_hand = (lanes % 65536).astype("<u2").tobytes()
    assert StateDigest.of([ENTRY, CLEARANCE]).to_bytes() == by_hand


def test_known_answer_vectors():
    assert StateDigest().checksum().hex() == (
        "e5a00aa9991ac8a5ee3109844d84a55583bd20572ad3ffcd42792f3c36b183ad")
    one = StateDigest.of([ENTRY])
    assert one.to_bytes()[:8].hex() == "7e17f16a35f4b129"
    assert one.checksum().hex() == "a73a195a2827257f2cd8bfcc4cc60a36f524e37470eec85fe9f8bf915d9e1b1d"
    both = StateDigest.of([ENTRY, CLEARANCE])
    assert both.to_bytes()[:8].hex() == "22c2693513cefe91"
    assert both.checksum().hex() == "85b71aa4ed2a8340494af6c654ab8033ee99159a992dee6456a631881e86d51a"


def test_empty_digest_is_all_zero_lanes_and_checksum_is_sha256_of_the_lanes():
    assert StateDigest().to_bytes() == bytes(DIGEST_BYTES)
    digest = StateDigest.of([ENTRY])
    assert digest.checksum() == hashlib.sha256(digest.to_bytes()).digest()


@SETTINGS
@given(items=elements)
def test_serialised_lanes_round_trip_and_keep_updating(items):
    digest = StateDigest.of(items)
    restored = StateDigest.from_bytes(digest.to_bytes())
    assert restored == digest
    assert restored.add(ENTRY) == digest.copy().add(ENTRY)


def test_copy_is_independent_of_the_original():
    original = StateDigest.of([ENTRY])
    copy = original.copy()
    copy.add(CLEARANCE)
    assert original == StateDigest.of([ENTRY])


@pytest.mark.parametrize("size", [0, 2047, 2049, 32])
def test_serialised_digest_of_the_wrong_size_is_refused(size):
    with pytest.raises(DigestError, match="2048 bytes"):
        StateDigest.from_bytes(bytes(size))


@pytest.mark.parametrize(
    "bad",
    [b"not an entry", Entry(b"short", "nfl", TokenKind.PERSON, "c", Action.DENY, "r", date(2024, 1, 1),
                            date(2025, 1, 1))],
    ids=["not an element", "short token"],
)
def test_something_that_is_not_a_well_formed_element_is_refused(bad):
    with pytest.raises(DigestError):
        StateDigest().add(bad)
    with pytest.raises(DigestError):
        StateDigest.of([ENTRY, bad])
