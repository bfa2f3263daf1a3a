"""Builds IATA BCBP strings (Resolution 792) from fields, for tests and the demo.

Written independently of the parser: its own field table, its own hex sizes.
Blocks carry only their first ``*_count`` fields, as shorter (older-version)
passes do, so a round trip covers every block length a pass may declare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# Resolution 792 Attachment A, in barcode order.
UNIQUE_WIDTHS: tuple[tuple[str, int], ...] = (
    ("passenger_description", 1), ("checkin_source", 1), ("issuance_source", 1),
    ("issue_date", 4), ("document_type", 1), ("issuer", 3),
    ("bag_tag_1", 13), ("bag_tag_2", 13), ("bag_tag_3", 13),
)
REPEATED_WIDTHS: tuple[tuple[str, int], ...] = (
    ("airline_numeric_code", 3), ("document_serial_number", 10), ("selectee", 1),
    ("document_verification", 1), ("marketing_carrier", 3), ("frequent_flyer_airline", 3),
    ("frequent_flyer_number", 16), ("id_ad_indicator", 1), ("free_baggage_allowance", 3),
    ("fast_track", 1),
)


@dataclass
class EncLeg:
    pnr: str = ""
    from_airport: str = ""
    to_airport: str = ""
    carrier: str = ""
    flight_number: str = ""
    day_of_year: int | None = None
    compartment: str = ""
    seat: str = ""
    sequence: str = ""
    passenger_status: str = ""
    repeated: dict[str, str] = field(default_factory=dict)
    repeated_count: int | None = None  # None: up to the last field given
    airline_data: str = ""


@dataclass
class EncPass:
    name: str
    legs: list[EncLeg]
    electronic_ticket: bool = True
    version: int | None = None  # None: no '>' conditional section at all
    unique: dict[str, str] = field(default_factory=dict)
    unique_count: int | None = None  # None: up to the last field given
    security: tuple[str, str] | None = None  # (type, data)


def day_of_year(day: date) -> int:
    return day.timetuple().tm_yday


def issue_date_item(day: date) -> str:
    """Item 22: last digit of the year, then the day of year."""
    return f"{day.year % 10}{day_of_year(day):03d}"


def encode_bcbp(bp: EncPass) -> str:
    """The barcode text of ``bp``; ValueError when a value cannot fit its field."""
    if not 1 <= len(bp.legs) <= 9:
        raise ValueError("a pass has at least one leg")
    out = ["M", str(len(bp.legs)), _fit(bp.name, 20), "E" if bp.electronic_ticket else " "]
    for index, leg in enumerate(bp.legs):
        out.append(_mandatory_leg(leg))
        variable = ""
        if bp.version is not None:
            if index == 0:
                variable += ">" + str(bp.version)
                variable += _block(bp.unique, UNIQUE_WIDTHS, bp.unique_count)
            variable += _block(leg.repeated, REPEATED_WIDTHS, leg.repeated_count)
        variable += leg.airline_data
        out.append(_hex(len(variable)) + variable)
    if bp.security is not None:
        kind, data = bp.security
        out.append("^" + _fit(kind, 1) + _hex(len(data)) + data)
    return "".join(out)


def _mandatory_leg(leg: EncLeg) -> str:
    julian = "   " if leg.day_of_year is None else f"{leg.day_of_year:03d}"
    return "".join([
        _fit(leg.pnr, 7), _fit(leg.from_airport, 3), _fit(leg.to_airport, 3),
        _fit(leg.carrier, 3), _fit(leg.flight_number, 5), julian,
        _fit(leg.compartment, 1), _fit(leg.seat, 4), _fit(leg.sequence, 5),
        _fit(leg.passenger_status, 1),
    ])


def _block(values: dict[str, str], widths: tuple[tuple[str, int], ...],
           count: int | None) -> str:
    names = [name for name, _ in widths]
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown conditional items {sorted(unknown)}")
    if count is None:
        count = max((names.index(name) + 1 for name in values), default=0)
    body = "".join(_fit(values.get(name, ""), width) for name, width in widths[:count])
    return _hex(len(body)) + body


def _fit(value: str, width: int) -> str:
    if len(value) > width:
        raise ValueError(f"{value!r} is longer than {width} characters")
    return value.ljust(width)


def _hex(size: int) -> str:
    if size > 0xFF:
        raise ValueError(f"{size} characters do not fit a two-digit hex size")
    return f"{size:02X}"
