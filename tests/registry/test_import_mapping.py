"""Authority list rows: the mapping, each refusal reason, the fingerprint, and the streaming readers.

Pure functions (registry/importer.py) and the readers (registry/import_readers.py)
over bytes in memory; the preview and apply over a real registry are
tests/registry/test_import_run.py.
"""

from __future__ import annotations

import io
from datetime import date

import pytest

from appliance.records import Action
from registry.entries import DocumentRef, Name
from registry.import_readers import (
    BadRow,
    CountingReader,
    ImportFileError,
    detect_delimiter,
    detect_format,
    header_columns,
    read_rows,
)
from registry.importer import (
    ImportMapping,
    MappedRow,
    MappingError,
    Refusal,
    fields_from_dict,
    fields_to_dict,
    map_row,
    suggest_mapping,
)

TODAY = date(2026, 11, 27)
COURT = {"columns": {"reference": "case_no", "surnames": "surname", "given_names": "given", "date_of_birth": "dob",
                     "document_number": "id_no", "valid_until": "until"},
         "defaults": {"category": "judgment-default", "document_class": "I", "document_issuer": "CHN"}}


def mapping(**changes) -> ImportMapping:
    data = {**COURT, **changes}
    return ImportMapping.from_dict(data)


def row(**values) -> dict:
    out = {"case_no": "(2024)京0105执123号", "surname": "Zhang", "given": "Wei", "dob": "1970-01-05",
           "id_no": "110105197001051234", "until": "2029-06-30"}
    out.update(values)
    return out


def test_a_complete_row_becomes_an_entry_with_the_mappings_defaults():
    mapped = map_row(row(), mapping(), today=TODAY)
    assert isinstance(mapped, MappedRow)
    f = mapped.fields
    assert (f.reference, f.surnames, f.given_names, f.date_of_birth) == ("(2024)京0105执123号", "Zhang", "Wei",
                                                                          date(1970, 1, 5))
    assert f.documents == (DocumentRef("I", "CHN", "110105197001051234"),)
    assert (f.category, f.action, f.valid_from, f.valid_until) == ("judgment-default", None, None, date(2029, 6, 30))


@pytest.mark.parametrize("values, reason", [
    ({"case_no": "  "}, "no reference: column 'case_no' is empty"),
    ({"surname": ""}, "no surname: column 'surname' is empty"),
    ({"dob": "", "id_no": ""}, "no date of birth and no document number: nothing to match a traveller by"),
    ({"dob": "05/01/1970"}, "date of birth '05/01/1970' is not a date like 2024-12-31"),
    ({"dob": "2030-01-01"}, "date of birth 2030-01-01 is in the future"),
    ({"until": ""}, "no expiry: column 'until' is empty and the mapping sets no default term"),
    ({"until": "2025-01-01"}, "expired on 2025-01-01"),
    ({"until": "31.12.2029"}, "expiry date '31.12.2029' is not a date like 2024-12-31"),
    ({"surname": "X" * 501}, "column 'surname' is longer than 500 characters"),
    ({"surname": {"nested": 1}}, "column 'surname' holds {\"nested\": 1}, not text"),
])
def test_each_bad_row_is_refused_with_one_line_that_names_the_column(values, reason):
    refused = map_row(row(**values), mapping(), today=TODAY)
    assert isinstance(refused, Refusal) and refused.reason == reason


def test_a_refused_row_keeps_its_reference_so_the_import_does_not_withdraw_its_entry():
    refused = map_row(row(until=""), mapping(), today=TODAY)
    assert refused.reference == "(2024)京0105执123号"


