"""IATA BCBP (Resolution 792) boarding passes: spec examples, versions, dates, names, repairs."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.documents.bcbp import julian_on_or_after, julian_to_date, parse_bcbp, split_passenger_name
from appliance.documents.errors import DocumentError, EmptyInput, InputTooLarge, MalformedBCBP
from appliance.documents.model import MAX_PAYLOAD_BYTES
from appliance.specimens.bcbp import (
    REPEATED_WIDTHS,
    UNIQUE_WIDTHS,
    EncLeg,
    EncPass,
    day_of_year,
    encode_bcbp,
    issue_date_item,
)

SAMPLE = Path(__file__).resolve().parents[2] / "appliance" / "samples" / "boarding-pass.txt"

SECURITY = ("GIWVC5EH7JNT684FVNJ91W2QA4DVN5J8K4F0L0GEQ3DF5TGBN8709HKT5D3DW3GBHFC"
            "VHMY7J5T6HFR41W2QA4DVN5J8K4F0L0GE")
# Resolution 792 Attachment B, example 1: mandatory items and security data.
SPEC_M1 = "M1DESMARAIS/LUC       EABC123 YULFRAAC 0834 326J001A0025 100^164" + SECURITY
# Example 2: two legs, version 6 conditional items, airline data, security data.
SPEC_M2 = (
    "M2DESMARAIS/LUC       EABC123 YULFRAAC 0834 226F001A0025 14D>6181WW6225BAC 0014123456003"
    "2A0141234567890 1AC AC 1234567890123    20KYLX58ZDEF456 FRAGVALH 3664 227C012C0002 12E"
    "2A0140987654321 1AC AC 1234567890123    2PCNWQ^164" + SECURITY
)
# Implementation guide appendix B: a version 2 home-printed pass (41-character
# repeated block, no fast track) and a version 5 pass with very short blocks.
GUIDE_V2 = ("M1TEST/HIDDEN         E8OQ6FU FRARLGLH 4010 012C004D0001 35C>2180WW6012BLH"
            "              2922023642241060 LH                        *30600000K09         ")
GUIDE_V5 = "M1TEST/PETER          E24Z5RN AMSBRUKL 1733 019M008A0001 316>503  W0D0742497067621"
# An early pass: variable field without '>' (no conditional section).
OLD_NO_CONDITIONAL = "M1SOLLE/JOSUHUA       EQHSLJX ATLMEMDL 0254 006Y28C      10C3JIJI7O4M28C"
TWO_LEGS_MANDATORY_ONLY = ("M2DESMARAIS/LUC       EABC123 YULFRAAC 0834 326J001A0025 100"
                           "ABC123 FRAGVALH 3664 327C012C0069 100")


def _leg(**overrides) -> EncLeg:
    values = dict(pnr="ABC123", from_airport="YUL", to_airport="FRA", carrier="AC",
                  flight_number="0834", day_of_year=326, compartment="J", seat="001A",
                  sequence="0025", passenger_status="1")
    values.update(overrides)
    return EncLeg(**values)


# -- the spec's own examples ------------------------------------------------------


def test_spec_example_with_mandatory_items_and_security_data():
    doc = parse_bcbp(SPEC_M1, today=date(2025, 11, 20))
    assert (doc.format, doc.document_code, doc.document_number) == ("bcbp", "BP", None)
    assert (doc.surname, doc.given_names) == ("DESMARAIS", "LUC")
    assert doc.date_of_birth is None and doc.issue_date is None and doc.nationality is None
    [leg] = doc.legs
    assert leg.to_dict() | {"conditional": None} == {
        "pnr": "ABC123", "from": "YUL", "to": "FRA", "carrier": "AC", "flight_number": "0834",
        "flight_day_of_year": 326, "flight_date": "2025-11-22", "compartment": "J",
        "seat": "001A", "sequence": "0025", "passenger_status": "1", "conditional": None,
    }
    assert leg.conditional["variable_size"] == 0
    assert {v for k, v in leg.conditional.items() if k != "variable_size"} == {None}
    assert doc.extra["electronic_ticket"] is True and doc.extra["version"] is None
    assert doc.extra["security"] == {"type": "1", "data": SECURITY}
    assert doc.checks == {"field_sizes": True} and doc.valid and doc.warnings == []


def test_spec_example_two_legs_with_conditional_items():
    doc = parse_bcbp(SPEC_M2, today=date(2016, 8, 10))
    assert doc.valid and doc.warnings == []
    extra = doc.extra
    assert {k: extra[k] for k in ("version", "passenger_description", "checkin_source",
                                  "issuance_source", "issue_date", "document_type", "issuer",
                                  "bag_tags", "unique_unknown")} == {
        "version": 6, "passenger_description": "1", "checkin_source": "W",
        "issuance_source": "W", "issue_date": date(2016, 8, 12), "document_type": "B",
        "issuer": "AC", "bag_tags": ["0014123456003"], "unique_unknown": None,
    }
    first, second = doc.legs
    assert (first.flight_date, second.flight_date) == (date(2016, 8, 13), date(2016, 8, 14))
    assert (second.pnr, second.from_airport, second.to_airport, second.carrier) == (
        "DEF456", "FRA", "GVA", "LH")
    assert (second.flight_number, second.compartment, second.seat, second.sequence) == (
        "3664", "C", "012C", "0002")
    assert first.conditional == {
        "variable_size": 0x4D, "airline_numeric_code": "014", "document_serial_number": "1234567890",
        "selectee": None, "document_verification": "1", "marketing_carrier": "AC",
        "frequent_flyer_airline": "AC", "frequent_flyer_number": "1234567890123",
        "id_ad_indicator": None, "free_baggage_allowance": "20K", "fast_track": "Y",
        "repeated_unknown": None, "airline_data": "LX58Z",
    }
    assert second.conditional["variable_size"] == 0x2E
    assert second.conditional["document_serial_number"] == "0987654321"
    assert second.conditional["free_baggage_allowance"] == "2PC"
    assert (second.conditional["fast_track"], second.conditional["airline_data"]) == ("N", "WQ")
    assert extra["security"] == {"type": "1", "data": SECURITY}


def test_version_2_pass_has_no_fast_track_and_keeps_airline_data_verbatim():
    doc = parse_bcbp(GUIDE_V2, today=date(2016, 1, 12))
    assert doc.valid and doc.extra["version"] == 2
    assert doc.extra["issue_date"] == date(2016, 1, 12) and doc.extra["bag_tags"] == []
    [leg] = doc.legs
    assert leg.conditional["free_baggage_allowance"] is None
    assert leg.conditional["fast_track"] is None
    assert leg.conditional["airline_numeric_code"] == "220"
    assert leg.conditional["airline_data"] == "*30600000K09         "


def test_version_5_short_blocks_leave_the_later_fields_null():
    doc = parse_bcbp(GUIDE_V5, today=date(2015, 1, 15))
    assert doc.valid and doc.extra["version"] == 5
    assert doc.extra["issuance_source"] == "W"
    assert doc.extra["issue_date"] is None and doc.extra["issuer"] is None
    [leg] = doc.legs
    assert leg.conditional["document_serial_number"] == "2497067621"
    assert leg.conditional["marketing_carrier"] is None and leg.conditional["fast_track"] is None


def test_pass_without_conditional_section_reads_its_variable_field_as_airline_data():
    doc = parse_bcbp(OLD_NO_CONDITIONAL, today=date(2017, 1, 5))
    assert doc.valid and doc.extra["version"] is None
    [leg] = doc.legs
    assert (leg.seat, leg.sequence) == ("28C", None)
    assert leg.conditional["airline_data"] == "3JIJI7O4M28C"


def test_two_legs_without_conditional_items():
    doc = parse_bcbp(TWO_LEGS_MANDATORY_ONLY, today=date(2025, 11, 20))
    assert doc.valid
    assert [(leg.from_airport, leg.to_airport, leg.flight_date) for leg in doc.legs] == [
        ("YUL", "FRA", date(2025, 11, 22)), ("FRA", "GVA", date(2025, 11, 23))]
    assert doc.legs[1].sequence == "0069"


def test_four_legs_with_conditional_items_on_every_leg():
    legs = [_leg(pnr=f"PNR{n}", day_of_year=100 + n, repeated={"airline_numeric_code": f"00{n}"},
                 airline_data=f"X{n}") for n in range(4)]
    text = encode_bcbp(EncPass(name="DOE/JANE", legs=legs, version=7, unique={"issuer": "AC"}))
    doc = parse_bcbp(text, today=date(2024, 4, 1))
    assert doc.valid
    assert [leg.conditional["airline_numeric_code"] for leg in doc.legs] == ["000", "001", "002", "003"]
    assert [leg.conditional["airline_data"] for leg in doc.legs] == ["X0", "X1", "X2", "X3"]
    assert [leg.flight_date for leg in doc.legs] == [date(2024, 4, 9) + timedelta(n) for n in range(4)]


def test_bundled_sample_parses_cleanly():
    doc = parse_bcbp(SAMPLE.read_bytes(), today=date(2026, 11, 27))
    assert doc.valid and doc.warnings == []
    assert (doc.surname, doc.given_names, doc.extra["title"]) == ("ERIKSSON", "ANNA", "MS")
    assert [(leg.from_airport, leg.to_airport) for leg in doc.legs] == [("OSL", "FRA"), ("FRA", "YUL")]
    assert {leg.flight_date for leg in doc.legs} == {date(2026, 11, 28)}
    json.dumps(doc.to_dict())


def test_leg_variable_field_size_is_kept_in_conditional():
    doc = parse_bcbp(SPEC_M2, today=date(2016, 8, 10))
    assert [leg.conditional["variable_size"] for leg in doc.legs] == [0x4D, 0x2E]
    assert doc.to_dict()["legs"][1]["conditional"]["variable_size"] == 0x2E


def test_datetime_today_is_read_as_its_date():
    at_noon = parse_bcbp(SPEC_M1, today=datetime(2025, 11, 20, 12, 30))
    assert at_noon.to_dict() == parse_bcbp(SPEC_M1, today=date(2025, 11, 20)).to_dict()
    assert at_noon.legs[0].flight_date == date(2025, 11, 22)


def test_bytes_and_text_give_the_same_document():
    assert parse_bcbp(SPEC_M2.encode(), today=date(2016, 8, 10)).to_dict() == \
        parse_bcbp(SPEC_M2, today=date(2016, 8, 10)).to_dict()


# -- versions and block sizes -----------------------------------------------------


@pytest.mark.parametrize("version", range(1, 9))
@pytest.mark.parametrize("repeated_count", [0, 2, 9, 10])
def test_every_version_is_read_by_its_declared_block_sizes(version, repeated_count):
    repeated = {name: "7" * width for name, width in REPEATED_WIDTHS}
    text = encode_bcbp(EncPass(
        name="DOE/JOHN", version=version, unique={"checkin_source": "K"}, unique_count=3,
        legs=[_leg(repeated=repeated, repeated_count=repeated_count, airline_data="AIRLINE")],
    ))
    doc = parse_bcbp(text, today=date(2025, 11, 1))
    assert doc.valid and doc.extra["version"] == version
    assert doc.extra["checkin_source"] == "K" and doc.extra["issue_date"] is None
    conditional = doc.legs[0].conditional
    for index, (name, width) in enumerate(REPEATED_WIDTHS):
        assert conditional[name] == ("7" * width if index < repeated_count else None)
    assert conditional["airline_data"] == "AIRLINE"


def test_block_longer_than_the_known_fields_keeps_the_surplus():
    # A later version may append items: they must not spill into airline data.
    known = "".join(("9" * width) for _, width in REPEATED_WIDTHS)
    variable = ">9" + "00" + f"{len(known) + 3:02X}" + known + "NEW" + "PRIVATE"
    text = SPEC_M1[:58] + f"{len(variable):02X}" + variable
    doc = parse_bcbp(text, today=date(2025, 11, 1))
    assert doc.valid and doc.extra["version"] == 9
    assert doc.legs[0].conditional["fast_track"] == "9"
    assert doc.legs[0].conditional["repeated_unknown"] == "NEW"
    assert doc.legs[0].conditional["airline_data"] == "PRIVATE"


def test_three_bag_tags_are_listed_in_order():
    unique = {"bag_tag_1": "0014123456003", "bag_tag_2": "0014123460001", "bag_tag_3": "0220000001001"}
    doc = parse_bcbp(encode_bcbp(EncPass(name="DOE/JOHN", version=6, unique=unique, legs=[_leg()])),
                     today=date(2025, 11, 1))
    assert doc.extra["bag_tags"] == list(unique.values())


def test_block_ending_inside_a_field_keeps_the_partial_value_with_a_warning():
    variable = ">6" + "05" + "1WW62" + "00"
    doc = parse_bcbp(SPEC_M1[:58] + f"{len(variable):02X}" + variable, today=date(2025, 11, 1))
    assert doc.extra["issuance_source"] == "W"
    assert any("ends inside issue_date" in w for w in doc.warnings)
    assert doc.extra["issue_date"] is None and doc.valid


# -- names and titles -------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("DESMARAIS/LUC", ("DESMARAIS", "LUC", None)),
    ("SMITH/JOHN MR", ("SMITH", "JOHN", "MR")),
    ("SMITH/JOHNMR", ("SMITH", "JOHN", "MR")),
    ("SMITH/JANEMRS", ("SMITH", "JANE", "MRS")),
    ("SMITH/ANNAMISS", ("SMITH", "ANNA", "MISS")),
    ("SMITH/TOMMSTR", ("SMITH", "TOM", "MSTR")),
    ("SMITH/JANE MS", ("SMITH", "JANE", "MS")),
    ("SMITH/JOHN DR", ("SMITH", "JOHN", "DR")),
    ("SMITH/ANNA MARIA MRS", ("SMITH", "ANNA MARIA", "MRS")),
    ("SMITH/MR", ("SMITH", None, "MR")),
    ("VAN DER BERG/PIETMR", ("VAN DER BERG", "PIET", "MR")),
    ("MADONNA", ("MADONNA", None, None)),
])
def test_name_splits_into_surname_given_names_and_title(raw, expected):
    assert split_passenger_name(raw.ljust(20)) == expected


@pytest.mark.parametrize("raw", [
    "HASSAN/OMAR", "KHALED/AMR", "ALNIMR/NIMR", "JONES/WILLIAMS", "PETROV/ALEXANDR",
    "SMITH/ADAMS", "LEOPOLD/EMR",
])
def test_given_names_that_merely_end_like_a_title_are_left_whole(raw):
    # MS and DR are never stripped when glued (WILLIAMS, ALEXANDR); a glued MR
    # needs three letters before it, so AMR, NIMR and the initial-plus-title
    # EMR of the implementation guide stay whole rather than risk a real name.
    surname, given, title = split_passenger_name(raw)
    assert (given, title) == (raw.split("/")[1], None)


def test_title_is_reported_in_extra_and_removed_from_given_names():
    text = encode_bcbp(EncPass(name="SMITH/JOHNMR", legs=[_leg()]))
    doc = parse_bcbp(text, today=date(2025, 11, 1))
    assert (doc.surname, doc.given_names, doc.extra["title"]) == ("SMITH", "JOHN", "MR")
    assert doc.extra["passenger_name"] == "SMITH/JOHNMR"


# -- Julian dates -----------------------------------------------------------------


@pytest.mark.parametrize(("day", "reference", "expected"), [
    (2, date(2025, 12, 30), date(2026, 1, 2)),      # issued before New Year, flown after
    (364, date(2026, 1, 2), date(2025, 12, 30)),    # scanned just after New Year
    (326, date(2025, 11, 20), date(2025, 11, 22)),
    (60, date(2024, 3, 1), date(2024, 2, 29)),      # leap year
    (60, date(2025, 3, 1), date(2025, 3, 1)),
    (366, date(2024, 12, 1), date(2024, 12, 31)),
    (366, date(2025, 1, 3), date(2024, 12, 31)),    # only the previous year has day 366
    (1, date(2024, 7, 2), date(2025, 1, 1)),        # exactly half a year either way: later
])
def test_julian_day_becomes_the_date_nearest_the_reference(day, reference, expected):
    assert julian_to_date(day, reference) == expected


@pytest.mark.parametrize(("day", "reference"), [(366, date(2026, 6, 1)), (0, date(2025, 1, 1)),
                                                (367, date(2025, 1, 1))])
def test_julian_day_without_a_calendar_date_is_refused(day, reference):
    with pytest.raises(ValueError):
        julian_to_date(day, reference)


def test_day_366_outside_leap_years_gives_no_flight_date_and_a_warning():
    doc = parse_bcbp(encode_bcbp(EncPass(name="DOE/JOHN", legs=[_leg(day_of_year=366)])),
                     today=date(2026, 6, 1))
    assert (doc.legs[0].flight_day_of_year, doc.legs[0].flight_date) == (366, None)
    assert any("366" in w for w in doc.warnings)


@pytest.mark.parametrize("julian", ["000", "   "])
def test_blank_or_zero_flight_day_gives_no_date(julian):
    text = SPEC_M1[:44] + julian + SPEC_M1[47:]
    doc = parse_bcbp(text, today=date(2025, 1, 1))
    assert (doc.legs[0].flight_day_of_year, doc.legs[0].flight_date) == (None, None)
    assert doc.warnings == []


@pytest.mark.parametrize("julian", [b"3X6", b"3\xb96", b"-12"])  # \xb9 is Latin-1 superscript one
def test_non_numeric_flight_day_gives_no_date_and_a_warning(julian):
    doc = parse_bcbp(SPEC_M1[:44].encode() + julian + SPEC_M1[47:].encode(), today=date(2025, 1, 1))
    assert doc.legs[0].flight_date is None and any("date of flight" in w for w in doc.warnings)


def test_non_ascii_digits_in_version_and_issue_date_are_warned_not_crashed():
    variable = ">\xb9" + "07" + "1WW\xb9225"
    doc = parse_bcbp((SPEC_M1[:58] + f"{len(variable):02X}" + variable).encode("latin-1"),
                     today=date(2016, 8, 1))
    assert (doc.extra["version"], doc.extra["issue_date"]) == (None, None)
    assert len(doc.warnings) == 2


def test_issue_date_anchors_flight_dates_when_the_pass_is_scanned_months_later():
    issued = date(2025, 12, 30)
    text = encode_bcbp(EncPass(name="DOE/JOHN", version=6,
                               unique={"issue_date": issue_date_item(issued)},
                               legs=[_leg(day_of_year=2)]))
    # Nearest to the scan date alone would be 2027-01-02; the issue date says 2026.
    doc = parse_bcbp(text, today=date(2026, 8, 1))
    assert doc.extra["issue_date"] == issued
    assert doc.legs[0].flight_date == date(2026, 1, 2)


def test_flight_date_is_never_before_the_issue_date():
    # Issued 2024-01-10 (item 22 '4010'); day 350 nearest the issue date would
    # be 2023-12-16, before the pass existed. The first day 350 on or after it:
    text = encode_bcbp(EncPass(name="DOE/JOHN", version=6, unique={"issue_date": "4010"},
                               legs=[_leg(day_of_year=350), _leg(day_of_year=10)]))
    doc = parse_bcbp(text, today=date(2024, 1, 10))
    assert doc.issue_date == doc.extra["issue_date"] == date(2024, 1, 10)
    assert [leg.flight_date for leg in doc.legs] == [date(2024, 12, 15), date(2024, 1, 10)]
    assert doc.valid and doc.warnings == []


@pytest.mark.parametrize(("day", "issued", "expected"), [
    (350, date(2024, 1, 10), date(2024, 12, 15)),
    (10, date(2024, 1, 10), date(2024, 1, 10)),     # flown the day it was issued
    (9, date(2024, 1, 10), date(2025, 1, 9)),
    (2, date(2025, 12, 30), date(2026, 1, 2)),
    (366, date(2023, 3, 1), date(2024, 12, 31)),    # only the next year has day 366
    (60, date(2024, 2, 29), date(2024, 2, 29)),
])
def test_julian_day_after_an_issue_date_is_the_first_such_day_on_or_after_it(day, issued, expected):
    assert julian_on_or_after(day, issued) == expected


@pytest.mark.parametrize(("day", "issued"), [(366, date(2025, 1, 1)), (0, date(2025, 1, 1)),
                                             (367, date(2024, 1, 1))])
def test_julian_day_with_no_date_in_the_year_after_the_issue_date_is_refused(day, issued):
    with pytest.raises(ValueError):
        julian_on_or_after(day, issued)


def test_day_366_with_no_leap_year_after_the_issue_date_gives_no_flight_date_and_a_warning():
    text = encode_bcbp(EncPass(name="DOE/JOHN", version=6, unique={"issue_date": "5100"},
                               legs=[_leg(day_of_year=366)]))
    doc = parse_bcbp(text, today=date(2025, 4, 11))
    assert doc.legs[0].flight_date is None
    assert any("after the issue date 2025-04-10" in w for w in doc.warnings)


def test_issue_date_decade_is_the_one_nearest_the_reference():
    text = encode_bcbp(EncPass(name="DOE/JOHN", version=6, unique={"issue_date": "9365"},
                               legs=[_leg(day_of_year=1)]))
    doc = parse_bcbp(text, today=date(2020, 1, 2))
    assert doc.extra["issue_date"] == date(2019, 12, 31)
    assert doc.legs[0].flight_date == date(2020, 1, 1)


# -- repairs and field-size check -------------------------------------------------


@pytest.mark.parametrize("noise", ["\r\n", "\n", "\r"])
def test_keyboard_wedge_crlf_is_repaired_with_warning(noise):
    doc = parse_bcbp(SPEC_M2 + noise, today=date(2016, 8, 10))
    assert doc.valid and doc.extra["security"]["data"] == SECURITY
    assert doc.warnings == ["trailing CR/LF from the scanner removed"]


def test_leading_blanks_and_scanner_symbology_prefix_are_removed_with_warnings():
    doc = parse_bcbp("  ]L2" + SPEC_M1, today=date(2025, 11, 1))
    assert doc.valid and doc.surname == "DESMARAIS" and len(doc.warnings) == 2


def test_lowercase_mandatory_items_are_upper_cased_with_warning():
    doc = parse_bcbp(SPEC_M1[:2] + SPEC_M1[2:48].lower() + SPEC_M1[48:], today=date(2025, 11, 1))
    assert (doc.surname, doc.legs[0].pnr, doc.legs[0].from_airport) == ("DESMARAIS", "ABC123", "YUL")
    assert len(doc.warnings) == 2 and all("upper-cased" in w for w in doc.warnings)
    assert doc.extra["security"]["data"] == SECURITY  # opaque data is never rewritten


def test_variable_field_running_past_the_end_is_truncated_with_warning():
    text = SPEC_M1[:58] + "20" + ">6"
    doc = parse_bcbp(text, today=date(2025, 11, 1))
    assert doc.checks == {"field_sizes": False} and not doc.valid
    assert any("declares 32 characters but only 2" in w for w in doc.warnings)


def test_unique_block_running_past_the_variable_field_is_truncated_with_warning():
    variable = ">618" + "1WW6225"
    doc = parse_bcbp(SPEC_M1[:58] + f"{len(variable):02X}" + variable, today=date(2016, 8, 1))
    assert not doc.checks["field_sizes"]
    assert doc.extra["issue_date"] == date(2016, 8, 12)


def test_security_data_shorter_than_declared_is_flagged():
    doc = parse_bcbp(SPEC_M1[:-10], today=date(2025, 11, 1))
    assert not doc.valid and doc.extra["security"]["data"] == SECURITY[:-10]
    assert any("security data declares 100" in w for w in doc.warnings)


def test_characters_after_the_security_data_are_flagged():
    doc = parse_bcbp(SPEC_M1 + "XYZ", today=date(2025, 11, 1))
    assert not doc.valid and doc.extra["security"]["data"] == SECURITY
    assert any("3 characters after the security data" in w for w in doc.warnings)


@pytest.mark.parametrize("padding", [" ", "   ", "\t ", "  \r\n"])
def test_trailing_blanks_after_the_security_data_are_a_warning_not_a_size_failure(padding):
    doc = parse_bcbp(SPEC_M1 + padding, today=date(2025, 11, 1))
    assert doc.valid and doc.checks == {"field_sizes": True}
    assert doc.extra["security"]["data"] == SECURITY
    assert "trailing blanks after the security data ignored" in doc.warnings


def test_characters_after_the_security_data_fail_even_among_blanks():
    doc = parse_bcbp(SPEC_M1 + " X ", today=date(2025, 11, 1))
    assert not doc.valid and any("3 characters after the security data" in w for w in doc.warnings)


def test_cut_security_header_is_flagged():
    doc = parse_bcbp(SPEC_M1[:62], today=date(2025, 11, 1))
    assert doc.extra["security"] == {"type": "1", "data": None} and not doc.valid


def test_stray_text_after_the_last_leg_is_flagged_but_trailing_blanks_are_not():
    assert not parse_bcbp(SPEC_M1[:60] + "JUNK", today=date(2025, 11, 1)).valid
    doc = parse_bcbp(SPEC_M1[:60] + "   ", today=date(2025, 11, 1))
    assert doc.valid and doc.warnings == ["trailing blanks after the last leg ignored"]


# -- malformed input --------------------------------------------------------------


@pytest.mark.parametrize(("payload", "reason"), [
    ("M1DESMARAIS/LUC", "too short"),
    (SPEC_M1[:50], "too short: leg 1"),
    (SPEC_M1[:59], "too short: leg 1 variable field size"),
    ("X1" + SPEC_M1[2:], "format code"),
    ("M0" + SPEC_M1[2:], "number of legs"),
    ("M5" + SPEC_M1[2:], "number of legs"),
    ("MA" + SPEC_M1[2:], "number of legs"),
    ("M" + SPEC_M1[2:], "number of legs"),
    (SPEC_M1[:58] + "G0", "two hexadecimal digits"),
    (SPEC_M1[:58] + " 0", "two hexadecimal digits"),
    (SPEC_M1[:58] + "+1" + "X", "two hexadecimal digits"),
    ("M2" + SPEC_M1[2:60], "too short: leg 2"),
    (SPEC_M1[:58] + "04>6ZZ", "unique conditional block size"),
    (SPEC_M1[:58] + "05>6001", "leg 1 repeated conditional block size"),
    (SPEC_M1[:60] + "^1G4ABC", "security data length"),
    ("M1DESMA\tAIS/LUC      " + SPEC_M1[22:], "control character"),
])
def test_malformed_pass_is_refused_with_a_readable_reason(payload, reason):
    with pytest.raises(MalformedBCBP, match=reason) as info:
        parse_bcbp(payload, today=date(2025, 1, 1))
    assert "\n" not in info.value.message and info.value.code == "malformed_bcbp"


def test_leg_variable_field_swallowing_the_next_leg_is_refused():
    with pytest.raises(MalformedBCBP, match="too short: leg 2"):
        parse_bcbp(TWO_LEGS_MANDATORY_ONLY[:58] + "30" + TWO_LEGS_MANDATORY_ONLY[60:],
                   today=date(2025, 1, 1))


@pytest.mark.parametrize("payload", [b"", "", " \r\n"])
def test_empty_payload_says_nothing_was_scanned(payload):
    with pytest.raises(EmptyInput):
        parse_bcbp(payload)


def test_oversized_payload_is_refused_before_parsing():
    with pytest.raises(InputTooLarge):
        parse_bcbp(SPEC_M1 + "A" * MAX_PAYLOAD_BYTES)
    with pytest.raises(InputTooLarge):
        parse_bcbp(SPEC_M1.encode() + b"A" * MAX_PAYLOAD_BYTES)


# -- round trip and fuzz ----------------------------------------------------------

_WORD = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6)
_CODE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_TITLE_ENDINGS = ("MR", "MRS", "MISS", "MSTR", "MS", "DR", "MX", "PROF")


def _value(width: int):
    """A field value as the parser reports it: no padding, possibly absent ("")."""
    return st.text(alphabet=_CODE, max_size=width)


@st.composite
def _names(draw):
    surname = draw(_WORD)
    given = draw(st.lists(_WORD.filter(lambda w: not w.endswith(_TITLE_ENDINGS)),
                          min_size=1, max_size=2))
    title = draw(st.sampled_from([None, "MR", "MRS", "MS", "MISS", "MSTR", "DR"]))
    name = f"{surname}/{' '.join(given)}" + (f" {title}" if title else "")
    if len(name) > 20:
        name, given, title = f"{surname}/{given[0]}", given[:1], None
    return name, surname, " ".join(given), title


@st.composite
def _passes(draw):
    today = draw(st.dates(min_value=date(2001, 1, 1), max_value=date(2098, 12, 31)))
    version = draw(st.one_of(st.none(), st.integers(1, 8)))
    unique_count = draw(st.integers(0, len(UNIQUE_WIDTHS)))
    unique = {name: draw(_value(width)) for name, width in UNIQUE_WIDTHS}
    issued = draw(st.one_of(st.none(), st.just(today - timedelta(draw(st.integers(0, 1500))))))
    unique["issue_date"] = issue_date_item(issued) if issued else ""
    # With an issue date the flight is on or after it (within a year); without
    # one, the scan date is the anchor and the flight is within half a year of it.
    issue_known = issued is not None and version is not None and unique_count >= 4
    anchor, spread = (issued, (0, 364)) if issue_known else (today, (-150, 150))
    legs, flights = [], []
    for _ in range(draw(st.integers(1, 4))):
        flight = draw(st.one_of(st.none(), st.just(anchor + timedelta(draw(st.integers(*spread))))))
        flights.append(flight)
        legs.append(EncLeg(
            pnr=draw(_value(7)), from_airport=draw(_value(3)), to_airport=draw(_value(3)),
            carrier=draw(_value(3)), flight_number=draw(_value(5)),
            day_of_year=day_of_year(flight) if flight else None,
            compartment=draw(_value(1)), seat=draw(_value(4)), sequence=draw(_value(5)),
            passenger_status=draw(_value(1)),
            repeated={name: draw(_value(width)) for name, width in REPEATED_WIDTHS},
            repeated_count=draw(st.integers(0, len(REPEATED_WIDTHS))),
            airline_data=draw(st.text(alphabet=_CODE + " */^", max_size=40)),
        ))
    name, surname, given, title = draw(_names())
    security = draw(st.one_of(st.none(), st.tuples(st.sampled_from("123"),
                                                   st.text(alphabet=_CODE + "+/=", max_size=120))))
    bp = EncPass(name=name, legs=legs, electronic_ticket=draw(st.booleans()), version=version,
                 unique=unique, unique_count=unique_count, security=security)
    return bp, today, flights, (surname, given, title), issued


def _variable_fields(text: str, legs: int) -> list[str]:
    """Each leg's variable field, cut by the sizes the encoder wrote (item 6)."""
    out, pos = [], 23
    for _ in range(legs):
        size = int(text[pos + 35:pos + 37], 16)
        out.append(text[pos + 37:pos + 37 + size])
        pos += 37 + size
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_passes())
def test_random_valid_passes_round_trip_through_the_encoder(case):
    bp, today, flights, (surname, given, title), issued = case
    text = encode_bcbp(bp)
    doc = parse_bcbp(text, today=today)
    assert doc.valid and doc.warnings == []
    variable_fields = _variable_fields(text, len(bp.legs))
    assert (doc.surname, doc.given_names, doc.extra["title"]) == (surname, given, title)
    assert doc.extra["electronic_ticket"] is bp.electronic_ticket
    assert doc.extra["version"] == bp.version
    present = bp.unique_count if bp.version is not None else 0
    for index, (name, _) in enumerate(UNIQUE_WIDTHS[:6]):
        if name != "issue_date":
            assert doc.extra[name] == ((bp.unique[name] or None) if index < present else None)
    assert doc.extra["issue_date"] == doc.issue_date == (issued if present >= 4 else None)
    tags = [bp.unique[f"bag_tag_{n}"] for n in (1, 2, 3)][:max(present - 6, 0)]
    assert doc.extra["bag_tags"] == [tag for tag in tags if tag]
    assert doc.extra["security"] == (None if bp.security is None else
                                     {"type": bp.security[0], "data": bp.security[1] or None})
    assert len(doc.legs) == len(bp.legs)
    for leg, enc, flight in zip(doc.legs, bp.legs, flights):
        for attr in ("pnr", "from_airport", "to_airport", "carrier", "flight_number",
                     "compartment", "seat", "sequence", "passenger_status"):
            assert getattr(leg, attr) == (getattr(enc, attr) or None)
        assert leg.flight_date == flight
        count = enc.repeated_count if bp.version is not None else 0
        for index, (name, _) in enumerate(REPEATED_WIDTHS):
            assert leg.conditional[name] == ((enc.repeated[name] or None) if index < count else None)
        assert leg.conditional["airline_data"] == (enc.airline_data or None)
        assert leg.conditional["variable_size"] == len(variable_fields.pop(0))


