"""ICAO Doc 9303 machine readable zones, and the pre-2021 French identity card.

Field positions follow Doc 9303 Part 4 (TD3 passports), Part 5 (TD1 cards),
Part 6 (TD2) and Part 7 (visas). The French national identity card of the
1988-2021 design has a 2 x 36 zone of its own: its ``layout`` is ``TD2`` (the
shape, the only layout values the CLI contract allows) and its ``variant``
``FRA-ID`` (in ``extra``) says which fields it really has. The parser
is pure: text in, Document out. Bad check digits never raise (the Document
comes back with ``valid`` False); only input that has no MRZ shape raises
:class:`MalformedMRZ`.

OCR damage is repaired only where the field type, the field's shape or a check
digit proves the repair, and every repair is reported as a warning naming the
field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from itertools import accumulate

from .errors import MalformedMRZ
from .model import FORMAT_MRZ, MAX_PAYLOAD_BYTES, Document, as_text, checked_text, reference_day
from .mrz_checkdigit import (
    DIGIT_FOR_LETTER,
    LETTER_FOR_DIGIT,
    Outcome,
    as_digits,
    as_letters,
    check_digit,
    digit_passes,
    unique_minimal_repair,
)

__all__ = ["check_digit", "looks_like_mrz", "parse_mrz"]

_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALPHABET = _LETTERS | frozenset("0123456789<")
_LINE_CHARS = re.compile(r"[0-9A-Z<]*")
_DIGIT = re.compile(r"[0-9]")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Total characters -> line width: 3x30 (TD1), 2x36 (TD2, MRV-B, FRA-ID), 2x44 (TD3, MRV-A).
_WIDTH_FOR_TOTAL = {90: 30, 72: 36, 88: 44}
_SHAPES = "an MRZ is 3 lines of 30 characters, or 2 lines of 36 or 44"
_CODES = (("document_code", slice(0, 2)), ("issuing_country", slice(2, 5)))

_Fields = tuple[tuple[str, slice], ...]
# (field name, the field and its check digit, the parts of that span that hold only digits)
_Numeric = tuple[tuple[str, slice, tuple[slice, ...]], ...]


@dataclass(frozen=True)
class _Spec:
    """Where each field sits once the lines are joined into one string.

    Every date is followed by its check digit, and so is the document number
    field. ``letters`` are the fields that hold only letters (no check digit
    of their own), ``names`` the name fields among them, ``padded`` the data
    fields written left-aligned and padded with fillers, ``numeric`` the
    fields with a check digit that hold only digits, wholly or in parts.
    """

    layout: str
    number: slice
    dob: slice
    sex: int
    expiry: slice | None
    nationality: slice | None
    letters: _Fields
    names: _Fields
    padded: _Fields
    numeric: _Numeric
    codes: _Fields = ()  # fixed-width codes reported in extra as printed
    overflow: slice | None = None  # where a number longer than 9 continues
    personal_check: int | None = None
    composite: int | None = None
    composite_over: tuple[slice, ...] = ()
    variant: str | None = None  # a national zone that is not Doc 9303 (extra["variant"])


def _with_check(where: slice) -> slice:
    return slice(where.start, where.stop + 1)


def _dates(dob: slice, expiry: slice | None = None) -> _Numeric:
    spans = [("date_of_birth", _with_check(dob))]
    if expiry is not None:
        spans.append(("expiry_date", _with_check(expiry)))
    return tuple((name, span, (span,)) for name, span in spans)


def _icao(layout: str, names: slice, nationality: slice, dob: slice, expiry: slice, **fields) -> _Spec:
    name_fields = (("names", names),)
    letters = (*_CODES, ("nationality", nationality), *name_fields)
    return _Spec(layout, nationality=nationality, letters=letters, names=name_fields, dob=dob, expiry=expiry,
                 numeric=_dates(dob, expiry), **fields)


# Part 5, section 4.2.2: the upper line carries the document number, the middle
# line the dates, the lower line the name.
_TD1 = _icao(
    "TD1", names=slice(60, 90), nationality=slice(45, 48),
    number=slice(5, 14), dob=slice(30, 36), sex=37, expiry=slice(38, 44),
    padded=(("optional_data", slice(15, 30)), ("optional_data_2", slice(48, 59))),
    overflow=slice(15, 30), composite=59,
    composite_over=(slice(5, 30), slice(30, 37), slice(38, 45), slice(48, 59)),
)


def _two_line(layout: str, w: int, optional_name: str, optional_end: int,
              *, long_numbers: bool, personal_check: bool, composite: bool) -> _Spec:
    """Parts 4, 6 and 7 share the lower line up to the expiry check digit (position 28)."""
    optional = slice(w + 28, w + optional_end)
    return _icao(
        layout, names=slice(5, w), nationality=slice(w + 10, w + 13),
        number=slice(w, w + 9), dob=slice(w + 13, w + 19), sex=w + 20, expiry=slice(w + 21, w + 27),
        padded=((optional_name, optional),),
        overflow=optional if long_numbers else None,
        personal_check=w + optional_end if personal_check else None,
        composite=2 * w - 1 if composite else None,
        composite_over=(slice(w, w + 10), slice(w + 13, w + 20), slice(w + 21, 2 * w - 1))
        if composite else (),
    )


_TD2 = _two_line("TD2", 36, "optional_data", 35, long_numbers=True, personal_check=False, composite=True)
_TD3 = _two_line("TD3", 44, "personal_number", 42, long_numbers=True, personal_check=True, composite=True)
_MRVA = _two_line("MRVA", 44, "optional_data", 44, long_numbers=False, personal_check=False, composite=False)
_MRVB = _two_line("MRVB", 36, "optional_data", 36, long_numbers=False, personal_check=False, composite=False)

# French identity card, 1988-2021 design (not Doc 9303). Line 1: IDFRA, surname
# (25), issuing office (department 3 + office 3). Line 2: card number (12: issue
# YYMM, department 3, sequence 5) and its check digit, given names (14), date of
# birth and its check digit, sex, and a check digit over line 1 and the first 35
# characters of line 2. No expiry date and no nationality field.
_FRA_NAMES = (("surname", slice(5, 30)), ("given_names", slice(49, 63)))
_FRA_ID = _Spec(
    "TD2", variant="FRA-ID", number=slice(36, 48), dob=slice(63, 69), sex=70, expiry=None, nationality=None,
    letters=(*_CODES, *_FRA_NAMES), names=_FRA_NAMES, padded=(),
    # Only the department (3 characters after YYMM) may hold letters.
    numeric=(*_dates(slice(63, 69)), ("document_number", slice(36, 49), (slice(36, 40), slice(43, 49)))),
    codes=(("issuing_office", slice(30, 36)),), composite=71, composite_over=(slice(0, 71),),
)


def parse_mrz(data: bytes | str, *, today: date | datetime | None = None) -> Document:
    """Parse an MRZ (any Doc 9303 layout, or FRA-ID) into a Document with format "mrz".

    ``today`` (a datetime counts as its date) anchors the two-digit years: a
    birth date is never in the future and an expiry date at most 50 years
    ahead. Raises EmptyInput, InputTooLarge or MalformedMRZ; check digit
    failures only clear ``valid``.
    """
    day = reference_day(today)
    raw_lines = _lines_of(checked_text(data))
    warnings: list[str] = []
    lines = [line.translate(_UPPER) for line in raw_lines]
    if lines != raw_lines:
        warnings.append("lines: lowercase letters read as upper case")
    _refuse_illegal_characters(lines)
    spec = _spec_for(lines)
    text = "".join(lines)
    text = _repair_by_type(text, spec, warnings)
    text = _repair_filler_runs(text, spec, warnings)
    checks = _checks(text, spec)
    if not all(checks.values()):
        # Every repair below is confirmed by a check digit that failed.
        text = _repair_digit_fields(text, spec, warnings)
        text = _repair_personal_number(text, spec, warnings)
        text = _repair_document_number(text, spec, warnings)
        text = _repair_composite_digit(text, spec, warnings)
        checks = _checks(text, spec)
    return _document(text, spec, checks, raw_lines, warnings, day)


def looks_like_mrz(text: str | bytes) -> bool:
    """Cheap shape test: 3x30, 2x36 or 2x44 MRZ characters, however separated.

    Accepts the damage :func:`parse_mrz` repairs (lower case, confusable
    characters) so detection and parsing agree on what is an MRZ.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = as_text(text)
    if not isinstance(text, str) or len(text) > MAX_PAYLOAD_BYTES:
        return False
    try:
        lines = _lines_of(text.translate(_UPPER))
    except MalformedMRZ:
        return False
    joined = "".join(lines)
    first = joined[0]
    return (
        (first in _LETTERS or first in LETTER_FOR_DIGIT)
        and "<" in joined
        and _LINE_CHARS.fullmatch(joined) is not None
    )


