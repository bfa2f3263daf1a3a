"""Enrolment: a device profile, the registry's answer to a one-time code, and writing it on the device.

The answer is the one contract between registry/server.py, which builds it
with :func:`answer_to_json`, and the device, which reads it with
:func:`parse_answer`: the device id, its profile (organisation, kind,
sanction scopes, the lists it receives, the staleness policy), each list's
metadata with its token key, and the registry's root public key to pin
(docs/fleet.md, "The enrolment answer").

:func:`parse_answer` is pure: bytes in, typed values or one
:class:`EnrolmentError` naming the field out. :func:`write_enrolment` is the
I/O: the lists go into the snapshot store at version 0 (only signed updates
move them on), the root key is pinned, gatecheck.toml gets the profile's
scopes and policy, and ``enrolment.json`` records the rest; every file 0600.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance.config import CONFIG_FILE, KNOWN_SCOPES
from appliance.private_files import write_private
from appliance.records import Action, ListInfo
from appliance.verdict import DeviceProfile
from sync.device_auth import b64url_encode, device_id_for
from sync.envelope import _LIST_ID
from sync.errors import SyncError
from sync.identity import MIN_KEY_BYTES

FORMAT = "gatecheck-enrolment/1"
ENROLMENT_FILE = "enrolment.json"

AIRLINE_COUNTER, HOTEL_DESK, CUSTOM = "airline_counter", "hotel_desk", "custom"
#: What each kind of device checks unless its profile names scopes itself.
KIND_SCOPES: Mapping[str, frozenset[str]] = {
    AIRLINE_COUNTER: frozenset({"air_travel"}),
    HOTEL_DESK: frozenset({"star_hotel"}),
    CUSTOM: frozenset(),
}
MAX_LISTS = 64
MAX_TOKEN_KEY_BYTES = 64
MAX_TEXT_CHARS = 2000
#: The appliance's own bound on max_age_hours (appliance/config.py): ten years.
MAX_AGE_HOURS = 24 * 366 * 10
#: Organisation codes as registry accounts write them (registry/accounts.py).
_ORG = re.compile(r"[A-Z0-9][A-Z0-9-]{1,31}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class EnrolmentError(SyncError):
    """A profile or enrolment answer that cannot be used, as one line naming the field."""

    code = "invalid_enrolment"


# -- the profile -------------------------------------------------------------------

@dataclass(frozen=True)
class EnrolmentProfile:
    """What a device is enrolled as: bound to its code by IT, handed to the device by the answer."""

    lists: tuple[str, ...]
    organisation: str = ""
    kind: str = AIRLINE_COUNTER
    scopes: frozenset[str] = frozenset()
    max_age_hours: float = 24.0
    fail_closed: bool = True

    @classmethod
    def build(cls, lists: Iterable[str], *, organisation: str = "", kind: str = AIRLINE_COUNTER,
              scopes: Iterable[str] = (), max_age_hours: float = 24.0, fail_closed: bool = True,
              where: str = "profile") -> EnrolmentProfile:
        """A checked profile; scopes default to the kind's (an airline counter checks air_travel)."""
        if isinstance(lists, str) or not all(isinstance(item, str) for item in lists):
            raise EnrolmentError(f"{where}: lists must be a list of list ids")
        chosen = tuple(sorted(set(lists)))
        if not chosen:
            raise EnrolmentError(f"{where}: a device needs at least one list")
        if len(chosen) > MAX_LISTS:
            raise EnrolmentError(f"{where}: at most {MAX_LISTS} lists, not {len(chosen)}")
        for list_id in chosen:
            if not _LIST_ID.fullmatch(list_id.encode("ascii", "replace")):
                raise EnrolmentError(f"{where}: list id {list_id!r} is not 1-64 characters of A-Z a-z 0-9 . _ : -")
        if not isinstance(organisation, str):
            raise EnrolmentError(f"{where}: organisation must be text")
        organisation = organisation.strip().upper()
        if organisation and not _ORG.fullmatch(organisation):
            raise EnrolmentError(f"{where}: organisation {organisation!r} must be 2-32 letters, digits or hyphens")
        if kind not in KIND_SCOPES:
            raise EnrolmentError(f"{where}: kind {kind!r} is not one of {', '.join(KIND_SCOPES)}")
        if isinstance(scopes, str) or not all(isinstance(s, str) for s in scopes):
            raise EnrolmentError(f"{where}: scopes must be a list of scope names")
        picked = frozenset(s.strip() for s in scopes if s.strip()) or KIND_SCOPES[kind]
        if not picked:
            raise EnrolmentError(f"{where}: a {kind} device needs its scopes named "
                                 f"({', '.join(sorted(KNOWN_SCOPES))})")
        unknown = sorted(picked - KNOWN_SCOPES)
        if unknown:
            raise EnrolmentError(f"{where}: unknown scope {unknown[0]!r} (known: {', '.join(sorted(KNOWN_SCOPES))})")
        if (isinstance(max_age_hours, bool) or not isinstance(max_age_hours, (int, float))
                or not math.isfinite(max_age_hours) or not 0 < max_age_hours <= MAX_AGE_HOURS):
            raise EnrolmentError(f"{where}: max_age_hours must be a number of hours above 0 and at most "
                                 f"{MAX_AGE_HOURS}, not {max_age_hours!r}")
        if not isinstance(fail_closed, bool):
            raise EnrolmentError(f"{where}: fail_closed must be true or false")
        return cls(chosen, organisation, kind, picked, float(max_age_hours), fail_closed)

    def device_profile(self) -> DeviceProfile:
        """What the verdict rules will see on the device."""
        return DeviceProfile(scopes=self.scopes, max_age=timedelta(hours=self.max_age_hours),
                             fail_closed=self.fail_closed)

    def to_dict(self) -> dict[str, Any]:
        return {"lists": list(self.lists), "organisation": self.organisation, "kind": self.kind,
                "scopes": sorted(self.scopes), "max_age_hours": self.max_age_hours, "fail_closed": self.fail_closed}

    @classmethod
    def from_dict(cls, value: Any, *, where: str = "profile") -> EnrolmentProfile:
        if not isinstance(value, dict):
            raise EnrolmentError(f"{where} must be an object")
        missing = [k for k in ("lists", "kind", "scopes", "max_age_hours", "fail_closed") if k not in value]
        if missing:
            raise EnrolmentError(f"{where}: {missing[0]} is missing")
        return cls.build(value["lists"], organisation=value.get("organisation", ""), kind=value["kind"],
                         scopes=value["scopes"], max_age_hours=value["max_age_hours"],
                         fail_closed=value["fail_closed"], where=where)


