"""The one exception family for unreadable documents.

Every parser raises a subclass of :class:`DocumentError` with a reason a counter
agent can read. Nothing else escapes a parser: not IndexError, not ValueError.
"""

from __future__ import annotations


class DocumentError(Exception):
    """A payload that is not a readable travel document."""

    code = "unreadable"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class EmptyInput(DocumentError):
    code = "empty"


class InputTooLarge(DocumentError):
    code = "too_large"


class UnknownFormat(DocumentError):
    code = "unknown_format"


class MalformedAAMVA(DocumentError):
    code = "malformed_aamva"


class MalformedMRZ(DocumentError):
    code = "malformed_mrz"


class MalformedBCBP(DocumentError):
    code = "malformed_bcbp"
