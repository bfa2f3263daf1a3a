"""framing.py: cutting a scanner stream into payloads, whatever the chunking."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.framing import Dropped, Framer, Framing, FramingError, parse_bytes_option

SAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "samples"
AAMVA = (SAMPLES / "licence-ca.txt").read_bytes()


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


def _run(framer: Framer, chunks: list[bytes], at: float = 0.0, step: float = 0.0) -> list:
    out = []
    for chunk in chunks:
        out += framer.feed(chunk, at)
        at += step
    return out


@settings(max_examples=150, deadline=None)
@given(payloads=st.lists(st.binary(min_size=1, max_size=60), min_size=1, max_size=6),
       suffix=st.sampled_from([b"\r", b"\n", b"\r\n", b"\x04", b"\x03\x04\x03"]),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_chunking_gives_the_same_suffix_frames(payloads, suffix, cuts):
    payloads = [p.replace(suffix[:1], b"") or b"x" for p in payloads]
    if len(suffix) > 1:  # a multi-byte suffix may not straddle payload and suffix either
        payloads = [p.replace(suffix[-1:], b"") or b"x" for p in payloads]
    stream = b"".join(p + suffix for p in payloads)
    framer = Framer(Framing(suffix=suffix, idle_seconds=None))
    assert _run(framer, _cut(stream, cuts)) == payloads
    assert framer.pending == 0


@settings(max_examples=100, deadline=None)
@given(payloads=st.lists(st.binary(min_size=1, max_size=80), min_size=1, max_size=5),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
       gap=st.floats(min_value=0.0, max_value=0.099))
def test_any_chunking_gives_the_same_idle_frames(payloads, cuts, gap):
    framer = Framer(Framing(suffix=None, idle_seconds=0.1))
    out, now = [], 0.0
    for payload in payloads:
        for chunk in _cut(payload, cuts):
            out += framer.feed(chunk, now)
            now += gap  # gaps inside a read stay under the idle time
        now += 0.1
    out += framer.poll(now)
    assert out == payloads


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=60))
def test_aamva_payload_survives_idle_framing_in_any_chunking(cuts):
    framer = Framer(Framing())
    out = _run(framer, _cut(AAMVA, cuts), step=0.001)
    assert out == []  # not idle yet
    assert framer.poll(10.0) == [AAMVA]


def test_cr_suffix_cuts_an_aamva_payload_apart():
    """Why CR/LF suffixes are not the default: the AAMVA header itself holds LF and CR."""
    out = Framer(Framing(suffix=b"\r", idle_seconds=None)).feed(AAMVA, 0.0)
    assert len(out) > 1 and AAMVA not in out


def test_eot_suffix_with_stx_prefix_keeps_aamva_exact():
    framer = Framer(Framing(prefix=b"\x02", suffix=b"\x04", idle_seconds=None))
    assert framer.feed(b"\x02" + AAMVA + b"\x04\x02" + AAMVA + b"\x04", 0.0) == [AAMVA, AAMVA]


def test_prefix_is_only_stripped_when_present():
    framer = Framer(Framing(prefix=b"]L0", suffix=b"\n", idle_seconds=None))
    assert framer.feed(b"]L0abc\nabc\n]L\n", 0.0) == [b"abc", b"abc", b"]L"]


def test_suffix_straddling_two_chunks_is_found():
    framer = Framer(Framing(suffix=b"\r\n", idle_seconds=None))
    assert framer.feed(b"abc\r", 0.0) == []
    assert framer.feed(b"\ndef\r", 0.0) == [b"abc"]
    assert framer.feed(b"\n", 0.0) == [b"def"]


def test_empty_reads_between_suffixes_are_skipped():
    framer = Framer(Framing(suffix=b"\r", idle_seconds=None))
    assert framer.feed(b"\r\rabc\r\r", 0.0) == [b"abc"]


def test_suffix_or_idle_whichever_comes_first():
    framer = Framer(Framing(suffix=b"\r", idle_seconds=0.2))
    assert framer.feed(b"one\rtw", 0.0) == [b"one"]
    assert framer.poll(0.1) == []
    assert framer.deadline() == pytest.approx(0.2)
    assert framer.poll(0.25) == [b"tw"]
    assert framer.deadline() is None


def test_idle_gap_is_honoured_even_when_nobody_polled():
    framer = Framer(Framing(idle_seconds=0.1))
    framer.feed(b"first", 0.0)
    assert framer.feed(b"second", 5.0) == [b"first"]
    assert framer.poll(5.1) == [b"second"]


def test_over_long_read_is_dropped_with_a_reason_and_memory_stays_bounded():
    framer = Framer(Framing(suffix=b"\r\n", idle_seconds=None, max_bytes=64))
    out = []
    for _ in range(1000):  # 100 kB with no suffix
        out += framer.feed(b"x" * 99 + b"\r", 0.0)
        assert len(framer._buffer) <= 64
    out += framer.feed(b"\nnext\r\n", 0.0)
    assert len(out) == 2
    assert isinstance(out[0], Dropped) and "exceeds max_bytes 64" in out[0].reason
    assert out[0].size == 100_000 - 1  # the last CR was half of the CR LF suffix
    assert out[1] == b"next"


def test_over_long_idle_read_is_dropped_then_framing_recovers():
    framer = Framer(Framing(idle_seconds=0.1, max_bytes=16))
    framer.feed(b"a" * 10, 0.0)
    framer.feed(b"a" * 10, 0.01)
    dropped = framer.poll(1.0)
    assert [type(d) for d in dropped] == [Dropped] and dropped[0].size == 20
    framer.feed(b"ok", 2.0)
    assert framer.poll(3.0) == [b"ok"]


def test_end_closes_a_read_out_of_band():
    framer = Framer(Framing(suffix=None, idle_seconds=None))
    framer.feed(b"typed", 0.0)
    assert framer.end() == [b"typed"]
    assert framer.end() == []


@pytest.mark.parametrize("kwargs, words", [
    ({"suffix": b""}, "suffix"),
    ({"suffix": "\r"}, "suffix"),
    ({"prefix": b"123456789"}, "prefix"),
    ({"idle_seconds": 0}, "idle_seconds"),
    ({"max_bytes": 4}, "max_bytes"),
])
def test_impossible_framing_is_refused_naming_the_option(kwargs, words):
    with pytest.raises(FramingError, match=words):
        Framing(**kwargs)


@pytest.mark.parametrize("text, value", [
    ("cr", b"\r"), ("LF", b"\n"), ("crlf", b"\r\n"), ("none", None),
    ("04", b"\x04"), ("0x02", b"\x02"), ("0d 0a", b"\r\n"),
])
def test_suffix_names_and_hex_bytes_parse(text, value):
    assert parse_bytes_option(text) == value


def test_unparseable_suffix_is_one_clear_error():
    with pytest.raises(FramingError, match="not cr, lf, crlf, none or hex"):
        parse_bytes_option("enter")
