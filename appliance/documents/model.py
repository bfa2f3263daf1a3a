"""The parsed-document shape shared by every parser and the CLI's JSON contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .errors import EmptyInput, InputTooLarge

# Every parser refuses payloads larger than this before looking at them, so no
# input can make parsing slow. Real documents are well under 4 KiB.
MAX_PAYLOAD_BYTES = 16 * 1024

FORMAT_AAMVA = "aamva"
FORMAT_MRZ = "mrz"
FORMAT_BCBP = "bcbp"


@dataclass
class Leg:
    """One flight leg of an IATA BCBP boarding pass (Resolution 792)."""

    pnr: str | None = None
    from_airport: str | None = None
    to_airport: str | None = None
    carrier: str | None = None
    flight_number: str | None = None
    flight_day_of_year: int | None = None
    flight_date: date | None = None
    compartment: str | None = None
    seat: str | None = None
    sequence: str | None = None
    passenger_status: str | None = None
    # Conditional repeated items and airline-private data, by name.
    conditional: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pnr": self.pnr,
            "from": self.from_airport,
            "to": self.to_airport,
            "carrier": self.carrier,
            "flight_number": self.flight_number,
            "flight_day_of_year": self.flight_day_of_year,
            "flight_date": _iso(self.flight_date),
            "compartment": self.compartment,
            "seat": self.seat,
            "sequence": self.sequence,
            "passenger_status": self.passenger_status,
            "conditional": _jsonable(self.conditional),
        }


@dataclass
class Document:
    """A parsed travel document, whatever its format.

    Field names are the `gatecheck parse` JSON contract; later issues and
    integrators rely on them. ``extra`` holds format-specific detail (AAMVA
    element maps, MRZ optional data, BCBP conditional items).
    """

    format: str
    layout: str | None = None
    document_code: str | None = None
    document_number: str | None = None
    surname: str | None = None
    given_names: str | None = None
    date_of_birth: date | None = None
    expiry_date: date | None = None
    issue_date: date | None = None
    sex: str | None = None
    nationality: str | None = None
    issuing_country: str | None = None
    issuing_authority: str | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    legs: list[Leg] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        """True when every check the format defines passed."""
        return all(self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "layout": self.layout,
            "document_code": self.document_code,
            "document_number": self.document_number,
            "surname": self.surname,
            "given_names": self.given_names,
            "date_of_birth": _iso(self.date_of_birth),
            "expiry_date": _iso(self.expiry_date),
            "issue_date": _iso(self.issue_date),
            "sex": self.sex,
            "nationality": self.nationality,
            "issuing_country": self.issuing_country,
            "issuing_authority": self.issuing_authority,
            "checks": dict(self.checks),
            "valid": self.valid,
            "warnings": list(self.warnings),
            "legs": None if self.legs is None else [leg.to_dict() for leg in self.legs],
        }
        out[self.format] = _jsonable(self.extra)
        return out


def checked_text(data: bytes | str) -> str:
    """The payload as text, after the size and emptiness checks every parser shares.

    Size is counted in bytes, or in characters for text (which was decoded
    byte for byte), before anything else looks at the payload.
    """
    if data is None:
        raise EmptyInput("empty payload: nothing was scanned")
    if not isinstance(data, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"a payload is bytes or str, not {type(data).__name__}")
    size = memoryview(data).nbytes if not isinstance(data, str) else len(data)
    if size > MAX_PAYLOAD_BYTES:
        raise InputTooLarge(
            f"payload is {size} bytes; a travel document is at most {MAX_PAYLOAD_BYTES} bytes"
        )
    text = as_text(data)
    if not text.strip():
        raise EmptyInput("empty payload: nothing was scanned")
    return text


def reference_day(today: date | datetime | None) -> date:
    """The reference date a parser works with: a datetime counts as its date."""
    if today is None:
        return date.today()
    return today.date() if isinstance(today, datetime) else today


def as_text(data: bytes | str) -> str:
    """Payload bytes as text, byte for byte (Latin-1 maps every byte to one code point)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data).decode("latin-1")
    return data


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
