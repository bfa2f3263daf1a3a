"""The delta payload: exact round trips, canonical bytes, bounded sizes, and only WireError on bad input.

Snapshots are format v2 (tests/sync/test_snapshot_wire.py).
"""

import os
import random
import struct
import time
import zlib
from collections import Counter
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.records import Action, Batch, Clearance, Entry, TokenKind
from bench.bench_wire import realistic_entries
from sync.wire import (
    FLAG_ZLIB,
    MAGIC,
    WireError,
    decode_delta,
    decode_payload,
    encode_delta,
    _varint,
    join_reference,
    split_reference,
)

LIST = "nfl"
BIG = dict(max_bytes=1 << 24, max_entries=1 << 20)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

tokens = st.binary(min_size=12, max_size=12)
days = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
references = st.one_of(
    st.text(max_size=24),
    st.builds(lambda p, n, s: f"{p}{n}{s}", st.sampled_from(["NFL-2024-", "", "X"]),
              st.integers(0, 10**12).map(str), st.sampled_from(["", "/A", "0"])),
)


def entry_strategy(token):
    return st.builds(
        Entry, token=st.just(token), list_id=st.just(LIST), kind=st.sampled_from(TokenKind),
        category=st.sampled_from(["violence", "fraud", "ü-kategorie"]) | st.text(max_size=8),
        action=st.sampled_from(Action), reference=references, valid_from=days, valid_until=days,
        redress=st.sampled_from(["", "Appeals office"]) | st.text(max_size=8),
    )


def clearance_strategy(token):
    return st.builds(Clearance, token=st.just(token), list_id=st.just(LIST),
                     redress_number=references, valid_until=days)


@st.composite
def deltas(draw):
    def unique_tokens():
        return draw(st.lists(tokens, unique=True, max_size=15))

    adds = [draw(entry_strategy(t)) for t in unique_tokens()]
    clearances = [draw(clearance_strategy(t)) for t in unique_tokens()]
    from_version = draw(st.integers(0, 2**40))
    to_version = from_version + draw(st.integers(0, 2**40))
    return LIST, from_version, to_version, adds, unique_tokens(), clearances, unique_tokens()


@SETTINGS
@given(delta=deltas())
def test_delta_round_trips_exactly_as_a_set(delta):
    list_id, start, end, adds, removes, add_c, remove_c = delta
    decoded = decode_delta(encode_delta(*delta), **BIG)
    assert (decoded.list_id, decoded.from_version, decoded.to_version) == (list_id, start, end)
    assert Counter(decoded.adds) == Counter(adds)
    assert Counter(decoded.removes) == Counter(removes)
    assert Counter(decoded.add_clearances) == Counter(add_c)
    assert Counter(decoded.remove_clearances) == Counter(remove_c)


@SETTINGS
@given(delta=deltas(), seed=st.randoms(use_true_random=False))
def test_the_same_change_in_any_order_gives_the_same_bytes(delta, seed):
    list_id, start, end, adds, removes, add_c, remove_c = delta
    shuffled = [list(part) for part in (adds, removes, add_c, remove_c)]
    for part in shuffled:
        seed.shuffle(part)
    assert encode_delta(list_id, start, end, *shuffled) == encode_delta(*delta)


def test_a_v1_snapshot_payload_type_is_refused_as_retired():
    body = b"\x02" + b"\x03nfl" + b"\x00\x01" + b"\x00" * 4
    with pytest.raises(WireError, match="no longer accepted"):
        decode_delta(MAGIC + b"\x00" + _varint(len(body)) + body, **BIG)


@SETTINGS
@given(reference=references)
def test_case_number_split_gives_the_reference_back_exactly(reference):
    template, number = split_reference(reference)
    assert join_reference(template, number) == reference


def test_decoded_delta_becomes_the_store_batch_with_envelope_fields():
    adds = realistic_entries(4)
    decoded = decode_delta(encode_delta(LIST, 3, 4, adds, [b"r" * 12]), **BIG)
    batch = decoded.batch(state_digest=b"d" * 32)
    assert isinstance(batch, Batch)
    assert (batch.from_version, batch.to_version, batch.remove, batch.state_digest) == (
        3, 4, (b"r" * 12,), b"d" * 32)
    assert set(batch.add) == set(adds)


