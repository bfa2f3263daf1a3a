"""The review rules: two people, bounded terms, appeal deadlines (registry/review_policy.py)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.review_policy import (
    AVIATION_CATEGORIES,
    PERMANENT_UNTIL,
    Approval,
    CategoryPolicy,
    ListPolicy,
    Outcome,
    PolicyError,
    SelfReview,
    acceptance,
    add_working_days,
    appeal_deadlines,
    rejection,
    sanction_term,
)

AIRLINE = ListPolicy("da-ban", AVIATION_CATEGORIES)
TWO_REVIEWERS = ListPolicy("da-ban", AVIATION_CATEGORIES, reviewers_required=2)
COURT = ListPolicy("court-defaulters", (CategoryPolicy("judgment_defaulter", "Judgment defaulter", 365, None),),
                   permanent_allowed=True)
DAY = date(2026, 11, 27)  # a Friday


def test_the_reporter_can_never_decide_their_own_report():
    with pytest.raises(SelfReview, match="another reviewer must decide it"):
        acceptance(AIRLINE, reporter="mia", reviewer="mia")
    with pytest.raises(SelfReview):
        rejection(reporter="mia", reviewer="mia", reason="not enough evidence")


def test_one_reviewer_accepts_where_the_list_needs_one():
    assert acceptance(AIRLINE, reporter="mia", reviewer="sam") is Outcome.ACCEPTED


def test_a_two_reviewer_list_waits_for_a_second_different_reviewer():
    assert acceptance(TWO_REVIEWERS, reporter="mia", reviewer="sam") is Outcome.AWAITING_SECOND
    with pytest.raises(PolicyError, match="second, different reviewer"):
        acceptance(TWO_REVIEWERS, reporter="mia", reviewer="sam", earlier=[Approval("sam")])
    assert acceptance(TWO_REVIEWERS, reporter="mia", reviewer="lee", earlier=[Approval("sam")]) is Outcome.ACCEPTED


def test_the_default_term_comes_from_the_category():
    term = sanction_term(AIRLINE, "smoking_on_board", DAY)
    assert (term.valid_from, term.valid_until, term.permanent) == (DAY, date(2027, 2, 25), False)


def test_a_reviewer_may_shorten_a_term_but_never_exceed_the_maximum():
    assert sanction_term(AIRLINE, "assault_of_crew", DAY, days=30).valid_until == date(2026, 12, 27)
    with pytest.raises(PolicyError, match="Assault of crew: at most 1825 days, asked for 1826"):
        sanction_term(AIRLINE, "assault_of_crew", DAY, days=1826)


@pytest.mark.parametrize("days", [0, -3, 1.5])
def test_a_term_is_a_positive_whole_number_of_days(days):
    with pytest.raises(PolicyError, match="whole number of days"):
        sanction_term(AIRLINE, "smoking_on_board", DAY, days=days)


def test_permanent_only_where_the_list_and_the_category_allow_it():
    with pytest.raises(PolicyError, match="does not allow a permanent listing"):
        sanction_term(AIRLINE, "assault_of_crew", DAY, permanent=True)
    term = sanction_term(COURT, "judgment_defaulter", DAY, permanent=True)
    assert term.permanent and term.valid_until == PERMANENT_UNTIL


def test_a_category_outside_the_closed_taxonomy_is_refused_with_the_choices():
    with pytest.raises(PolicyError, match="'rudeness' is not in list da-ban's taxonomy \\(assault_of_crew, "):
        sanction_term(AIRLINE, "rudeness", DAY)


def test_a_rejection_needs_a_reason_the_reporter_can_read():
    with pytest.raises(PolicyError, match="needs a reason"):
        rejection(reporter="mia", reviewer="sam", reason="  no ")
    assert rejection(reporter="mia", reviewer="sam", reason=" CCTV shows no incident ") == "CCTV shows no incident"


def test_appeal_is_decided_in_15_days_and_corrected_in_3_working_days():
    filed = date(2026, 11, 20)
    assert appeal_deadlines(COURT, filed).decide_by == date(2026, 12, 5)
    upheld = appeal_deadlines(COURT, filed, upheld_on=DAY)  # Friday: Mon, Tue, Wed
    assert upheld.correct_by == date(2026, 12, 2)
    with_holiday = appeal_deadlines(COURT, filed, upheld_on=DAY, holidays=[date(2026, 11, 30)])
    assert with_holiday.correct_by == date(2026, 12, 3)


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 1, 1)), st.integers(0, 40))
def test_working_days_never_land_on_a_weekend_and_count_exactly(start, days):
    end = add_working_days(start, days)
    span = [start.fromordinal(o) for o in range(start.toordinal() + 1, end.toordinal() + 1)]
    assert sum(d.weekday() < 5 for d in span) == days
    assert days == 0 or end.weekday() < 5
