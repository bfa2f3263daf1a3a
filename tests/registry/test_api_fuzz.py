"""Schema-driven fuzzing of the people's API (schemathesis) against `registry serve` as real processes.

schemathesis reads the live server's /api/v1/openapi.json and sends every
operation generated requests: valid ones, and (negative mode) ones that
break the schema. Every answer must be no 5xx, a documented status and
content type, a body that conforms to the declared schema, and a rejection
for data that breaks the schema; an operation that needs a token must
refuse a request without one. The examples per operation are bounded so
the run stays well under a minute; the count and duration are printed at
the end of the module.
"""

from __future__ import annotations

import subprocess
import time
from datetime import date

import pytest
import requests
import schemathesis
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.serialization import serialize_binary

from appliance.records import Action
from registry.api.openapi import document
from registry.cli import registry as registry_cli
from registry.importer import ImportMapping
from registry.publish import DocumentRef
from registry.reports import Evidence, Identity
from registry.review_policy import AVIATION_CATEGORIES, ListPolicy
from registry.server import create_app
from tests.registry.test_server import CLI, REPO, _free_port

#: Generated requests per operation and generation mode (positive, negative): 37 operations.
MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection, ignored_auth]
PASSWORD = "a long enough passphrase"
COUNT = {"requests": 0, "started": None}


@pytest.fixture(scope="module")
def served(tmp_path_factory, request):
    """(base URL, token of a user holding every role) on a registry with reports, an entry, an appeal, a
    clearance, a device, an enrolment code and a previewed import."""
    data_dir = tmp_path_factory.mktemp("fuzz") / "registry"
    assert CliRunner().invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    app = create_app({"DATA_DIR": str(data_dir)})
    ui = app.extensions["gatecheck_ui"]
    ui.accounts.create_user("fuzzer", PASSWORD, roles=["reporter", "reviewer", "list_admin", "it_admin", "auditor"],
                            by="admin")
    token = ui.accounts.issue_token("fuzzer", label="fuzz", by="admin")
    app.extensions["gatecheck_registry"].registry.create_list(
        "da-ban", name="Demo Air ban", authority="Demo Air", legal_basis="Conditions of carriage",
        scopes=["air_travel"], default_action=Action.DENY, by="admin")
    ui.reports.set_policy(ListPolicy("da-ban", AVIATION_CATEGORIES), by="admin")
    for n in range(3):  # filed by someone else, so the fuzzer may decide them
        ui.reports.file(reporter="mia", list_id="da-ban", category="smoking_on_board", report_id=f"RPT-FUZZ-{n}",
                        identity=Identity("Eriksson", "Anna", date(1970, 5, 17), (DocumentRef("P", "DEU", f"C0{n}"),)),
                        trip="DA 1", trip_date=date(2026, 11, 1), narrative="Smoked in the lavatory.",
                        attachments=[Evidence("log.pdf", b"%PDF-1.4 test")])
    entry_id = ui.reports.accept("RPT-FUZZ-0", reviewer="sam").entry_id
    ui.appeals.file(entry_id, grounds="Not me.", filed_by="sam")
    # Something in every register, so that pages of them are checked against their schemas too.
    ui.clearances.issue(Identity("Eriksson", "Anna", date(1970, 5, 17), (DocumentRef("P", "SWE", "91234567"),)),
                        lists=["da-ban"], reason="A namesake: born in Malmo, another passport.", by="sam")
    ui.devices.enroll(ui.devices.issue_code(["da-ban"], ttl_seconds=3600, by="it"), bytes(range(32)), "Counter 1")
    ui.devices.issue_code(["da-ban"], ttl_seconds=3600, by="it")
    court = data_dir.parent / "court.csv"
    court.write_text("case_no,surname,dob\nC-1,Wang,1975-03-04\n")
    started = ui.imports.start("da-ban", court, file_name="court.csv", by="lia", keep_file=True)
    ui.imports.preview(started.import_id, ImportMapping.from_dict({
        "columns": {"reference": "case_no", "surnames": "surname", "date_of_birth": "dob"},
        "defaults": {"category": "judgment-default"}, "term_days": 30}), by="lia")
    ui.engine.dispose()
    port = _free_port()
    log = data_dir.parent / "serve.log"  # a file, not a pipe: a full pipe would stall the server
    with log.open("wb") as stderr:
        proc = subprocess.Popen([*CLI, "serve", "--data-dir", str(data_dir), "--port", str(port), "--workers", "2",
                                 "--threads", "8"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(f"{url}/api/v1/openapi.json", timeout=2).raise_for_status()
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"registry did not start: {log.read_text()}") from None
            time.sleep(0.05)
    try:
        assert requests.get(f"{url}/api/v1/openapi.json", timeout=5).json() == document()
        yield url, token
    finally:
        if COUNT["started"] is not None:  # the run's size, on record in the test output
            with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
                print(f"\nAPI fuzz: {COUNT['requests']} generated requests in "
                      f"{time.monotonic() - COUNT['started']:.1f} s")
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errors = log.read_text()
        assert "Traceback" not in errors, errors[-3000:]  # nothing reached the catch-all 500 handler


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx, value) -> bytes:
    """An import file sent as JSON lines (POST /imports): the generated bytes as they are."""
    return serialize_binary(value)


#: The document the server serves is generated from the code; the fixture checks the live one is this one.
#: (schemathesis's lazy fixture loader does not run under pytest 9, so the schema is built at import.)
#: The token is sent by the test, not generated: ``ignored_auth`` checks what happens without it.
#: A refusal is any 4xx the API documents, plus 414: gunicorn refuses an over-long request line itself.
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429"]
schema = schemathesis.openapi.from_dict(document(), config=SchemathesisConfig.from_dict({
    "phases": {"stateful": {"enabled": False}}, "generation": {"with-security-parameters": False},
    "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}))


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_generated_request_gets_a_5xx_or_an_answer_outside_the_schema(case, served):
    url, token = served
    if COUNT["started"] is None:
        COUNT["started"] = time.monotonic()
    COUNT["requests"] += 1
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=10)