def _realistic_payloads():
    adds = realistic_entries(300)
    return [
        encode_delta(LIST, 1, 2, adds, [os.urandom(12) for _ in range(50)],
                     [Clearance(os.urandom(12), LIST, "RDN-000017", date(2026, 1, 1))], [os.urandom(12)]),
        encode_delta(LIST, 1, 2, [], [bytes(range(12)), bytes(range(12, 24))]),  # stored, not compressed
        encode_delta(LIST, 0, 9, adds, ()),
    ]


PAYLOADS = _realistic_payloads()


def test_fixtures_cover_both_stored_and_compressed_bodies():
    assert {p[len(MAGIC)] for p in PAYLOADS} == {0, FLAG_ZLIB}


@pytest.mark.parametrize("payload", PAYLOADS, ids=["delta", "small", "additions"])
def test_every_truncation_raises_wire_error_only(payload):
    for cut in range(len(payload)):
        with pytest.raises(WireError):
            decode_payload(payload[:cut], **BIG)


@settings(max_examples=300, deadline=None)
@given(which=st.integers(0, len(PAYLOADS) - 1), edits=st.lists(
    st.tuples(st.integers(0, 10**9), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"])),
    min_size=1, max_size=4))
def test_mutated_payloads_decode_or_raise_wire_error_only(which, edits):
    data = bytearray(PAYLOADS[which])
    for at, value, how in edits:
        at %= len(data) + 1
        if how == "set" and at < len(data):
            data[at] = value
        elif how == "insert":
            data.insert(at, value)
        elif how == "delete" and at < len(data):
            del data[at]
    try:
        decode_payload(bytes(data), **BIG)
    except WireError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_wire_error_only(data):
    for candidate in (data, MAGIC + data, MAGIC + b"\x01" + data, MAGIC + b"\x00" + data):
        with pytest.raises(WireError):
            decode_payload(candidate, **BIG)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_wellformed_zlib_around_random_bodies_raises_wire_error_only(body):
    data = MAGIC + bytes([FLAG_ZLIB]) + _varint(len(body)) + zlib.compress(b"\x01\x03nfl" + body)
    with pytest.raises(WireError):
        decode_payload(data, **BIG)


def test_payload_over_max_bytes_is_refused_before_decoding():
    payload = PAYLOADS[0]
    with pytest.raises(WireError, match="more than the"):
        decode_delta(payload, max_bytes=len(payload) - 1, max_entries=10**6)
    assert decode_delta(payload, max_bytes=len(payload), max_entries=10**6)


def test_more_records_than_max_entries_is_refused():
    payload = encode_delta(LIST, 1, 2, realistic_entries(10), [b"a" * 12, b"b" * 12])
    assert decode_delta(payload, max_bytes=10**6, max_entries=12)
    with pytest.raises(WireError, match="max_entries"):
        decode_delta(payload, max_bytes=10**6, max_entries=11)


def test_decompression_bomb_is_refused_fast():
    bomb = zlib.compress(b"\x00" * (200 << 20), 9)  # 200 MiB of zeros in ~200 KB
    honest_header = MAGIC + bytes([FLAG_ZLIB]) + _varint(200 << 20) + bomb
    lying_header = MAGIC + bytes([FLAG_ZLIB]) + _varint(1000) + bomb
    started = time.perf_counter()
    with pytest.raises(WireError, match="more than the"):
        decode_delta(honest_header, max_bytes=1 << 20, max_entries=10**6)
    with pytest.raises(WireError, match="more bytes"):
        decode_delta(lying_header, max_bytes=1 << 20, max_entries=10**6)
    assert time.perf_counter() - started < 0.5


def test_body_length_must_match_what_is_there():
    body = PAYLOADS[1][len(MAGIC) + 2:]
    assert PAYLOADS[1][len(MAGIC)] == 0
    with pytest.raises(WireError, match="the header says"):
        decode_payload(MAGIC + b"\x00" + _varint(len(body) + 1) + body, **BIG)
    with pytest.raises(WireError, match="after the end"):
        decode_payload(PAYLOADS[0] + b"\x00", **BIG)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((LIST, 2, 1, [], []), "after to_version"),
        ((LIST, -1, 1, [], []), "non-negative"),
        (("", 1, 2, [], []), "list id"),
        ((LIST, 1, 2, [], [b"short"]), "12 bytes"),
        ((LIST, 1, 2, [], [b"a" * 12, b"a" * 12]), "repeat"),
        ((LIST, 1, 2, realistic_entries(1, list_id="other"), []), "list 'other'"),
        ((LIST, 1, 2, realistic_entries(1) * 2, []), "appears twice"),
        ((LIST, 1, 2, [Entry(b"t" * 12, LIST, TokenKind.PERSON, "c" * 70000, Action.DENY, "r",
                             date(2024, 1, 1), date(2025, 1, 1))], []), "more than 65535"),
        ((LIST, 1, 2, [Entry(b"t" * 12, LIST, TokenKind.PERSON, "\ud800", Action.DENY, "r",
                             date(2024, 1, 1), date(2025, 1, 1))], []), "not encodable"),
    ],
)
def test_encoding_an_impossible_change_raises_wire_error_with_reason(args, reason):
    with pytest.raises(WireError, match=reason):
        encode_delta(*args)


