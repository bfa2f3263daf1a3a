"""IATA Bar Coded Boarding Pass (Resolution 792, versions 1-8) to a Document.

Layout (Resolution 792 Attachment A; item numbers in brackets):

* mandatory unique: format code 'M' [1], number of legs 1-4 [5], passenger
  name [11] (20), electronic ticket indicator [253];
* mandatory repeated, per leg: PNR [7] (7), from [26] (3), to [38] (3),
  operating carrier [42] (3), flight number [43] (5), Julian date of flight
  [46] (3), compartment [71], seat [104] (4), check-in sequence [107] (5),
  passenger status [117], size of the leg's variable field [6] (2 hex, kept
  as ``conditional["variable_size"]``);
* the first leg's variable field opens with '>' [8], the version [9] and the
  unique conditional block behind its own hex size [10]; every leg's variable
  field then holds the repeated conditional block behind its own hex size [17];
  whatever is left of the variable field is airline private data [4];
* after the last leg, '^' [25], security data type [28], length [29] (2 hex)
  and the data [30].

Versions only ever appended fields to the conditional blocks, and every block
declares its size, so the parser reads by declared size, never by version:
fields past the end of a shorter block are None, characters past the fields
known here are kept as ``*_unknown``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from .errors import MalformedBCBP
from .model import FORMAT_BCBP, Document, Leg, checked_text, reference_day

__all__ = ["julian_on_or_after", "julian_to_date", "parse_bcbp", "split_passenger_name"]

_HEADER_SIZE = 23  # items 1, 5, 11, 253
_LEG_FIELDS: tuple[tuple[str, int], ...] = (
    ("pnr", 7), ("from_airport", 3), ("to_airport", 3), ("carrier", 3),
    ("flight_number", 5), ("julian", 3), ("compartment", 1), ("seat", 4),
    ("sequence", 5), ("passenger_status", 1),
)
_LEG_SIZE = sum(width for _, width in _LEG_FIELDS)  # 35, then item 6

# Unique conditional items [15, 12, 14, 22, 16, 21, 23, 31, 32].
_UNIQUE_FIELDS: tuple[tuple[str, int], ...] = (
    ("passenger_description", 1), ("checkin_source", 1), ("issuance_source", 1),
    ("issue_date", 4), ("document_type", 1), ("issuer", 3),
    ("bag_tag_1", 13), ("bag_tag_2", 13), ("bag_tag_3", 13),
)
# Repeated conditional items [142, 143, 18, 108, 19, 20, 236, 89, 118, 254].
_REPEATED_FIELDS: tuple[tuple[str, int], ...] = (
    ("airline_numeric_code", 3), ("document_serial_number", 10), ("selectee", 1),
    ("document_verification", 1), ("marketing_carrier", 3), ("frequent_flyer_airline", 3),
    ("frequent_flyer_number", 16), ("id_ad_indicator", 1), ("free_baggage_allowance", 3),
    ("fast_track", 1),
)


def _slices(fields: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int, int], ...]:
    """(name, start, end) of each fixed-width field, computed once per table."""
    out, pos = [], 0
    for name, width in fields:
        out.append((name, pos, pos + width))
        pos += width
    return tuple(out)


_LEG_SLICES = _slices(_LEG_FIELDS)
_UNIQUE_SLICES = _slices(_UNIQUE_FIELDS)
_REPEATED_SLICES = _slices(_REPEATED_FIELDS)

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Every two-hex-digit size field and its value: a dict lookup, not a regex, per block.
_HEX_DIGITS = "0123456789ABCDEFabcdef"
_HEX2 = {hi + lo: int(hi + lo, 16) for hi in _HEX_DIGITS for lo in _HEX_DIGITS}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AIM_PREFIX = re.compile(r"\][A-Za-z][0-9A-Za-z]")  # ISO/IEC 15424 symbology identifier

# Titles recognised as a separate last given-name token ("SMITH/JOHN MR").
_TITLES = frozenset({"MR", "MRS", "MS", "MISS", "MSTR", "MX", "DR", "PROF"})
# Titles stripped when glued to the last given name ("SMITH/JOHNMR"), longest
# first. MS and DR are left out: they end real given names (WILLIAMS, ADAMS,
# ALEXANDR). A glued title is only stripped when at least _MIN_STEM letters
# remain, so short names ending in MR (AMR, NIMR) are never cut.
_GLUED_TITLES = ("MSTR", "MISS", "MRS", "MR")
_MIN_STEM = 3


class _Cursor:
    """Reads a string left to right; mandatory reads fail with a readable reason."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def take(self, width: int, what: str) -> str:
        if self.pos + width > len(self.text):
            raise MalformedBCBP(
                f"boarding pass too short: {what} needs {width} characters at position "
                f"{self.pos + 1}, only {max(len(self.text) - self.pos, 0)} left"
            )
        return self.take_upto(width)

    def take_upto(self, width: int) -> str:
        chunk = self.text[self.pos:self.pos + width]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> str:
        return self.take_upto(len(self.text))


