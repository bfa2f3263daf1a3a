"""Authority list rows -> list entries: the column mapping, the checks, the row fingerprint. Pure.

Issue 5, "Authority lists": a list admin imports a list (a court's judgment
defaulters, say) as CSV or JSON, with a mapping of the file's columns to
entry fields. Each row either becomes an ``EntryFields`` or is refused with
one human-readable reason; nothing here reads a file or a database
(registry/import_readers.py reads, registry/import_run.py previews and
applies). docs/imports.md has the mapping format and every rule.

The **fingerprint** of a row is a SHA-256 over what the file and the mapping
say about the entry, and nothing that depends on the day it is read: a row
without an expiry records "the default term of N days", not the date that
term ends today. So importing the same file again finds every row unchanged
(a no-op), while any change to a row (a corrected birth date, a new term)
changes its fingerprint, and the import withdraws the old entry and lists a
new one: re-listing is a new decision, never an edit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Mapping

from appliance.records import Action
from registry.db import RegistryError
from registry.entries import DocumentRef, EntryFields, Name
from sync.identity import DocumentClass, IdentityError, normalise_issuer

#: The entry fields a column can fill, and what each means (the mapping form shows these).
FIELDS: dict[str, str] = {
    "reference": "the authority's case number (required: the key of the row)",
    "surnames": "surname(s) in Latin letters (required)",
    "given_names": "given names in Latin letters",
    "original_script": "the name as written in its own script",
    "latin_variants": "further spellings, 'SURNAMES, GIVEN; SURNAMES, GIVEN'",
    "date_of_birth": "date of birth",
    "document_number": "document number",
    "document_class": "document type: P passport, I ID card, D driver licence, V visa",
    "document_issuer": "issuing country, ISO 3166-1 alpha-3 (DEU, CHN) or USA-CA",
    "category": "the category of the listing",
    "action": "DENY or REFER (empty: the list's default action)",
    "valid_from": "first day in force (empty: the day of the import)",
    "valid_until": "last day in force (empty: the mapping's default term)",
    "redress": "text shown to the traveller (empty: the list's redress text)",
}
#: Fields whose value may be one constant for the whole file instead of (or where a row leaves empty) a column.
DEFAULTABLE = ("category", "action", "document_class", "document_issuer", "redress")
REQUIRED = ("reference", "surnames")
MAX_TEXT_CHARS = 500
MAX_REDRESS_CHARS = 2_000
MAX_TERM_DAYS = 100 * 366
FINGERPRINT_DOMAIN = "gatecheck-import-row-v1"
_DATE_EXAMPLE = date(2024, 12, 31)
_CLASSES = {c.value for c in DocumentClass} - {DocumentClass.BOARDING_PASS.value}
#: Header spellings taken as a field when suggesting a mapping (compared without case, spaces, _ or -).
_SYNONYMS = {
    "reference": ("reference", "ref", "case", "caseno", "casenumber", "casenum", "caseid", "referenceno"),
    "surnames": ("surnames", "surname", "lastname", "familyname", "family"),
    "given_names": ("givennames", "givenname", "firstname", "firstnames", "forenames", "given"),
    "original_script": ("originalscript", "nativename", "localname", "name"),
    "latin_variants": ("latinvariants", "variants", "aliases", "alias", "aka"),
    "date_of_birth": ("dateofbirth", "dob", "birthdate", "born"),
    "document_number": ("documentnumber", "docnumber", "documentno", "passportno", "passportnumber", "idnumber"),
    "document_class": ("documentclass", "documenttype", "doctype"),
    "document_issuer": ("documentissuer", "issuer", "issuingcountry", "nationality"),
    "category": ("category",),
    "action": ("action",),
    "valid_from": ("validfrom", "from", "since", "listedon", "listed"),
    "valid_until": ("validuntil", "until", "expiry", "expires", "enddate", "to"),
    "redress": ("redress",),
}


class ImportProblem(RegistryError):
    """Base of every import refusal: a bad mapping, an unreadable file, an import that cannot be applied."""

    code = "import"


class MappingError(ImportProblem):
    code = "bad_mapping"


@dataclass(frozen=True)
class ImportMapping:
    """Which column fills which field, constants for the rest, and the default term.

    ``columns`` and ``defaults`` are sorted (field, value) pairs, so two equal
    mappings are equal objects and serialise to the same JSON.
    """

    columns: tuple[tuple[str, str], ...]
    defaults: tuple[tuple[str, str], ...] = ()
    #: Expiry of a row that has none: its valid_from (or the day it is imported) plus this many days.
    term_days: int | None = None
    #: strptime format of every date column.
    date_format: str = "%Y-%m-%d"

    @classmethod
    def from_dict(cls, data: Any) -> "ImportMapping":
        """From JSON-like data (docs/imports.md); MappingError names the key at fault."""
        if not isinstance(data, Mapping):
            raise MappingError("a mapping is a JSON object with 'columns' (and 'defaults', 'term_days', 'date_format')")
        unknown = set(data) - {"columns", "defaults", "term_days", "date_format"}
        if unknown:
            raise MappingError(f"mapping key {sorted(unknown)[0]!r} is not one of columns, defaults, term_days, "
                               "date_format")
        columns = _pairs(data.get("columns"), "columns", FIELDS)
        defaults = _pairs(data.get("defaults") or {}, "defaults", DEFAULTABLE)
        for needed in REQUIRED:
            if needed not in dict(columns):
                raise MappingError(f"mapping columns.{needed} is required: which column holds the {needed}?")
        term = data.get("term_days")
        if term is not None and (type(term) is not int or not 1 <= term <= MAX_TERM_DAYS):
            raise MappingError(f"mapping term_days must be a whole number of days from 1 to {MAX_TERM_DAYS}")
        date_format = data.get("date_format", "%Y-%m-%d")
        if not isinstance(date_format, str) or not date_format or "%" not in date_format:
            raise MappingError("mapping date_format must be a strptime format such as %Y-%m-%d or %d/%m/%Y")
        try:
            datetime.strptime(_DATE_EXAMPLE.strftime(date_format), date_format)
        except ValueError:
            raise MappingError(f"mapping date_format {date_format!r} cannot read back the dates it writes") from None
        mapping = cls(columns, defaults, term, date_format)
        for name, value in defaults:
            mapping._check_default(name, value)
        return mapping

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"columns": dict(self.columns), "date_format": self.date_format}
        if self.defaults:
            out["defaults"] = dict(self.defaults)
        if self.term_days is not None:
            out["term_days"] = self.term_days
        return out

    def column(self, name: str) -> str | None:
        return dict(self.columns).get(name)

    def default(self, name: str) -> str | None:
        return dict(self.defaults).get(name)

    def _check_default(self, name: str, value: str) -> None:
        if name == "action" and value.upper() not in ("DENY", "REFER"):
            raise MappingError("mapping defaults.action must be DENY or REFER")
        if name == "document_class" and value.upper() not in _CLASSES:
            raise MappingError(f"mapping defaults.document_class must be one of {', '.join(sorted(_CLASSES))}")
        if name == "document_issuer":
            try:
                _issuer(value)
            except _Refuse as exc:
                raise MappingError(f"mapping defaults.document_issuer: {exc.reason}") from None


def _pairs(value: Any, key: str, allowed) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise MappingError(f"mapping {key} must be an object of field: {'column' if key == 'columns' else 'value'}")
    out = []
    for name, item in value.items():
        if name not in allowed:
            raise MappingError(f"mapping {key}.{name} is not a field that can be set here "
                               f"({', '.join(allowed)})")
        if item in (None, ""):
            continue
        if not isinstance(item, str) or len(item) > MAX_TEXT_CHARS:
            raise MappingError(f"mapping {key}.{name} must be text of at most {MAX_TEXT_CHARS} characters")
        out.append((name, item.strip()))
    return tuple(sorted(out))


def suggest_mapping(columns: list[str]) -> dict[str, str]:
    """field -> column for the header names that plainly say which field they are (a form's starting point)."""
    def plain(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    found: dict[str, str] = {}
    for name, spellings in _SYNONYMS.items():
        for column in columns:
            if plain(column) in spellings and column not in found.values():
                found[name] = column
                break
    return found


@dataclass(frozen=True)
class MappedRow:
    """A row that makes an entry, and the fingerprint of what the file says about it."""

    fields: EntryFields
    fingerprint: str


@dataclass(frozen=True)
class Refusal:
    """A row that makes no entry: why, in one line, and its reference when it has one."""

    reason: str
    reference: str | None = None


class _Refuse(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Row:
    """Reads one row's values through the mapping."""

    row: Mapping[str, Any]
    mapping: ImportMapping

    def where(self, name: str) -> str:
        column = self.mapping.column(name)
        return f"column {column!r}" if column else f"the {name} default"

    def text(self, name: str, *, limit: int = MAX_TEXT_CHARS) -> str | None:
        value = None
        column = self.mapping.column(name)
        if column is not None:
            value = _as_text(self.row.get(column), column)
        if value is None:
            value = self.mapping.default(name)
        if value is not None and len(value) > limit:
            raise _Refuse(f"{self.where(name)} is longer than {limit} characters")
        return value

    def day(self, name: str, what: str) -> date | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return datetime.strptime(value, self.mapping.date_format).date()
        except ValueError:
            example = _DATE_EXAMPLE.strftime(self.mapping.date_format)
            raise _Refuse(f"{what} {value!r} is not a date like {example}") from None


def _as_text(value: Any, column: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise _Refuse(f"column {column!r} holds {json.dumps(value)[:40]}, not text")
    if isinstance(value, float):
        value = str(int(value)) if value.is_integer() else repr(value)
    text = " ".join(str(value).split())  # one line: no tabs, newlines or runs of spaces
    return text or None


def _issuer(value: str) -> str:
    country, _, region = value.upper().partition("-")
    try:
        normalise_issuer(country, region or None)
    except IdentityError as exc:
        raise _Refuse(str(exc)) from None
    return value.upper()


def _variants(text: str | None) -> tuple[Name, ...]:
    out = []
    for item in (text or "").split(";"):
        surnames, _, given = item.partition(",")
        if surnames.strip():
            out.append(Name(surnames.strip(), given.strip()))
        elif item.strip():
            raise _Refuse(f"spelling {item.strip()!r} has no surname (write 'SURNAMES, GIVEN')")
    return tuple(out)


def map_row(row: Mapping[str, Any], mapping: ImportMapping, *, today: date) -> MappedRow | Refusal:
    """The entry a row makes, or why it makes none. ``today`` only judges expiry; the fingerprint ignores it."""
    r = _Row(row, mapping)
    reference = None
    try:
        reference = r.text("reference")
        if reference is None:
            raise _Refuse(f"no reference: {r.where('reference')} is empty")
        return _map(r, reference, today)
    except _Refuse as exc:
        return Refusal(exc.reason, reference)


def _map(r: _Row, reference: str, today: date) -> MappedRow:
    surnames = r.text("surnames")
    if surnames is None:
        raise _Refuse(f"no surname: {r.where('surnames')} is empty")
    given = r.text("given_names") or ""
    script = r.text("original_script")
    variants = _variants(r.text("latin_variants", limit=4 * MAX_TEXT_CHARS))
    born = r.day("date_of_birth", "date of birth")
    if born is not None and born > today:
        raise _Refuse(f"date of birth {born} is in the future")
    documents: tuple[DocumentRef, ...] = ()
    number = r.text("document_number")
    if number is not None:
        kind = (r.text("document_class") or "").upper()
        issuer = r.text("document_issuer")
        if kind not in _CLASSES:
            raise _Refuse(f"document {number!r} needs a document type ({', '.join(sorted(_CLASSES))}); "
                          f"{r.where('document_class')} says {kind or 'nothing'}")
        if issuer is None:
            raise _Refuse(f"document {number!r} needs its issuing country; {r.where('document_issuer')} is empty")
        documents = (DocumentRef(kind, _issuer(issuer), number),)
    if born is None and not documents:
        raise _Refuse("no date of birth and no document number: nothing to match a traveller by")
    category = r.text("category")
    if category is None:
        raise _Refuse(f"no category: {r.where('category')} is empty and the mapping sets no default")
    action_text = r.text("action")
    action = None
    if action_text is not None:
        if action_text.upper() not in ("DENY", "REFER"):
            raise _Refuse(f"action {action_text!r} is not DENY or REFER")
        action = Action(action_text.upper())
    valid_from = r.day("valid_from", "valid-from date")
    valid_until = r.day("valid_until", "expiry date")
    term = None
    if valid_until is None:
        if r.mapping.term_days is None:
            raise _Refuse(f"no expiry: {r.where('valid_until')} is empty and the mapping sets no default term")
        term = r.mapping.term_days
        valid_until = (valid_from or today) + timedelta(days=term)
    if valid_from is not None and valid_until < valid_from:
        raise _Refuse(f"expiry {valid_until} is before the valid-from date {valid_from}")
    if valid_until < today:
        raise _Refuse(f"expired on {valid_until}")
    redress = r.text("redress", limit=MAX_REDRESS_CHARS)
    fields = EntryFields(
        surnames=surnames, given_names=given, original_script=script, latin_variants=variants,
        date_of_birth=born, documents=documents, category=category, reference=reference, action=action,
        valid_from=valid_from, valid_until=valid_until, redress=redress)
    said = {**fields_to_dict(fields), "valid_until": None if term else valid_until.isoformat(), "term_days": term}
    return MappedRow(fields, fingerprint(said))


def fingerprint(content: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of a row's content (sorted keys, UTF-8)."""
    text = json.dumps({"domain": FINGERPRINT_DOMAIN, **content}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fields_to_dict(fields: EntryFields) -> dict[str, Any]:
    """EntryFields as plain JSON values (dates as ISO text), for staging and fingerprints."""
    return {
        "surnames": fields.surnames, "given_names": fields.given_names, "original_script": fields.original_script,
        "latin_variants": [[n.surnames, n.given_names] for n in fields.latin_variants],
        "date_of_birth": fields.date_of_birth.isoformat() if fields.date_of_birth else None,
        "documents": [[d.document_class, d.issuer, d.number] for d in fields.documents],
        "category": fields.category, "reference": fields.reference,
        "action": fields.action.value if fields.action else None,
        "valid_from": fields.valid_from.isoformat() if fields.valid_from else None,
        "valid_until": fields.valid_until.isoformat(), "redress": fields.redress,
    }


def fields_from_dict(data: Mapping[str, Any]) -> EntryFields:
    def day(value):
        return date.fromisoformat(value) if value else None

    return EntryFields(
        surnames=data["surnames"], given_names=data["given_names"], original_script=data["original_script"],
        latin_variants=tuple(Name(s, g) for s, g in data["latin_variants"]),
        date_of_birth=day(data["date_of_birth"]),
        documents=tuple(DocumentRef(c, i, n) for c, i, n in data["documents"]),
        category=data["category"], reference=data["reference"],
        action=Action(data["action"]) if data["action"] else None, valid_from=day(data["valid_from"]),
        valid_until=date.fromisoformat(data["valid_until"]), redress=data["redress"])