def test_realistic_additions_cost_under_20_bytes_and_removals_under_14():
    n = 10_000
    adds = encode_delta(LIST, 1, 2, realistic_entries(n), [])
    rng = random.Random(5)
    removes = encode_delta(LIST, 1, 2, [], [rng.randbytes(12) for _ in range(n)])
    assert len(adds) / n < 20
    assert len(removes) / n < 14
    unique_numbers = encode_delta(LIST, 1, 2, realistic_entries(n, shared_case_numbers=False), [])
    assert len(unique_numbers) / n < 20


def test_a_body_built_by_hand_from_the_wire_format_doc_decodes():
    token = bytes(range(12))
    meta = (b"\x02" + b"\x02" + b"\x08violence" + b"\x09NFL-2024-" + b"\x08" + b"\x00"
            + _varint(date(2024, 3, 1).toordinal()) + _varint(date(2027, 12, 31).toordinal()) + b"\x00")
    cmeta = b"\x04RDN-" + b"\x03" + b"\x02/B" + _varint(date(2026, 6, 30).toordinal())
    body = (b"\x01" + b"\x03nfl" + b"\x29\x2a"
            + b"\x01" + b"\x02" + meta + token + token[::-1] + _varint(12345) + b"\x02"
            + b"\x00"
            + b"\x01" + b"\x01" + cmeta + b"c" * 12 + b"\x11"
            + b"\x01" + b"d" * 12)
    decoded = decode_delta(MAGIC + b"\x00" + _varint(len(body)) + body, **BIG)
    common = (LIST, TokenKind.PERSON, "violence", Action.DENY)
    assert decoded.adds == (
        Entry(token, *common, "NFL-2024-00012345", date(2024, 3, 1), date(2027, 12, 31)),
        Entry(token[::-1], *common, "NFL-2024-00012347", date(2024, 3, 1), date(2027, 12, 31)),
    )
    assert decoded.add_clearances == (Clearance(b"c" * 12, LIST, "RDN-017/B", date(2026, 6, 30)),)
    assert (decoded.from_version, decoded.to_version, decoded.removes, decoded.remove_clearances) == (
        41, 42, (), (b"d" * 12,))


def test_header_layout_is_magic_flags_and_body_length():
    token = bytes(range(12))
    payload = encode_delta(LIST, 1, 2, [], [token])
    body = b"\x01" + b"\x03nfl" + b"\x01\x02" + b"\x00" + b"\x01" + token + b"\x00" + b"\x00"
    assert payload == MAGIC + b"\x00" + bytes([len(body)]) + body
    assert struct.unpack_from("4sB", payload) == (MAGIC, 0)


def test_wire_errors_belong_to_the_sync_error_family_with_a_readable_message():
    from sync.errors import SyncError

    with pytest.raises(SyncError) as caught:
        decode_delta(b"GCW2", **BIG)
    assert caught.value.message == caught.value.reason == "not a Gatecheck wire payload (bad magic)"
    assert caught.value.to_dict()["error"]["code"] == "malformed_payload"