class _State:
    """Warnings and the field-size verdict collected while parsing one pass."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.sizes_ok = True

    def size_mismatch(self, message: str) -> None:
        self.warnings.append(message)
        self.sizes_ok = False


def parse_bcbp(data: bytes | str, *, today: date | datetime | None = None) -> Document:
    """Parse a Resolution 792 'M' boarding pass; raise MalformedBCBP if unreadable.

    ``today`` is the reference (normally the scan date; a datetime counts as
    its date) that resolves the issue date's decade, and the flight dates when
    the pass carries no issue date.
    """
    reference = reference_day(today)
    state = _State()
    cur = _Cursor(_repair_framing(checked_text(data), state))
    leg_count, surname, given, extra = _read_passenger(cur, state)
    raw_legs = _read_legs(cur, leg_count, extra, state)
    _read_tail(cur.rest(), extra, state)
    issue = _resolve_issue_date(extra["issue_date"], reference, state)
    extra["issue_date"] = issue
    legs = [_make_leg(fields, number, issue, reference, state)
            for number, fields in enumerate(raw_legs, start=1)]
    return Document(
        format=FORMAT_BCBP,
        document_code="BP",
        document_number=None,
        surname=surname,
        given_names=given,
        issue_date=issue,
        checks={"field_sizes": state.sizes_ok},
        warnings=state.warnings,
        legs=legs,
        extra=extra,
    )


def julian_to_date(day_of_year: int, reference: date) -> date:
    """The date with this day of year nearest ``reference`` (previous, same or next year).

    Resolution 792 item 46 carries no year. Day 366 exists only in leap years;
    ties (half a year either way) go to the later date, since a pass is
    normally scanned before its flight. Raises ValueError when no year within
    one of the reference has that day (day 0, day > 366, or 366 with no leap year).
    """
    if not 1 <= day_of_year <= 366:
        raise ValueError(f"day of year {day_of_year} is outside 1-366")
    candidates = [d for year in (reference.year - 1, reference.year, reference.year + 1)
                  if (d := _day_in_year(year, day_of_year)) is not None]
    if not candidates:
        raise ValueError(f"day {day_of_year} needs a leap year within a year of {reference}")
    return min(candidates, key=lambda d: (abs((d - reference).days), -d.toordinal()))


def julian_on_or_after(day_of_year: int, issued: date) -> date:
    """The first date on or after ``issued`` with this day of year (item 46 after item 22).

    A pass is issued before its flight, or on the same day, and never a year
    or more ahead, so only the issue year and the next are looked at. Raises
    ValueError when neither has that day (day 0, day > 366, or 366 with no
    leap year).
    """
    if not 1 <= day_of_year <= 366:
        raise ValueError(f"day of year {day_of_year} is outside 1-366")
    for year in (issued.year, issued.year + 1):
        found = _day_in_year(year, day_of_year)
        if found is not None and found >= issued:
            return found
    raise ValueError(f"day {day_of_year} has no date within a year after {issued}")


def split_passenger_name(raw: str) -> tuple[str | None, str | None, str | None]:
    """(surname, given names, title) from item 11 'SURNAME/GIVEN NAMES TITLE'.

    A title is taken off the given names when it is the last separate word
    (any of _TITLES) or glued to the last word under the _GLUED_TITLES rule.
    """
    name = raw.strip()
    surname_part, slash, given_part = name.partition("/")
    surname = surname_part.strip() or None
    if not slash:
        return surname, None, None
    words = given_part.split()
    title = None
    if words and words[-1] in _TITLES:
        title = words.pop()
    elif words:
        for glued in _GLUED_TITLES:
            stem = words[-1][:-len(glued)]
            if words[-1].endswith(glued) and len(stem) >= _MIN_STEM and stem.isalpha():
                words[-1], title = stem, glued
                break
    return surname, " ".join(words) or None, title


# -- framing and mandatory items -------------------------------------------------


def _read_passenger(cur: _Cursor, state: _State) -> tuple[int, str | None, str | None, dict[str, Any]]:
    """Items 1, 5, 11, 253: (number of legs, surname, given names, extra with defaults)."""
    head = cur.text[:2].translate(_ASCII_UPPER)
    if head[:1] != "M":
        raise MalformedBCBP(f"format code is {head[:1]!r}; an IATA BCBP starts with 'M'")
    if head[1:2] not in ("1", "2", "3", "4"):
        raise MalformedBCBP(f"number of legs is {head[1:2]!r}; Resolution 792 allows 1 to 4")
    header = _mandatory(cur, _HEADER_SIZE, "the passenger name and ticket indicator", state)
    surname, given, title = split_passenger_name(header[2:22])
    extra: dict[str, Any] = {
        "version": None,
        "passenger_name": header[2:22].strip() or None,
        "electronic_ticket": header[22] == "E",
        "title": title,
        **{name: None for name, _ in _UNIQUE_FIELDS if not name.startswith("bag_tag")},
        "bag_tags": [],
        "unique_unknown": None,
        "security": None,
    }
    return int(header[1]), surname, given, extra


def _read_legs(cur: _Cursor, leg_count: int, extra: dict[str, Any],
               state: _State) -> list[dict[str, Any]]:
    """Each leg's mandatory items and variable field; leg 1's also fills the unique items."""
    raw_legs: list[dict[str, Any]] = []
    conditional_present = False
    for number in range(1, leg_count + 1):
        fields = _split(_mandatory(cur, _LEG_SIZE, f"leg {number}", state), _LEG_SLICES)
        size, variable = _variable_field(cur, number, state)
        if number == 1 and variable.startswith(">"):
            conditional_present = True
            variable = _read_unique(variable, extra, state)
        conditional = (_read_repeated(variable, number, state) if conditional_present
                       else _empty_repeated(airline_data=variable))
        fields["conditional"] = {"variable_size": size, **conditional}
        raw_legs.append(fields)
    return raw_legs


def _variable_field(cur: _Cursor, number: int, state: _State) -> tuple[int, str]:
    """Item 6 and the variable field it sizes: (declared size, what is there)."""
    what = f"leg {number} variable field size"
    size = _hex_size(cur.take(2, what), what)
    variable = cur.take_upto(size)
    if len(variable) < size:
        state.size_mismatch(
            f"leg {number}: variable field declares {size} characters but only "
            f"{len(variable)} are present; read what is there"
        )
    return size, variable


def _repair_framing(text: str, state: _State) -> str:
    """Drop what scanners add around the barcode text: AIM prefix, leading blanks, CR/LF."""
    stripped = text.lstrip()
    if stripped != text:
        state.warnings.append("leading blanks or line breaks before the boarding pass removed")
    if _AIM_PREFIX.match(stripped):
        state.warnings.append(f"scanner symbology prefix {stripped[:3]!r} removed")
        stripped = stripped[3:]
    trimmed = stripped.rstrip("\r\n")
    if trimmed != stripped:
        state.warnings.append("trailing CR/LF from the scanner removed")
    return trimmed


def _mandatory(cur: _Cursor, width: int, what: str, state: _State) -> str:
    """Mandatory items: printable, upper-case (lowercase is repaired with a warning)."""
    chunk = cur.take(width, what)
    control = None if chunk.isprintable() else _CONTROL.search(chunk)  # the common case in C
    if control:
        raise MalformedBCBP(
            f"control character {control.group()!r} in {what} "
            f"at position {cur.pos - width + control.start() + 1}"
        )
    upper = chunk.translate(_ASCII_UPPER)  # ASCII only: 'ß'.upper() would shift fields
    if upper != chunk:
        state.warnings.append(f"lowercase letters in {what} upper-cased")
    return upper


def _is_digits(text: str) -> bool:
    """ASCII 0-9 only: str.isdigit() also accepts '¹' and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def _hex_size(text: str, what: str) -> int:
    size = _HEX2.get(text)
    if size is None:
        raise MalformedBCBP(f"{what} is {text!r}; it must be two hexadecimal digits")
    return size


