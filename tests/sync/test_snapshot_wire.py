"""The v3 snapshot payload: exact round trips in bounded blocks, the layout of the doc, and only WireError on bad input."""

import io
import os
import struct
import zlib
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.records import Action, Clearance, Entry, TokenKind
from bench.bench_wire import realistic_entries
from sync.digest import StateDigest
from sync.snapshot_wire import (
    BLOCK_RECORDS_MAX,
    MAGIC,
    SnapshotReader,
    SnapshotWriter,
    decode_snapshot,
    encode_snapshot,
)
from sync.identity import KEY_HASH_BYTES, token_key_hash
from sync.wire import WireError, _varint

LIST = "nfl"
LANES = bytes(range(256)) * 8
KEY = bytes(range(32))
KEY_HASH = token_key_hash(KEY)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

days = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
references = st.one_of(
    st.text(max_size=24),
    st.builds(lambda p, n, s: f"{p}{n}{s}", st.sampled_from(["NFL-2024-", "", "X"]),
              st.integers(0, 10**12).map(str), st.sampled_from(["", "/A", "0"])),
)


@st.composite
def lists(draw):
    tokens = draw(st.lists(st.binary(min_size=12, max_size=12), unique=True, max_size=30))
    entries = [Entry(t, LIST, draw(st.sampled_from(TokenKind)), draw(st.sampled_from(["fraud", "ü", ""])),
                     draw(st.sampled_from(Action)), draw(references), draw(days), draw(days),
                     draw(st.sampled_from(["", "Appeals office"]))) for t in tokens]
    cleared = draw(st.lists(st.binary(min_size=12, max_size=12), unique=True, max_size=5))
    clearances = [Clearance(t, LIST, draw(references), draw(days)) for t in cleared]
    return entries, clearances


@SETTINGS
@given(data=lists(), compress=st.booleans())
def test_snapshot_round_trips_exactly_with_its_lanes(data, compress):
    entries, clearances = data
    decoded = decode_snapshot(encode_snapshot(LIST, 9, LANES, entries, clearances, compress=compress,
                                              token_key_hash=KEY_HASH), max_entries=100)
    assert decoded.header[:4] == (LIST, 9, len(entries), len(clearances))
    assert decoded.header.token_key_hash == KEY_HASH
    assert decoded.header.lanes == LANES and decoded.header.checksum == StateDigest.from_bytes(LANES).checksum()
    assert list(decoded.entries) == sorted(entries, key=lambda e: e.token)
    assert list(decoded.clearances) == sorted(clearances, key=lambda c: c.token)


def test_a_big_list_streams_in_bounded_blocks_in_token_order():
    entries = realistic_entries(BLOCK_RECORDS_MAX + 5_000, seed=4, list_id=LIST)
    data = encode_snapshot(LIST, 3, LANES, entries, token_key_hash=KEY_HASH)
    reads = []
    stream = io.BytesIO(data)

    class Recording:
        def read(self, n):
            reads.append(n)
            return stream.read(n)

    reader = SnapshotReader(Recording(), max_entries=len(entries))
    blocks = list(reader.blocks())
    assert [len(b.refs) for b in blocks] == [BLOCK_RECORDS_MAX, 5_000]
    assert max(reads) < 2 * 1024 * 1024  # never the whole payload at once
    tokens = b"".join(b.tokens.tobytes() for b in blocks)
    assert tokens == b"".join(sorted(e.token for e in entries))
    assert len(data) / len(entries) < 18  # a v3 snapshot costs ~15-17 bytes a token


def test_the_same_list_in_any_order_gives_the_same_bytes():
    entries = realistic_entries(500, seed=5, list_id=LIST)
    assert (encode_snapshot(LIST, 1, LANES, entries, token_key_hash=KEY_HASH)
            == encode_snapshot(LIST, 1, LANES, entries[::-1], token_key_hash=KEY_HASH))


def test_writer_refuses_tokens_out_of_order_or_twice_and_a_broken_count():
    out = io.BytesIO()
    writer = SnapshotWriter(out, LIST, 1, LANES, token_key_hash=KEY_HASH, records=2)
    entry = realistic_entries(1, list_id=LIST)[0]
    writer.add_entry(entry)
    with pytest.raises(WireError, match="strictly increasing"):
        writer.add_entry(entry)
    with pytest.raises(WireError, match="promised 2 records"):
        writer.finish()


