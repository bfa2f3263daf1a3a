"""AAMVA encoder: card fields in, byte-exact AAMVA DL/ID payload out.

Written independently of the parser so round-trip tests mean something: it
lays out the header, the subfile directory with correct offsets and lengths
(AAMVA DL/ID Card Design Standard, Annex D, D.12.3-D.12.4) and each version's
name elements (DAA for v01, DCS + DCT for v02-v03, DCS + DAC + DAD from v04).

The damage helpers imitate what counter scanners and issuers really deliver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

HEADER_PREFIX = "@\n\x1e\r"
_FILE_TYPE = re.compile(r"ANSI |AAMVA")


def build_payload(
    subfiles: list[tuple[str, list[tuple[str, str]]]],
    *,
    iin: str = "636014",
    version: int = 10,
    jurisdiction_version: int = 0,
    file_type: str = "ANSI ",
) -> str:
    """Header, directory and subfiles, with offsets counted from the '@'."""
    bodies = [kind + "\n".join(eid + value for eid, value in items) + "\r" for kind, items in subfiles]
    header = HEADER_PREFIX + file_type + iin + f"{version:02d}"
    if version >= 2:
        header += f"{jurisdiction_version:02d}"
    header += f"{len(subfiles):02d}"
    offset = len(header) + 10 * len(subfiles)
    directory = ""
    for (kind, _), body in zip(subfiles, bodies):
        directory += f"{kind}{offset:04d}{len(body):04d}"
        offset += len(body)
    return header + directory + "".join(bodies)


@dataclass(frozen=True)
class Card:
    """The fields a parser should get back, plus what the encoder needs to print them."""

    iin: str = "636014"
    version: int = 10
    jurisdiction_version: int = 0
    document_code: str = "DL"
    document_number: str = "D1234567"
    surname: str = "SAMPLE"
    given_names: tuple[str, ...] = ("JANE", "Q")
    date_of_birth: date = date(1980, 1, 2)
    expiry_date: date | None = date(2030, 1, 2)
    issue_date: date | None = date(2022, 1, 2)
    sex_code: str = "2"  # DBC as printed
    country: str = "USA"  # decides the date layout; written to DCG from v02
    jurisdiction: str = "CA"  # DAJ
    extra_elements: tuple[tuple[str, str], ...] = ()
    z_type: str | None = None
    z_elements: tuple[tuple[str, str], ...] = ()
    file_type: str = "ANSI "


def format_date(value: date, country: str) -> str:
    """CCYYMMDD for Canada, MMDDCCYY otherwise (D.12.5)."""
    if country in ("CAN", "CDN"):
        return value.strftime("%Y%m%d")
    return value.strftime("%m%d%Y")


def card_elements(card: Card) -> list[tuple[str, str]]:
    """The DL/ID subfile's elements, laid out as the card's version prints names."""
    items: list[tuple[str, str]] = [("DAQ", card.document_number)]
    first, middles = card.given_names[0], card.given_names[1:]
    if card.version == 1:
        full = [card.surname, first] + ([" ".join(middles)] if middles else [])
        items.append(("DAA", ",".join(full)))
    elif card.version in (2, 3):
        items += [("DCS", card.surname), ("DCT", ",".join(card.given_names))]
    else:
        items += [("DCS", card.surname), ("DAC", first)]
        if middles:
            items.append(("DAD", ",".join(middles)))
    items.append(("DBB", format_date(card.date_of_birth, card.country)))
    if card.expiry_date:
        items.append(("DBA", format_date(card.expiry_date, card.country)))
    if card.issue_date:
        items.append(("DBD", format_date(card.issue_date, card.country)))
    items += [("DBC", card.sex_code), ("DAJ", card.jurisdiction)]
    if card.version >= 2:
        items.append(("DCG", card.country))
    return items + list(card.extra_elements)


def encode_card(card: Card) -> str:
    subfiles = [(card.document_code, card_elements(card))]
    if card.z_type:
        subfiles.append((card.z_type, list(card.z_elements)))
    return build_payload(
        subfiles,
        iin=card.iin,
        version=card.version,
        jurisdiction_version=card.jurisdiction_version,
        file_type=card.file_type,
    )


def encode_card_bytes(card: Card) -> bytes:
    return encode_card(card).encode("latin-1")


# --------------------------------------------------------------------------- damage


def wedge_crlf(payload: str) -> str:
    """A keyboard wedge types every CR as Enter: CR LF."""
    return payload.replace("\r", "\r\n")


def drop_record_separator(payload: str) -> str:
    """A keyboard wedge cannot type RS and drops it."""
    return payload.replace("\x1e", "", 1)


def lf_for_record_separator(payload: str) -> str:
    return payload.replace("\x1e", "\n", 1)


def drop_compliance_indicator(payload: str) -> str:
    return payload[1:] if payload.startswith("@") else payload


def designator_span(payload: str, index: int) -> tuple[int, int]:
    """Where the index-th subfile designator's 4-digit offset sits in an undamaged payload."""
    match = _FILE_TYPE.search(payload)
    assert match is not None
    version = int(payload[match.end() + 6 : match.end() + 8])
    start = match.end() + 8 + (2 if version >= 2 else 0) + 2 + 10 * index + 2
    return start, start + 4


