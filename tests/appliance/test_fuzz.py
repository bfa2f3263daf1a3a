"""Hostile bytes at the scanner port: only typed errors come out, and nothing hangs."""

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.documents import DocumentError, parse_payload
from tests.appliance.test_detect import AAMVA, BCBP, TD1, TD3

SEEDS = [AAMVA, TD3.encode(), TD1.encode(), BCBP.encode(),
         b"M2DESMARAIS/LUC       EABC123 YULFRAAC 0834 326J001A0025 100ABC123 FRAGVALH 3664 327C012C0069 100"]


def _parse_or_typed_error(data: bytes) -> None:
    try:
        doc = parse_payload(data)
    except DocumentError as exc:
        assert exc.message and isinstance(exc.code, str)
    else:
        doc.to_dict()  # a parsed document must always serialise


# A deadline turns a hang into a failure; 2 s is far above any real parse.
@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_give_a_document_or_a_typed_error(data):
    _parse_or_typed_error(data)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.integers(min_value=0, max_value=2**32 - 1))
def test_mutated_real_payloads_give_a_document_or_a_typed_error(seed, rnd_seed):
    rnd = random.Random(rnd_seed)
    data = bytearray(seed)
    for _ in range(rnd.randint(1, 8)):
        op = rnd.random()
        pos = rnd.randrange(len(data) + 1)
        if op < 0.4 and data:
            data[min(pos, len(data) - 1)] = rnd.randrange(256)
        elif op < 0.7:
            data[pos:pos] = bytes([rnd.choice(b"\n\r\x1e<0123456789ADLZ^> /")])
        elif data:
            del data[pos:pos + rnd.randint(1, 10)]
    _parse_or_typed_error(bytes(data))


@settings(max_examples=200, deadline=2000)
@given(st.sampled_from(SEEDS), st.integers(min_value=0, max_value=600))
def test_truncated_real_payloads_give_a_document_or_a_typed_error(seed, cut):
    _parse_or_typed_error(seed[:cut])


# The slowest of these took 3.6 ms (a real header, then 16 KiB of subfile
# look-alikes for the offset repair to scan). 1 s leaves room for a loaded CI
# box and still catches a repair that turns quadratic or worse on 16 KiB.
LARGE_INPUT_SECONDS = 1.0
_AAMVA_HEADER = AAMVA[:AAMVA.index(b"DL", 20)]  # header and subfile designators


@pytest.mark.parametrize(
    "data",
    [
        (b"@\n\x1e\rANSI DL" + b"DLDAQ\n" * 2700)[:16384],
        (_AAMVA_HEADER + b"DLDAQ\n" * 2700)[:16384],
        (AAMVA.replace(b"\r", b"\r\n") + b"DLDAB\r" * 2600)[:16384],
        b"M4" + b"/" * 16000,
        (b"P<" + b"<" * 42 + b"\n") * 360,
        b"P<UTO" + b"K" * 39 + b"\n" + b"K" * 44,  # every filler possibly misread: the repair search
    ],
    ids=["aamva-designators", "aamva-header-then-lookalikes", "aamva-wedge-then-lookalikes",
         "bcbp-slashes", "mrz-fillers", "mrz-all-k"],
)
def test_large_repetitive_input_under_the_limit_does_not_hang(data):
    started = time.perf_counter()
    _parse_or_typed_error(data)
    elapsed = time.perf_counter() - started
    assert elapsed < LARGE_INPUT_SECONDS, f"{elapsed:.3f} s for {len(data)} bytes"