# -- reading the lines ------------------------------------------------------


def _lines_of(text: str) -> list[str]:
    """Split on any whitespace (LF, CR LF, spaces) or on nothing at all.

    The pieces are joined and re-cut at the layout width, so a zone whose lines
    arrive run together is read as well as one with line breaks; a break that
    falls inside a line is refused rather than guessed around.
    """
    pieces = text.split()
    joined = "".join(pieces)
    width = _WIDTH_FOR_TOTAL.get(len(joined))
    if width is None or any(end % width for end in accumulate(map(len, pieces))):
        raise MalformedMRZ(f"{_SHAPES}; got {_describe_lengths(pieces)}")
    return [joined[i:i + width] for i in range(0, len(joined), width)]


def _describe_lengths(pieces: list[str]) -> str:
    lengths = [str(len(p)) for p in pieces[:6]] + (["..."] if len(pieces) > 6 else [])
    noun = "line" if len(pieces) == 1 else "lines"
    return f"{len(pieces)} {noun} of {', '.join(lengths)} characters"


def _refuse_illegal_characters(lines: list[str]) -> None:
    if all(_LINE_CHARS.fullmatch(line) for line in lines):
        return
    for row, line in enumerate(lines, 1):
        for col, ch in enumerate(line, 1):
            if ch not in _ALPHABET:
                raise MalformedMRZ(
                    f"illegal character {ch!r} at line {row}, position {col}: "
                    "an MRZ holds only A-Z, 0-9 and <"
                )


