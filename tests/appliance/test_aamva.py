"""AAMVA DL/ID PDF417 payloads: every version's names, date rules and real-world damage."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.documents.aamva import _locate_subfiles, _Notes, _read_header, _repair_prefix, parse_aamva
from appliance.documents.aamva_tables import ELEMENT_NAMES, IIN_TABLE, element_name
from appliance.documents.errors import DocumentError, EmptyInput, InputTooLarge, MalformedAAMVA
from appliance.documents.model import MAX_PAYLOAD_BYTES
from appliance.specimens.aamva import (
    Card,
    build_payload,
    drop_compliance_indicator,
    drop_record_separator,
    encode_card,
    lf_for_record_separator,
    pad_value,
    set_offset,
    shift_offset,
    wedge_crlf,
)

TODAY = date(2026, 6, 1)
SAMPLES = Path(__file__).resolve().parents[2] / "appliance" / "samples"

# The example payload of the AAMVA DL/ID Card Design Standard, Annex D (Virginia, v10).
ANNEX_EXAMPLE = (
    "@\n\x1e\rANSI 636000100102DL00410278ZV03190008"
    "DLDAQT64235789\nDCSSAMPLE\nDDEN\nDACMICHAEL\nDDFN\nDADJOHN\nDDGN\nDCUJR\nDCAD\nDCBK\nDCDPH\n"
    "DBD06062019\nDBB06061986\nDBA12102024\nDBC1\nDAU068 in\nDAYBRO\nDAG2300 WEST BROAD STREET\n"
    "DAIRICHMOND\nDAJVA\nDAK232690000  \nDCF2424244747474786102204\nDCGUSA\nDCK123456789\nDDAF\n"
    "DDB06062018\nDDC06062020\nDDD1\rZVZVA01\r"
)
CARD = Card(z_type="ZC", z_elements=(("ZCA", "BLK"), ("ZCB", "")))


def parse(payload, **kwargs):
    return parse_aamva(payload, today=kwargs.pop("today", TODAY), **kwargs)


def repairs(doc) -> list[str]:
    return doc.extra["repairs"]


def assert_same_card(doc, card: Card = CARD) -> None:
    assert doc.document_code == card.document_code
    assert doc.document_number == card.document_number
    assert doc.surname == card.surname
    assert doc.given_names == " ".join(card.given_names)
    assert doc.date_of_birth == card.date_of_birth
    assert doc.expiry_date == card.expiry_date
    assert doc.issue_date == card.issue_date
    assert doc.valid, doc.warnings


# --------------------------------------------------------------------------- versions


def test_annex_example_reads_every_field_and_both_subfiles():
    doc = parse(ANNEX_EXAMPLE)
    assert (doc.format, doc.layout, doc.document_code) == ("aamva", None, "DL")
    assert (doc.document_number, doc.surname, doc.given_names) == ("T64235789", "SAMPLE", "MICHAEL JOHN")
    assert (doc.date_of_birth, doc.expiry_date, doc.issue_date) == (date(1986, 6, 6), date(2024, 12, 10), date(2019, 6, 6))
    assert (doc.sex, doc.nationality, doc.issuing_country, doc.issuing_authority) == ("M", None, "USA", "VA")
    assert doc.valid and doc.warnings == [] and doc.checks == {"mandatory_elements": True, "dates": True}
    extra = doc.extra
    assert (extra["iin"], extra["version"], extra["jurisdiction_version"], extra["entries"]) == ("636000", 10, 1, 2)
    assert extra["subfiles"] == [
        {"type": "DL", "offset": 41, "length": 278, "found_at": 41},
        {"type": "ZV", "offset": 319, "length": 8, "found_at": 319},
    ]
    assert extra["elements"]["DAK"] == "232690000" and extra["elements"]["DCU"] == "JR"
    assert extra["jurisdiction_elements"] == {"ZVA": "01"}
    assert doc.to_dict()["aamva"]["elements"]["DAQ"] == "T64235789"


def v1_payload(full_name: str, *, with_jurisdiction_version: bool = False, file_type: str = "AAMVA") -> str:
    items = [("DAQ", "75706564"), ("DAA", full_name), ("DAG", "1234 ELM ST"), ("DAJ", "PA"),
             ("DBB", "10011991"), ("DBA", "10012026"), ("DBD", "07032018"), ("DBC", "M"), ("DBG", "NONE")]
    payload = build_payload([("DL", items)], iin="636025", version=1, file_type=file_type)
    if with_jurisdiction_version:  # some v01 cards carry one anyway: the directory moves by two
        payload = build_payload([("DL", items)], iin="636025", version=2, jurisdiction_version=0, file_type=file_type)
        payload = payload.replace("63602502", "63602501", 1)
    return payload


def test_version_1_full_name_in_daa_is_surname_given_middle():
    doc = parse(v1_payload("FIXER,THE,QUIET"))
    assert (doc.surname, doc.given_names) == ("FIXER", "THE QUIET")
    assert doc.extra["version"] == 1 and doc.extra["jurisdiction_version"] is None
    assert doc.extra["file_type"] == "AAMVA" and doc.issuing_authority == "PA" and doc.valid and doc.warnings == []


def test_version_1_full_name_with_spaces_after_commas_reads_the_same():
    doc = parse(v1_payload("FIXER, THE, QUIET"))
    assert (doc.surname, doc.given_names, doc.warnings) == ("FIXER", "THE QUIET", [])


def test_version_1_full_name_with_spaces_only_is_guessed_surname_first_with_an_uncertain_order_warning():
    doc = parse(v1_payload("JOHN QUINCY JOHNSON"))
    assert (doc.surname, doc.given_names) == ("JOHN", "QUINCY JOHNSON")  # a guess, often wrong
    assert repairs(doc) == ["full_name_spaces"] and len(doc.warnings) == 1
    assert "order is uncertain" in doc.warnings[0] and "SURNAME GIVEN" in doc.warnings[0]


def test_version_1_full_name_of_only_control_characters_is_no_name():
    doc = parse(v1_payload("\x1c\x1d"))
    assert doc.surname is None and doc.given_names is None and not doc.valid


def test_version_1_header_with_a_jurisdiction_version_is_accepted():
    doc = parse(v1_payload("FIXER,THE", with_jurisdiction_version=True, file_type="ANSI "))
    assert doc.extra["version"] == 1 and doc.extra["jurisdiction_version"] == 0
    assert (doc.surname, doc.given_names, doc.warnings) == ("FIXER", "THE", [])


def test_version_1_element_meanings_differ_where_the_standard_reused_ids():
    assert element_name("DBG", 1) == "Medical indicator / codes"
    assert element_name("DBG", 10) == "Alias given name"
    assert element_name("ZCA") == "Jurisdiction-specific element" and element_name("QQQ") == "Unknown element"


@pytest.mark.parametrize("version", [2, 3])
def test_versions_2_and_3_given_names_in_dct_lose_their_commas(version):
    card = replace(CARD, version=version, given_names=("MARY", "ANNE", "LOUISE"))
    payload = encode_card(card)
    assert "DCTMARY,ANNE,LOUISE\n" in payload
    doc = parse(payload)
    assert doc.given_names == "MARY ANNE LOUISE" and doc.warnings == []


@pytest.mark.parametrize("version", [4, 5, 6, 7, 8, 9, 10])
def test_versions_4_to_10_read_dcs_dac_and_comma_separated_dad(version):
    card = replace(CARD, version=version, given_names=("JOHN", "PAUL", "GEORGE"))
    assert "DADPAUL,GEORGE\n" in encode_card(card)
    doc = parse(encode_card(card))
    assert_same_card(doc, card)
    assert doc.extra["version"] == version and doc.warnings == []


def test_version_11_document_type_indicators_are_named_elements():
    extra = (("DDM", "1"), ("DDN", "1"), ("DDO", "1"), ("DDP", "1"))
    doc = parse(encode_card(replace(CARD, version=11, extra_elements=extra)))
    assert_same_card(doc)
    assert {k: doc.extra["elements"][k] for k in ("DDM", "DDN", "DDO", "DDP")} == dict(extra)
    assert ELEMENT_NAMES["DDN"] == "Non-domiciled indicator" and "CDL" in ELEMENT_NAMES["DDM"]


def test_unknown_version_is_read_with_a_warning():
    doc = parse(encode_card(replace(CARD, version=12)))
    assert_same_card(doc)
    assert any("version 12" in w for w in doc.warnings)


def test_id_card_subfile_gives_document_code_id():
    doc = parse(encode_card(replace(CARD, document_code="ID")))
    assert doc.document_code == "ID" and doc.valid


def test_document_number_keeps_leading_zeros():
    assert parse(encode_card(replace(CARD, document_number="000123045"))).document_number == "000123045"


def test_none_placeholder_is_not_a_middle_name():
    doc = parse(encode_card(replace(CARD, given_names=("JANE", "NONE"))))
    assert doc.given_names == "JANE"


# --------------------------------------------------------------------------- dates


def test_us_card_dates_are_mmddccyy():
    doc = parse(encode_card(replace(CARD, date_of_birth=date(1975, 3, 4))))
    assert doc.date_of_birth == date(1975, 3, 4) and doc.extra["date_format"] == "MMDDCCYY"


def test_canadian_iin_without_dcg_expects_ccyymmdd():
    items = [("DAQ", "T7140"), ("DCS", "ROY"), ("DAC", "LUC"), ("DBB", "19910922"), ("DBA", "20300922")]
    doc = parse(build_payload([("DL", items)], iin="636012", version=10))
    assert (doc.issuing_country, doc.issuing_authority) == ("CAN", "ON")
    assert doc.date_of_birth == date(1991, 9, 22) and doc.extra["date_format"] == "CCYYMMDD"
    assert doc.warnings == []


def test_cdn_country_code_means_canada_even_with_an_unlisted_iin():
    items = [("DAQ", "X1"), ("DCS", "ROY"), ("DAC", "LUC"), ("DBB", "19910922"), ("DCG", "CDN"), ("DAJ", "NS")]
    doc = parse(build_payload([("DL", items)], iin="999999", version=10))
    assert (doc.issuing_country, doc.issuing_authority) == ("CAN", "NS")
    assert doc.extra["issuer"] is None and doc.warnings == []


def test_plausible_year_reads_ccyymmdd_on_a_us_card_with_a_warning():
    payload = encode_card(CARD).replace("DBB01021980", "DBB19800102")
    doc = parse(payload)
    assert doc.date_of_birth == date(1980, 1, 2) and doc.valid
    assert any("DBB written CCYYMMDD although USA cards use MMDDCCYY" in w for w in doc.warnings)


def test_mmddccyy_on_a_canadian_card_is_read_with_a_warning():
    card = replace(CARD, iin="636012", country="CAN", jurisdiction="ON")
    payload = encode_card(card).replace("DBB19800102", "DBB01021980")
    doc = parse(payload)
    assert doc.date_of_birth == date(1980, 1, 2)
    assert any("MMDDCCYY although CAN cards use CCYYMMDD" in w for w in doc.warnings)


@pytest.mark.parametrize("bad", ["13452030", "0102198", "O1022030", "02302030", "99999998"])
def test_unreadable_expiry_is_left_empty_with_a_warning_and_fails_the_dates_check(bad):
    payload = encode_card(CARD).replace("DBA01022030", "DBA" + bad)
    doc = parse(payload)
    assert doc.expiry_date is None and doc.checks["dates"] is False and not doc.valid
    assert doc.checks["mandatory_elements"] is True
    assert any("unreadable date" in w and bad in w for w in doc.warnings)


@pytest.mark.parametrize(("value", "meaning"), [("99999999", "non-expiring"),
                                                ("00000000", "no expiry date recorded")])
def test_non_expiring_credential_has_no_expiry_date_and_stays_valid(value, meaning):
    doc = parse(encode_card(CARD).replace("DBA01022030", "DBA" + value))
    assert doc.expiry_date is None and doc.extra["elements"]["DBA"] == value
    assert doc.checks == {"mandatory_elements": True, "dates": True} and doc.valid
    assert len(doc.warnings) == 1 and meaning in doc.warnings[0] and "DBA" in doc.warnings[0]


def test_all_zero_birth_date_is_still_unreadable():
    doc = parse(encode_card(CARD).replace("DBB01021980", "DBB00000000"))
    assert doc.date_of_birth is None and not doc.valid


def test_datetime_today_is_read_as_its_date():
    card = replace(CARD, date_of_birth=date(2026, 6, 1), issue_date=None)
    at_noon = parse(encode_card(card), today=datetime(2026, 6, 1, 12, 0))
    assert at_noon.to_dict() == parse(encode_card(card), today=date(2026, 6, 1)).to_dict()
    assert at_noon.valid  # born today is not after today
    assert not parse(encode_card(card), today=datetime(2026, 5, 31, 23, 59)).valid


def test_birth_date_after_today_fails_the_dates_check():
    doc = parse(encode_card(replace(CARD, date_of_birth=date(2026, 6, 2), issue_date=None)))
    assert doc.date_of_birth == date(2026, 6, 2) and doc.checks["dates"] is False
    assert any("after today" in w for w in doc.warnings)


# --------------------------------------------------------------------------- sex


@pytest.mark.parametrize(("code", "sex"), [("1", "M"), ("2", "F"), ("9", "X"), ("M", "M"), ("F", "F"), ("X", "X"), ("f", "F")])
def test_sex_codes_and_letters(code, sex):
    doc = parse(encode_card(replace(CARD, sex_code=code)))
    assert doc.sex == sex and doc.warnings == []


def test_unknown_sex_code_is_null_with_a_warning_but_still_valid():
    doc = parse(encode_card(replace(CARD, sex_code="0")))
    assert doc.sex is None and doc.valid and any("sex code" in w for w in doc.warnings)


# --------------------------------------------------------------------------- keyboard wedge damage


@pytest.mark.parametrize(
    ("damage", "kind"),
    [
        (wedge_crlf, "wedge_crlf"),
        (drop_record_separator, "record_separator_missing"),
        (lf_for_record_separator, "record_separator_lf"),
        (lambda p: "]L2" + p, "stray_prefix"),
        (lambda p: "\x02SCAN>" + p, "stray_prefix"),
        (drop_compliance_indicator, "compliance_indicator"),
        (lambda p: p.replace("ANSI ", "ANSI", 1), "file_type"),
    ],
    ids=["cr-to-crlf", "rs-dropped", "lf-for-rs", "symbology-prefix", "scanner-prefix", "at-missing", "ansi-no-space"],
)
def test_keyboard_wedge_damage_is_repaired_with_one_warning(damage, kind):
    doc = parse(damage(encode_card(CARD)))
    assert_same_card(doc)
    assert repairs(doc) == [kind] and len(doc.warnings) == 1
    assert doc.extra["jurisdiction_elements"] == {"ZCA": "BLK", "ZCB": ""}


@pytest.mark.parametrize("junk", ["", "]L2"])
def test_oregon_damaged_compliance_header_is_named_in_the_warning(junk):
    # Some Oregon cards write '@' LF 'N' CR: the '@' is there, only the RS is wrong.
    payload = encode_card(replace(CARD, iin="636029"))
    assert payload.startswith("@\n\x1e\rANSI 636029")
    doc = parse(junk + "@\nN\r" + payload[4:])
    assert_same_card(doc, replace(CARD, iin="636029"))
    damaged = "damaged compliance header '@\\nN\\r' replaced with '@\\n\\x1e\\r'"
    assert doc.warnings == ([f"{len(junk)} stray character(s) before the header ignored (scanner prefix)"]
                            if junk else []) + [damaged]
    assert not any("missing" in w for w in doc.warnings)


def test_every_wedge_damage_at_once_still_reads_a_valid_card():
    payload = "]L2" + wedge_crlf(drop_compliance_indicator(drop_record_separator(encode_card(CARD))))
    doc = parse(payload.encode("latin-1"))
    assert_same_card(doc)
    assert set(repairs(doc)) == {"stray_prefix", "compliance_indicator", "record_separator_missing", "wedge_crlf"}


def test_wedge_that_types_every_separator_as_crlf_still_reads_elements():
    payload = re.sub(r"[\r\n]", "\r\n", encode_card(CARD))
    doc = parse(payload)
    assert_same_card(doc)
    assert set(repairs(doc)) == {"wedge_crlf", "header_separators", "element_separators"}


def test_lf_for_every_cr_ends_each_subfile_at_the_next_one():
    doc = parse(encode_card(CARD).replace("\r", "\n"))
    assert_same_card(doc)
    assert set(repairs(doc)) == {"header_separators", "segment_terminator"}
    assert doc.extra["jurisdiction_elements"] == {"ZCA": "BLK", "ZCB": ""}


# --------------------------------------------------------------------------- subfile offset damage


@pytest.mark.parametrize("index", [0, 1], ids=["DL", "ZC"])
@pytest.mark.parametrize("damage", ["0000", "00A1", "ABCD", "+1", "-1", "+2", "-2", "0999"])
def test_wrong_subfile_offsets_are_found_with_one_warning(index, damage):
    payload = encode_card(CARD)
    if damage[0] in "+-":
        payload = shift_offset(payload, index, int(damage))
    else:
        payload = set_offset(payload, index, damage)
    doc = parse(payload)
    assert_same_card(doc)
    assert repairs(doc) == ["subfile_offsets"] and len(doc.warnings) == 1
    assert doc.extra["jurisdiction_elements"] == {"ZCA": "BLK", "ZCB": ""}
    assert [s["found_at"] for s in doc.extra["subfiles"]] == [41, encode_card(CARD).index("\rZC") + 1]


def test_dl_subfile_missing_from_the_directory_is_found_by_scanning():
    payload = encode_card(CARD)
    payload = payload.replace("DL0041", "XX0041", 1)
    doc = parse(payload)
    assert_same_card(doc)
    assert "subfile_offsets" in repairs(doc) and any("XX" in w and "not found" in w for w in doc.warnings)


@pytest.mark.parametrize("dl_offset", [None, "0000"], ids=["offset-right", "offset-zero"])
def test_header_listing_more_entries_than_designators_stops_at_the_subfile_data(dl_offset):
    items = [("DAQ", "12345"), ("DCS", "DOE"), ("DAC", "JANE"), ("DBB", "01021990"), ("DCG", "USA")]
    payload = build_payload([("DL", items)])
    assert payload.startswith("@\n\x1e\rANSI 636014100001DL0031")
    # Entries 02 with one designator: a second one read on would be "DLDAQ12345".
    payload = payload.replace("100001DL", "100002DL", 1)
    if dl_offset:
        payload = set_offset(payload, 0, dl_offset)
    doc = parse(payload)
    assert (doc.document_number, doc.surname, doc.valid) == ("12345", "DOE", True)
    assert doc.extra["entries"] == 2
    assert doc.extra["subfiles"] == [
        {"type": "DL", "offset": int(dl_offset or "31"), "length": len(payload) - 31, "found_at": 31}]
    assert not any("not found" in w for w in doc.warnings)
    assert any("lists 2 subfile(s), only 1 designator(s)" in w for w in doc.warnings)
    assert "entry_count" in repairs(doc)


def test_locating_subfiles_returns_positions_and_leaves_the_header_untouched():
    text, file_type = _repair_prefix(set_offset(encode_card(CARD), 1, "0000"), _Notes())
    header = _read_header(text, file_type, _Notes())
    before = repr(header)
    subfiles = _locate_subfiles(text, header, _Notes())
    assert repr(header) == before
    assert [(s.type, s.found_at) for s in subfiles] == [("DL", 41), ("ZC", text.index("\rZC") + 1)]
    assert _locate_subfiles(text, header, _Notes()) == subfiles


def test_offset_and_wedge_damage_together_still_read_the_card():
    payload = wedge_crlf(drop_record_separator(set_offset(encode_card(CARD), 0, "0000")))
    doc = parse(payload)
    assert_same_card(doc)
    assert set(repairs(doc)) == {"wedge_crlf", "record_separator_missing", "subfile_offsets"}


# --------------------------------------------------------------------------- values and subfiles


def test_space_padded_values_are_trimmed_with_one_warning():
    payload = pad_value(pad_value(encode_card(CARD), "DAQ", 0, 3), "DCS", 2, 2)
    assert "DAQD1234567   \n" in payload and "DCS  SAMPLE  \n" in payload
    doc = parse(payload)
    assert_same_card(doc)
    assert repairs(doc) == ["space_padding"] and doc.warnings == ["spaces around 2 element value(s) trimmed"]


def test_fixed_length_postal_code_padding_is_not_a_repair():
    doc = parse(encode_card(replace(CARD, extra_elements=(("DAK", "958260000  "),))))
    assert doc.extra["elements"]["DAK"] == "958260000" and doc.warnings == []


def test_jurisdiction_subfile_elements_are_kept_apart():
    card = replace(CARD, z_type="ZO", z_elements=(("ZOA", "0"), ("ZOB", "ABC 12")))
    doc = parse(encode_card(card))
    assert doc.extra["jurisdiction_elements"] == {"ZOA": "0", "ZOB": "ABC 12"}
    assert not any(k.startswith("Z") for k in doc.extra["elements"])


def test_repeated_element_keeps_the_first_with_a_warning():
    doc = parse(encode_card(replace(CARD, extra_elements=(("DAQ", "OTHER"),))))
    assert doc.document_number == "D1234567" and any("repeated" in w for w in doc.warnings)


# --------------------------------------------------------------------------- issuer and checks


def test_issuer_comes_from_the_iin_register_not_the_address():
    doc = parse(encode_card(replace(CARD, iin="636014", jurisdiction="NV")))
    assert (doc.issuing_authority, doc.issuing_country, doc.extra["issuer"]) == ("CA", "USA", "California")


def test_unlisted_iin_falls_back_to_the_address_jurisdiction():
    doc = parse(encode_card(replace(CARD, iin="123456", jurisdiction="or")))
    assert (doc.issuing_authority, doc.issuing_country) == ("OR", "USA")


def test_iin_register_covers_every_state_territory_and_province():
    codes = {(code, country) for code, country, _ in IIN_TABLE.values()}
    states = ("AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC "
              "ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR VI").split()
    provinces = "AB BC MB NB NL NS NT NU ON PE QC SK YT".split()
    assert {(s, "USA") for s in states} <= codes and {(p, "CAN") for p in provinces} <= codes
    assert all(len(iin) == 6 and iin.isdigit() for iin in IIN_TABLE)


@pytest.mark.parametrize("removed", ["DAQ", "DCS", "DBB"])
def test_missing_mandatory_element_makes_the_document_invalid(removed):
    items = [("DAQ", "D1"), ("DCS", "DOE"), ("DAC", "JANE"), ("DBB", "01021990"), ("DCG", "USA")]
    doc = parse(build_payload([("DL", [i for i in items if i[0] != removed])]))
    assert doc.checks["mandatory_elements"] is False and not doc.valid
    assert any("mandatory" in w and removed in w for w in doc.warnings)


# --------------------------------------------------------------------------- unreadable input


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("hello, world", "no AAMVA header"),
        ("@\n\x1e\rANSI 63601", "no AAMVA header"),
        ("@\n\x1e\rANSI 636014AB0001DL00310010", "version"),
        ("@\n\x1e\rANSI 636014100001", "no DL or ID subfile"),
        ("@\n\x1e\rANSI 636014100001ZC00310008ZCZCAX\r", "no DL or ID subfile"),
        ("@\n\x1e\rANSI 636014100001DL00310003DL\r", "no readable data elements"),
        ("@\n\x1e\rANSI 636014100001DL00310009DL\x00\x01\n??\r", "no readable data elements"),
    ],
)
def test_unreadable_payloads_raise_malformed_aamva_with_one_line(payload, reason):
    with pytest.raises(MalformedAAMVA, match=reason) as info:
        parse(payload)
    assert "\n" not in info.value.message and info.value.code == "malformed_aamva"


def test_empty_and_oversized_payloads_raise_their_own_errors():
    for empty in (b"", "   ", b"\r\n"):
        with pytest.raises(EmptyInput):
            parse(empty)
    with pytest.raises(InputTooLarge):
        parse(b"@" * (MAX_PAYLOAD_BYTES + 1))


def test_bytes_and_text_parse_the_same():
    assert parse(ANNEX_EXAMPLE.encode("latin-1")).to_dict() == parse(ANNEX_EXAMPLE).to_dict()


@pytest.mark.parametrize(("name", "authority", "country", "dob"),
                         [("licence-ca.txt", "CA", "USA", date(1988, 5, 14)), ("licence-on.txt", "ON", "CAN", date(1991, 9, 22))])
def test_bundled_samples_are_byte_exact_and_parse_clean(name, authority, country, dob):
    payload = (SAMPLES / name).read_bytes()
    assert payload.startswith(b"@\n\x1e\rANSI ") and payload.endswith(b"\r") and b"\r\n" not in payload
    doc = parse(payload)
    assert (doc.issuing_authority, doc.issuing_country, doc.date_of_birth) == (authority, country, dob)
    assert doc.valid and doc.warnings == [] and doc.extra["version"] == 10
    assert all(s["found_at"] == s["offset"] for s in doc.extra["subfiles"])


# --------------------------------------------------------------------------- properties

NAME = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ'-", min_size=1, max_size=10).filter(lambda s: s not in ("NONE", "NMN", "UNAVL"))
VALUE = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 /-", min_size=0, max_size=16).map(str.strip)
ISSUERS = sorted((iin, code, country) for iin, (code, country, _) in IIN_TABLE.items() if code)


@st.composite
def cards(draw) -> Card:
    iin, code, country = draw(st.sampled_from(ISSUERS))
    dob = draw(st.dates(date(1900, 1, 1), TODAY))
    issue = draw(st.none() | st.dates(dob, TODAY))
    expiry = draw(st.none() | st.dates(issue or dob, date(2099, 12, 31)))
    z_letter = draw(st.sampled_from("ABCMNOVWZ"))
    z_ids = draw(st.lists(st.sampled_from("ABCDEFGH"), unique=True, max_size=4))
    extra_ids = draw(st.lists(st.sampled_from(["DAG", "DAI", "DAU", "DAY", "DCF", "DCK", "DDA", "DDK"]), unique=True))
    return Card(
        iin=iin,
        version=draw(st.integers(1, 11)),
        jurisdiction_version=draw(st.integers(0, 99)),
        document_code=draw(st.sampled_from(["DL", "ID"])),
        document_number=draw(st.text("0123456789ABCDEFGHJKLMNPRSTUVWXYZ", min_size=1, max_size=20)),
        surname=" ".join(draw(st.lists(NAME, min_size=1, max_size=3))),
        given_names=tuple(draw(st.lists(NAME, min_size=1, max_size=3))),
        date_of_birth=dob,
        expiry_date=expiry,
        issue_date=issue,
        sex_code=draw(st.sampled_from("129MFX")),
        country="CDN" if country == "CAN" and draw(st.booleans()) else country,
        jurisdiction=code[:2],
        extra_elements=tuple((eid, draw(VALUE)) for eid in extra_ids),
        z_type=f"Z{z_letter}" if z_ids else None,
        z_elements=tuple((f"Z{z_letter}{i}", draw(VALUE)) for i in z_ids),
        file_type=draw(st.sampled_from(["ANSI ", "AAMVA"])),
    )


def assert_round_trip(doc, card: Card) -> None:
    assert_same_card(doc, card)
    assert doc.sex == {"1": "M", "2": "F", "9": "X"}.get(card.sex_code, card.sex_code)
    assert doc.issuing_country == IIN_TABLE[card.iin][1] and doc.issuing_authority == IIN_TABLE[card.iin][0]
    assert doc.extra["version"] == card.version
    for eid, value in card.extra_elements:
        assert doc.extra["elements"][eid] == value
    assert doc.extra["jurisdiction_elements"] == dict(card.z_elements)


@settings(max_examples=200, deadline=None)
@given(cards())
def test_round_trip_random_valid_cards_parse_back_to_the_same_fields(card):
    doc = parse(encode_card(card).encode("latin-1"))
    assert_round_trip(doc, card)
    assert doc.warnings == []


JUNK = ["]L2", "\x02", "SCAN>", "]L0 "]


@settings(max_examples=200, deadline=None)
@given(cards(), st.data())
def test_round_trip_survives_every_repairable_damage(card, data):
    payload, expected = encode_card(card), set()
    if data.draw(st.booleans(), "pad"):
        payload = pad_value(payload, "DAQ", data.draw(st.integers(0, 2)), data.draw(st.integers(1, 3)))
        expected.add("space_padding")
    offset = data.draw(st.sampled_from([None, "0000", "00A1", "XYZW", -2, -1, 1, 2]), "offset")
    if offset is not None:
        payload = shift_offset(payload, 0, offset) if isinstance(offset, int) else set_offset(payload, 0, offset)
        expected.add("subfile_offsets")
    separator = data.draw(st.sampled_from([None, "dropped", "lf"]), "record separator")
    if separator == "dropped":
        payload = drop_record_separator(payload)
        expected.add("record_separator_missing")
    elif separator == "lf":
        payload = lf_for_record_separator(payload)
        expected.add("record_separator_lf")
    if data.draw(st.booleans(), "no @"):
        payload = drop_compliance_indicator(payload)
        expected.add("compliance_indicator")
    if data.draw(st.booleans(), "crlf"):
        payload = wedge_crlf(payload)
        expected.add("wedge_crlf")
    junk = data.draw(st.sampled_from([None, *JUNK]), "junk")
    if junk:
        payload = junk + payload
        expected.add("stray_prefix")
    doc = parse(payload.encode("latin-1"))
    assert_round_trip(doc, card)
    assert set(repairs(doc)) == expected and len(doc.warnings) == len(expected)


def parse_or_typed_error(data: bytes) -> None:
    try:
        doc = parse(data)
    except DocumentError as exc:
        assert exc.message and "\n" not in exc.message
    else:
        doc.to_dict()


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.binary(max_size=300).map(lambda b: b"@\n\x1e\rANSI 6360141002" + b))
def test_random_bytes_give_a_document_or_a_typed_error(data):
    parse_or_typed_error(data)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([ANNEX_EXAMPLE, encode_card(CARD), v1_payload("A,B")]), st.integers(0, 2**32 - 1))
def test_mutated_valid_payloads_give_a_document_or_a_typed_error(seed, rnd_seed):
    rnd = random.Random(rnd_seed)
    data = bytearray(seed.encode("latin-1"))
    for _ in range(rnd.randint(1, 10)):
        pos = rnd.randrange(len(data) + 1)
        op = rnd.random()
        if op < 0.4 and data:
            data[min(pos, len(data) - 1)] = rnd.randrange(256)
        elif op < 0.7:
            data[pos:pos] = bytes([rnd.choice(b"\n\r\x1e@0123456789ADLZIQ ")])
        elif data:
            del data[pos : pos + rnd.randint(1, 12)]
    parse_or_typed_error(bytes(data))


ANY_VALUE = st.text(st.characters(max_codepoint=255, exclude_characters="\n\r"), max_size=12)
FIELD_IDS = ["DAQ", "DAA", "DAB", "DCS", "DAC", "DAD", "DCT", "DBB", "DBA", "DBD", "DBC", "DCG", "DAJ"]


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FIELD_IDS), ANY_VALUE), min_size=1, max_size=10), st.integers(1, 11))
def test_any_element_values_give_a_document_or_a_typed_error(items, version):
    parse_or_typed_error(build_payload([("DL", items)], version=version).encode("latin-1"))
