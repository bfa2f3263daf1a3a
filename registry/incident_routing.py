"""Where a counter's incident report goes in the review queue (pure: no I/O).

Counter staff flag a traveller with the device's own short list of
incident kinds (appliance/web/forms.py FLAG_CATEGORIES): they describe what
happened, not which list it belongs on. Each list has its own closed
taxonomy (registry/review_policy.py). This module maps one onto the other
where the meaning is the same; where it is not (a forged document, sexual
harassment on a list without such a category) the report still lands in the
queue, under TRIAGE, and a reviewer chooses the list's category before
anyone can accept it. Nothing a device sends is dropped for being unmapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Sequence

from registry.publish import DocumentRef
from registry.review_policy import ListPolicy

#: The category of a device report that a reviewer must categorise before deciding it.
TRIAGE = "triage"

#: Counter incident kind -> list categories that mean the same, in order of preference.
COUNTER_TO_LIST: dict[str, tuple[str, ...]] = {
    "physical_assault": ("assault_of_crew", "violence_against_staff"),
    "threat_or_verbal_abuse": ("threatening_behaviour",),
    "crew_interference": ("interference_with_crew",),
    "intoxication": ("intoxication_disruption",),
    "property_damage": ("property_damage",),
    "smoking_on_board": ("smoking_on_board",),
}

_DOCUMENT_CLASSES = frozenset("PIVDB")


class IncidentUnreadable(ValueError):
    """The report body lacks what a queue entry needs; ``str()`` says what, in one line."""


@dataclass(frozen=True)
class Route:
    list_id: str
    category: str  # a category of the list's taxonomy, or TRIAGE


@dataclass(frozen=True)
class Incident:
    """The fields of a counter's flag-form report (appliance/web/forms.py FlagForm.to_report)."""

    kind: str
    narrative: str
    trip: str
    trip_date: date
    operator: str
    surnames: str
    given_names: str
    date_of_birth: date | None
    documents: tuple[DocumentRef, ...]


def _text(body: dict, key: str, limit: int) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise IncidentUnreadable(f"{key} must be text of at most {limit} characters")
    return value.strip()


def _day(body: dict, key: str) -> date | None:
    value = body.get(key)
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise IncidentUnreadable(f"{key} must be a date as YYYY-MM-DD, got {value!r}") from None


def read_incident(report: dict, *, received_on: date) -> Incident:
    """The queue's view of a device report; IncidentUnreadable names the first missing or bad field."""
    passenger = report.get("passenger")
    if not isinstance(passenger, dict):
        raise IncidentUnreadable("the report names no passenger")
    surnames = _text(passenger, "surname", 200)
    if not surnames:
        raise IncidentUnreadable("the passenger's surname is missing")
    documents: tuple[DocumentRef, ...] = ()
    number = _text(passenger, "document_number", 40)
    if number:
        doc_class = _text(passenger, "document_class", 1).upper() or "P"
        country = _text(passenger, "issuing_country", 3).upper()
        if doc_class not in _DOCUMENT_CLASSES or len(country) != 3:
            raise IncidentUnreadable("a document number needs its document type and issuing country")
        documents = (DocumentRef(doc_class, country, number.upper()),)
    return Incident(
        kind=_text(report, "category", 64), narrative=_text(report, "narrative", 10_000),
        trip=_text(report, "flight", 40), trip_date=_day(report, "flight_date") or received_on,
        operator=_text(report, "reporter", 64) or "unknown operator", surnames=surnames,
        given_names=_text(passenger, "given_names", 200), date_of_birth=_day(passenger, "date_of_birth"),
        documents=documents)


def route(kind: str, subscribed: Sequence[str], policies: Sequence[ListPolicy]) -> Route | None:
    """The list and category a counter incident is filed under, or None when no list takes reports.

    Only lists the device subscribes to and that take reports (have a
    review policy) are candidates. The first list, in the device's order,
    whose taxonomy has a category meaning the same as ``kind`` wins; when
    none has, the first candidate list gets it under TRIAGE.
    """
    by_list = {p.list_id: p for p in policies}
    candidates = [by_list[list_id] for list_id in subscribed if list_id in by_list]
    if not candidates:
        return None
    for policy in candidates:
        names = {c.category for c in policy.categories}
        for wanted in COUNTER_TO_LIST.get(kind, ()):
            if wanted in names:
                return Route(policy.list_id, wanted)
    return Route(candidates[0].list_id, TRIAGE)