def _split(text: str, slices: tuple[tuple[str, int, int], ...]) -> dict[str, str | None]:
    """Fixed-width fields, blank-trimmed; missing or blank fields are None."""
    return {name: text[start:end].strip() or None for name, start, end in slices}


# -- conditional items -----------------------------------------------------------


def _read_block(cur: _Cursor, slices: tuple[tuple[str, int, int], ...], what: str,
                state: _State) -> tuple[dict[str, str | None], str | None]:
    """One size-prefixed conditional block: (fields, characters beyond the known fields)."""
    size_text = cur.take_upto(2)
    if not size_text:
        return _split("", slices), None
    size = _hex_size(size_text, f"{what} size")
    body = cur.take_upto(size)
    if len(body) < size:
        state.size_mismatch(
            f"{what} declares {size} characters but only {len(body)} are present; "
            f"read what is there"
        )
    known = slices[-1][2]
    if len(body) < known:
        for name, start, end in slices:
            if start < len(body) < end:
                state.warnings.append(f"{what} ends inside {name}; kept the partial value")
    return _split(body, slices), body[known:] or None


def _read_unique(variable: str, extra: dict[str, Any], state: _State) -> str:
    """Version and unique block from leg 1's variable field; returns what follows."""
    cur = _Cursor(variable)
    cur.take_upto(1)  # '>'
    version = cur.take_upto(1)
    if _is_digits(version):
        extra["version"] = int(version)
    elif not version:
        state.warnings.append("conditional section has no version number")
    else:
        state.warnings.append(f"version number {version!r} is not a digit; read by declared sizes")
    values, unknown = _read_block(cur, _UNIQUE_SLICES, "unique conditional block", state)
    bag_tags = [values.pop(f"bag_tag_{n}") for n in (1, 2, 3)]
    extra.update(values)
    extra["bag_tags"] = [tag for tag in bag_tags if tag is not None]
    extra["unique_unknown"] = unknown
    return cur.rest()


