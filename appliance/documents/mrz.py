"""ICAO Doc 9303 machine readable zones: TD1, TD2, TD3 and the MRV-A/MRV-B visas.

Field positions follow Doc 9303 Part 4 (TD3 passports), Part 5 (TD1 cards),
Part 6 (TD2) and Part 7 (visas). The parser is pure: text in, Document out.
Bad check digits never raise (the Document comes back with ``valid`` False);
only input that has no MRZ shape raises :class:`MalformedMRZ`.

OCR damage is repaired only where the field type or a check digit proves the
repair, and every repair is reported as a warning naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from itertools import accumulate

from .errors import MalformedMRZ
from .model import FORMAT_MRZ, MAX_PAYLOAD_BYTES, Document, as_text, checked_text
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
# Total characters -> line width: 3x30 (TD1), 2x36 (TD2, MRV-B), 2x44 (TD3, MRV-A).
_WIDTH_FOR_TOTAL = {90: 30, 72: 36, 88: 44}
_SHAPES = "an MRZ is 3 lines of 30 characters, or 2 lines of 36 or 44"


@dataclass(frozen=True)
class _Spec:
    """Where each field sits once the lines are joined into one string.

    Every date is followed by its check digit, and so is the 9-character
    document number field.
    """

    layout: str
    width: int
    names: slice
    number: slice
    nationality: slice
    dob: slice
    sex: int
    expiry: slice
    optional: tuple[tuple[str, slice], ...]
    overflow: slice | None = None  # where a number longer than 9 continues
    personal_check: int | None = None
    composite: int | None = None
    composite_over: tuple[slice, ...] = ()


# Part 5, section 4.2.2: the upper line carries the document number, the middle
# line the dates, the lower line the name.
_TD1 = _Spec(
    "TD1", 30,
    names=slice(60, 90), number=slice(5, 14), nationality=slice(45, 48),
    dob=slice(30, 36), sex=37, expiry=slice(38, 44),
    optional=(("optional_data", slice(15, 30)), ("optional_data_2", slice(48, 59))),
    overflow=slice(15, 30), composite=59,
    composite_over=(slice(5, 30), slice(30, 37), slice(38, 45), slice(48, 59)),
)


def _two_line(layout: str, width: int, optional_name: str, optional_end: int,
              *, long_numbers: bool, personal_check: bool, composite: bool) -> _Spec:
    """Parts 4, 6 and 7 share the lower line up to the expiry check digit (position 28)."""
    w = width
    optional = slice(w + 28, w + optional_end)
    return _Spec(
        layout, width,
        names=slice(5, w), number=slice(w, w + 9), nationality=slice(w + 10, w + 13),
        dob=slice(w + 13, w + 19), sex=w + 20, expiry=slice(w + 21, w + 27),
        optional=((optional_name, optional),),
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


def parse_mrz(data: bytes | str, *, today: date | None = None) -> Document:
    """Parse an MRZ (any Doc 9303 layout) into a Document with format "mrz".

    ``today`` anchors the two-digit years: a birth date is never in the future
    and an expiry date at most 50 years ahead. Raises EmptyInput, InputTooLarge
    or MalformedMRZ; check digit failures only clear ``valid``.
    """
    today = _as_day(today)
    raw_lines = _lines_of(checked_text(data))
    warnings: list[str] = []
    lines = [line.translate(_UPPER) for line in raw_lines]
    if lines != raw_lines:
        warnings.append("lines: lowercase letters read as upper case")
    _refuse_illegal_characters(lines)
    spec = _spec_for(lines)
    text = "".join(lines)
    text = _repair_by_type(text, spec, warnings)
    text = _repair_dates(text, spec, warnings)
    text = _repair_personal_number(text, spec, warnings)
    text = _repair_document_number(text, spec, warnings)
    text = _repair_composite_digit(text, spec, warnings)
    return _document(text, spec, raw_lines, warnings, today)


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


def _as_day(today: date | None) -> date:
    if today is None:
        return date.today()
    return today.date() if isinstance(today, datetime) else today




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
    visa = lines[0][0] == "V"
    if len(lines[0]) == 30:
        return _TD1
    if len(lines[0]) == 36:
        return _MRVB if visa else _TD2
    return _MRVA if visa else _TD3


# -- repairs ------------------------------------------------------------------


def _splice(text: str, where: slice, value: str) -> str:
    return text[:where.start] + value + text[where.stop:]


def _repair_by_type(text: str, spec: _Spec, warnings: list[str]) -> str:
    """Digits in letter-only fields (codes, names) and K where only `<` fits.

    Document codes, country codes and names never hold digits (Part 3,
    section 4.6), so a confusable digit there is a misread letter whatever
    the check digits say; none of these fields has a check digit of its own.
    """
    fields = (("document_code", slice(0, 2)), ("issuing_country", slice(2, 5)),
              ("nationality", spec.nationality), ("names", spec.names))
    for name, where in fields:
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


def _repair_dates(text: str, spec: _Spec, warnings: list[str]) -> str:
    """Letters in a date or its check digit, kept only if the check digit then passes."""
    for name, where in (("date_of_birth", spec.dob), ("expiry_date", spec.expiry)):
        span = slice(where.start, where.stop + 1)
        raw = text[span]
        fixed = as_digits(raw)
        if fixed != raw and not digit_passes(raw[:-1], raw[-1]) and digit_passes(fixed[:-1], fixed[-1]):
            warnings.append(f"{name}: read {raw!r} as {fixed!r} (check digit confirms)")
            text = _splice(text, span, fixed)
    return text


def _repair_personal_number(text: str, spec: _Spec, warnings: list[str]) -> str:
    """TD3 personal number (Part 4, section 4.2.2), confirmed by its check digit.

    The composite is also required when the document number already checks, so
    it cannot be failing for a reason of its own.
    """
    at = spec.personal_check
    if at is None:
        return text
    field = spec.optional[0][1]
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


def _document(text: str, spec: _Spec, raw_lines: list[str], warnings: list[str], today: date) -> Document:
    number, covered, digit, used = _document_number(text, spec)
    checks = {
        "document_number": digit_passes(covered, digit),
        "date_of_birth": digit_passes(text[spec.dob], text[spec.dob.stop]),
        "expiry_date": digit_passes(text[spec.expiry], text[spec.expiry.stop]),
    }
    if spec.personal_check is not None:
        checks["personal_number"] = digit_passes(
            text[spec.optional[0][1]], text[spec.personal_check], filler_allowed=True)
    if spec.composite is not None:
        checks["composite"] = _composite_ok(text, spec)

    extra: dict[str, object] = {}
    for name, where in spec.optional:
        value = text[where]
        if where == spec.overflow:
            value = value[used:]
        extra[name] = value.rstrip("<") or None
    extra["lines"] = list(raw_lines)

    surname, given_names = _names(text[spec.names])
    return Document(
        format=FORMAT_MRZ,
        layout=spec.layout,
        document_code=text[0:2].strip("<") or None,
        document_number=number,
        surname=surname,
        given_names=given_names,
        date_of_birth=_date("date_of_birth", text[spec.dob], today, warnings),
        expiry_date=_date("expiry_date", text[spec.expiry], _years_after(today, 50), warnings),
        issue_date=None,
        sex=_sex(text[spec.sex], warnings),
        nationality=_country(text[spec.nationality]),
        issuing_country=_country(text[2:5]),
        issuing_authority=None,
        checks=checks,
        warnings=warnings,
        extra=extra,
    )


def _names(field: str) -> tuple[str | None, str | None]:
    """Primary and secondary identifiers split on `<<` (Part 3, section 4.6).

    Truncated names are kept as printed: the MRZ has no way to say more.
    """
    primary, _, secondary = field.partition("<<")
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