def _spec_for(lines: list[str]) -> _Spec:
    """Layout from the shape; a document code starting with V is a visa (Part 7)."""
    first = lines[0]
    if len(first) == 30:
        return _TD1
    if first[0] == "V":
        return _MRVB if len(first) == 36 else _MRVA
    if len(first) == 44:
        return _TD3
    return _FRA_ID if _is_french_id(lines) else _TD2


def _is_french_id(lines: list[str]) -> bool:
    """IDFRA on 2 x 36 lines, and digits where TD2 has the nationality.

    Line 2 positions 11-13 hold the holder's nationality in a TD2 (letters or
    `<`, Part 6 section 4.2.2) but the end of the card number and its check
    digit on the French card. Read through the OCR confusions, so a damaged
    card is still recognised.
    """
    return as_letters(lines[0][:5]) == "IDFRA" and _DIGIT.search(as_digits(lines[1][10:13])) is not None


# -- repairs ------------------------------------------------------------------


def _splice(text: str, where: slice, value: str) -> str:
    return text[:where.start] + value + text[where.stop:]


def _repair_by_type(text: str, spec: _Spec, warnings: list[str]) -> str:
    """Digits in letter-only fields (codes, names) and K where only `<` fits.

    Document codes, country codes and names never hold digits (Part 3,
    section 4.6), so a confusable digit there is a misread letter whatever
    the check digits say; none of these fields has a check digit of its own.
    """
    for name, where in spec.letters:
        raw = text[where]
        fixed = as_letters(raw)
        if fixed != raw:
            warnings.append(f"{name}: read {raw.rstrip('<')!r} as {fixed.rstrip('<')!r} "
                            "(only letters are valid here)")
            text = _splice(text, where, fixed)
        if _DIGIT.search(fixed):
            warnings.append(f"{name}: {fixed.rstrip('<')!r} holds a digit, where only letters are valid")
    if text[0] not in _LETTERS:
        raise MalformedMRZ(f"document code {text[0:2]!r} does not start with a letter")
    if text[spec.sex] == "K":
        warnings.append("sex: read 'K' as '<' (only M, F, X or < are valid here)")
        text = _splice(text, slice(spec.sex, spec.sex + 1), "<")
    return text


