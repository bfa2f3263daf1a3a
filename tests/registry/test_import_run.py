"""Authority list imports over a real registry: preview, two-person apply, idempotence, devices in step.

The registry and the device model are tests/registry/test_publish.py's: every
update a device receives is verified against the pinned root and its state
digest must match the signed one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tracemalloc
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from registry import db
from registry.audit import AuditLog
from registry.import_run import PREVIEWED, UNCHANGED, ImportRefused, Imports, import_rows
from registry.importer import ImportMapping, ImportProblem
from registry.publish import DocumentRef, EntryFields, PublishConfig
from tests.registry.test_publish import LIST, Device, World

MAPPING = ImportMapping.from_dict({
    "columns": {"reference": "case_no", "surnames": "surname", "given_names": "given", "date_of_birth": "dob",
                "document_number": "id_no", "valid_until": "until"},
    "defaults": {"category": "judgment-default", "document_class": "I", "document_issuer": "CHN"}})


def court_row(i: int, **changes) -> dict:
    letters = "".join(chr(65 + (i // 26 ** k) % 26) for k in range(3))  # a distinct surname per case
    row = {"case_no": f"(2024)京0105执{i}号", "surname": "Zhang" + letters, "given": "Wei",
           "dob": f"19{60 + i % 40}-0{1 + i % 9}-1{i % 10}", "id_no": f"1101051970{i:08d}", "until": "2030-12-31"}
    row.update(changes)
    return row


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


class ImportWorld(World):
    def __init__(self, directory: Path, config: PublishConfig | None = None) -> None:
        super().__init__(directory, config)
        self.directory = directory
        self.audit = AuditLog(self.engine)
        self.imports = Imports(self.engine, self.registry, self.audit, clock=self.clock, batch=50)
        self.files = 0

    def preview(self, rows_or_path, *, by: str = "ann", mapping: ImportMapping = MAPPING, fmt: str | None = None):
        if isinstance(rows_or_path, Path):
            path = rows_or_path
        else:
            self.files += 1
            path = write_csv(self.directory / f"court-{self.files}.csv", rows_or_path)
        record = self.imports.start(LIST, path, file_name=path.name, by=by, file_format=fmt)
        return self.imports.preview(record.import_id, mapping, by=by, path=path)

    def apply(self, record, *, by: str = "ben"):
        return self.imports.apply(record.import_id, confirmed_by=by)

    def active(self) -> dict[str, int]:
        """reference -> entry id of the list's active entries."""
        e = db.entries.c
        with self.engine.connect() as conn:
            return dict(conn.execute(select(e.reference, e.entry_id).where(
                (e.list_id == LIST) & (e.status == "active"))).all())


@pytest.fixture
def world(tmp_path) -> ImportWorld:
    return ImportWorld(tmp_path)


def test_preview_counts_additions_and_refused_rows_and_publishes_nothing(world):
    rows = [court_row(i) for i in range(120)] + [court_row(999, until=""), court_row(998, dob="", id_no="")]
    record = world.preview(rows)
    assert record.status == PREVIEWED and record.counts == {
        "rows": 122, "additions": 120, "removals": 0, "unchanged": 0, "refused": 2}
    assert [(r.row_no, r.reason) for r in world.imports.refusals(record.import_id)] == [
        (122, "no expiry: column 'until' is empty and the mapping sets no default term"),
        (123, "no date of birth and no document number: nothing to match a traveller by")]
    assert world.registry.current_version(LIST) == 0 and world.active() == {}


def test_a_confirmed_import_is_one_version_and_a_device_ends_in_step(world):
    device = Device(world)
    record = world.apply(world.preview([court_row(i) for i in range(120)]))
    assert (record.status, record.applied_version, record.confirmed_by) == ("applied", 1, "ben")
    updates = device.sync()
    assert len(updates) == 1 and device.state.version == 1  # one delta, one version, 120 entries
    assert len(world.active()) == 120
    snapshot = Device(world)
    snapshot.sync()
    assert snapshot.held == device.held and snapshot.digest == device.digest


def test_importing_the_same_file_again_is_a_no_op_with_no_new_version(world):
    rows = [court_row(i) for i in range(60)]
    world.apply(world.preview(rows))
    again = world.preview(rows, by="cat")
    assert again.status == UNCHANGED and again.counts["unchanged"] == 60 and again.additions == again.removals == 0
    with pytest.raises(ImportRefused, match="changes nothing: the file matches the list as it stands"):
        world.apply(again)
    assert world.registry.current_version(LIST) == 1


def test_the_same_list_as_a_json_array_or_json_lines_is_unchanged_after_the_csv(world):
    rows = [court_row(i) for i in range(30)]
    world.apply(world.preview(rows))
    as_array = world.directory / "court.json"
    as_array.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    as_lines = world.directory / "court.jsonl"
    as_lines.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    for path in (as_array, as_lines):
        record = world.preview(path)
        assert record.status == UNCHANGED and record.unchanged == 30, path.name


