"""Documents typed in at the counter when no barcode or MRZ reads (channel "manual").

A parser like the others: fields in, a Document out, a DocumentError
subclass with a readable reason for anything unusable. Typed entries carry
no check digits, so the verdict rules treat them like any other document
and the journal records the channel.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from appliance.documents.errors import DocumentError
from appliance.documents.model import Document
from sync.identity import DocumentClass, IdentityError, normalise_issuer


class ManualEntryError(DocumentError):
    """A manually typed document that cannot be checked, with the reason."""

    code = "invalid_manual_entry"


_MANUAL_CLASSES = {cls.value: cls for cls in DocumentClass if cls is not DocumentClass.BOARDING_PASS}


def manual_document(fields: dict[str, Any]) -> Document:
    """A Document from the manual-entry form's fields."""
    cls = str(fields.get("document_class") or "").strip().upper()
    if cls not in _MANUAL_CLASSES:
        raise ManualEntryError("choose the document type: passport, ID card, visa or driver licence")
    number = str(fields.get("document_number") or "").strip()
    surname = str(fields.get("surname") or "").strip()
    if not number or not surname:
        raise ManualEntryError("a typed document needs at least its number and the surname")
    country = str(fields.get("issuing_country") or "").strip().upper()
    jurisdiction = str(fields.get("issuing_authority") or "").strip().upper() or None
    try:
        normalise_issuer(country, jurisdiction)
    except IdentityError as exc:
        raise ManualEntryError(str(exc)) from None
    return Document(
        format="manual",
        document_code=cls,
        document_number=number,
        surname=surname,
        given_names=str(fields.get("given_names") or "").strip() or None,
        date_of_birth=_typed_date(fields.get("date_of_birth"), "date of birth"),
        expiry_date=_typed_date(fields.get("expiry_date"), "expiry date"),
        issuing_country=country,
        issuing_authority=jurisdiction,
    )


def _typed_date(value: Any, what: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ManualEntryError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None
