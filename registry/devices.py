"""Enrolled devices, one-time enrolment codes bound to a device profile, incident reports and health.

The registry keeps a device's Ed25519 *public* key and nothing that could
sign for it; an enrolment code is stored only as its SHA-256, is single-use
and expires. So the database alone can neither impersonate a device nor
enrol one (issue 4, "Device endpoints"). Each code carries the profile IT
chose for the device (organisation, kind, scopes, lists, staleness policy:
sync/enrolment.py); enrolling copies it onto the device. Issuing and
withdrawing a code, enrolling and revoking a device each write an audit
record in the same transaction (registry/audit.py).

These tables have their own SQLAlchemy ``MetaData`` so that registry/db.py
stays the publishing core's; list ids are checked against it in code. The
SQL is portable in the same way (no upserts; compare-and-set updates).
Columns added after issue 4 are nullable and added to an older database on
start (:func:`add_missing_columns`).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from registry import db
from registry.audit import AuditLog
from registry.audit import metadata as audit_metadata
from registry.db import RegistryError
from registry.fleet import lists_as_of
from registry.publish import UnknownList
from sync.device_auth import device_id_for
from sync.enrolment import EnrolmentError, EnrolmentProfile

STATUS_ACTIVE, STATUS_DISABLED = "active", "disabled"
CODE_UNUSED, CODE_USED, CODE_EXPIRED, CODE_WITHDRAWN = "unused", "used", "expired", "withdrawn"
CODE_STATES = (CODE_UNUSED, CODE_USED, CODE_EXPIRED, CODE_WITHDRAWN)
#: Enrolment codes: 20 base32 characters = 100 bits, typed in groups of four.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_CHARS = 20
MAX_NAME_CHARS = 200
MAX_REASON_CHARS = 2000
#: A code is named in lists and the audit log by the first 16 hex digits of its hash (not secret).
CODE_ID_PATTERN = re.compile(r"[0-9a-f]{16}")

metadata = MetaData()

devices = Table(
    "devices", metadata,
    Column("device_id", String(16), primary_key=True),
    Column("name", Text, nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("enrolled_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger),
    Column("health", Text),  # the last health report, JSON
    Column("health_at", BigInteger),
    # issue 5, "Fleet": nullable, so older databases gain them without a backfill
    Column("org", String(32)),
    Column("profile", Text),  # EnrolmentProfile.to_dict(), JSON
    Column("lists_as_of", BigInteger),  # the stalest list's verified heartbeat in the last health report
    Column("revoked_at", BigInteger),
    Column("revoked_by", Text),
)

device_lists = Table(
    "device_lists", metadata,
    Column("device_id", String(16), primary_key=True),
    Column("list_id", String(64), primary_key=True),
)

#: Only the SHA-256 of a code is kept; the code itself is shown once.
enrolment_codes = Table(
    "enrolment_codes", metadata,
    Column("code_sha256", String(64), primary_key=True),
    Column("lists", Text, nullable=False),  # JSON array of list ids
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger),
    Column("used_by", String(16)),
    Column("org", String(32)),
    Column("profile", Text),  # EnrolmentProfile.to_dict(), JSON; None on codes from before profiles
    Column("withdrawn_at", BigInteger),
    Column("withdrawn_by", Text),
)

incidents = Table(
    "incidents", metadata,
    Column("report_id", String(36), primary_key=True),
    Column("device_id", String(16), nullable=False),
    Column("report_sha256", String(64), nullable=False),
    Column("report", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
)
Index("ix_incidents_device", incidents.c.device_id)


class DeviceError(RegistryError):
    code = "device_error"


class InvalidEnrolment(DeviceError):
    """An enrolment code that is unknown, used, withdrawn or expired, or unusable enrolment fields."""

    code = "invalid_enrolment"


class AlreadyEnrolled(DeviceError):
    code = "already_enrolled"


class UnknownDevice(DeviceError):
    code = "unknown_device"


class UnknownCode(DeviceError):
    code = "unknown_code"


class InvalidReport(DeviceError):
    code = "invalid_report"


class ReportConflict(DeviceError):
    """The same report id sent again with different content (or by another device)."""

    code = "report_conflict"


@dataclass(frozen=True)
class Device:
    device_id: str
    name: str
    public_key: bytes
    status: str
    enrolled_at: int
    lists: tuple[str, ...]
    last_seen_at: int | None = None
    health_at: int | None = None
    org: str = ""
    profile: EnrolmentProfile | None = None  # None for devices enrolled before profiles
    lists_as_of: int | None = None
    revoked_at: int | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status == STATUS_ACTIVE

    def to_dict(self) -> dict:
        return {"device_id": self.device_id, "name": self.name, "status": self.status,
                "enrolled_at": self.enrolled_at, "lists": list(self.lists), "org": self.org,
                "profile": self.profile.to_dict() if self.profile else None,
                "last_seen_at": self.last_seen_at, "health_at": self.health_at, "lists_as_of": self.lists_as_of,
                "revoked_at": self.revoked_at, "revoked_by": self.revoked_by}


@dataclass(frozen=True)
class CodeInfo:
    """An enrolment code as IT may see it again: never the code, only what it is for and what became of it."""

    code_id: str
    profile: EnrolmentProfile
    created_at: int
    created_by: str
    expires_at: int
    used_at: int | None
    used_by: str | None
    withdrawn_at: int | None
    withdrawn_by: str | None

    def state(self, now: float) -> str:
        if self.used_at is not None:
            return CODE_USED
        if self.withdrawn_at is not None:
            return CODE_WITHDRAWN
        return CODE_EXPIRED if self.expires_at < now else CODE_UNUSED

    def to_dict(self, now: float) -> dict:
        return {"code_id": self.code_id, "state": self.state(now), "profile": self.profile.to_dict(),
                "created_at": self.created_at, "created_by": self.created_by, "expires_at": self.expires_at,
                "used_at": self.used_at, "used_by": self.used_by, "withdrawn_at": self.withdrawn_at,
                "withdrawn_by": self.withdrawn_by}


def normalise_code(code: str) -> str:
    """Codes are typed by people: case, spaces and dashes do not matter."""
    return "".join(ch for ch in code.upper() if ch not in " -")


def code_hash(code: str) -> str:
    # 100 random bits need no slow hash: nobody can enumerate them.
    return hashlib.sha256(b"GCENROL1" + normalise_code(code).encode("utf-8")).hexdigest()


def code_id_for(code: str) -> str:
    return code_hash(code)[:16]


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_report_id(report_id: object) -> str:
    """A UUID in canonical lowercase form; other ids are refused."""
    if not isinstance(report_id, str) or len(report_id) != 36:
        raise InvalidReport("report_id must be a UUID in 8-4-4-4-12 form")
    try:
        return str(uuid.UUID(report_id))
    except ValueError:
        raise InvalidReport("report_id must be a UUID in 8-4-4-4-12 form") from None


def device_of(row, lists: tuple[str, ...]) -> Device:
    """A ``devices`` row (and its lists) as a Device."""
    return Device(row.device_id, row.name, bytes(row.public_key), row.status, row.enrolled_at, lists,
                  row.last_seen_at, row.health_at, row.org or "", _profile(row.profile), row.lists_as_of,
                  row.revoked_at, row.revoked_by)


def lists_of(conn, device_ids: Sequence[str] | None) -> dict[str, list[str]]:
    """Each device's lists, sorted; for the given devices, or all of them when None."""
    query = select(device_lists).order_by(device_lists.c.list_id)
    if device_ids is not None:
        query = query.where(device_lists.c.device_id.in_(list(device_ids)))
    subscribed: dict[str, list[str]] = {}
    for row in conn.execute(query):
        subscribed.setdefault(row.device_id, []).append(row.list_id)
    return subscribed


