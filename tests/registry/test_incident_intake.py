"""Counter incidents land in the review queue beside web reports (issue 5, "Both land in one queue").

The routing rules are pure and tested directly; the intake runs through the
real registry app: a device enrolled with its own key signs the POST that its
sync agent's outbox makes (sync/fetcher.py WsgiFetcher).
"""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.records import Action
from registry.cli import registry as registry_cli
from registry.incident_intake import queue_id
from registry.incident_routing import TRIAGE, IncidentUnreadable, Route, read_incident, route
from registry.reports import PENDING, Identity, ReportError
from registry.review_policy import AVIATION_CATEGORIES, HOTEL_CATEGORIES, ListPolicy
from registry.server import create_app
from sync.fetcher import DeviceCredentials, WsgiFetcher
from sync.keys import raw_public_key
from tests.support.ui_world import csrf, make_app, signed_in, text

AIR, HOTEL, COURT = "da-ban", "hotel-dnr", "court-defaulters"


def flag(category: str = "physical_assault", **passenger) -> dict:
    """A report as the counter's flag form writes it (appliance/web/forms.py FlagForm.to_report)."""
    who = {"surname": "Eriksson", "given_names": "Anna Maria", "date_of_birth": "1970-05-17",
           "document_class": "P", "issuing_country": "SWE", "document_number": "L898902C3"}
    who.update(passenger)
    return {"kind": "incident", "category": category, "narrative": "Struck a cabin crew member during boarding.",
            "flight": "DA 1234", "flight_date": "2026-11-20", "reporter": "agent-7", "scan_seq": 41,
            "passenger": who}


# -- routing (pure) -------------------------------------------------------------------

AIR_POLICY = ListPolicy(AIR, AVIATION_CATEGORIES)
HOTEL_POLICY = ListPolicy(HOTEL, HOTEL_CATEGORIES)


def test_counter_kind_maps_onto_the_same_meaning_in_the_list_taxonomy():
    assert route("physical_assault", [AIR], [AIR_POLICY]) == Route(AIR, "assault_of_crew")
    assert route("physical_assault", [HOTEL], [HOTEL_POLICY]) == Route(HOTEL, "violence_against_staff")
    assert route("smoking_on_board", [HOTEL, AIR], [AIR_POLICY, HOTEL_POLICY]) == Route(AIR, "smoking_on_board")


def test_kind_without_a_list_meaning_lands_under_triage_not_on_the_floor():
    assert route("fraudulent_document", [AIR], [AIR_POLICY]) == Route(AIR, TRIAGE)
    assert route("something_new", [COURT, HOTEL], [HOTEL_POLICY]) == Route(HOTEL, TRIAGE)


def test_device_whose_lists_take_no_reports_has_no_route():
    assert route("physical_assault", [COURT], [AIR_POLICY]) is None


def test_report_fields_are_read_with_the_first_bad_one_named():
    incident = read_incident(flag(), received_on=date(2026, 11, 27))
    assert incident.documents[0].number == "L898902C3" and incident.date_of_birth == date(1970, 5, 17)
    assert incident.trip == "DA 1234" and incident.operator == "agent-7"
    for body, reason in ((flag(surname=""), "surname is missing"),
                         (flag(date_of_birth="17/05/1970"), "date_of_birth must be a date"),
                         (flag(issuing_country=""), "needs its document type and issuing country"),
                         ({"category": "intoxication"}, "names no passenger")):
        with pytest.raises(IncidentUnreadable, match=reason):
            read_incident(body, received_on=date(2026, 11, 27))


# -- intake through the real app --------------------------------------------------------

class Counter:
    """A registry app with two report-taking lists and one enrolled counter device."""

    def __init__(self, tmp_path) -> None:
        data_dir = tmp_path / "registry"
        assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
        self.app = create_app({"DATA_DIR": str(data_dir)})
        services = self.app.extensions["gatecheck_registry"]
        self.ui = self.app.extensions["gatecheck_ui"]
        for list_id, categories in ((AIR, AVIATION_CATEGORIES), (COURT, None)):
            services.registry.create_list(list_id, name=list_id, authority="Demo", legal_basis="Demo",
                                          scopes=["air_travel"], default_action=Action.DENY, by="admin")
            if categories:
                self.ui.reports.set_policy(ListPolicy(list_id, categories), by="list-admin")
        key = Ed25519PrivateKey.generate()
        code = services.devices.issue_code([COURT, AIR], ttl_seconds=3600, by="it-admin")
        self.device_id = services.devices.enroll(code, raw_public_key(key), "counter 7").device_id
        self.fetcher = WsgiFetcher(self.app, DeviceCredentials(self.device_id, key))

    def send(self, report: dict, report_id: str | None = None) -> tuple[int, str]:
        report_id = report_id or str(uuid.uuid4())
        response = self.fetcher.fetch("POST", "/v1/incidents", body=json.dumps(
            {"report_id": report_id, "report": report}).encode(), headers={"Content-Type": "application/json"},
            max_bytes=1 << 16)
        return response.status, report_id


