"""AAMVA DL/ID PDF417 payloads (driver licences and ID cards), versions 01-11.

Layout per AAMVA DL/ID Card Design Standard, Annex D (D.12.3 header, D.12.4
subfile designators, D.12.5 data elements)::

    @ LF RS CR  "ANSI " IIN(6) version(2) [jurisdiction version(2), v02+] entries(2)
    entries x ( type(2) offset(4) length(4) )
    type element LF element LF ... CR      (one per subfile: DL, ID, Z?)

Counter scanners rarely deliver that byte-exact. Keyboard-wedge scanners turn CR
into CR LF, drop the RS or send LF for it, and prepend their own prefix; issuers
write wrong subfile offsets and space-padded values. Each damage is repaired and
reported as one warning per kind; repairs never make the document invalid.
``checks`` only judge the document data: the mandatory elements are present
and its dates are real dates.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import NamedTuple

from .aamva_tables import COUNTRY_CODES, DATE_FORMAT_BY_COUNTRY, IIN_TABLE, KNOWN_ELEMENT_IDS
from .errors import MalformedAAMVA
from .model import FORMAT_AAMVA, Document, checked_text, reference_day

LF, RS, CR = "\n", "\x1e", "\r"
# Compliance indicator and the three separators the header declares (D.12.3).
HEADER_PREFIX = "@" + LF + RS + CR
SUPPORTED_VERSIONS = range(1, 12)

_FILE_TYPE = re.compile(r"(ANSI ?|AAMVA)(?=[0-9]{6})")
# How far before the file type a '@' still counts as the compliance indicator:
# its 3 separators plus a little damage ('@' LF 'N' CR on some cards).
_AT_REACH = 8
_TRAILING_SEPARATORS = re.compile(r"[\n\r\x1e]*\Z")
_TWO_DIGITS = re.compile(r"[0-9]{2}")
_EIGHT_DIGITS = re.compile(r"[0-9]{8}")
_SUBFILE_TYPE = re.compile(r"[A-Z]{2}")
_ELEMENT_ID = re.compile(r"[A-Z]{2}[A-Z0-9]")
_JURISDICTION_CODE = re.compile(r"[A-Z]{2}")
# A DL/ID subfile starts with its type and then a standard element ID; a
# jurisdiction subfile (Z + letter) starts with its type and a Z element ID.
_KNOWN_IDS = "|".join(sorted(KNOWN_ELEMENT_IDS))
_DOCUMENT_TYPES = ("DL", "ID")

_SEX_CODES = {"1": "M", "2": "F", "9": "X", "M": "M", "F": "F", "X": "X"}
# Placeholders some jurisdictions print for "no middle name".
_NO_NAME = {"NONE", "UNAVL", "UNAVAILABLE", "NMN"}
_PLAUSIBLE_YEARS = range(1900, 2100)
_DATE_ELEMENTS = {"DBB": "date of birth", "DBA": "expiry date", "DBD": "issue date"}
# DBA values that are no date: all 9s marks a non-expiring credential, all 0s
# an expiry left blank (zero-filled). Either way there is no expiry date.
_NO_EXPIRY = {"99999999": "non-expiring credential", "00000000": "no expiry date recorded"}
# Fixed-length fields the standard itself fills with spaces: trimmed without a warning.
_SPACE_FILLED = {"DAK"}


def parse_aamva(data: bytes | str, *, today: date | datetime | None = None) -> Document:
    """Parse an AAMVA DL/ID PDF417 payload; MalformedAAMVA when it cannot be read.

    ``today`` (a datetime counts as its date) only judges the date of birth.
    """
    text = checked_text(data)
    reference = reference_day(today)
    notes = _Notes()
    text = _repair_line_endings(text, notes)
    text, file_type = _repair_prefix(text, notes)
    header = _read_header(text, file_type, notes)
    subfiles = _locate_subfiles(text, header, notes)
    located = sorted((sub.found_at, sub.type) for sub in subfiles if sub.found_at is not None)
    elements, z_elements, document_code = _read_subfiles(text, located, notes)
    return _build_document(header, subfiles, elements, z_elements, document_code, reference, notes)


# --------------------------------------------------------------------------- notes


class _Notes:
    """Warnings, one per kind: repairs (damage undone) and problems (data faults)."""

    def __init__(self) -> None:
        self.repairs: dict[str, str] = {}
        self.problems: dict[str, str] = {}

    def repair(self, kind: str, message: str) -> None:
        self.repairs.setdefault(kind, message)

    def problem(self, kind: str, message: str) -> None:
        self.problems.setdefault(kind, message)

    @property
    def warnings(self) -> list[str]:
        return [*self.repairs.values(), *self.problems.values()]


# --------------------------------------------------------------------------- input and header


def _repair_line_endings(text: str, notes: _Notes) -> str:
    """Keyboard wedges type CR as Enter, which arrives as CR LF; no valid payload holds CR LF."""
    if CR + LF in text:
        notes.repair("wedge_crlf", "keyboard-wedge CR LF line endings read back as the CR segment terminator")
        text = text.replace(CR + LF, CR)
    return text


def _repair_prefix(text: str, notes: _Notes) -> tuple[str, str]:
    """Restore the 4-character prefix so the header's subfile offsets line up again (D.12.3).

    Offsets count from the '@', so dropping scanner junk before it and putting
    back a lost or damaged separator re-aligns every subfile exactly.
    """
    match = _FILE_TYPE.search(text)
    if match is None:
        raise MalformedAAMVA(
            "no AAMVA header: the 'ANSI ' file type followed by a 6-digit issuer number is missing"
        )
    prefix = text[: match.start()]
    if prefix != HEADER_PREFIX:
        _note_prefix_damage(prefix, notes)
    file_type = match.group(1)
    if file_type == "ANSI":
        notes.repair("file_type", "file type 'ANSI' lacked its trailing space; restored")
        file_type = "ANSI "
    return HEADER_PREFIX + file_type + text[match.end() :], file_type.strip()


def _note_prefix_damage(prefix: str, notes: _Notes) -> None:
    """Name what is wrong with what precedes the file type: junk, '@', separators."""
    at = prefix.rfind("@", max(len(prefix) - _AT_REACH, 0))
    if at >= 0:
        junk, separators = prefix[:at], prefix[at + 1 :]
    else:
        tail = _TRAILING_SEPARATORS.search(prefix)
        junk, separators = prefix[: tail.start()], tail.group()
        notes.repair("compliance_indicator", "compliance indicator '@' missing before the header; restored")
    if junk:
        notes.repair("stray_prefix", f"{len(junk)} stray character(s) before the header ignored (scanner prefix)")
    if separators == LF + RS + CR:
        return
    if separators == LF + LF + CR:
        notes.repair("record_separator_lf", "LF in place of the header's RS record separator; repaired")
    elif separators == LF + CR:
        notes.repair("record_separator_missing", "RS record separator dropped from the header; restored")
    elif at >= 0:
        damaged = prefix[at:]
        notes.repair("header_separators", f"damaged compliance header {damaged!r} replaced with {HEADER_PREFIX!r}")
    else:
        notes.repair("header_separators", f"header separators {separators!r} replaced with {LF + RS + CR!r}")


class _Designator(NamedTuple):
    """One subfile directory entry (D.12.4): type, offset and length as written and as numbers."""

    type: str
    offset_text: str
    length_text: str
    offset: int | None  # None when the written offset is not 4 digits
    length: int | None

    @classmethod
    def read(cls, chunk: str) -> _Designator:
        offset, length = chunk[2:6], chunk[6:10]
        return cls(chunk[:2], offset, length, _number(offset), _number(length))


class _Header(NamedTuple):
    file_type: str
    iin: str
    version: int
    jurisdiction_version: int | None
    entries: int | None
    designators: tuple[_Designator, ...]
    directory_start: int


class _Subfile(NamedTuple):
    """Where a subfile really starts; no designator when only scanning found it."""

    type: str
    found_at: int | None
    designator: _Designator | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        """The ``subfiles`` entry of ``extra``: type, declared offset and length, real start."""
        declared = self.designator
        offset, length = (declared.offset, declared.length) if declared else (None, None)
        return {"type": self.type, "offset": offset, "length": length, "found_at": self.found_at}


def _read_header(text: str, file_type: str, notes: _Notes) -> _Header:
    """IIN, versions, entry count and designators (D.12.3, D.12.4).

    Version 01 headers have no jurisdiction version, later ones do; cards of
    either era exist with the other layout, so the one whose designator area
    starts with a two-letter subfile type wins.
    """
    pos = len(HEADER_PREFIX) + 5
    iin = text[pos : pos + 6]
    version_text = text[pos + 6 : pos + 8]
    if not _TWO_DIGITS.fullmatch(version_text):
        raise MalformedAAMVA(f"AAMVA version number {version_text!r} after issuer {iin} is not two digits")
    version = int(version_text)
    if version not in SUPPORTED_VERSIONS:
        notes.problem(
            "version", f"AAMVA version {version:02d} is outside the supported 01-11; read as best as possible"
        )
    after_version = pos + 8
    layouts = (True, False) if version >= 2 else (False, True)
    chosen = layouts[0]
    for with_jurisdiction_version in layouts:
        entries_at = after_version + (2 if with_jurisdiction_version else 0)
        numbers = text[after_version : entries_at + 2]
        if (
            len(numbers) == entries_at + 2 - after_version
            and _all_digits(numbers)
            and _SUBFILE_TYPE.fullmatch(text[entries_at + 2 : entries_at + 4])
        ):
            chosen = with_jurisdiction_version
            break
    entries_at = after_version + (2 if chosen else 0)
    jurisdiction_text = text[after_version:entries_at]
    jurisdiction_version = int(jurisdiction_text) if chosen and _all_digits(jurisdiction_text) else None
    entries_text = text[entries_at : entries_at + 2]
    entries = int(entries_text) if _TWO_DIGITS.fullmatch(entries_text) else None
    directory_start = entries_at + 2
    designators = _read_designators(text, directory_start, entries or 0)
    if entries is not None and len(designators) < entries:
        read = len(designators)
        notes.repair("entry_count", f"header lists {entries} subfile(s), only {read} designator(s) precede the data")
    return _Header(file_type, iin, version, jurisdiction_version, entries, designators, directory_start)


def _read_designators(text: str, start: int, entries: int) -> tuple[_Designator, ...]:
    """Up to ``entries`` designators, stopping where the subfile data begins (D.12.4).

    Headers overstate their entry count; reading on would turn the start of
    the DL subfile ("DLDAQ1234...") into a bogus designator. The directory ends
    at the first offset a designator declares, or at 10 characters that are
    the start of a subfile rather than a type and 8 digits. A designator whose
    offset is damaged ("DL00A10287") is still read; its subfile is found later.
    """
    designators: list[_Designator] = []
    data_start = len(text)
    at = start
    while len(designators) < entries and at < data_start:
        chunk = text[at : at + 10]
        if len(chunk) < 10 or not _SUBFILE_TYPE.fullmatch(chunk[:2]):
            break
        if not _all_digits(chunk[2:]) and _looks_like_subfile(text, at, chunk[:2]):
            break
        designator = _Designator.read(chunk)
        designators.append(designator)
        at += 10
        offset = designator.offset
        if offset is not None and offset >= at:  # an offset into the header is damage, not data
            data_start = min(data_start, offset)
    return tuple(designators)


def _all_digits(value: str) -> bool:
    """ASCII 0-9 only (str.isdigit alone also accepts '¹' and other digits)."""
    return value.isascii() and value.isdigit()


def _number(value: str) -> int | None:
    return int(value) if _all_digits(value) else None


# --------------------------------------------------------------------------- subfiles


def _looks_like_subfile(text: str, start: int, kind: str, *, exact: bool = False) -> bool:
    """Type at start, then a plausible first element.

    At the exact declared offset a DL/ID type suffices, so an empty or garbled
    document subfile is reported as such rather than as missing. Not so for Z
    subfiles: "ZCZCA" holds "ZC" twice.
    """
    if not text.startswith(kind, start):
        return False
    if exact and kind in _DOCUMENT_TYPES:
        return True
    first = text[start + 2 : start + 5]
    if kind in _DOCUMENT_TYPES:
        return first in KNOWN_ELEMENT_IDS
    if kind.startswith("Z"):
        empty = text[start + 2 : start + 3] in (CR, LF)
        return empty or (first[:1] == "Z" and bool(_ELEMENT_ID.fullmatch(first)))
    return bool(_ELEMENT_ID.fullmatch(first))


def _scan_pattern(kinds: tuple[str, ...]) -> re.Pattern[str] | None:
    """Where a subfile of these types starts: its type, then a plausible first element ID."""
    document = [k for k in kinds if k in _DOCUMENT_TYPES]
    jurisdiction = [k for k in kinds if k.startswith("Z")]
    parts = []
    if document:
        parts.append(f"(?:{'|'.join(document)})(?=(?:{_KNOWN_IDS}))")
    if jurisdiction:
        parts.append(f"(?:{'|'.join(jurisdiction)})(?=Z[A-Z][A-Z0-9])")
    return re.compile("|".join(parts)) if parts else None


def _scan(text: str, kinds: tuple[str, ...], start: int, claimed: dict[int, str]) -> int | None:
    pattern = _scan_pattern(kinds)
    if pattern is None:
        return None
    for match in pattern.finditer(text, start):
        if match.start() not in claimed:
            return match.start()
    return None


def _locate_subfiles(text: str, header: _Header, notes: _Notes) -> list[_Subfile]:
    """Where each subfile starts: at its declared offset, within two of it, or by scanning.

    Issuers get offsets wrong (zero, letters, off by one or two); the data is
    still there, found by its type followed by an element ID. One entry per
    designator, in directory order, then a DL/ID subfile the directory lacks.
    """
    floor = header.directory_start
    claimed: dict[int, str] = {}
    fixes: list[str] = []
    found: list[int | None] = []
    for designator in header.designators:
        start = _near_declared_offset(text, designator, floor, claimed)
        if start is not None:
            claimed[start] = designator.type
            if start != designator.offset:
                fixes.append(f"{designator.type} declared at {designator.offset_text}, found at {start}")
        found.append(start)
    missing = []
    for index, designator in enumerate(header.designators):
        if found[index] is not None:
            continue
        start = _scan(text, (designator.type,), floor, claimed)
        if start is None:
            missing.append(designator.type)
            continue
        claimed[start] = designator.type
        found[index] = start
        fixes.append(f"{designator.type} declared at {designator.offset_text!r}, found at {start} by scanning")
    subfiles = [_Subfile(d.type, start, d) for d, start in zip(header.designators, found)]
    if not any(kind in _DOCUMENT_TYPES for kind in claimed.values()):
        start = _scan(text, _DOCUMENT_TYPES, floor, claimed)
        if start is not None:
            kind = text[start : start + 2]
            claimed[start] = kind
            subfiles.append(_Subfile(kind, start))
            fixes.append(f"{kind} not in the subfile directory, found at {start} by scanning")
    if not any(kind in _DOCUMENT_TYPES for kind in claimed.values()):
        raise MalformedAAMVA("no DL or ID subfile found after the AAMVA header")
    if fixes:
        notes.repair("subfile_offsets", "wrong subfile offsets in the header: " + "; ".join(fixes))
    if missing:
        notes.problem("subfile_missing", f"subfile(s) {', '.join(missing)} listed in the header not found")
    return subfiles


def _near_declared_offset(text: str, designator: _Designator, floor: int, claimed: dict[int, str]) -> int | None:
    """The declared offset, or one or two either side of it, where this subfile starts."""
    offset, kind = designator.offset, designator.type
    if offset is None:
        return None
    for start in (offset, offset - 1, offset + 1, offset - 2, offset + 2):
        if start >= floor and start not in claimed and _looks_like_subfile(text, start, kind, exact=start == offset):
            return start
    return None


def _read_subfiles(
    text: str, located: list[tuple[int, str]], notes: _Notes
) -> tuple[dict[str, str], dict[str, str], str]:
    """Data elements of the DL/ID subfiles and, apart, of the jurisdiction (Z) ones (D.12.5)."""
    elements: dict[str, str] = {}
    z_elements: dict[str, str] = {}
    document_code = None
    counts = {"padded": 0, "unreadable": 0, "duplicate": 0, "document": 0}
    for index, (start, kind) in enumerate(located):
        end = located[index + 1][0] if index + 1 < len(located) else len(text)
        pieces = _split_elements(text[start + 2 : end], notes)
        is_document = kind in _DOCUMENT_TYPES
        if is_document and document_code is None:
            document_code = kind
        for piece in pieces:
            if not piece.strip(" "):
                continue
            element_id, value = piece[:3], piece[3:]
            if element_id not in KNOWN_ELEMENT_IDS and not _ELEMENT_ID.fullmatch(element_id):
                counts["unreadable"] += 1
                continue
            trimmed = value.strip(" ")
            if trimmed != value and element_id not in _SPACE_FILLED:
                counts["padded"] += 1
            target = z_elements if element_id.startswith("Z") or not is_document else elements
            if element_id in target:
                counts["duplicate"] += 1
                continue
            target[element_id] = trimmed
            if is_document:
                counts["document"] += 1
    if counts["document"] == 0:
        raise MalformedAAMVA(f"the {document_code} subfile holds no readable data elements")
    if counts["padded"]:
        notes.repair("space_padding", f"spaces around {counts['padded']} element value(s) trimmed")
    if counts["unreadable"]:
        notes.problem("unreadable_elements", f"{counts['unreadable']} unreadable data element(s) skipped")
    if counts["duplicate"]:
        notes.problem(
            "duplicate_elements", f"{counts['duplicate']} repeated element(s) ignored; the first one kept"
        )
    return elements, z_elements, document_code or "DL"


def _split_elements(body: str, notes: _Notes) -> list[str]:
    """Elements are LF-separated and the subfile ends at CR; a wedge may leave only CRs."""
    if LF in body:
        cut = body.find(CR)
        if cut < 0:
            notes.repair("segment_terminator", "subfile without its CR terminator; ended at the next subfile")
            return body.split(LF)
        return body[:cut].split(LF)
    pieces = body.split(CR)
    if sum(1 for piece in pieces if piece.strip(" ")) > 1:
        notes.repair("element_separators", "data elements separated by CR instead of LF; read anyway")
    return pieces


# --------------------------------------------------------------------------- fields


def _build_document(
    header: _Header,
    subfiles: list[_Subfile],
    elements: dict[str, str],
    z_elements: dict[str, str],
    document_code: str,
    today: date,
    notes: _Notes,
) -> Document:
    issuer = IIN_TABLE.get(header.iin)
    country = _country(elements, issuer, notes)
    authority = _authority(elements, issuer)
    surname, given_names = _names(elements, notes)
    dates, date_format, dates_ok = _dates(elements, country, today, notes)
    sex = _sex(elements.get("DBC"), notes)
    document_number = elements.get("DAQ") or None
    missing = [
        label
        for label, present in (
            ("document number (DAQ)", document_number),
            ("family name (DCS)", surname),
            ("date of birth (DBB)", dates["DBB"]),
        )
        if not present
    ]
    if missing:
        notes.problem("mandatory", "mandatory element(s) missing or unreadable: " + ", ".join(missing))
    extra = {
        "file_type": header.file_type,
        "iin": header.iin,
        "issuer": issuer[2] if issuer else None,
        "version": header.version,
        "jurisdiction_version": header.jurisdiction_version,
        "entries": header.entries,
        "subfiles": [sub.as_dict() for sub in subfiles],
        "elements": elements,
        "jurisdiction_elements": z_elements,
        "date_format": date_format,
        "repairs": list(notes.repairs),
    }
    return Document(
        format=FORMAT_AAMVA,
        layout=None,
        document_code=document_code,
        document_number=document_number,
        surname=surname,
        given_names=given_names,
        date_of_birth=dates["DBB"],
        expiry_date=dates["DBA"],
        issue_date=dates["DBD"],
        sex=sex,
        nationality=None,
        issuing_country=country,
        issuing_authority=authority,
        checks={"mandatory_elements": not missing, "dates": dates_ok},
        warnings=notes.warnings,
        legs=None,
        extra=extra,
    )


def _country(elements: dict[str, str], issuer: tuple | None, notes: _Notes) -> str | None:
    """DCG country identification (CDN is Canada's old code), else the IIN register."""
    raw = elements.get("DCG", "")
    country = COUNTRY_CODES.get(raw.upper())
    if raw and country is None:
        notes.problem("country", f"unrecognised country identification DCG {raw!r}")
    return country or (issuer[1] if issuer else None)


def _authority(elements: dict[str, str], issuer: tuple | None) -> str | None:
    """The issuing jurisdiction: the IIN identifies the issuer (D.12.3); DAJ is only the address."""
    if issuer is not None:
        return issuer[0]
    address = elements.get("DAJ", "").upper()
    return address if _JURISDICTION_CODE.fullmatch(address) else None


def _names(elements: dict[str, str], notes: _Notes) -> tuple[str | None, str | None]:
    """Family and given names: DCS + DAC/DAD (v04+), DCT (v02-03) or DAA (v01 full name)."""
    surname = elements.get("DCS") or elements.get("DAB") or None
    middle = elements.get("DAD", "")
    if middle.upper() in _NO_NAME:
        middle = ""
    given = _words(elements.get("DAC", ""), middle) or _words(elements.get("DCT", ""))
    full = elements.get("DAA", "")
    if full and (surname is None or not given):
        if "," in full:
            parts = [part.strip() for part in full.split(",")]
        else:
            parts = full.split()
            if len(parts) > 1:
                notes.repair(
                    "full_name_spaces",
                    "full name DAA has spaces, not commas, so the name order is uncertain;"
                    " guessed SURNAME GIVEN MIDDLE",
                )
        surname = surname or (parts[0] if parts else None) or None
        given = given or _words(*parts[1:3])
    return surname, given or None


def _words(*values: str) -> str:
    """Name parts joined by single spaces; commas separate multiple names (D.12.5, DAD/DCT)."""
    words = [" ".join(value.replace(",", " ").split()) for value in values]
    return " ".join(word for word in words if word)


def _dates(
    elements: dict[str, str], country: str | None, today: date, notes: _Notes
) -> tuple[dict[str, date | None], str | None, bool]:
    """DBB, DBA, DBD: MMDDCCYY (USA) or CCYYMMDD (Canada), told apart by the value itself.

    A value whose first four digits are a year 1900-2099 and whose rest is a
    real month and day is CCYYMMDD whatever the country; read as MMDDCCYY that
    would be month 19 or 20, so the two can never both fit.
    """
    expected = DATE_FORMAT_BY_COUNTRY.get(country or "")
    parsed: dict[str, date | None] = {}
    formats: list[str] = []
    unexpected: list[str] = []
    unreadable: list[str] = []
    for element_id in _DATE_ELEMENTS:
        value = elements.get(element_id)
        parsed[element_id] = None
        if not value:
            continue
        if element_id == "DBA" and value in _NO_EXPIRY:
            notes.problem("no_expiry", f"expiry date DBA {value}: {_NO_EXPIRY[value]}; no expiry date")
            continue
        result = _parse_date(value)
        if result is None:
            unreadable.append(f"{_DATE_ELEMENTS[element_id]} {element_id} {value!r}")
            continue
        parsed[element_id], used = result
        formats.append(used)
        if expected and used != expected:
            unexpected.append(element_id)
    ok = not unreadable
    if unreadable:
        notes.problem("unreadable_dates", "unreadable date(s) left empty: " + ", ".join(unreadable))
    if unexpected:
        notes.problem(
            "date_format",
            f"date(s) {', '.join(unexpected)} written {'CCYYMMDD' if expected == 'MMDDCCYY' else 'MMDDCCYY'}"
            f" although {country} cards use {expected}; read by the plausible year",
        )
    birth = parsed["DBB"]
    if birth is not None and birth > today:
        ok = False
        notes.problem("future_birth", f"date of birth {birth.isoformat()} is after today")
    return parsed, (formats[0] if formats else expected), ok


def _parse_date(value: str) -> tuple[date, str] | None:
    if not _EIGHT_DIGITS.fullmatch(value):
        return None
    layouts = (("CCYYMMDD", value[:4], value[4:6], value[6:]), ("MMDDCCYY", value[4:], value[:2], value[2:4]))
    for fmt, year, month, day in layouts:
        if int(year) not in _PLAUSIBLE_YEARS:
            continue
        try:
            return date(int(year), int(month), int(day)), fmt
        except ValueError:
            continue
    return None


def _sex(value: str | None, notes: _Notes) -> str | None:
    """DBC: 1 male, 2 female, 9 not specified (D.12.5); some cards print the letter."""
    if not value:
        return None
    sex = _SEX_CODES.get(value.upper())
    if sex is None:
        notes.problem("sex", f"unrecognised sex code DBC {value!r}")
    return sex
