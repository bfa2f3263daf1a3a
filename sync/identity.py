"""Canonical identity and keyed tokens: the contract between registry and devices.

A device never holds a listed person's name or document number. The registry
turns each entry into keyed tokens; the device turns each scanned document
into tokens the same way and looks them up. Both sides import this module, so
the byte layout (docs/token-layout.md) is written exactly once.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # a type only; identity stays importable without the parsers
    from appliance.documents.model import Document

#: Tokens are HMAC-SHA256 truncated to 96 bits: collision-free in practice at
#: 10^8 tokens, and small enough for the device snapshot (docs/token-layout.md).
TOKEN_BYTES = 12
TOKEN_DOMAIN = b"GCTOK1"
KIND_DOCUMENT = 0x01
KIND_PERSON = 0x02
MIN_KEY_BYTES = 16
#: Domain of a token key's hash: what names a key (its id) without revealing it.
KEY_HASH_DOMAIN = b"GCTKID1"
KEY_HASH_BYTES = 32


class IdentityError(Exception):
    """An identity that cannot be tokenised, with the reason."""


class DocumentClass(StrEnum):
    """What kind of document an identity came from; part of the document token."""

    PASSPORT = "P"
    ID_CARD = "I"  # national ID cards and AAMVA (state) ID cards
    VISA = "V"
    DRIVER_LICENCE = "D"
    BOARDING_PASS = "B"  # carries no document number


# ICAO Doc 9303 Part 3 §6 (Table A): Latin characters whose transliteration is
# not simply "drop the diacritic". Applied before NFKD decomposition, which
# would otherwise turn Ä into plain A.
_ICAO_SPECIAL = {
    "Ä": "AE", "Æ": "AE", "Å": "AA", "Ö": "OE", "Ø": "OE", "Œ": "OE",
    "Ü": "UE", "ß": "SS", "ẞ": "SS", "Þ": "TH", "Ĳ": "IJ", "Ð": "D", "Đ": "D",
    "Ħ": "H", "Ł": "L", "Ŀ": "L", "Ŋ": "N", "ı": "I", "ĸ": "K",
}
_ICAO_SPECIAL.update({k.lower(): v for k, v in list(_ICAO_SPECIAL.items()) if k.lower() != k})

# ICAO 9303 Part 3 §6.A: apostrophes and full stops are omitted (O'BRIEN ->
# OBRIEN); every other punctuation mark, hyphen and filler separates names.
_DROPPED = re.compile(r"['’`´.]")
_SEPARATORS = re.compile(r"[^A-Z]+")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")

_MRZ_COUNTRY_ALIASES = {"D": "DEU", "D<<": "DEU", "CDN": "CAN"}


def transliterate(text: str) -> str:
    """Latin text to the ICAO 9303 A-Z form, keeping separators as spaces."""
    text = "".join(_ICAO_SPECIAL.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _DROPPED.sub("", text.upper())
    return _SEPARATORS.sub(" ", text).strip()


def normalise_name(text: str | None) -> tuple[str, ...]:
    """A name as uppercase A-Z tokens, with fillers and punctuation removed."""
    if not text:
        return ()
    return tuple(transliterate(text.replace("<", " ")).split())


def normalise_document_number(number: str | None) -> str | None:
    """Uppercase, with spaces, dashes and fillers removed; leading zeros kept."""
    if number is None:
        return None
    folded = unicodedata.normalize("NFKD", number).upper()
    cleaned = _NOT_ALNUM.sub("", folded)
    return cleaned or None


def normalise_issuer(country: str | None, jurisdiction: str | None = None) -> str | None:
    """ISO 3166-1 alpha-3, plus ``-XX`` for an AAMVA jurisdiction (``USA-CA``)."""
    if not country:
        return None
    code = country.strip().upper()
    code = _MRZ_COUNTRY_ALIASES.get(code, code.replace("<", ""))
    code = _MRZ_COUNTRY_ALIASES.get(code, code)
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise IdentityError(f"issuer {country!r} is not an ISO 3166-1 alpha-3 code")
    if jurisdiction:
        region = jurisdiction.strip().upper()
        if not re.fullmatch(r"[A-Z0-9]{1,3}", region):
            raise IdentityError(f"jurisdiction {jurisdiction!r} is not a region code")
        return f"{code}-{region}"
    return code


@dataclass(frozen=True)
class Identity:
    """Who a document says the traveller is, in canonical form.

    ``weak`` is set when the identity rests on a name alone (a boarding pass):
    such an identity can never justify a DENY.
    """

    document_class: DocumentClass
    issuer: str | None
    document_number: str | None
    surnames: tuple[str, ...]
    given_names: tuple[str, ...]
    date_of_birth: date | None
    weak: bool = False
    weak_reason: str | None = None

    @property
    def name_tokens(self) -> tuple[str, ...]:
        return self.surnames + self.given_names

    def name_keys(self) -> list[tuple[str, ...]]:
        """The name sets that person tokens are made from, canonical order.

        The full name, and the name without middle names, because boarding
        passes and many cards drop them. Each set is sorted, so ZHANG WEI and
        WEI ZHANG give the same key. The registry makes the same sets from an
        entry, so a match needs only an exact lookup.
        """
        keys: list[tuple[str, ...]] = []
        full = tuple(sorted(self.name_tokens))
        if full:
            keys.append(full)
        if self.surnames and len(self.given_names) > 1:
            short = tuple(sorted(self.surnames + self.given_names[:1]))
            if short not in keys:
                keys.append(short)
        return keys

    def tokens(self, key: bytes) -> "IdentityTokens":
        doc = None
        if self.document_number and self.issuer:
            doc = document_token(key, self.document_class, self.issuer, self.document_number)
        persons: tuple[bytes, ...] = ()
        if self.date_of_birth is not None:
            persons = tuple(person_token(key, names, self.date_of_birth) for names in self.name_keys())
        return IdentityTokens(document=doc, persons=persons)


@dataclass(frozen=True)
class IdentityTokens:
    """The keyed tokens one identity is looked up by, under one list key."""

    document: bytes | None
    persons: tuple[bytes, ...]


def _field(value: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) > 0xFFFF:
        raise IdentityError("token field longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def _mac(key: bytes, message: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise IdentityError(f"list key must be at least {MIN_KEY_BYTES} bytes")
    return hmac.new(key, message, hashlib.sha256).digest()[:TOKEN_BYTES]


def token_key_hash(key: bytes) -> bytes:
    """SHA-256("GCTKID1" || key): binds a snapshot to the key its tokens are under (docs/token-layout.md).

    A device that is handed a new key checks it against the hash the signed
    snapshot carries; all 32 bytes, so no key but the registry's can pass.
    """
    return hashlib.sha256(KEY_HASH_DOMAIN + bytes(key)).digest()


def token_key_id(key: bytes) -> str:
    """A key's name for people and logs: the first 8 bytes of its hash, in hex."""
    return token_key_hash(key)[:8].hex()