def _read_repeated(variable: str, number: int, state: _State) -> dict[str, Any]:
    cur = _Cursor(variable)
    values, unknown = _read_block(
        cur, _REPEATED_SLICES, f"leg {number} repeated conditional block", state
    )
    return {**values, "repeated_unknown": unknown, "airline_data": cur.rest() or None}


_NO_REPEATED = {**dict.fromkeys(name for name, _, _ in _REPEATED_SLICES), "repeated_unknown": None}


def _empty_repeated(airline_data: str) -> dict[str, Any]:
    """A pass without a '>' conditional section: the variable field is airline data."""
    return {**_NO_REPEATED, "airline_data": airline_data or None}


def _read_tail(rest: str, extra: dict[str, Any], state: _State) -> None:
    """Security data after the last leg [25, 28, 29, 30], or stray characters."""
    if not rest:
        return
    if not rest.startswith("^"):
        if rest.strip():
            state.size_mismatch(
                f"{len(rest)} characters after the last leg ignored (no '^' security data marker)"
            )
        else:
            state.warnings.append("trailing blanks after the last leg ignored")
        return
    kind = rest[1:2] or None
    if len(rest) < 4:
        extra["security"] = {"type": kind, "data": None}
        state.size_mismatch("security data header is cut off; no security data read")
        return
    length = _hex_size(rest[2:4], "security data length")
    payload = rest[4:4 + length]
    extra["security"] = {"type": kind, "data": payload or None}
    if len(payload) < length:
        state.size_mismatch(
            f"security data declares {length} characters but only {len(payload)} are present"
        )
    elif rest[4 + length:].strip():
        state.size_mismatch(
            f"{len(rest) - 4 - length} characters after the security data ignored"
        )
    elif len(rest) > 4 + length:
        # Mobile wallets and scanners pad the text; blanks carry no data.
        state.warnings.append("trailing blanks after the security data ignored")