def test_a_changed_row_is_a_removal_and_a_new_entry_never_an_edit(world):
    rows = [court_row(i) for i in range(40)]
    world.apply(world.preview(rows))
    before = world.active()
    device = Device(world)
    device.sync()
    rows[5] = court_row(5, dob="1971-02-03")  # the court corrected a birth date
    del rows[7]  # a case closed: it is gone from the list
    rows.append(court_row(100))  # a new case
    record = world.preview(rows)
    assert record.counts == {"rows": 40, "additions": 2, "removals": 2, "unchanged": 38, "refused": 0}
    assert {e["entry_id"] for e in world.imports.removal_sample(record.import_id)} == {
        before[court_row(5)["case_no"]], before[court_row(7)["case_no"]]}
    world.apply(record)
    after = world.active()
    assert court_row(7)["case_no"] not in after and court_row(100)["case_no"] in after
    assert after[court_row(5)["case_no"]] != before[court_row(5)["case_no"]]  # a new entry, a new decision
    with world.engine.connect() as conn:
        old = conn.execute(select(db.entries).where(db.entries.c.entry_id == before[court_row(5)["case_no"]])).one()
    assert (old.status, old.removed_by, old.removed_in_version) == ("removed", "ben", 2)
    device.sync()
    assert device.state.version == 2
    fresh = Device(world)
    fresh.sync()
    assert fresh.held == device.held and fresh.digest == device.digest


def test_only_entries_from_earlier_imports_are_removed_never_reviewed_ones(world):
    reviewed = world.registry.add_entry(LIST, EntryFields(
        surnames="Eriksson", given_names="Anna", reference="RPT-1", category="assault",
        date_of_birth=date(1970, 5, 17), valid_until=date(2030, 1, 1)), by="reviewer")
    world.apply(world.preview([court_row(i) for i in range(10)]))
    record = world.preview([court_row(i) for i in range(3)])  # seven cases vanished from the court's list
    assert (record.additions, record.removals, record.unchanged) == (0, 7, 3)
    world.apply(record)
    active = world.active()
    assert active["RPT-1"] == reviewed and len(active) == 4


def test_a_refused_row_keeps_the_entry_its_case_already_has(world):
    world.apply(world.preview([court_row(i) for i in range(5)]))
    record = world.preview([court_row(i) for i in range(4)] + [court_row(4, until="soon")])
    assert (record.additions, record.removals, record.unchanged, record.refused) == (0, 0, 4, 1)


def test_a_case_a_reviewer_lifted_is_never_listed_again_by_an_import(world):
    world.apply(world.preview([court_row(i) for i in range(5)]))
    lifted = world.active()[court_row(2)["case_no"]]
    world.registry.remove_entry(LIST, lifted, by="reviewer-on-appeal")
    record = world.preview([court_row(i) for i in range(5)])
    [refusal] = world.imports.refusals(record.import_id)
    assert refusal.reference == court_row(2)["case_no"]
    assert f"was lifted from this list on 2025-06-15 by reviewer-on-appeal (entry {lifted})" in refusal.reason
    assert (record.additions, record.removals, record.unchanged, record.status) == (0, 0, 4, UNCHANGED)


def test_the_first_row_of_a_reference_decides_and_later_ones_are_refused(world):
    record = world.preview([court_row(1), court_row(2), court_row(1, dob="1980-01-01")])
    assert (record.additions, record.refused) == (2, 1)
    [duplicate] = world.imports.refusals(record.import_id)
    assert (duplicate.row_no, duplicate.reason) == (4, "the same reference is on row 2, which is used")


def test_the_preview_and_its_confirmation_need_two_different_people(world):
    record = world.preview([court_row(i) for i in range(3)], by="ann")
    with pytest.raises(ImportRefused, match="two people: ann made the preview, so a different list admin"):
        world.apply(record, by="ann")
    assert world.registry.current_version(LIST) == 0 and world.imports.get(record.import_id).status == PREVIEWED
    assert world.apply(record, by="ben").status == "applied"
    with pytest.raises(ImportRefused, match="is applied; only a previewed import can be applied"):
        world.apply(record, by="cat")


def test_a_preview_made_before_the_list_moved_cannot_be_applied(world):
    record = world.preview([court_row(i) for i in range(3)])
    world.registry.add_entry(LIST, EntryFields(surnames="Other", reference="R-9", category="c",
                                               documents=(DocumentRef("P", "DEU", "C01X00T47"),)), by="reviewer")
    with pytest.raises(ImportRefused, match="moved from version 0 to 1 since the preview; preview the file again"):
        world.apply(record)
    assert world.registry.current_version(LIST) == 1


