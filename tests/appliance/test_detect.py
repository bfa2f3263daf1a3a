"""One entry point: the right parser by payload shape, typed errors for everything else."""

import pytest

from appliance.documents import DocumentError, detect_format, parse_payload
from appliance.documents.errors import EmptyInput, InputTooLarge, UnknownFormat
from appliance.documents.model import MAX_PAYLOAD_BYTES

TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10\n"
)
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<\n"
    "7408122F1204159UTO<<<<<<<<<<<6\n"
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<\n"
)
BCBP = "M1DESMARAIS/LUC       EABC123 YULFRAAC 0834 326J001A0025 100"
AAMVA = (
    b"@\n\x1e\rANSI 636014100102DL00410051ZC00920007"
    b"DLDAQD1234567\nDCSPUBLIC\nDACJOHN\nDBB01311970\nDCGUSA\rZCZCAX\r"
)


@pytest.mark.parametrize(
    ("payload", "fmt"),
    [(TD3, "mrz"), (TD1, "mrz"), (BCBP, "bcbp"), (AAMVA, "aamva"),
     (TD3.replace("\n", ""), "mrz"), ("  " + BCBP + "\r\n", "bcbp")],
)
def test_each_format_is_recognised_by_its_shape(payload, fmt):
    assert detect_format(payload) == fmt
    assert parse_payload(payload).format == fmt


@pytest.mark.parametrize(
    "payload",
    ["]L2" + BCBP, "]z0" + BCBP, BCBP.lower(), "M1MUELLER/ANSI MR     EABC123 YULFRAAC 0834 326J001A0025 100"],
)
def test_boarding_pass_with_scanner_prefix_lowercase_or_odd_name_is_still_a_boarding_pass(payload):
    assert detect_format(payload) == "bcbp"
    assert parse_payload(payload).legs[0].flight_number == "0834"


def test_bytes_and_text_payloads_parse_the_same():
    assert parse_payload(TD3.encode()).to_dict() == parse_payload(TD3).to_dict()


def test_oversized_input_is_refused_before_parsing():
    with pytest.raises(InputTooLarge, match="at most 16384 bytes"):
        parse_payload(b"M1" + b"A" * MAX_PAYLOAD_BYTES)


@pytest.mark.parametrize("payload", [b"", b"   \r\n", ""])
def test_empty_scan_says_nothing_was_scanned(payload):
    with pytest.raises(EmptyInput, match="nothing was scanned"):
        parse_payload(payload)


@pytest.mark.parametrize("payload", [b"hello world", b"https://example.invalid/qr", b"\x00\x01\x02", "1234567890"])
def test_unknown_payload_names_the_formats_it_is_not(payload):
    with pytest.raises(UnknownFormat) as info:
        parse_payload(payload)
    assert "AAMVA" in info.value.message and "MRZ" in info.value.message and "BCBP" in info.value.message
    assert info.value.to_dict() == {"error": {"code": "unknown_format", "message": info.value.message}}


def test_every_error_is_one_human_readable_line():
    for payload in [b"", b"junk", b"M9xx", b"@\n\x1e\rANSI 63", b"P<UTOERIKSSON<<ANNA\n12345"]:
        with pytest.raises(DocumentError) as info:
            parse_payload(payload)
        message = info.value.message
        assert message and "\n" not in message and "Traceback" not in message
