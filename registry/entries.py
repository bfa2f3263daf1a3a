"""What a list entry is, and the keyed tokens it expands to (docs/registry.md, "Model", "Token expansion").

Pure: no I/O. The publishing core (registry/publish.py, registry/list_change.py)
stores and publishes entries; importers (registry/importer.py) build them from
authority files; both use the one expansion here, so a token means the same
thing whichever way an entry arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from appliance.records import Action, TokenKind
from registry.db import RegistryError
from sync.identity import (
    DocumentClass,
    Identity,
    IdentityError,
    document_token,
    normalise_issuer,
    normalise_name,
    token_key_id,  # noqa: F401  (re-exported: the registry names keys by it)
)

FOREVER = date(9999, 12, 31)
STATUS_ACTIVE, STATUS_REMOVED, STATUS_EXPIRED = "active", "removed", "expired"


class InvalidEntry(RegistryError):
    """Entry or list fields that cannot be stored or tokenised."""

    code = "invalid_entry"


@dataclass(frozen=True)
class Name:
    """One Latin spelling of a name, as an authority or document gives it."""

    surnames: str
    given_names: str = ""


@dataclass(frozen=True)
class DocumentRef:
    """A listed document: class letter (sync.identity.DocumentClass), issuer (``DEU``, ``USA-CA``), number."""

    document_class: str
    issuer: str
    number: str


@dataclass(frozen=True)
class EntryFields:
    """What an authority lists about one person; ``None`` takes the list's default."""

    surnames: str
    reference: str
    category: str
    given_names: str = ""
    original_script: str | None = None
    latin_variants: tuple[Name, ...] = ()
    date_of_birth: date | None = None
    documents: tuple[DocumentRef, ...] = ()
    action: Action | None = None
    valid_from: date | None = None
    valid_until: date = FOREVER
    redress: str | None = None


def expand_entry(token_key: bytes, fields: EntryFields) -> list[tuple[bytes, TokenKind]]:
    """The tokens of one entry: a document token per document, a person token per name variant.

    Name variants come from registry/expansion.py; where that module is
    absent, from ``Identity.name_keys()`` of each spelling given.
    """
    out: dict[bytes, TokenKind] = {}
    try:
        for doc in fields.documents:
            country, _, region = doc.issuer.partition("-")
            issuer = normalise_issuer(country, region or None)
            out.setdefault(document_token(token_key, DocumentClass(doc.document_class), issuer, doc.number),
                           TokenKind.DOCUMENT)
        if fields.date_of_birth is not None:
            for token in _person_tokens(token_key, fields):
                out.setdefault(token, TokenKind.PERSON)
    except IdentityError as exc:
        raise InvalidEntry(f"entry {fields.reference!r}: {exc}") from None
    except ValueError as exc:  # DocumentClass(...) of an unknown letter
        raise InvalidEntry(f"entry {fields.reference!r}: {exc}") from None
    if not out:
        raise InvalidEntry(f"entry {fields.reference!r} yields no token: it needs a document or a date of birth")
    return list(out.items())


def _person_tokens(key: bytes, fields: EntryFields) -> list[bytes]:
    spellings = [Name(fields.surnames, fields.given_names), *fields.latin_variants]
    tokens: list[bytes] = []
    try:
        from registry.expansion import person_tokens_for_entry
    except ImportError:
        person_tokens_for_entry = None
    for i, name in enumerate(spellings):
        if person_tokens_for_entry is not None:
            script = fields.original_script if i == 0 else None
            found = person_tokens_for_entry(key, name.surnames, name.given_names, fields.date_of_birth,
                                            original_script=script)
        else:
            ident = Identity(DocumentClass.PASSPORT, None, None, normalise_name(name.surnames),
                             normalise_name(name.given_names), fields.date_of_birth)
            found = list(ident.tokens(key).persons)
        tokens.extend(t for t in found if t not in tokens)
    return tokens