def add_missing_columns(engine: Engine, tables: Iterable[Table]) -> None:
    """Add columns a newer release declares to tables an older one created (nullable columns only).

    Plain ``ALTER TABLE ... ADD COLUMN``, portable to PostgreSQL. Two
    processes starting at once may both try; the loser finds the column there.
    """
    for table in tables:
        have = {c["name"] for c in inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise RuntimeError(f"{table.name}.{column.name} must be nullable to be added to an older database")
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} "
                                         f"{column.type.compile(engine.dialect)}")
            except (OperationalError, ProgrammingError):
                if column.name not in {c["name"] for c in inspect(engine).get_columns(table.name)}:
                    raise


def _profile(text: str | None, lists_json: str | None = None) -> EnrolmentProfile | None:
    if text:
        return EnrolmentProfile.from_dict(json.loads(text))
    if lists_json:  # a code from before profiles: the defaults of an airline counter
        return EnrolmentProfile(tuple(json.loads(lists_json)), scopes=frozenset({"air_travel"}))
    return None


def code_info(row) -> CodeInfo:
    return CodeInfo(row.code_sha256[:16], _profile(row.profile, row.lists), row.created_at, row.created_by,
                    row.expires_at, row.used_at, row.used_by, row.withdrawn_at, row.withdrawn_by)


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise DeviceError(f"a reason is text of at most {MAX_REASON_CHARS} characters")
    return reason.strip()