# -- the answer ----------------------------------------------------------------------

@dataclass(frozen=True)
class EnrolmentAnswer:
    """Everything a device needs to start syncing. ``lists`` are at version 0 with their token keys."""

    device_id: str
    name: str
    enrolled_at: int
    profile: EnrolmentProfile
    lists: tuple[ListInfo, ...]
    root_public_key: bytes


def enrolment_request(code: str, public_key: bytes, name: str) -> bytes:
    """The body of ``POST /v1/enroll``: the code and the public key the device made itself."""
    return json.dumps({"code": code, "public_key": b64url_encode(public_key), "name": name}).encode("utf-8")


def answer_to_json(answer: EnrolmentAnswer) -> dict[str, Any]:
    """The answer as the registry sends it (docs/fleet.md)."""
    return {
        "format": FORMAT, "device_id": answer.device_id, "name": answer.name, "enrolled_at": answer.enrolled_at,
        "profile": answer.profile.to_dict(),
        "lists": [{"list_id": i.list_id, "name": i.name, "authority": i.authority, "legal_basis": i.legal_basis,
                   "scopes": list(i.scopes), "default_action": Action(i.default_action).value,
                   "redress": i.redress, "token_key": b64url_encode(i.token_key)} for i in answer.lists],
        "root_public_key": b64url_encode(answer.root_public_key),
    }