def test_applying_one_import_makes_the_other_pending_previews_stale(world):
    first = world.preview([court_row(i) for i in range(3)])
    second = world.preview([court_row(i) for i in range(4)], by="cat")
    world.apply(first)
    assert world.imports.get(second.import_id).status == "stale"
    with pytest.raises(ImportRefused, match="is stale"):
        world.apply(second)


def test_preview_and_apply_are_audited_with_both_people_and_the_files_hash(world):
    path = write_csv(world.directory / "court.csv", [court_row(i) for i in range(3)])
    record = world.apply(world.preview(path))
    records = list(world.audit.records(subject=f"import:{record.import_id}"))
    assert [r.action for r in records] == ["import.preview", "import.apply"]
    applied = json.loads(records[1].after)
    assert applied["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (applied["previewed_by"], applied["confirmed_by"], applied["additions"], applied["version"]) == (
        "ann", "ben", 3, 1)
    assert records[0].actor == "ann" and records[1].actor == "ben"
    assert world.audit.verify()[1] == []


def test_a_broken_file_fails_the_preview_with_one_line_and_stages_nothing(world):
    path = world.directory / "court.json"
    path.write_text(json.dumps([court_row(i) for i in range(200)])[:-40])
    record = world.imports.start(LIST, path, file_name=path.name, by="ann")
    with pytest.raises(ImportProblem, match="the JSON breaks off or is malformed after item 199"):
        world.imports.preview(record.import_id, MAPPING, by="ann", path=path)
    failed = world.imports.get(record.import_id)
    assert failed.status == "failed" and failed.failure.startswith("the JSON breaks off")
    with world.engine.connect() as conn:
        assert conn.execute(select(import_rows).where(import_rows.c.import_id == record.import_id)).first() is None


def test_a_change_too_big_for_a_delta_reaches_devices_as_a_snapshot(tmp_path):
    world = ImportWorld(tmp_path, PublishConfig(max_delta_tokens=100))
    device = Device(world)
    device.sync()
    world.apply(world.preview([court_row(i) for i in range(60)]))  # ~6 tokens each: far over 100
    assert world.registry.delta_count(LIST) == 0  # version 1 was stored without a delta
    [(envelope, payload)] = device.sync()
    assert device.state.version == 1 and len(device.held) > 100
    world.apply(world.preview([court_row(i) for i in range(61)], by="cat"), by="dan")  # a small change: a delta
    assert world.registry.delta_count(LIST) == 1
    behind = Device(world)
    behind.sync()  # from version 0: the chain has a gap at 0 -> 1, so a snapshot
    device.sync()  # from version 1: the delta
    assert behind.held == device.held and behind.digest == device.digest and device.state.version == 2


def _peak_preview_bytes(world: ImportWorld, rows: int) -> int:
    """Peak Python memory of previewing a file of ``rows`` refused rows (cheap to make, all streamed)."""
    path = world.directory / f"big-{rows}.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("case_no,surname,given,dob,id_no,until\n")
        for i in range(rows):
            fh.write(f"C-{i:07d},Zhang,Wei,1970-01-01,11010519700101{i:04d},\n")  # no expiry: refused
    imports = Imports(world.engine, world.registry, world.audit, clock=world.clock, batch=100)
    record = imports.start(LIST, path, file_name=path.name, by="ann")
    tracemalloc.start()
    try:
        result = imports.preview(record.import_id, MAPPING, by="ann", path=path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.refused == rows
    return peak


def test_preview_memory_does_not_grow_with_the_file(world):
    small = _peak_preview_bytes(world, 300)
    large = _peak_preview_bytes(world, 2_400)
    assert large < 1.3 * small, (small, large)  # eight times the rows, about the same peak: streamed


def test_progress_is_reported_in_bytes_while_previewing_and_in_entries_while_applying(world):
    path = write_csv(world.directory / "court.csv", [court_row(i) for i in range(120)])
    seen_bytes: list[int] = []
    record = world.imports.start(LIST, path, file_name=path.name, by="ann")
    record = world.imports.preview(record.import_id, MAPPING, by="ann", path=path, progress=seen_bytes.append)
    assert seen_bytes == sorted(seen_bytes) and seen_bytes[-1] == path.stat().st_size and len(seen_bytes) >= 3
    seen_rows: list[int] = []
    world.imports.apply(record.import_id, confirmed_by="ben", progress=seen_rows.append)
    assert seen_rows == [50, 100, 120]


def test_staged_rows_are_dropped_once_applied_but_refused_rows_stay_for_the_history(world):
    record = world.apply(world.preview([court_row(i) for i in range(10)] + [court_row(50, until="")]))
    with world.engine.connect() as conn:
        kinds = conn.execute(select(import_rows.c.kind).where(import_rows.c.import_id == record.import_id)).scalars()
        assert list(kinds) == ["refused"]