class DeviceRegistry:
    """Devices and what they send, over the registry's engine."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock
        metadata.create_all(engine)
        audit_metadata.create_all(engine)
        add_missing_columns(engine, (devices, enrolment_codes))

    def _now(self, now: float | None) -> int:
        return int(self._clock() if now is None else now)

    # -- enrolment codes -----------------------------------------------------

    def issue_code(self, profile: EnrolmentProfile | Sequence[str], *, ttl_seconds: int, by: str,
                   reason: str = "", now: float | None = None) -> str:
        """A new one-time enrolment code for a device of ``profile``; only its hash is stored.

        A bare sequence of list ids is the profile of an airline counter
        receiving those lists. Every list must exist, and share a sanction
        scope with the device: a list the device would never check is a
        mistake to catch now, not at the counter.
        """
        if not isinstance(profile, EnrolmentProfile):
            try:
                profile = EnrolmentProfile.build(profile)
            except EnrolmentError as exc:
                raise InvalidEnrolment(exc.message.removeprefix("profile: ")) from None
        if type(ttl_seconds) is not int or ttl_seconds <= 0:
            raise InvalidEnrolment("an enrolment code needs a positive lifetime")
        at = self._now(now)
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_CHARS))
        code = "-".join(raw[i:i + 4] for i in range(0, _CODE_CHARS, 4))
        digest = code_hash(code)
        with self.engine.begin() as conn:
            self._check_lists(conn, profile)
            conn.execute(insert(enrolment_codes).values(
                code_sha256=digest, lists=json.dumps(list(profile.lists)), created_at=at, created_by=by,
                expires_at=at + ttl_seconds, org=profile.organisation or None,
                profile=canonical_json(profile.to_dict())))
            AuditLog.append(conn, actor=by, action="device.code.issue", subject=f"enrolment-code:{digest[:16]}",
                            reason=_reason(reason), after={**profile.to_dict(), "expires_at": at + ttl_seconds},
                            at=at)
        return code

    @staticmethod
    def _check_lists(conn, profile: EnrolmentProfile) -> None:
        rows = {r.list_id: r for r in conn.execute(select(db.lists.c.list_id, db.lists.c.scopes).where(
            db.lists.c.list_id.in_(profile.lists)))}
        for list_id in profile.lists:
            if list_id not in rows:
                raise UnknownList(f"no list {list_id!r} in the registry")
            scopes = set(json.loads(rows[list_id].scopes))
            if scopes.isdisjoint(profile.scopes):
                raise InvalidEnrolment(
                    f"list {list_id!r} has scopes {', '.join(sorted(scopes)) or 'none'}; a device checking "
                    f"{', '.join(sorted(profile.scopes))} would never use it")

    def code(self, code_id: str) -> CodeInfo | None:
        if not isinstance(code_id, str) or not CODE_ID_PATTERN.fullmatch(code_id):
            return None
        with self.engine.connect() as conn:
            rows = conn.execute(select(enrolment_codes).where(
                enrolment_codes.c.code_sha256.startswith(code_id, autoescape=True)).limit(2)).all()
        return code_info(rows[0]) if len(rows) == 1 else None

    def codes(self, *, state: str | None = None, now: float | None = None) -> list[CodeInfo]:
        """Every code, newest first (never the code itself), or those in ``state`` now."""
        at = self._now(now)
        with self.engine.connect() as conn:
            rows = conn.execute(select(enrolment_codes).order_by(
                enrolment_codes.c.created_at.desc(), enrolment_codes.c.code_sha256))
            found = [code_info(row) for row in rows]
        return [info for info in found if state is None or info.state(at) == state]

    def withdraw_code(self, code_id: str, *, by: str, reason: str = "", now: float | None = None) -> CodeInfo:
        """Make an unused code worthless before it expires (handed to the wrong person, say)."""
        at = self._now(now)
        found = self.code(code_id)
        if found is None:
            raise UnknownCode(f"no enrolment code {code_id!r}")
        c = enrolment_codes.c
        with self.engine.begin() as conn:
            done = conn.execute(update(enrolment_codes).where(and_(
                c.code_sha256.startswith(code_id, autoescape=True), c.used_at.is_(None), c.withdrawn_at.is_(None)))
                .values(withdrawn_at=at, withdrawn_by=by)).rowcount
            if done != 1:
                state = found.state(at) if found.state(at) != CODE_UNUSED else "changed meanwhile"
                raise InvalidEnrolment(f"enrolment code {code_id} is {state}; only an unused code can be withdrawn")
            AuditLog.append(conn, actor=by, action="device.code.withdraw", subject=f"enrolment-code:{code_id}",
                            reason=_reason(reason), before={"state": found.state(at)},
                            after={"state": CODE_WITHDRAWN}, at=at)
        return self.code(code_id)

    # -- enrolment -----------------------------------------------------------

    def enroll(self, code: str, public_key: bytes, name: str, *, now: float | None = None) -> Device:
        """Spend ``code`` to enrol the device holding ``public_key``; one transaction."""
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise InvalidEnrolment(f"name must be 1-{MAX_NAME_CHARS} characters")
        if not isinstance(code, str) or not code:
            raise InvalidEnrolment("enrolment code is missing")
        at = self._now(now)
        device_id = device_id_for(public_key)
        digest = code_hash(code)
        c = enrolment_codes.c
        with self.engine.begin() as conn:
            row = conn.execute(select(enrolment_codes).where(c.code_sha256 == digest)).first()
            # One message for unknown and used codes: the answer must not help guessing.
            if row is None or row.used_at is not None:
                raise InvalidEnrolment("enrolment code is unknown or already used")
            if row.withdrawn_at is not None:
                raise InvalidEnrolment("enrolment code was withdrawn; ask IT for a new one")
            if row.expires_at < at:
                raise InvalidEnrolment("enrolment code has expired; ask for a new one")
            if conn.execute(select(devices.c.device_id).where(devices.c.device_id == device_id)).first():
                raise AlreadyEnrolled(f"a device with this public key is already enrolled as {device_id}")
            spent = conn.execute(update(enrolment_codes).where(and_(
                c.code_sha256 == digest, c.used_at.is_(None), c.withdrawn_at.is_(None)))
                .values(used_at=at, used_by=device_id)).rowcount
            if spent != 1:
                raise InvalidEnrolment("enrolment code is unknown or already used")
            profile = _profile(row.profile, row.lists)
            try:
                conn.execute(insert(devices).values(
                    device_id=device_id, name=name.strip(), public_key=public_key, status=STATUS_ACTIVE,
                    enrolled_at=at, org=profile.organisation or None, profile=canonical_json(profile.to_dict())))
            except IntegrityError:
                raise AlreadyEnrolled(f"a device with this public key is already enrolled as {device_id}") from None
            conn.execute(insert(device_lists), [{"device_id": device_id, "list_id": lst} for lst in profile.lists])
            AuditLog.append(conn, actor=f"device:{device_id}", action="device.enroll", subject=f"device:{device_id}",
                            reason=f"enrolment code {digest[:16]} issued by {row.created_by}",
                            after={"name": name.strip(), "status": STATUS_ACTIVE, **profile.to_dict()}, at=at)
        return Device(device_id, name.strip(), public_key, STATUS_ACTIVE, at, profile.lists,
                      org=profile.organisation, profile=profile)

    # -- lookup --------------------------------------------------------------

    def device(self, device_id: str) -> Device | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
            if row is None:
                return None
            lists = conn.execute(select(device_lists.c.list_id).where(
                device_lists.c.device_id == device_id).order_by(device_lists.c.list_id)).scalars()
            return device_of(row, tuple(lists))

    def all_devices(self) -> list[Device]:
        with self.engine.connect() as conn:
            subscribed = lists_of(conn, None)
            rows = conn.execute(select(devices).order_by(devices.c.enrolled_at, devices.c.device_id))
            return [device_of(r, tuple(subscribed.get(r.device_id, ()))) for r in rows]

    def set_status(self, device_id: str, status: str, *, by: str = "registry", reason: str = "",
                   now: float | None = None) -> None:
        """Disable (revoke) or re-activate a device, with its audit record in the same transaction."""
        if status not in (STATUS_ACTIVE, STATUS_DISABLED):
            raise DeviceError(f"status must be {STATUS_ACTIVE} or {STATUS_DISABLED}")
        at = self._now(now)
        revoked = {"revoked_at": at, "revoked_by": by} if status == STATUS_DISABLED else {}
        with self.engine.begin() as conn:
            before = conn.execute(select(devices.c.status).where(devices.c.device_id == device_id)).scalar()
            if before is None:
                raise UnknownDevice(f"no device {device_id!r}")
            if before == status:
                return
            conn.execute(update(devices).where(devices.c.device_id == device_id).values(status=status, **revoked))
            AuditLog.append(conn, actor=by, action="device.revoke" if status == STATUS_DISABLED else "device.enable",
                            subject=f"device:{device_id}", reason=_reason(reason), before={"status": before},
                            after={"status": status}, at=at)

    def revoke(self, device_id: str, *, by: str, reason: str = "", now: float | None = None) -> None:
        """Refuse every further request from the device (lost or stolen); servers see it within a second."""
        self.set_status(device_id, STATUS_DISABLED, by=by, reason=reason, now=now)

    def disabled_ids(self) -> frozenset[str]:
        """Every device that must be refused; read often by the server's device cache (registry/poll_cache.py)."""
        with self.engine.connect() as conn:
            return frozenset(conn.execute(select(devices.c.device_id).where(
                devices.c.status != STATUS_ACTIVE)).scalars())

    def mark_seen(self, device_id: str, *, now: float | None = None) -> None:
        self.mark_seen_many([device_id], now=now)

    def mark_seen_many(self, device_ids: Sequence[str], *, now: float | None = None) -> None:
        """Record contact by many devices in one transaction (one fsync, not one per device)."""
        ids = sorted(set(device_ids))
        at = self._now(now)
        with self.engine.begin() as conn:
            for i in range(0, len(ids), 500):  # well under every backend's bound-parameter limit
                conn.execute(update(devices).where(devices.c.device_id.in_(ids[i:i + 500]))
                             .values(last_seen_at=at))

    # -- what devices send ---------------------------------------------------

    def record_incident(self, device_id: str, report_id: object, report: object, *,
                        now: float | None = None) -> str:
        """Store a report once; the same id and content again is the same success.

        Returns the canonical report id. Raises ReportConflict when the id
        is already taken by different content or another device.
        """
        rid = canonical_report_id(report_id)
        if not isinstance(report, dict):
            raise InvalidReport("report must be a JSON object")
        text = canonical_json(report)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(incidents).values(report_id=rid, device_id=device_id, report_sha256=digest,
                                                      report=text, received_at=self._now(now)))
            return rid
        except IntegrityError:
            pass
        with self.engine.connect() as conn:
            row = conn.execute(select(incidents.c.device_id, incidents.c.report_sha256)
                               .where(incidents.c.report_id == rid)).first()
        if row is None or row.device_id != device_id or row.report_sha256 != digest:
            raise ReportConflict(f"report {rid} was already received with different content")
        return rid

    def incident(self, report_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(incidents).where(incidents.c.report_id == report_id)).first()
        return None if row is None else {"report_id": row.report_id, "device_id": row.device_id,
                                         "report": json.loads(row.report), "received_at": row.received_at}

    def incident_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(incidents)).scalar_one()

    def record_health(self, device_id: str, health: object, *, now: float | None = None) -> None:
        """Keep the last report; its stalest verified heartbeat goes in a column, so IT can sort by it."""
        if not isinstance(health, dict):
            raise InvalidReport("health report must be a JSON object")
        with self.engine.begin() as conn:
            lists = conn.execute(select(device_lists.c.list_id).where(device_lists.c.device_id == device_id)).scalars()
            conn.execute(update(devices).where(devices.c.device_id == device_id).values(
                health=canonical_json(health), health_at=self._now(now), lists_as_of=lists_as_of(health, list(lists))))

    def health(self, device_id: str) -> dict | None:
        with self.engine.connect() as conn:
            text = conn.execute(select(devices.c.health).where(devices.c.device_id == device_id)).scalar()
        return None if text is None else json.loads(text)
