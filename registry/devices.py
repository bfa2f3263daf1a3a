"""Enrolled devices, one-time enrolment codes, incident reports and health.

The registry keeps a device's Ed25519 *public* key and nothing that could
sign for it; an enrolment code is stored only as its SHA-256, is single-use
and expires. So the database alone can neither impersonate a device nor
enrol one (issue 4, "Device endpoints").

These tables have their own SQLAlchemy ``MetaData`` so that registry/db.py
stays the publishing core's; list ids are checked against it in code. The
SQL is portable in the same way (no upserts; compare-and-set updates).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Sequence

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
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from registry.db import RegistryError
from sync.device_auth import device_id_for

STATUS_ACTIVE, STATUS_DISABLED = "active", "disabled"
#: Enrolment codes: 20 base32 characters = 100 bits, typed in groups of four.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_CHARS = 20
MAX_NAME_CHARS = 200

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
    """An enrolment code that is unknown, used or expired, or unusable enrolment fields."""

    code = "invalid_enrolment"


class AlreadyEnrolled(DeviceError):
    code = "already_enrolled"


class UnknownDevice(DeviceError):
    code = "unknown_device"


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

    @property
    def active(self) -> bool:
        return self.status == STATUS_ACTIVE

    def to_dict(self) -> dict:
        return {"device_id": self.device_id, "name": self.name, "status": self.status,
                "enrolled_at": self.enrolled_at, "lists": list(self.lists),
                "last_seen_at": self.last_seen_at, "health_at": self.health_at}


def normalise_code(code: str) -> str:
    """Codes are typed by people: case, spaces and dashes do not matter."""
    return "".join(ch for ch in code.upper() if ch not in " -")


def code_hash(code: str) -> str:
    # 100 random bits need no slow hash: nobody can enumerate them.
    return hashlib.sha256(b"GCENROL1" + normalise_code(code).encode("utf-8")).hexdigest()


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


class DeviceRegistry:
    """Devices and what they send, over the registry's engine."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock
        metadata.create_all(engine)

    def _now(self, now: float | None) -> int:
        return int(self._clock() if now is None else now)

    # -- enrolment -----------------------------------------------------------

    def issue_code(self, lists: Sequence[str], *, ttl_seconds: int, by: str, now: float | None = None) -> str:
        """A new one-time enrolment code for ``lists``; only its hash is stored.

        The caller checks that the lists exist (registry.publish.Registry).
        """
        lists = sorted(set(lists))
        if not lists:
            raise InvalidEnrolment("an enrolment code needs at least one list")
        if type(ttl_seconds) is not int or ttl_seconds <= 0:
            raise InvalidEnrolment("an enrolment code needs a positive lifetime")
        at = self._now(now)
        raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_CHARS))
        code = "-".join(raw[i:i + 4] for i in range(0, _CODE_CHARS, 4))
        with self.engine.begin() as conn:
            conn.execute(insert(enrolment_codes).values(
                code_sha256=code_hash(code), lists=json.dumps(lists), created_at=at, created_by=by,
                expires_at=at + ttl_seconds))
        return code

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
            if row.expires_at < at:
                raise InvalidEnrolment("enrolment code has expired; ask for a new one")
            if conn.execute(select(devices.c.device_id).where(devices.c.device_id == device_id)).first():
                raise AlreadyEnrolled(f"a device with this public key is already enrolled as {device_id}")
            spent = conn.execute(update(enrolment_codes).where(and_(
                c.code_sha256 == digest, c.used_at.is_(None))).values(used_at=at, used_by=device_id)).rowcount
            if spent != 1:
                raise InvalidEnrolment("enrolment code is unknown or already used")
            lists = json.loads(row.lists)
            try:
                conn.execute(insert(devices).values(
                    device_id=device_id, name=name.strip(), public_key=public_key, status=STATUS_ACTIVE,
                    enrolled_at=at))
            except IntegrityError:
                raise AlreadyEnrolled(f"a device with this public key is already enrolled as {device_id}") from None
            conn.execute(insert(device_lists), [{"device_id": device_id, "list_id": lst} for lst in lists])
        return Device(device_id, name.strip(), public_key, STATUS_ACTIVE, at, tuple(lists))

    # -- lookup --------------------------------------------------------------

    def device(self, device_id: str) -> Device | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
            if row is None:
                return None
            lists = conn.execute(select(device_lists.c.list_id).where(
                device_lists.c.device_id == device_id).order_by(device_lists.c.list_id)).scalars()
            return self._device(row, tuple(lists))

    def all_devices(self) -> list[Device]:
        with self.engine.connect() as conn:
            subscribed: dict[str, list[str]] = {}
            for row in conn.execute(select(device_lists).order_by(device_lists.c.list_id)):
                subscribed.setdefault(row.device_id, []).append(row.list_id)
            rows = conn.execute(select(devices).order_by(devices.c.enrolled_at, devices.c.device_id))
            return [self._device(r, tuple(subscribed.get(r.device_id, ()))) for r in rows]

    @staticmethod
    def _device(row, lists: tuple[str, ...]) -> Device:
        return Device(row.device_id, row.name, bytes(row.public_key), row.status, row.enrolled_at, lists,
                      row.last_seen_at, row.health_at)

    def set_status(self, device_id: str, status: str) -> None:
        if status not in (STATUS_ACTIVE, STATUS_DISABLED):
            raise DeviceError(f"status must be {STATUS_ACTIVE} or {STATUS_DISABLED}")
        with self.engine.begin() as conn:
            if conn.execute(update(devices).where(devices.c.device_id == device_id)
                            .values(status=status)).rowcount != 1:
                raise UnknownDevice(f"no device {device_id!r}")

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
        if not isinstance(health, dict):
            raise InvalidReport("health report must be a JSON object")
        with self.engine.begin() as conn:
            conn.execute(update(devices).where(devices.c.device_id == device_id).values(
                health=canonical_json(health), health_at=self._now(now)))

    def health(self, device_id: str) -> dict | None:
        with self.engine.connect() as conn:
            text = conn.execute(select(devices.c.health).where(devices.c.device_id == device_id)).scalar()
        return None if text is None else json.loads(text)