# -- dates and legs --------------------------------------------------------------


@lru_cache(maxsize=4096)  # a few years around today are asked about again and again
def _day_in_year(year: int, day: int) -> date | None:
    if not 1 <= year <= 9999:
        return None
    start = date(year, 1, 1)
    last = 366 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 365
    return start + timedelta(days=day - 1) if 1 <= day <= last else None


def _resolve_issue_date(raw: str | None, reference: date, state: _State) -> date | None:
    """Item 22: last digit of the year and day of year; the decade nearest the reference."""
    if raw is None:
        return None
    if len(raw) != 4 or not _is_digits(raw):
        state.warnings.append(f"issue date {raw!r} is not a year digit and a day of year; ignored")
        return None
    digit, day = int(raw[0]), int(raw[1:])
    if day == 0:
        return None
    latest = reference.year - (reference.year - digit) % 10  # last such year <= reference
    candidates = [d for year in (latest - 10, latest, latest + 10)
                  if (d := _day_in_year(year, day)) is not None]
    if not candidates:
        state.warnings.append(f"issue date {raw!r} has no such day of year; ignored")
        return None
    return min(candidates, key=lambda d: (abs((d - reference).days), -d.toordinal()))


def _flight_day(raw: str | None, number: int, issue: date | None, reference: date,
                state: _State) -> tuple[int | None, date | None]:
    """Item 46: on or after the issue date when the pass has one, else nearest ``reference``."""
    if raw is None or raw.strip("0") == "":
        return None, None
    if not _is_digits(raw) or not 1 <= int(raw) <= 366:
        state.warnings.append(f"leg {number}: date of flight {raw!r} is not a day of year 001-366")
        return None, None
    day = int(raw)
    try:
        return day, _flight_date(day, issue, reference)
    except ValueError:
        where = (f"within a year after the issue date {issue.isoformat()}" if issue is not None
                 else f"within a year of {reference.isoformat()}")
        state.warnings.append(f"leg {number}: day 366 but no leap year {where}")
        return day, None


@lru_cache(maxsize=1024)
def _flight_date(day: int, issue: date | None, reference: date) -> date:
    """Cached: the legs of one pass share its issue date, and a day's scans share ``reference``."""
    return julian_on_or_after(day, issue) if issue is not None else julian_to_date(day, reference)


def _make_leg(fields: dict[str, Any], number: int, issue: date | None, reference: date,
              state: _State) -> Leg:
    day, flight_date = _flight_day(fields["julian"], number, issue, reference, state)
    return Leg(
        pnr=fields["pnr"],
        from_airport=fields["from_airport"],
        to_airport=fields["to_airport"],
        carrier=fields["carrier"],
        flight_number=fields["flight_number"],
        flight_day_of_year=day,
        flight_date=flight_date,
        compartment=fields["compartment"],
        seat=fields["seat"],
        sequence=fields["sequence"],
        passenger_status=fields["passenger_status"],
        conditional=fields["conditional"],
    )