@pytest.fixture
def counter(tmp_path) -> Counter:
    return Counter(tmp_path)


def test_flagged_passenger_reaches_the_review_queue_under_the_lists_category(counter):
    status, report_id = counter.send(flag())
    assert status == 200
    report = counter.ui.reports.get(queue_id(report_id))
    assert (report.list_id, report.category, report.status, report.source) == (AIR, "assault_of_crew", PENDING,
                                                                                 "device")
    assert report.reporter == f"{counter.device_id}:agent-7"
    assert report.identity.documents[0].number == "L898902C3" and report.trip == "DA 1234"
    assert "[counter: physical_assault]" in report.narrative
    assert [r.report_id for r in counter.ui.reports.queue()] == [queue_id(report_id)]


def test_resent_report_is_queued_once(counter):
    status, report_id = counter.send(flag())
    assert counter.send(flag(), report_id)[0] == 200
    assert len(counter.ui.reports.queue()) == 1


def test_triage_report_must_be_categorised_before_anyone_accepts_it(counter):
    _, report_id = counter.send(flag("fraudulent_document"))
    rid = queue_id(report_id)
    assert counter.ui.reports.get(rid).category == TRIAGE
    with pytest.raises(ReportError, match="choose one first"):
        counter.ui.reports.accept(rid, reviewer="reviewer-1")
    counter.ui.reports.categorise(rid, "threatening_behaviour", reviewer="reviewer-1", reason="threats in queue")
    accepted = counter.ui.reports.accept(rid, reviewer="reviewer-1")
    assert accepted.status == "accepted" and accepted.entry_id is not None
    actions = [r.action for r in counter.ui.audit.records(subject=f"report:{rid}")]
    assert actions == ["report.file", "report.categorise", "report.accept"]


def test_report_without_birth_date_or_document_is_queued_for_a_reviewer_to_reject(counter):
    _, report_id = counter.send(flag(date_of_birth=None, document_number=None))
    report = counter.ui.reports.get(queue_id(report_id))
    assert report.identity.date_of_birth is None and report.identity.documents == ()
    assert counter.ui.reports.reject(report.report_id, reviewer="reviewer-1",
                                     reason="cannot be matched at a counter").status == "rejected"


def test_stored_incident_missed_by_a_crash_is_filed_by_the_sweep(counter):
    report_id = str(uuid.uuid4())
    counter.ui.devices.record_incident(counter.device_id, report_id, flag("intoxication"))  # stored, never filed
    assert counter.ui.reports.queue() == []
    assert counter.ui.intake.sweep() == 1
    assert counter.ui.reports.get(queue_id(report_id)).category == "intoxication_disruption"
    assert counter.ui.intake.sweep() == 0


def test_unreadable_report_is_still_acknowledged_and_kept_for_the_record(counter):
    status, report_id = counter.send({"category": "intoxication", "narrative": "no passenger given"})
    assert status == 200
    assert counter.ui.devices.incident(report_id)["report"]["category"] == "intoxication"
    assert counter.ui.reports.queue() == []


def test_reviewer_chooses_a_triage_reports_category_on_its_page_and_can_then_accept(tmp_path):
    app = make_app(tmp_path)
    ui = app.extensions["gatecheck_ui"]
    rid = ui.reports.file(reporter="DEV1:agent-7", list_id="da-ban", category=TRIAGE, source="device",
                          identity=Identity("ERIKSSON", "ANNA"),
                          trip="DA 1", trip_date=date(2026, 11, 20), narrative="[counter: fraudulent_document] ...")
    client = signed_in(app, "sam")
    page = text(client.get(f"/review/{rid}"))
    assert "not chosen yet" in page and "Accept and list" not in page
    response = client.post(f"/review/{rid}/categorise", data={
        "category": "threatening_behaviour", "reason": "threats at the gate", "csrf_token": csrf(client, f"/review/{rid}")})
    assert response.status_code == 302
    assert ui.reports.get(rid).category == "threatening_behaviour"
    assert "Accept and list" in text(client.get(f"/review/{rid}"))
    refused = client.post(f"/review/{rid}/categorise", data={
        "category": "assault_of_crew", "csrf_token": csrf(client, f"/review/{rid}")}, follow_redirects=True)
    assert "has its category already" in text(refused)
