"""Reports through review to a published entry: two people, bounded terms, idempotent publishing."""

from __future__ import annotations

from datetime import date

import pytest
from registry.audit import AuditLog
from registry.db import RegistryError
from registry.publish import DocumentRef
from registry.reports import Evidence, Identity, ReportError, ReportQueue, identity_from_scan
from registry.review_policy import PolicyError, SelfReview
from appliance.specimens.mrz import MRZFields, encode
from tests.support.report_world import PNG, file, new_queue



@pytest.fixture
def queue(tmp_path) -> ReportQueue:
    return new_queue(tmp_path)


def test_an_accepted_report_publishes_an_entry_with_the_category_default_term(queue):
    report_id = file(queue)
    assert [r.report_id for r in queue.queue()] == [report_id]
    before = queue.registry.current_version("da-ban")
    report = queue.accept(report_id, reviewer="sam", reason="crew statements agree")
    assert report.status == "accepted" and report.decided_by == "sam" and report.entry_id
    assert queue.registry.current_version("da-ban") == before + 1
    assert queue.queue() == []
    assert len(queue.registry.tokens_of(report.entry_id)) >= 2  # the document and the name + DOB


def test_the_reporter_cannot_decide_their_own_report(queue):
    report_id = file(queue)
    with pytest.raises(SelfReview):
        queue.accept(report_id, reviewer="mia")
    with pytest.raises(SelfReview):
        queue.reject(report_id, reviewer="mia", reason="withdrawing it myself")
    assert queue.get(report_id).status == "pending"


def test_a_two_reviewer_list_publishes_only_after_a_second_different_reviewer(tmp_path):
    queue = new_queue(tmp_path, reviewers=2)
    report_id = file(queue)
    version = queue.registry.current_version("da-ban")
    assert queue.accept(report_id, reviewer="sam", days=400).status == "awaiting_second"
    assert queue.registry.current_version("da-ban") == version  # nothing published yet
    with pytest.raises(PolicyError, match="second, different reviewer"):
        queue.accept(report_id, reviewer="sam")
    report = queue.accept(report_id, reviewer="lee", days=500)
    assert report.status == "accepted" and queue.registry.current_version("da-ban") == version + 1
    actions = [r.action for r in queue.audit.records(subject=f"report:{report_id}")]
    assert actions == ["report.file", "report.approve", "report.accept"]


def test_a_term_beyond_the_category_maximum_is_refused(queue):
    report_id = file(queue, category="smoking_on_board")
    with pytest.raises(PolicyError, match="at most 180 days"):
        queue.accept(report_id, reviewer="sam", days=365)
    assert queue.get(report_id).status == "pending"


def test_a_rejection_carries_the_reason_the_reporter_sees(queue):
    report_id = file(queue)
    queue.reject(report_id, reviewer="sam", reason="CCTV shows the passenger was not involved")
    mine = queue.by_reporter("mia")
    assert [(r.status, r.decision_reason) for r in mine] == [
        ("rejected", "CCTV shows the passenger was not involved")]
    with pytest.raises(ReportError, match="rejected already"):
        queue.accept(report_id, reviewer="lee")


def test_accepting_again_after_a_crash_finds_the_published_entry_instead_of_listing_twice(queue):
    report_id = file(queue)
    report = queue.get(report_id)
    from registry.publish import EntryFields

    # The process died after the publish and before the report was marked accepted:
    entry_id = queue.registry.add_entry("da-ban", EntryFields(
        surnames=report.identity.surnames, given_names=report.identity.given_names,
        date_of_birth=report.identity.date_of_birth, documents=report.identity.documents,
        reference=report_id, category=report.category), by="sam")
    version = queue.registry.current_version("da-ban")
    assert queue.accept(report_id, reviewer="sam").entry_id == entry_id
    assert queue.registry.current_version("da-ban") == version