def _filler_start(field: str, *, words: bool) -> int | None:
    """Where a trailing run of K and `<` that must be misread fillers starts, if any.

    The run needs two K: one K may be printed (an initial, ``JAN<K``), two
    after the value has ended are taken for misread fillers. In a name, K
    touching the end of a word belongs to it (``ERIK``), so the run starts at
    a `<`.
    """
    start = len(field.rstrip("K<"))
    if words:
        start = field.find("<", start)
        if start < 0:
            return None
    return start if field.count("K", start) >= 2 else None


def _repair_filler_runs(text: str, spec: _Spec, warnings: list[str]) -> str:
    """`<` misread as K at the end of names and filler-padded data.

    No check digit can confirm this repair: K is worth 20 and `<` 0 (Part 3,
    section 4.9), and 20 times any weight is 0 modulo 10. The field's shape
    decides instead (see :func:`_filler_start`).
    """
    for fields, words in ((spec.names, True), (spec.padded, False)):
        for name, where in fields:
            field = text[where]
            if "K" not in field:
                continue
            start = _filler_start(field, words=words)
            if start is not None:
                run = field[start:]
                warnings.append(f"{name}: read {run.strip('<')!r} at the end as fillers "
                                "(a check digit cannot tell K from <)")
                text = _splice(text, slice(where.start + start, where.stop), "<" * len(run))
    return text


def _repair_digit_fields(text: str, spec: _Spec, warnings: list[str]) -> str:
    """Letters where only digits are valid, kept only if the check digit then passes.

    Dates are all digits; the FRA-ID card number is digits but for its
    department code.
    """
    for name, span, digit_parts in spec.numeric:
        fixed_text = text
        for part in digit_parts:
            fixed_text = _splice(fixed_text, part, as_digits(text[part]))
        raw, fixed = text[span], fixed_text[span]
        if fixed != raw and not digit_passes(raw[:-1], raw[-1]) and digit_passes(fixed[:-1], fixed[-1]):
            warnings.append(f"{name}: read {raw!r} as {fixed!r} (check digit confirms)")
            text = fixed_text
    return text


def _repair_personal_number(text: str, spec: _Spec, warnings: list[str]) -> str:
    """TD3 personal number (Part 4, section 4.2.2), confirmed by its check digit.

    The composite is also required when the document number already checks, so
    it cannot be failing for a reason of its own.
    """
    at = spec.personal_check
    if at is None:
        return text
    field = spec.padded[0][1]
    if digit_passes(text[field], text[at], filler_allowed=True):
        return text
    number_ok = _number_ok(text, spec)

    def accept(candidate: str) -> bool:
        return digit_passes(candidate[field], candidate[at], filler_allowed=True) and (
            not number_ok or _composite_ok(candidate, spec))

    fixed, outcome = unique_minimal_repair(text, range(field.start, at + 1), accept)
    return _outcome("personal_number", text, fixed, outcome, slice(field.start, at + 1), warnings)