def test_a_snapshot_built_by_hand_from_the_wire_format_doc_decodes():
    token_a, token_b = bytes(range(12)), bytes(range(1, 13))
    meta = (b"\x02" + b"\x08violence" + b"\x09NFL-2024-" + b"\x08" + b"\x00"
            + _varint(date(2024, 3, 1).toordinal()) + _varint(date(2027, 12, 31).toordinal()) + b"\x00")
    key_a, key_b = int.from_bytes(token_a[:8], "big"), int.from_bytes(token_b[:8], "big")
    gap = key_b - key_a
    records = (b"\x01" + meta + b"\x02" + bytes([_width(gap), 1]) + struct.pack(">Q", key_a)
               + gap.to_bytes(_width(gap), "little") + token_a[8:] + token_b[8:] + b"\x00\x00"
               + struct.pack("<I", 12345) + struct.pack("<I", 12346 | 1 << 31))
    cleared = b"\x01" + b"c" * 12 + b"\x09RDN-017/B" + _varint(date(2026, 6, 30).toordinal())
    data = (MAGIC + b"\x03nfl" + b"\x2a" + KEY_HASH + b"\x02" + b"\x01" + LANES
            + b"\x02\x00" + _varint(len(cleared)) * 2 + cleared
            + b"\x01\x00" + _varint(len(records)) * 2 + records
            + b"\x00")
    decoded = decode_snapshot(data, max_entries=10)
    common = (LIST, "violence", Action.DENY)
    assert decoded.entries == (
        Entry(token_a, LIST, TokenKind.DOCUMENT, *common[1:], "NFL-2024-00012345", date(2024, 3, 1), date(2027, 12, 31)),
        Entry(token_b, LIST, TokenKind.PERSON, *common[1:], "NFL-2024-00012346", date(2024, 3, 1), date(2027, 12, 31)),
    )
    assert decoded.clearances == (Clearance(b"c" * 12, LIST, "RDN-017/B", date(2026, 6, 30)),)
    assert decoded.header.version == 42
    assert decoded.header.token_key_hash == KEY_HASH and decoded.header.token_key_hash[:8].hex() == "ed2fe0661a09ebcb"


def _width(value: int) -> int:
    return max(1, (value.bit_length() + 7) // 8)


SMALL = encode_snapshot(LIST, 7, LANES, realistic_entries(40, seed=6, list_id=LIST),
                        [Clearance(os.urandom(12), LIST, "RDN-1", date(2027, 1, 1))], token_key_hash=KEY_HASH)


def test_the_header_names_the_token_key_of_its_tokens_and_a_bad_hash_is_refused():
    other = token_key_hash(bytes(32))
    decoded = decode_snapshot(encode_snapshot(LIST, 7, LANES, [], token_key_hash=other), max_entries=1)
    assert decoded.header.token_key_hash == other != KEY_HASH
    for bad in (b"", KEY_HASH[:8], KEY_HASH + b"\x00", "ed2fe0661a09ebcb"):
        with pytest.raises(WireError, match=f"token key hash is {KEY_HASH_BYTES} bytes"):
            SnapshotWriter(io.BytesIO(), LIST, 1, LANES, token_key_hash=bad, records=0)
    # The hash sits right after the version: cut inside it and the decoder says what was cut.
    head = MAGIC + b"\x03nfl" + b"\x07"
    with pytest.raises(WireError, match="token key hash needs 32 bytes"):
        decode_snapshot(head + KEY_HASH[:20], max_entries=1)


def test_every_truncation_raises_wire_error_only():
    for cut in range(len(SMALL)):
        with pytest.raises(WireError):
            decode_snapshot(SMALL[:cut], max_entries=100)


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255),
                                st.sampled_from(["set", "insert", "delete"])), min_size=1, max_size=4))
def test_mutated_snapshots_decode_or_raise_wire_error_only(edits):
    data = bytearray(SMALL)
    for at, value, how in edits:
        at %= len(data) + 1
        if how == "set" and at < len(data):
            data[at] = value
        elif how == "insert":
            data.insert(at, value)
        elif how == "delete" and at < len(data):
            del data[at]
    try:
        decode_snapshot(bytes(data), max_entries=100)
    except WireError:
        pass


def test_more_records_than_max_entries_is_refused_at_the_header():
    with pytest.raises(WireError, match="max_entries"):
        SnapshotReader(io.BytesIO(SMALL), max_entries=10)


def test_a_block_that_inflates_past_its_declared_body_is_refused():
    bomb = zlib.compress(b"\x00" * 100_000)
    data = MAGIC + b"\x03nfl" + b"\x01" + KEY_HASH + b"\x01\x00" + LANES + b"\x01\x01" + _varint(10) + _varint(len(bomb)) + bomb
    with pytest.raises(WireError, match="larger than its body|exactly"):
        decode_snapshot(data, max_entries=10)


def test_bytes_after_the_end_mark_are_refused():
    with pytest.raises(WireError, match="after the end"):
        decode_snapshot(SMALL + b"\x00", max_entries=100)
