"""MRZ encoder: document fields -> Doc 9303 lines with correct check digits.

Also encodes the pre-2021 French identity card (1988-2021 design), whose 2 x 36
zone is not Doc 9303 but uses its check digit.

Deliberately independent of the parser (its own check digit routine), so a
round trip through both proves they agree on the standard, not on a shared bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

WIDTHS = {"TD1": 30, "TD2": 36, "TD3": 44, "MRVA": 44, "MRVB": 36}
LAYOUTS = tuple(WIDTHS)


def mrz_check_digit(text: str) -> str:
    """Doc 9303 Part 3 section 4.9: weights 7, 3, 1; A=10 .. Z=35; `<` = 0."""
    total = 0
    for i, ch in enumerate(text):
        if ch == "<":
            value = 0
        elif ch.isdigit():
            value = int(ch)
        else:
            value = ord(ch) - ord("A") + 10
        total += value * (7, 3, 1)[i % 3]
    return str(total % 10)


@dataclass
class MRZFields:
    """What goes into an MRZ. Dates may be ``date`` or raw ``YYMMDD`` (``<`` for unknown)."""

    layout: str
    document_code: str
    issuing_country: str
    document_number: str
    surname: str
    given_names: str
    date_of_birth: date | str
    sex: str
    expiry_date: date | str
    nationality: str
    optional_data: str = ""  # TD1 upper line, TD2, MRV-A, MRV-B
    optional_data_2: str = ""  # TD1 middle line
    personal_number: str = ""  # TD3
    empty_personal_check: str = "<"  # TD3 check digit of an empty personal number: `<` or `0`
    truncate_names: bool = False


def encode(fields: MRZFields) -> list[str]:
    """The MRZ lines for ``fields``; ValueError when something does not fit."""
    width = WIDTHS[fields.layout]
    code = _pad(fields.document_code, 2)
    issuer = _pad(fields.issuing_country, 3)
    nationality = _pad(fields.nationality, 3)
    dob = _yymmdd(fields.date_of_birth)
    expiry = _yymmdd(fields.expiry_date)
    sex = fields.sex
    if fields.layout == "TD1":
        number, optional = _number_fields(fields.document_number, fields.optional_data, 15, long_ok=True)
        upper = code + issuer + number + optional
        middle = (dob + mrz_check_digit(dob) + sex + expiry + mrz_check_digit(expiry)
                  + nationality + _pad(fields.optional_data_2, 11))
        middle += mrz_check_digit(upper[5:30] + middle[0:7] + middle[8:15] + middle[18:29])
        lower = _name_field(fields, 30)
        return _checked([upper, middle, lower], width)

    upper = code + issuer + _name_field(fields, width - 5)
    visa = fields.layout in ("MRVA", "MRVB")
    tail_width = width - 28
    if fields.layout == "TD3":
        number, personal = _number_fields(fields.document_number, fields.personal_number, 14, long_ok=True)
        check = fields.empty_personal_check if personal == "<" * 14 else mrz_check_digit(personal)
        tail = personal + check
    elif visa:
        number, tail = _number_fields(fields.document_number, fields.optional_data, tail_width, long_ok=False)
    else:
        number, tail = _number_fields(fields.document_number, fields.optional_data, 7, long_ok=True)
    lower = number + nationality + dob + mrz_check_digit(dob) + sex + expiry + mrz_check_digit(expiry) + tail
    if not visa:
        lower += mrz_check_digit(lower[0:10] + lower[13:20] + lower[21:])
    return _checked([upper, lower], width)


@dataclass
class FrenchIDFields:
    """What goes into the zone of a French identity card of the 1988-2021 design."""

    surname: str
    given_names: list[str]  # written with `<<` between them; a space inside one becomes `<`
    card_number: str  # 12 characters: issue YYMM, department (3), sequence (5)
    issuing_office: str  # 6 characters: department (3), office (3)
    date_of_birth: date | str
    sex: str
    truncate_names: bool = False


def encode_french_id(fields: FrenchIDFields) -> list[str]:
    """The two 36-character lines; ValueError when something does not fit.

    Line 1: IDFRA, surname (25), office. Line 2: card number, its check digit,
    given names (14), date of birth, its check digit, sex, and a check digit
    over line 1 and the first 35 characters of line 2.
    """
    if len(fields.card_number) != 12 or len(fields.issuing_office) != 6:
        raise ValueError("a card number has 12 characters and an office code 6")
    surname = fields.surname.replace(" ", "<")
    given = "<<".join(name.replace(" ", "<") for name in fields.given_names)
    if fields.truncate_names:
        surname, given = surname[:25], given[:14]
    upper = "IDFRA" + _pad(surname, 25) + fields.issuing_office
    dob = _yymmdd(fields.date_of_birth)
    lower = (fields.card_number + mrz_check_digit(fields.card_number) + _pad(given, 14)
             + dob + mrz_check_digit(dob) + fields.sex)
    lower += mrz_check_digit(upper + lower)
    return _checked([upper, lower], 36)


def _number_fields(number: str, optional: str, optional_width: int, *, long_ok: bool) -> tuple[str, str]:
    """(number field with its check digit, optional field), long numbers overflowing (Part 5 / 6)."""
    if len(number) <= 9:
        return _pad(number, 9) + mrz_check_digit(_pad(number, 9)), _pad(optional, optional_width)
    if not long_ok:
        raise ValueError(f"document number {number!r} is longer than 9 characters")
    overflow = number[9:] + mrz_check_digit(number)
    if optional:
        overflow += "<" + optional
    return number[:9] + "<", _pad(overflow, optional_width)


def _name_field(fields: MRZFields, width: int) -> str:
    name = fields.surname.replace(" ", "<")
    if fields.given_names:
        name += "<<" + fields.given_names.replace(" ", "<")
    if fields.truncate_names:
        name = name[:width]
    return _pad(name, width)


def _yymmdd(value: date | str) -> str:
    return value.strftime("%y%m%d") if isinstance(value, date) else value


def _pad(text: str, width: int) -> str:
    if len(text) > width:
        raise ValueError(f"{text!r} does not fit in {width} characters")
    return text + "<" * (width - len(text))


def _checked(lines: list[str], width: int) -> list[str]:
    for line in lines:
        if len(line) != width:
            raise ValueError(f"encoded line {line!r} is {len(line)} characters, not {width}")
    return lines
