"""One entry point from raw scanner bytes to a parsed document.

Detection looks only at the shape of the payload: the AAMVA header, the BCBP
format code, or MRZ line shapes. Anything else is a typed, readable error.
"""

from __future__ import annotations

import re
from datetime import date

from .aamva import parse_aamva
from .bcbp import parse_bcbp
from .errors import UnknownFormat
from .model import FORMAT_AAMVA, FORMAT_BCBP, FORMAT_MRZ, Document, checked_text
from .mrz import looks_like_mrz, parse_mrz

# AAMVA: '@' compliance indicator, or the file type within the first bytes
# (keyboard-wedge scanners drop or prefix the first characters).
_AAMVA_HEAD = re.compile(r"^\s*@|ANSI |AAMVA")
# IATA Resolution 792: format code 'M' and the number of legs, 1-4, after an
# optional ISO/IEC 15424 symbology identifier (]L2, ]z0) that scanners prepend.
_BCBP_HEAD = re.compile(r"^\s*(?:\][A-Za-z][0-9A-Za-z])?[Mm][1-4]")


def detect_format(data: bytes | str) -> str:
    """The format name of a payload, or UnknownFormat/EmptyInput/InputTooLarge."""
    text = checked_text(data)
    # BCBP first: its head is anchored, and a passenger named ANSI must not
    # turn a boarding pass into a licence.
    if _BCBP_HEAD.match(text):
        return FORMAT_BCBP
    if _AAMVA_HEAD.search(text[:64]):
        return FORMAT_AAMVA
    if looks_like_mrz(text):
        return FORMAT_MRZ
    raise UnknownFormat(
        "not a driver licence (AAMVA), passport or ID card (MRZ) or boarding pass (BCBP) payload"
    )


def parse_payload(data: bytes | str, *, today: date | None = None) -> Document:
    """Parse raw payload bytes with the parser its shape calls for."""
    fmt = detect_format(data)
    parser = {FORMAT_AAMVA: parse_aamva, FORMAT_BCBP: parse_bcbp, FORMAT_MRZ: parse_mrz}[fmt]
    return parser(data, today=today)
