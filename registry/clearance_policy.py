"""The rules of a namesake clearance (issue 5, "Clearances for namesakes"). Pure.

A clearance lets one traveller's *document* through the name + date-of-birth
hits of one list: the counter shows CLEAR with a note instead of REFER. The
rules here are plain functions over plain values, with no database and no
clock, like registry/review_policy.py:

- **redress numbers**: issued once, quoted by the traveller over the phone,
  so short, grouped and carrying a check digit (Damm) that catches every
  single wrong digit and every swap of two neighbours;
- **terms**: a default and a maximum, never past the cleared document's
  expiry (a new document has a new number, so the clearance would not
  follow it anyway);
- **where a clearance may be issued**: only on a list where the traveller's
  name and date of birth hit an active entry, and never for a document that
  the list itself names. docs/clearances.md gives the reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from registry.db import RegistryError

#: A year: long enough that a frequent traveller is not back in a month, short enough to be looked at again.
DEFAULT_TERM_DAYS = 365
#: Three years at most; a clearance is renewed by issuing a new one, which a reviewer looks at afresh.
MAX_TERM_DAYS = 3 * 365
MIN_REASON_CHARS = 10
MAX_REASON_CHARS = 2_000
#: ``CLR-1234-5678``: seven random digits and a Damm check digit, in two groups of four.
REDRESS_PREFIX = "CLR"
REDRESS_DIGITS = 8
_REDRESS = re.compile(r"[A-Z]*([0-9]{%d})" % REDRESS_DIGITS)

# H. M. Damm's totally anti-symmetric quasigroup of order 10 (2004): the
# check digit makes the running interim 0, and every single-digit error and
# adjacent transposition leaves it non-zero.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class ClearanceError(RegistryError):
    """A clearance the rules do not allow, or one that cannot be found, with why."""

    code = "clearance"


def damm_digit(digits: str) -> int:
    """The Damm check digit of a string of ASCII digits."""
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return interim


def redress_number(serial: int) -> str:
    """The redress number of a 7-digit serial: ``CLR-dddd-dddd``, the last digit the check digit."""
    if not 0 <= serial < 10 ** (REDRESS_DIGITS - 1):
        raise ValueError(f"a redress serial has at most {REDRESS_DIGITS - 1} digits")
    body = f"{serial:0{REDRESS_DIGITS - 1}d}"
    digits = body + str(damm_digit(body))
    return f"{REDRESS_PREFIX}-{digits[:4]}-{digits[4:]}"


def parse_redress_number(text: str) -> str:
    """A redress number as a person typed or read it out, in its one written form.

    Spaces, dashes and case do not matter, nor does leaving the prefix off;
    a wrong digit or two swapped digits fail the check digit, so a typo is
    told apart from a number that was never issued.
    """
    folded = re.sub(r"[\s\-_./]", "", (text or "").upper())
    match = _REDRESS.fullmatch(folded)
    if match is None or (folded[:-REDRESS_DIGITS] not in ("", REDRESS_PREFIX)):
        raise ClearanceError(f"{text!r} is not a redress number (they look like {redress_number(1234567)})")
    digits = match.group(1)
    if damm_digit(digits) != 0:
        raise ClearanceError(f"{text!r} is not a redress number: a digit is wrong or two are swapped")
    return f"{REDRESS_PREFIX}-{digits[:4]}-{digits[4:]}"


def clearance_term(today: date, *, days: int | None = None, document_expiry: date | None = None) -> date:
    """The valid-until of a clearance issued ``today``: the default, shorter on request, never past the maximum.

    A clearance ends no later than the document it clears: the traveller's
    next document has another number, so it would need a clearance of its own.
    """
    chosen = DEFAULT_TERM_DAYS if days is None else days
    if type(chosen) is not int or chosen < 1:
        raise ClearanceError("a clearance's term is a whole number of days, at least 1")
    if chosen > MAX_TERM_DAYS:
        raise ClearanceError(f"a clearance lasts at most {MAX_TERM_DAYS} days, asked for {chosen}")
    if document_expiry is not None and document_expiry < today:
        raise ClearanceError(f"the document expired on {document_expiry}; clear the traveller's current document")
    until = today + timedelta(days=chosen)
    return min(until, document_expiry) if document_expiry is not None else until


def clearance_reason(text: str | None) -> str:
    """The reviewer's reason, trimmed: it is what the next reviewer and the auditor read."""
    reason = (text or "").strip()
    if not MIN_REASON_CHARS <= len(reason) <= MAX_REASON_CHARS:
        raise ClearanceError(f"give the reason in {MIN_REASON_CHARS} to {MAX_REASON_CHARS:,} characters: "
                             "how the traveller was told apart from the listed person")
    return reason


@dataclass(frozen=True)
class MatchedEntry:
    """An active entry that the traveller's name and date of birth hit."""

    entry_id: int
    reference: str
    category: str
    valid_until: date


@dataclass(frozen=True)
class ListMatch:
    """What one list makes of the traveller: whom their name + DOB hits, and whether a clearance may be issued."""

    list_id: str
    name: str
    entries: tuple[MatchedEntry, ...] = ()
    #: Entries that list the traveller's document itself: a clearance never overrides those.
    document_entries: tuple[MatchedEntry, ...] = ()
    #: The redress number of the clearance this document already holds on the list.
    cleared_by: str | None = None

    @property
    def refusal(self) -> str | None:
        """Why a clearance may not be issued on this list; None when it may."""
        if self.document_entries:
            refs = ", ".join(e.reference for e in self.document_entries)
            return (f"{self.name} lists this document itself (ref. {refs}); a clearance never overrides a "
                    "document hit: an appeal against that entry is the way")
        if self.cleared_by is not None:
            return f"this document already holds clearance {self.cleared_by} on {self.name}"
        if not self.entries:
            return (f"no active entry on {self.name} matches this traveller's name and date of birth, "
                    "so a clearance there would change nothing")
        return None

    @property
    def eligible(self) -> bool:
        return self.refusal is None