def test_similar_reports_and_existing_entries_are_shown_to_the_reviewer(queue):
    first = file(queue)
    queue.accept(first, reviewer="sam")
    second = file(queue, category="threatening_behaviour", narrative="Threatened the gate agent.")
    similar = queue.similar(queue.get(second))
    assert [r.report_id for r in similar["reports"]] == [first]
    assert [e["reference"] for e in similar["entries"]] == [first]


@pytest.mark.parametrize("overrides, message", [
    ({"category": "rudeness"}, "not in list da-ban's taxonomy"),
    ({"identity": Identity("Eriksson", "Anna")}, "date of birth or a document number"),
    ({"identity": Identity(" ", "Anna", date(1970, 5, 17))}, "surname"),
    ({"narrative": "   "}, "narrative must say what happened"),
    ({"attachments": [Evidence("notes.txt", b"just text")]}, "is not a PDF, PNG or JPEG"),
    ({"attachments": [Evidence("huge.png", PNG + bytes(5 * 1024 * 1024))]}, "the limit is 5 MiB"),
    ({"attachments": [Evidence(f"{i}.png", PNG) for i in range(6)]}, "at most 5 evidence files"),
    ({"list_id": "nowhere"}, "takes no reports yet"),
])
def test_bad_reports_are_refused_with_the_field_named_and_nothing_stored(queue, overrides, message):
    with pytest.raises((ReportError, PolicyError), match=message):
        file(queue, **overrides)
    assert queue.queue() == []


def test_a_scanned_passport_fills_the_identity_server_side():
    mrz = encode(MRZFields("TD3", "P", "DEU", "C01X00T47", "ERIKSSON", "ANNA", date(1970, 5, 17), "F",
                           date(2035, 1, 31), "DEU"))
    identity = identity_from_scan("\n".join(mrz), today=date(2026, 11, 27))
    assert (identity.surnames, identity.given_names, identity.date_of_birth) == ("ERIKSSON", "ANNA", date(1970, 5, 17))
    assert identity.documents == (DocumentRef("P", "DEU", "C01X00T47"),)


def test_every_step_is_in_the_audit_chain(queue):
    report_id = file(queue)
    queue.accept(report_id, reviewer="sam")
    log = AuditLog(queue.engine)
    assert log.verify()[1] == []
    assert {r.action for r in log.records()} >= {"list.policy", "report.file", "report.accept"}


def test_a_second_final_accept_during_the_publish_is_refused_and_lists_no_one_twice(queue):
    report_id = file(queue)
    queue._claim(report_id, int(queue.clock()))  # the first reviewer's accept is publishing right now
    version = queue.registry.current_version("da-ban")
    with pytest.raises(ReportError, match="being decided by someone else"):
        queue.accept(report_id, reviewer="lee")
    with pytest.raises(ReportError, match="is publishing already"):
        queue.reject(report_id, reviewer="lee", reason="changed my mind about this")
    assert queue.registry.current_version("da-ban") == version


def test_a_claim_left_by_a_crash_lapses_and_the_next_accept_publishes_once(tmp_path):
    from registry.reports import PUBLISH_LEASE_SECONDS

    queue = new_queue(tmp_path)
    report_id = file(queue)
    queue._claim(report_id, int(queue.clock()) - PUBLISH_LEASE_SECONDS - 1)  # died mid-publish, long ago
    report = queue.accept(report_id, reviewer="lee")
    assert report.status == "accepted" and report.entry_id
    assert queue.queue() == []


def test_a_publish_the_registry_refuses_puts_the_report_back_in_the_queue(queue):
    # Filing takes the document as typed; publishing checks the issuer code and refuses it.
    report_id = file(queue, identity=Identity("Eriksson", "Anna", date(1970, 5, 17), (DocumentRef("P", "Z9", "C01"),)))
    version = queue.registry.current_version("da-ban")
    with pytest.raises(RegistryError):
        queue.accept(report_id, reviewer="sam")
    assert queue.get(report_id).status == "pending" and queue.registry.current_version("da-ban") == version
