"""The rules a review decision must follow (issue 5, "Review" and "Lifecycle and redress"). Pure.

A wrong listing stops a person from travelling, so the workflow carries the
safeguards and this module states them as plain functions over plain
values, with no database and no clock:

- **two people**: the reporter never decides their own report, and a list
  may require two different reviewers to accept;
- **terms**: a per-category policy gives the default length and the maximum;
  a reviewer may shorten a term, never exceed the maximum; "permanent" only
  where both the list and the category allow it;
- **deadlines**: an appeal is decided within calendar days and its correction
  published within working days, as the court defaulter rules require.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Iterable

from registry.db import RegistryError

#: The valid-until of a permanent listing: every entry carries an expiry, even this one.
PERMANENT_UNTIL = date(9999, 12, 31)


class PolicyError(RegistryError):
    """A decision the policy does not allow, with the rule it breaks."""

    code = "policy"


class SelfReview(PolicyError):
    code = "self_review"


@dataclass(frozen=True)
class CategoryPolicy:
    """One category of a list's closed taxonomy and its sanction term, in days.

    ``max_days`` None means no maximum: the category allows a permanent
    listing, if the list's policy allows permanent listings at all.
    """

    category: str
    label: str
    default_days: int
    max_days: int | None

    def __post_init__(self) -> None:
        if self.default_days < 1 or (self.max_days is not None and not 1 <= self.default_days <= self.max_days):
            raise ValueError(f"category {self.category}: default term must be 1..max days")


@dataclass(frozen=True)
class ListPolicy:
    list_id: str
    categories: tuple[CategoryPolicy, ...]
    reviewers_required: int = 1
    permanent_allowed: bool = False
    #: Appeals: calendar days to decide, working days to publish the correction.
    appeal_decide_days: int = 15
    correction_working_days: int = 3

    def __post_init__(self) -> None:
        if self.reviewers_required not in (1, 2):
            raise ValueError("a list requires one or two reviewers")
        names = [c.category for c in self.categories]
        if len(set(names)) != len(names) or not names:
            raise ValueError("a list's taxonomy needs distinct categories")

    def category(self, name: str) -> CategoryPolicy:
        for policy in self.categories:
            if policy.category == name:
                return policy
        choices = ", ".join(c.category for c in self.categories)
        raise PolicyError(f"category {name!r} is not in list {self.list_id}'s taxonomy ({choices})")


#: A starting taxonomy for an airline's disruptive-passenger list (terms in days).
AVIATION_CATEGORIES = (
    CategoryPolicy("assault_of_crew", "Assault of crew", 730, 1825),
    CategoryPolicy("threatening_behaviour", "Threatening behaviour", 365, 730),
    CategoryPolicy("interference_with_crew", "Interference with crew instructions", 180, 365),
    CategoryPolicy("smoking_on_board", "Smoking on board", 90, 180),
    CategoryPolicy("intoxication_disruption", "Intoxication causing disruption", 180, 365),
)

#: A hotel group's do-not-rent list.
HOTEL_CATEGORIES = (
    CategoryPolicy("violence_against_staff", "Violence against staff", 730, 1825),
    CategoryPolicy("property_damage", "Serious damage to property", 365, 1095),
    CategoryPolicy("non_payment", "Fraud or non-payment", 365, 730),
)


@dataclass(frozen=True)
class Term:
    valid_from: date
    valid_until: date
    permanent: bool = False


def sanction_term(policy: ListPolicy, category: str, decided_on: date, *, days: int | None = None,
                  permanent: bool = False) -> Term:
    """The term a reviewer may give: the category's default, shorter on request, never past the maximum."""
    rules = policy.category(category)
    if permanent:
        if not policy.permanent_allowed or rules.max_days is not None:
            raise PolicyError(f"list {policy.list_id} does not allow a permanent listing for {rules.label}")
        return Term(decided_on, PERMANENT_UNTIL, permanent=True)
    chosen = rules.default_days if days is None else days
    if type(chosen) is not int or chosen < 1:
        raise PolicyError("a term is a whole number of days, at least 1")
    if rules.max_days is not None and chosen > rules.max_days:
        raise PolicyError(f"{rules.label}: at most {rules.max_days} days, asked for {chosen}")
    return Term(decided_on, decided_on + timedelta(days=chosen))


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # enough reviewers: the entry is published
    AWAITING_SECOND = "awaiting_second"  # one of two approvals given


@dataclass(frozen=True)
class Approval:
    reviewer: str
    days: int | None = None
    permanent: bool = False


def acceptance(policy: ListPolicy, *, reporter: str, reviewer: str,
               earlier: Iterable[Approval] = ()) -> Outcome:
    """Whether ``reviewer`` may accept now, and whether that publishes or waits for a second reviewer."""
    if reviewer == reporter:
        raise SelfReview("you filed this report; another reviewer must decide it")
    earlier = list(earlier)
    if any(a.reviewer == reviewer for a in earlier):
        raise PolicyError("you have approved this report already; a second, different reviewer must approve it")
    if len(earlier) + 1 >= policy.reviewers_required:
        return Outcome.ACCEPTED
    return Outcome.AWAITING_SECOND


def rejection(*, reporter: str, reviewer: str, reason: str) -> str:
    """A rejection needs a reason the reporter will read; returns it trimmed."""
    if reviewer == reporter:
        raise SelfReview("you filed this report; another reviewer must decide it")
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise PolicyError("a rejection needs a reason the reporter can read")
    return reason


def add_working_days(start: date, days: int, holidays: Iterable[date] = ()) -> date:
    """``start`` plus ``days`` working days (Monday to Friday, not ``holidays``)."""
    off = set(holidays)
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in off:
            left -= 1
    return current


@dataclass(frozen=True)
class AppealDeadlines:
    decide_by: date
    #: Set once the appeal is upheld: the correction must be published by then.
    correct_by: date | None = None


def appeal_deadlines(policy: ListPolicy, filed_on: date, *, upheld_on: date | None = None,
                     holidays: Iterable[date] = ()) -> AppealDeadlines:
    decide_by = filed_on + timedelta(days=policy.appeal_decide_days)
    if upheld_on is None:
        return AppealDeadlines(decide_by)
    return AppealDeadlines(decide_by, add_working_days(upheld_on, policy.correction_working_days, holidays))