_SEEDS = [SPEC_M1, SPEC_M2, GUIDE_V2, GUIDE_V5, OLD_NO_CONDITIONAL, TWO_LEGS_MANDATORY_ONLY]


def _document_or_typed_error(data: bytes) -> None:
    try:
        doc = parse_bcbp(data, today=date(2025, 6, 1))
    except DocumentError as exc:
        assert exc.message and "\n" not in exc.message
    else:
        json.dumps(doc.to_dict())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_SEEDS), st.integers(0, 2**32 - 1))
def test_mutated_passes_give_a_document_or_a_typed_error(seed, rnd_seed):
    rnd = random.Random(rnd_seed)
    data = bytearray(seed.encode())
    for _ in range(rnd.randint(1, 6)):
        pos = rnd.randrange(len(data) + 1)
        op = rnd.random()
        if op < 0.4 and data:
            data[min(pos, len(data) - 1)] = rnd.choice([rnd.randrange(256), *b"0F>^ 9\r\n"])
        elif op < 0.7:
            data[pos:pos] = bytes([rnd.choice(b"0123456789ABCDEF>^ /\r\n\x00")])
        elif data:
            del data[pos:pos + rnd.randint(1, 12)]
    _document_or_typed_error(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b"M" + bytes([b"1234"[len(b) % 4]]) + b))
def test_random_bytes_after_a_bcbp_header_give_a_document_or_a_typed_error(data):
    _document_or_typed_error(data)