def document_token(key: bytes, document_class: DocumentClass | str, issuer: str, number: str) -> bytes:
    """Keyed token of (class, issuer, number); layout in docs/token-layout.md."""
    number_n = normalise_document_number(number)
    if not number_n:
        raise IdentityError("a document token needs a document number")
    if not issuer:
        raise IdentityError("a document token needs an issuer")
    cls = DocumentClass(document_class)
    message = TOKEN_DOMAIN + bytes([KIND_DOCUMENT]) + _field(cls.value) + _field(issuer) + _field(number_n)
    return _mac(key, message)


def person_token(key: bytes, names: Iterable[str], date_of_birth: date) -> bytes:
    """Keyed token of (name tokens, date of birth), insensitive to name order."""
    tokens: list[str] = []
    for name in names:
        tokens.extend(normalise_name(name))
    if not tokens:
        raise IdentityError("a person token needs at least one name")
    joined = " ".join(sorted(tokens))
    message = (
        TOKEN_DOMAIN + bytes([KIND_PERSON]) + _field(joined) + _field(date_of_birth.strftime("%Y%m%d"))
    )
    return _mac(key, message)


_MRZ_CLASSES = {"P": DocumentClass.PASSPORT, "V": DocumentClass.VISA}


def identity_from_document(doc: "Document") -> Identity:
    """The canonical identity a parsed document asserts."""
    surnames = normalise_name(doc.surname)
    given = normalise_name(doc.given_names)
    if doc.format == "bcbp":
        return Identity(
            DocumentClass.BOARDING_PASS, None, None, surnames, given, None, weak=True,
            weak_reason="a boarding pass carries only a name, which is a weak identity",
        )
    if doc.format == "aamva":
        cls = DocumentClass.ID_CARD if doc.document_code == "ID" else DocumentClass.DRIVER_LICENCE
        issuer = _safe_issuer(doc.issuing_country, doc.issuing_authority)
    elif doc.format == "manual":  # typed at the counter: the code is the class letter
        try:
            cls = DocumentClass(doc.document_code)
        except ValueError:
            raise IdentityError(f"{doc.document_code!r} is not a document class letter") from None
        issuer = _safe_issuer(doc.issuing_country, doc.issuing_authority)
    else:
        code = (doc.document_code or "I")[:1]
        cls = _MRZ_CLASSES.get(code, DocumentClass.ID_CARD)
        issuer = _safe_issuer(doc.issuing_country, None)
    number = normalise_document_number(doc.document_number)
    weak_reason = None
    if isinstance(issuer, IdentityError):
        weak_reason = f"{issuer}, so only the name can be checked"
        issuer = None
    elif number is None or issuer is None:
        weak_reason = "the document gives no usable number and issuer, so only the name can be checked"
    return Identity(
        cls, issuer, number, surnames, given, doc.date_of_birth,
        weak=weak_reason is not None, weak_reason=weak_reason,
    )


def _safe_issuer(country: str | None, jurisdiction: str | None) -> str | IdentityError | None:
    """The issuer, or the reason it is unusable (which makes the identity weak)."""
    try:
        return normalise_issuer(country, jurisdiction)
    except IdentityError as exc:
        return exc
