"""Travel-document parsers: AAMVA PDF417, ICAO 9303 MRZ and IATA BCBP.

Pure: payload bytes in, :class:`Document` out, :class:`DocumentError` for
anything unreadable.
"""

from .detect import detect_format, parse_payload
from .errors import DocumentError
from .model import Document, Leg

__all__ = ["Document", "DocumentError", "Leg", "detect_format", "parse_payload"]