def set_offset(payload: str, index: int, text: str) -> str:
    """Overwrite a designator's offset with any 4 characters ("0000", "00A1", ...)."""
    assert len(text) == 4
    start, end = designator_span(payload, index)
    return payload[:start] + text + payload[end:]


def shift_offset(payload: str, index: int, delta: int) -> str:
    start, end = designator_span(payload, index)
    return set_offset(payload, index, f"{int(payload[start:end]) + delta:04d}")


def pad_value(payload: str, element_id: str, left: int = 0, right: int = 2) -> str:
    """Surround one element's value with spaces, keeping the header's offsets right.

    Later subfiles move, so their offsets and this subfile's length are
    rewritten as an issuer with padded fields would have written them.
    """
    for offset, length in _directory(payload):
        subfile = payload[offset : offset + length]
        if subfile[2:5] == element_id:
            at = offset + 5
        elif "\n" + element_id in subfile:
            at = offset + subfile.index("\n" + element_id) + 4
        else:
            continue
        end = at
        while payload[end] not in "\n\r":
            end += 1
        padded = payload[:at] + " " * left + payload[at:end] + " " * right + payload[end:]
        return _fix_directory(padded, at, left + right)
    raise AssertionError(f"no element {element_id}")


def _directory(payload: str) -> list[tuple[int, int]]:
    match = _FILE_TYPE.search(payload)
    assert match is not None
    version = int(payload[match.end() + 6 : match.end() + 8])
    entries_at = match.end() + 8 + (2 if version >= 2 else 0)
    entries = int(payload[entries_at : entries_at + 2])
    spans = []
    for index in range(entries):
        at = entries_at + 2 + 10 * index
        spans.append((int(payload[at + 2 : at + 6]), int(payload[at + 6 : at + 10])))
    return spans


def _fix_directory(payload: str, changed_at: int, added: int) -> str:
    match = _FILE_TYPE.search(payload)
    assert match is not None
    version = int(payload[match.end() + 6 : match.end() + 8])
    entries_at = match.end() + 8 + (2 if version >= 2 else 0)
    entries = int(payload[entries_at : entries_at + 2])
    out = payload
    for index in range(entries):
        at = entries_at + 2 + 10 * index
        kind, offset, length = out[at : at + 2], int(out[at + 2 : at + 6]), int(out[at + 6 : at + 10])
        if offset > changed_at:
            offset += added
        elif offset <= changed_at < offset + length:
            length += added
        out = out[: at + 2] + f"{offset:04d}{length:04d}" + out[at + 10 :]
    return out
