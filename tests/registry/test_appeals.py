"""Appeals: deadlines, lifting publishes the removal at once, one open appeal, two people."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from registry.appeals import AppealError, Appeals
from tests.support.report_world import file, new_queue

FRIDAY = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def world(tmp_path):
    queue = new_queue(tmp_path)
    report = queue.accept(file(queue), reviewer="sam")
    return queue, Appeals(queue.engine, queue.registry, queue, clock=lambda: FRIDAY), report.entry_id


def test_an_upheld_appeal_lifts_the_entry_and_publishes_the_removal_at_once(world):
    queue, appeals, entry_id = world
    appeal = appeals.file(entry_id, grounds="I was not on that flight; passport stolen in 2025.", filed_by="redress-desk")
    assert appeal.decide_by == date(2026, 12, 12)  # 15 days
    version = queue.registry.current_version("da-ban")
    upheld = appeals.uphold(appeal.appeal_id, reviewer="lee", decision="Police report confirms the theft.")
    assert upheld.status == "upheld" and upheld.corrected_in_version == version + 1
    assert upheld.correct_by == date(2026, 12, 2)  # 3 working days after a Friday
    assert queue.registry.current_version("da-ban") == version + 1
    assert queue.registry.tokens_of(entry_id)  # the registry keeps what it published, marked removed
    assert [r.action for r in queue.audit.records(subject=f"entry:{entry_id}")] == ["appeal.file", "entry.lift"]


def test_the_reviewer_who_accepted_the_listing_cannot_decide_its_appeal(world):
    _, appeals, entry_id = world
    appeal = appeals.file(entry_id, grounds="Mistaken identity.", filed_by="redress-desk")
    with pytest.raises(AppealError, match="another reviewer must decide the appeal"):
        appeals.uphold(appeal.appeal_id, reviewer="sam", decision="I was wrong about this.")


def test_one_open_appeal_per_entry_and_a_dismissal_keeps_the_entry(world):
    queue, appeals, entry_id = world
    appeal = appeals.file(entry_id, grounds="Mistaken identity.", filed_by="redress-desk")
    with pytest.raises(AppealError, match="already has an open appeal"):
        appeals.file(entry_id, grounds="Again.", filed_by="redress-desk")
    version = queue.registry.current_version("da-ban")
    assert appeals.dismiss(appeal.appeal_id, reviewer="lee", decision="CCTV matches the traveller.").status == "dismissed"
    assert queue.registry.current_version("da-ban") == version
    assert appeals.file(entry_id, grounds="New evidence: boarding records.", filed_by="redress-desk").status == "open"


def test_an_appeal_past_its_deadline_is_overdue(world):
    _, appeals, entry_id = world
    appeal = appeals.file(entry_id, grounds="Mistaken identity.", filed_by="redress-desk")
    assert not appeal.overdue(date(2026, 12, 12)) and appeal.overdue(date(2026, 12, 13))
    assert [a.appeal_id for a in appeals.open_appeals()] == [appeal.appeal_id]


def test_a_lifted_entry_cannot_be_appealed_again(world):
    _, appeals, entry_id = world
    appeal = appeals.file(entry_id, grounds="Mistaken identity.", filed_by="redress-desk")
    appeals.uphold(appeal.appeal_id, reviewer="lee", decision="Confirmed mistaken identity.")
    with pytest.raises(AppealError, match="is removed; there is nothing to appeal"):
        appeals.file(entry_id, grounds="Again.", filed_by="redress-desk")


def test_upholding_after_the_entry_was_already_removed_closes_the_appeal_with_that_version(world):
    queue, appeals, entry_id = world
    appeal = appeals.file(entry_id, grounds="Mistaken identity.", filed_by="redress-desk")
    removed_in = queue.registry.remove_entry("da-ban", entry_id, by="list-admin")  # or a crash after the publish
    upheld = appeals.uphold(appeal.appeal_id, reviewer="lee", decision="Confirmed mistaken identity.")
    assert upheld.status == "upheld" and upheld.corrected_in_version == removed_in
    assert queue.registry.current_version("da-ban") == removed_in  # nothing published twice


def test_an_entry_on_a_list_without_report_categories_can_still_be_appealed(world):
    queue, appeals, _ = world
    from appliance.records import Action
    from registry.publish import DocumentRef, EntryFields

    queue.registry.create_list("court", name="Judgment defaulters", authority="Court", legal_basis="Rules s.3",
                               scopes=["air_travel"], default_action=Action.DENY, by="list-admin")
    entry_id = queue.registry.add_entry("court", EntryFields(
        surnames="Moreno", reference="CASE-1", category="judgment_defaulter",
        documents=(DocumentRef("P", "ESP", "X1234567"),)), by="list-admin")
    appeal = appeals.file(entry_id, grounds="The judgment was paid in full.", filed_by="redress-desk")
    assert appeal.decide_by == date(2026, 12, 12)