def test_document_without_type_or_issuer_and_a_bad_action_are_refused():
    no_class = mapping(defaults={"category": "c", "document_issuer": "CHN"})
    assert "needs a document type" in map_row(row(), no_class, today=TODAY).reason
    no_issuer = mapping(defaults={"category": "c", "document_class": "I"})
    assert "needs its issuing country" in map_row(row(), no_issuer, today=TODAY).reason
    with_action = mapping(columns={**COURT["columns"], "action": "act"})
    assert map_row(row(act="BAN"), with_action, today=TODAY).reason == "action 'BAN' is not DENY or REFER"
    assert map_row(row(act="deny"), with_action, today=TODAY).fields.action is Action.DENY
    bad_issuer = map_row(row(iss="Z1"), mapping(columns={**COURT["columns"], "document_issuer": "iss"}), today=TODAY)
    assert "not an ISO 3166-1 alpha-3 code" in bad_issuer.reason


def test_a_row_without_expiry_takes_the_default_term_from_its_listing_day():
    term = mapping(term_days=365, columns={**COURT["columns"], "valid_from": "listed"})
    listed = map_row(row(until="", listed="2026-01-01"), term, today=TODAY)
    assert listed.fields.valid_until == date(2027, 1, 1)
    unlisted = map_row(row(until=""), term, today=TODAY)
    assert unlisted.fields.valid_until == date(2027, 11, 27)


def test_the_fingerprint_ignores_the_day_it_is_read_but_not_any_change_to_the_row():
    term = mapping(term_days=365)
    first = map_row(row(until=""), term, today=TODAY)
    a_week_later = map_row(row(until=""), term, today=date(2026, 12, 4))
    assert first.fingerprint == a_week_later.fingerprint  # same file, another day: unchanged
    assert first.fields.valid_until != a_week_later.fields.valid_until
    assert map_row(row(dob="1970-01-06", until=""), term, today=TODAY).fingerprint != first.fingerprint
    assert map_row(row(until=""), mapping(term_days=730), today=TODAY).fingerprint != first.fingerprint
    assert map_row(row(), mapping(), today=TODAY).fingerprint != first.fingerprint


def test_json_numbers_and_csv_text_of_the_same_row_give_the_same_fingerprint():
    as_text = map_row(row(case_no="2024001"), mapping(), today=TODAY)
    as_number = map_row(row(case_no=2024001), mapping(), today=TODAY)
    assert as_text.fingerprint == as_number.fingerprint


def test_entry_fields_survive_staging_as_json():
    with_aliases = mapping(columns={**COURT["columns"], "latin_variants": "alias"})
    mapped = map_row(row(alias="Chang, Wei; Jang, Wei"), with_aliases, today=TODAY)
    assert mapped.fields.latin_variants == (Name("Chang", "Wei"), Name("Jang", "Wei"))
    assert fields_from_dict(fields_to_dict(mapped.fields)) == mapped.fields


@pytest.mark.parametrize("data, message", [
    ([], "a mapping is a JSON object"),
    ({"columns": {"surnames": "s"}}, "mapping columns.reference is required"),
    ({"columns": {"reference": "r", "surnames": "s", "shoe_size": "x"}}, "mapping columns.shoe_size is not a field"),
    ({"columns": {"reference": "r", "surnames": "s"}, "defaults": {"reference": "x"}},
     "defaults.reference is not a field"),
    ({"columns": {"reference": "r", "surnames": "s"}, "term_days": 0}, "term_days must be a whole number"),
    ({"columns": {"reference": "r", "surnames": "s"}, "date_format": "YYYY"}, "date_format must be a strptime format"),
    ({"columns": {"reference": "r", "surnames": "s"}, "defaults": {"action": "BAN"}},
     "defaults.action must be DENY or REFER"),
    ({"columns": {"reference": "r", "surnames": "s"}, "colums": {}}, "mapping key 'colums' is not one of"),
])
def test_a_bad_mapping_is_refused_naming_the_key(data, message):
    with pytest.raises(MappingError, match=message.replace(".", r"\.")):
        ImportMapping.from_dict(data)