def _repair_document_number(text: str, spec: _Spec, warnings: list[str]) -> str:
    """Swap confusable characters in the number until its check digit and the composite pass.

    Document numbers are alphanumeric, so O and 0 (and the other pairs) are
    genuinely ambiguous: only a unique reading with fewest swaps is taken.
    A K where the check digit sits may be the `<` that marks a long number.
    """
    if _number_ok(text, spec):
        return text
    positions = list(range(spec.number.start, spec.number.stop + 1))
    if spec.overflow is not None and text[spec.number.stop] in "<K":
        run = text[spec.overflow].split("<", 1)[0]
        positions += range(spec.overflow.start, spec.overflow.start + len(run))

    def accept(candidate: str) -> bool:
        return _number_ok(candidate, spec) and (spec.composite is None or _composite_ok(candidate, spec))

    fixed, outcome = unique_minimal_repair(text, positions, accept)
    return _outcome("document_number", text, fixed, outcome, slice(positions[0], positions[-1] + 1), warnings)


def _repair_composite_digit(text: str, spec: _Spec, warnings: list[str]) -> str:
    at = spec.composite
    if at is None or _composite_ok(text, spec) or text[at] not in DIGIT_FOR_LETTER:
        return text
    fixed = _splice(text, slice(at, at + 1), DIGIT_FOR_LETTER[text[at]])
    if not _composite_ok(fixed, spec):
        return text
    warnings.append(f"composite: read {text[at]!r} as {fixed[at]!r} (check digit confirms)")
    return fixed


def _outcome(name: str, text: str, fixed: str | None, outcome: Outcome,
             span: slice, warnings: list[str]) -> str:
    if outcome is Outcome.REPAIRED and fixed is not None:
        warnings.append(f"{name}: read {text[span]!r} as {fixed[span]!r} (check digits confirm)")
        return fixed
    if outcome is Outcome.AMBIGUOUS:
        warnings.append(f"{name}: check digit fails and more than one reading of the confusable "
                        f"characters in {text[span]!r} fits; left unrepaired")
    elif outcome is Outcome.TOO_MANY:
        warnings.append(f"{name}: check digit fails and {text[span]!r} has too many confusable "
                        "characters to try; left unrepaired")
    return text


# -- fields ------------------------------------------------------------------


def _document_number(text: str, spec: _Spec) -> tuple[str | None, str, str, int]:
    """(number, what its check digit covers, the check digit, overflow characters used).

    Doc 9303 Part 5 (TD1) and Part 6 (TD2), notes on the document number: a
    number longer than 9 characters puts `<` in the check digit position and
    continues in the optional data up to the first `<`; the last character
    before it is the check digit of the whole number. TD3 is read the same way,
    continuing in the personal number field.
    """
    head = text[spec.number]
    digit = text[spec.number.stop]
    if digit == "<" and spec.overflow is not None:
        run = text[spec.overflow].split("<", 1)[0]
        if run:
            body = head + run[:-1]
            return body, body, run[-1], len(run) + 1
    return head.rstrip("<") or None, head, digit, 0


def _number_ok(text: str, spec: _Spec) -> bool:
    _, covered, digit, _ = _document_number(text, spec)
    return digit_passes(covered, digit)


def _composite_ok(text: str, spec: _Spec) -> bool:
    if spec.composite is None:
        return True
    covered = "".join(text[where] for where in spec.composite_over)
    return digit_passes(covered, text[spec.composite])


def _checks(text: str, spec: _Spec) -> dict[str, bool]:
    """Every check digit the layout defines, by field name."""
    _, covered, digit, _ = _document_number(text, spec)
    checks = {
        "document_number": digit_passes(covered, digit),
        "date_of_birth": digit_passes(text[spec.dob], text[spec.dob.stop]),
    }
    if spec.expiry is not None:
        checks["expiry_date"] = digit_passes(text[spec.expiry], text[spec.expiry.stop])
    if spec.personal_check is not None:
        checks["personal_number"] = digit_passes(
            text[spec.padded[0][1]], text[spec.personal_check], filler_allowed=True)
    if spec.composite is not None:
        checks["composite"] = _composite_ok(text, spec)
    return checks