def parse_answer(data: bytes | str | Mapping, *, public_key: bytes) -> EnrolmentAnswer:
    """Check the registry's answer for the device holding ``public_key``; EnrolmentError on anything off.

    Keys the format does not know are ignored, so a newer registry can add some.
    """
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data, parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise EnrolmentError(f"enrolment answer is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnrolmentError("enrolment answer must be a JSON object")
    if data.get("format") != FORMAT:
        raise EnrolmentError(f"enrolment answer format is {data.get('format')!r}; this device reads {FORMAT!r}")
    mine = device_id_for(public_key)
    if data.get("device_id") != mine:
        raise EnrolmentError(f"enrolment answer is for device {data.get('device_id')!r}, not for this device ({mine})")
    name = _text(data, "name", "enrolment answer", max_chars=200)
    if not name:
        raise EnrolmentError("enrolment answer: name is empty")
    enrolled_at = data.get("enrolled_at")
    if type(enrolled_at) is not int or enrolled_at < 0:
        raise EnrolmentError("enrolment answer: enrolled_at must be Unix seconds")
    profile = EnrolmentProfile.from_dict(data.get("profile"), where="enrolment answer: profile")
    raw_lists = data.get("lists")
    if not isinstance(raw_lists, list) or not raw_lists:
        raise EnrolmentError("enrolment answer: lists must be a non-empty array")
    lists = tuple(_list_info(item, f"enrolment answer: lists[{n}]") for n, item in enumerate(raw_lists))
    ids = [info.list_id for info in lists]
    if len(set(ids)) != len(ids):
        raise EnrolmentError("enrolment answer: a list appears twice")
    if tuple(sorted(ids)) != profile.lists:
        raise EnrolmentError(f"enrolment answer: lists {sorted(ids)} are not the profile's {list(profile.lists)}")
    root = _b64url(data.get("root_public_key"), "enrolment answer: root_public_key", 32, 32)
    try:
        Ed25519PublicKey.from_public_bytes(root)
    except ValueError:
        raise EnrolmentError("enrolment answer: root_public_key is not an Ed25519 key") from None
    return EnrolmentAnswer(mine, name, enrolled_at, profile, lists, root)


def _list_info(item: Any, where: str) -> ListInfo:
    if not isinstance(item, dict):
        raise EnrolmentError(f"{where} must be an object")
    list_id = item.get("list_id")
    if not isinstance(list_id, str) or not _LIST_ID.fullmatch(list_id.encode("ascii", "replace")):
        raise EnrolmentError(f"{where}.list_id is not 1-64 characters of A-Z a-z 0-9 . _ : -")
    scopes = item.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        raise EnrolmentError(f"{where}.scopes must be an array of scope names")
    try:
        action = Action(item.get("default_action"))
    except ValueError:
        raise EnrolmentError(f"{where}.default_action must be REFER or DENY") from None
    return ListInfo(
        list_id=list_id, name=_text(item, "name", where), authority=_text(item, "authority", where),
        legal_basis=_text(item, "legal_basis", where), scopes=tuple(scopes), default_action=action,
        token_key=_b64url(item.get("token_key"), f"{where}.token_key", MIN_KEY_BYTES, MAX_TOKEN_KEY_BYTES),
        version=0, state_digest=b"", redress=_text(item, "redress", where, required=False))


def _text(obj: dict, key: str, where: str, *, max_chars: int = MAX_TEXT_CHARS, required: bool = True) -> str:
    value = obj.get(key, None if required else "")
    if not isinstance(value, str) or len(value) > max_chars:
        raise EnrolmentError(f"{where}.{key} must be text of at most {max_chars} characters")
    return value


def _b64url(text: Any, where: str, low: int, high: int) -> bytes:
    size = f"{low}" if low == high else f"{low}-{high}"
    problem = EnrolmentError(f"{where} must be unpadded base64url of {size} bytes")
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise problem from None
    if not low <= len(raw) <= high or b64url_encode(raw) != text:
        raise problem
    return raw


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# -- on the device (I/O) -------------------------------------------------------------

def write_enrolment(data_dir: str | os.PathLike, answer: EnrolmentAnswer, *,
                    registry_url: str | None = None) -> Path:
    """Put ``answer`` into the device data directory; returns the enrolment record's path.

    Safe to run again with the same answer. Refuses a directory enrolled as
    another device, or one that pins another root key: enrolment never
    silently changes whom a device trusts. ``enrolment.json`` is written last,
    so its presence means every other file is in place. ``registry_url``
    is recorded there (`gatecheck sync run` defaults to it, sync/cli.py
    REGISTRY_URL_KEY); None keeps the one already recorded.
    """
    from appliance.private_files import private_dir
    from appliance.snapshot import SnapshotError, SnapshotStore, snapshot_path
    from sync.cli import REGISTRY_URL_KEY, ROOT_KEY_FILE  # what `gatecheck sync run` reads

    data_dir = private_dir(data_dir)
    record_path = data_dir / ENROLMENT_FILE
    if record_path.exists():
        try:
            held_record = json.loads(record_path.read_text("utf-8"))
            held = held_record.get("device_id")
            registry_url = registry_url or held_record.get(REGISTRY_URL_KEY)
        except (OSError, ValueError, AttributeError):
            raise EnrolmentError(f"{record_path} is unreadable; move it away before enrolling again") from None
        if held != answer.device_id:
            raise EnrolmentError(f"{data_dir} is already enrolled as device {held}; use a fresh data directory")
    root_path = data_dir / ROOT_KEY_FILE
    if root_path.exists() and root_path.read_bytes() != answer.root_public_key:
        raise EnrolmentError(f"{root_path} pins another registry root key; refusing to replace it")

    store = SnapshotStore(snapshot_path(data_dir))
    try:
        for info in answer.lists:
            store.put_list(info)  # a list already held keeps its version; only its metadata and key are set
    except SnapshotError as exc:
        raise EnrolmentError(f"cannot store the lists: {exc.message}") from None
    finally:
        store.close()
    write_private(root_path, answer.root_public_key)
    write_private(data_dir / CONFIG_FILE, device_config_text(data_dir / CONFIG_FILE, answer.profile).encode())
    record = {"format": FORMAT, "device_id": answer.device_id, "name": answer.name,
              "enrolled_at": answer.enrolled_at, "profile": answer.profile.to_dict()}
    if registry_url:
        record[REGISTRY_URL_KEY] = registry_url
    write_private(record_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return record_path


#: The gatecheck.toml keys enrolment owns; every other key in the file is kept.
_PROFILE_KEYS = ("scopes", "max_age_hours", "fail_closed")


def device_config_text(path: Path, profile: EnrolmentProfile) -> str:
    """gatecheck.toml with the profile's scopes and policy, keeping the file's other settings.

    The other settings (operators, the ``[scanner]`` table with its sources,
    anything an IT team added) are kept whatever their shape; comments are
    not, since TOML is rewritten from its parsed form (tomli-w).
    """
    try:
        current = tomllib.loads(path.read_text("utf-8")) if path.exists() else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EnrolmentError(f"{path} cannot be read to add the profile: {exc}") from None
    settings = {"scopes": sorted(profile.scopes), "max_age_hours": profile.max_age_hours,
                "fail_closed": profile.fail_closed}
    settings.update((key, value) for key, value in current.items() if key not in _PROFILE_KEYS)
    return ("# Written by enrolment: scopes and staleness policy come from the device profile.\n"
            + tomli_w.dumps(settings))