def test_a_mapping_round_trips_through_json_and_is_suggested_from_plain_headers():
    assert ImportMapping.from_dict(mapping().to_dict()) == mapping()
    assert suggest_mapping(["Case No", "Surname", "First name", "DOB", "Passport No", "Expiry", "notes"]) == {
        "reference": "Case No", "surnames": "Surname", "given_names": "First name", "date_of_birth": "DOB",
        "document_number": "Passport No", "valid_until": "Expiry"}


# -- readers ---------------------------------------------------------------------

def rows_of(data: bytes, fmt: str, **kwargs) -> list:
    return list(read_rows(CountingReader(io.BytesIO(data)), fmt, **kwargs))


def test_csv_rows_are_numbered_by_line_and_a_short_row_is_a_bad_row():
    data = "case_no,surname\nA-1,Zhang\n\nA-2\n\"A-3\",\"Li, Na\"\n".encode()
    assert rows_of(data, "csv") == [(2, {"case_no": "A-1", "surname": "Zhang"}),
                                    (4, BadRow("the row has 1 fields, the header has 2")),
                                    (5, {"case_no": "A-3", "surname": "Li, Na"})]


def test_a_json_array_and_json_lines_stream_objects_and_number_them():
    assert rows_of(b'[{"a": 1}, 2, {"a": "x"}]', "json") == [(1, {"a": 1}), (2, BadRow("item 2 is not a JSON object")),
                                                             (3, {"a": "x"})]
    lines = rows_of(b'{"a": 1}\n\nnot json\n[1]\n{"a": 2}\n', "jsonl")
    assert lines[0] == (1, {"a": 1}) and lines[3] == (5, {"a": 2})
    assert lines[1][0] == 3 and lines[1][1].reason.startswith("the line is not JSON")
    assert lines[2] == (4, BadRow("the line is not a JSON object"))


def test_the_reader_counts_and_hashes_every_byte_for_the_audit_record():
    import hashlib

    data = b'[{"a": 1}, {"a": 2}]   \n'
    counter = CountingReader(io.BytesIO(data))
    assert len(list(read_rows(counter, "json"))) == 2
    assert counter.position == len(data) and counter.sha256.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("data, fmt, message", [
    (b'[{"a": 1}, {"a": ', "json", "the JSON breaks off or is malformed after item 1"),
    (b'[{"a": 1}] trailing', "json", "the JSON breaks off or is malformed after item 1"),
    (b"case,surname\n\"unterminated,x\n", "csv", "line 2: unexpected end of data"),
    (b"case,surname\nA,\xff\xfe\n", "csv", "the file is not UTF-8 text"),
    (b'{"a": 1}\n{"a": "\xff"}\n', "jsonl", "line 2 is not UTF-8 text"),
    (b"case,case\nA,B\n", "csv", "column 'case' appears twice in the header"),
    (b"\n\n", "csv", "the file is empty"),
])
def test_an_unreadable_file_is_one_line_not_a_traceback(data, fmt, message):
    with pytest.raises(ImportFileError, match=message):
        rows_of(data, fmt)


def test_format_and_delimiter_are_detected_from_the_content():
    assert detect_format("list.json", b'  [{"a":1}]') == "json"
    assert detect_format("list.json", b'{"a":1}\n{"a":2}') == "jsonl"
    assert detect_format("list.txt", b"case;surname\n") == "csv"
    assert detect_delimiter(b"case;surname;dob\nA;B;C\n") == ";"
    assert detect_delimiter(b"case\tsurname\n") == "\t"
    with pytest.raises(ImportFileError, match="binary, not CSV or JSON"):
        detect_format("list.csv", b"PK\x03\x04\x00\x00")
    with pytest.raises(ImportFileError, match="not UTF-8"):
        detect_format("list.csv", b"case,name\n\xc0\xaf")
    assert header_columns(CountingReader(io.BytesIO(b'{"b":1}\n{"a":2,"b":3}\n')), "jsonl") == ["b", "a"]