def _document(text: str, spec: _Spec, checks: dict[str, bool], raw_lines: list[str],
              warnings: list[str], today: date) -> Document:
    number, _, _, used = _document_number(text, spec)
    if not used and _filler_start(text[spec.number], words=False) is not None:
        # Not repaired: a number may really end in K (see _repair_filler_runs).
        warnings.append(f"document_number: {number!r} ends in K that may be misread fillers "
                        "(a check digit cannot tell K from <); left as read")

    extra: dict[str, object] = {} if spec.variant is None else {"variant": spec.variant}
    for name, where in spec.padded + spec.codes:
        value = text[where]
        if where == spec.overflow:
            value = value[used:]
        extra[name] = value.rstrip("<") or None
    extra["lines"] = list(raw_lines)

    surname, given_names = _names(text, spec)
    issuing_country = _country(text[2:5])
    return Document(
        format=FORMAT_MRZ,
        layout=spec.layout,
        document_code=text[0:2].strip("<") or None,
        document_number=number,
        surname=surname,
        given_names=given_names,
        date_of_birth=_date("date_of_birth", text[spec.dob], today, warnings),
        expiry_date=None if spec.expiry is None
        else _date("expiry_date", text[spec.expiry], _years_after(today, 50), warnings),
        issue_date=None,
        sex=_sex(text[spec.sex], warnings),
        # The French card is issued to French nationals only.
        nationality=issuing_country if spec.nationality is None else _country(text[spec.nationality]),
        issuing_country=issuing_country,
        issuing_authority=None,
        checks=checks,
        warnings=warnings,
        extra=extra,
    )


def _names(text: str, spec: _Spec) -> tuple[str | None, str | None]:
    """Primary and secondary identifiers split on `<<` (Part 3, section 4.6).

    The French card has a field for each; there `<<` separates given names and
    every `<` is read as a space. Truncated names are kept as printed: the MRZ
    has no way to say more.
    """
    if len(spec.names) == 1:
        primary, _, secondary = text[spec.names[0][1]].partition("<<")
    else:
        primary, secondary = (text[where] for _, where in spec.names)
    surname = " ".join(part for part in primary.split("<") if part) or None
    given_names = " ".join(part for part in secondary.split("<") if part) or None
    return surname, given_names


def _country(code: str) -> str | None:
    """Three-letter code; Germany writes ``D<<`` (Part 3 code list), read as DEU."""
    value = code.rstrip("<")
    return "DEU" if value == "D" else value or None


def _sex(ch: str, warnings: list[str]) -> str | None:
    if ch in "MFX":
        return ch
    if ch == "<":
        return "X"
    warnings.append(f"sex: {ch!r} is not M, F, X or <; left empty")
    return None


def _date(name: str, field: str, latest: date, warnings: list[str]) -> date | None:
    """YYMMDD in the latest century that is not after ``latest``.

    Birth dates use today (nobody is born in the future); expiry dates use
    today plus 50 years. Unknown parts (`<`) leave the date empty.
    """
    if "<" in field:
        how = "unknown" if field.strip("<") == "" else "partly unknown"
        warnings.append(f"{name}: {how} ({field!r}); left empty")
        return None
    if not all(ch in "0123456789" for ch in field):
        warnings.append(f"{name}: {field!r} is not a date; left empty")
        return None
    yy, month, day = int(field[0:2]), int(field[2:4]), int(field[4:6])
    century = latest.year // 100 * 100
    for year in (century + yy, century - 100 + yy):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= latest:
            return candidate
    warnings.append(f"{name}: {field!r} is not a calendar date; left empty")
    return None


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February, or beyond year 9999
        try:
            return day.replace(year=day.year + years, day=28)
        except ValueError:
            return date.max
