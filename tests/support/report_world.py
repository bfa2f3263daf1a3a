"""A registry with one list that takes reports, for the report, review and appeal tests."""

from __future__ import annotations

from datetime import date, datetime, timezone

from click.testing import CliRunner

from registry.cli import registry as registry_cli
from registry.db import make_engine
from registry.publish import DocumentRef, Registry
from registry.reports import Evidence, Identity, ReportQueue
from registry.review_policy import AVIATION_CATEGORIES, ListPolicy
from registry.server import RegistryPaths
from registry.signing import Signer

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc).timestamp()
TRAVELLER = Identity("Eriksson", "Anna", date(1970, 5, 17), (DocumentRef("P", "DEU", "C01X00T47"),))
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def new_queue(tmp_path, *, reviewers: int = 1) -> ReportQueue:
    data_dir = tmp_path / "registry"
    runner = CliRunner()
    assert runner.invoke(registry_cli, ["init", "--data-dir", str(data_dir)]).exit_code == 0
    assert runner.invoke(registry_cli, ["list", "create", "--data-dir", str(data_dir), "da-ban", "--name",
                                        "Demo Air ban", "--authority", "Demo Air", "--legal-basis", "Conditions of carriage",
                                        "--scope", "air_travel", "--default-action", "DENY"]).exit_code == 0
    paths = RegistryPaths(data_dir)
    engine = make_engine(paths.database_url)
    queue = ReportQueue(engine, Registry(engine, Signer.from_files(paths.signing_key, paths.signing_cert)),
                        clock=lambda: NOW)
    queue.set_policy(ListPolicy("da-ban", AVIATION_CATEGORIES, reviewers_required=reviewers), by="list-admin")
    return queue


def file(queue: ReportQueue, **overrides) -> str:
    fields = dict(reporter="mia", list_id="da-ban", category="assault_of_crew", identity=TRAVELLER,
                  trip="DA 123 FRA-LIS", trip_date=date(2026, 11, 26), narrative="Struck a cabin crew member.",
                  org="DA", attachments=[Evidence("cabin-log.png", PNG)])
    fields.update(overrides)
    return queue.file(**fields)
