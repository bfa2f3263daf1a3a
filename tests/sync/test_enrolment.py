"""The enrolment answer (sync/enrolment.py): read strictly on the device, written into its data directory.

parse_answer is pure, so most tests hand it values; write_enrolment runs on
real temporary directories and a real snapshot store, and the device's own
config loader reads what it wrote.
"""

from __future__ import annotations

import json
import tomllib
import os
import stat
from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config import load_config
from appliance.records import Action, Batch, Entry, ListInfo, TokenKind
from appliance.snapshot import SnapshotStore, snapshot_path
from sync.device_auth import b64url_encode, device_id_for
from sync.enrolment import (
    ENROLMENT_FILE,
    KIND_SCOPES,
    EnrolmentAnswer,
    EnrolmentError,
    EnrolmentProfile,
    answer_to_json,
    parse_answer,
    write_enrolment,
)
from sync.keys import raw_public_key

DEVICE_KEY = raw_public_key(Ed25519PrivateKey.generate())
ROOT = raw_public_key(Ed25519PrivateKey.generate())


def hotel_list(list_id: str = "hx-ban", key: bytes = bytes(range(32))) -> ListInfo:
    return ListInfo(list_id, "Hotel X ban", "Hotel X", "House rules s.4", ("star_hotel",), Action.REFER, key,
                    redress="Guest relations, ref. HX")


def answer(**changes) -> EnrolmentAnswer:
    values = dict(device_id=device_id_for(DEVICE_KEY), name="Front desk 2", enrolled_at=1_795_000_000,
                  profile=EnrolmentProfile.build(["hx-ban"], organisation="hx", kind="hotel_desk",
                                                 max_age_hours=6, fail_closed=False),
                  lists=(hotel_list(),), root_public_key=ROOT)
    values.update(changes)
    return EnrolmentAnswer(**values)


def wire(**changes) -> dict:
    body = answer_to_json(answer())
    body.update(changes)
    return body


def test_a_hotel_desk_profile_checks_star_hotel_lists_and_keeps_its_policy():
    profile = answer().profile
    assert profile.organisation == "HX" and profile.scopes == {"star_hotel"}
    device = profile.device_profile()
    assert device.max_age == timedelta(hours=6) and device.fail_closed is False
    assert device.covers(hotel_list())


@pytest.mark.parametrize("kwargs, says", [
    ({"lists": []}, "at least one list"),
    ({"lists": ["no spaces allowed"]}, "is not 1-64 characters"),
    ({"kind": "casino"}, "kind 'casino' is not one of"),
    ({"kind": "custom"}, "needs its scopes named"),
    ({"scopes": ["moon_base"]}, "unknown scope 'moon_base'"),
    ({"max_age_hours": 0}, "max_age_hours must be"),
    ({"max_age_hours": float("nan")}, "max_age_hours must be"),
    ({"max_age_hours": True}, "max_age_hours must be"),
    ({"fail_closed": "yes"}, "fail_closed must be true or false"),
    ({"organisation": "Demo Air!"}, "organisation 'DEMO AIR!' must be"),
])
def test_an_unusable_profile_is_refused_with_one_line_naming_the_field(kwargs, says):
    values = {"lists": ["nfl"], **kwargs}
    with pytest.raises(EnrolmentError, match=says) as caught:
        EnrolmentProfile.build(values.pop("lists"), **values)
    assert "\n" not in caught.value.message


def test_explicit_scopes_replace_the_kinds():
    both = EnrolmentProfile.build(["nfl"], kind="airline_counter", scopes=["air_travel", "star_hotel"])
    assert both.scopes == {"air_travel", "star_hotel"} and KIND_SCOPES["airline_counter"] == {"air_travel"}


def test_the_answer_reads_back_into_the_same_typed_values():
    assert parse_answer(json.dumps(wire()).encode(), public_key=DEVICE_KEY) == answer()


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=200).filter(lambda s: s.strip()),
       key=st.binary(min_size=16, max_size=64), hours=st.floats(min_value=0.01, max_value=1000),
       closed=st.booleans(), redress=st.text(max_size=300))
def test_any_answer_the_registry_can_build_reads_back_unchanged(name, key, hours, closed, redress):
    built = answer(name=name, lists=(ListInfo("hx-ban", "n", "a", "l", ("star_hotel",), Action.DENY, key,
                                              redress=redress),),
                   profile=EnrolmentProfile.build(["hx-ban"], kind="hotel_desk", max_age_hours=hours,
                                                  fail_closed=closed))
    assert parse_answer(json.dumps(answer_to_json(built)), public_key=DEVICE_KEY) == built


@pytest.mark.parametrize("body, says", [
    (b"{not json", "is not JSON"),
    (b'{"x": NaN}', "is not JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (json.dumps(wire(format="gatecheck-enrolment/2")).encode(), "this device reads"),
    (json.dumps(wire(device_id="0123456789abcdef")).encode(), "not for this device"),
    (json.dumps(wire(name="")).encode(), "name is empty"),
    (json.dumps(wire(enrolled_at=-1)).encode(), "enrolled_at"),
    (json.dumps(wire(profile=None)).encode(), "profile must be an object"),
    (json.dumps(wire(lists=[])).encode(), "lists must be a non-empty array"),
    (json.dumps(wire(lists=["hx-ban"])).encode(), r"lists\[0\] must be an object"),
    (json.dumps(wire(root_public_key=b64url_encode(bytes(31)))).encode(), "root_public_key must be"),
    (json.dumps(wire(root_public_key="not base64url!")).encode(), "root_public_key must be"),
])
def test_a_malformed_answer_is_one_readable_line(body, says):
    with pytest.raises(EnrolmentError, match=says) as caught:
        parse_answer(body, public_key=DEVICE_KEY)
    assert "\n" not in caught.value.message and caught.value.message.startswith("enrolment answer")


@pytest.mark.parametrize("field, value, says", [
    ("token_key", b64url_encode(bytes(8)), r"lists\[0\]\.token_key must be unpadded base64url of 16-64 bytes"),
    ("token_key", b64url_encode(bytes(65)), "token_key must be"),
    ("token_key", b64url_encode(bytes(32)) + "=", "token_key must be"),
    ("default_action", "ALLOW", "default_action must be REFER or DENY"),
    ("scopes", "star_hotel", "scopes must be an array"),
    ("name", None, r"lists\[0\]\.name must be text"),
    ("list_id", "../../etc", "list_id is not"),
])
def test_a_list_with_an_unusable_field_is_refused(field, value, says):
    body = wire()
    body["lists"][0][field] = value
    with pytest.raises(EnrolmentError, match=says):
        parse_answer(json.dumps(body), public_key=DEVICE_KEY)


def test_an_answer_whose_lists_are_not_the_profiles_is_refused():
    body = wire()
    body["lists"].append({**body["lists"][0], "list_id": "nfl"})
    with pytest.raises(EnrolmentError, match="are not the profile's"):
        parse_answer(json.dumps(body), public_key=DEVICE_KEY)
    body["lists"] = [body["lists"][0], body["lists"][0]]
    with pytest.raises(EnrolmentError, match="a list appears twice"):
        parse_answer(json.dumps(body), public_key=DEVICE_KEY)


def test_unknown_keys_from_a_newer_registry_are_ignored():
    assert parse_answer(json.dumps(wire(retired_keys=[])), public_key=DEVICE_KEY) == answer()


# -- writing it on the device -------------------------------------------------------------

def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_device_data_directory_gets_lists_at_version_0_the_root_and_its_policy(tmp_path):
    data = tmp_path / "device"
    record = write_enrolment(data, answer())
    with SnapshotStore(snapshot_path(data)) as store:
        held = store.get_list("hx-ban")
    assert (held.version, held.state_digest, held.token_key) == (0, b"", bytes(range(32)))
    assert held.redress == "Guest relations, ref. HX" and held.heartbeat_at is None
    assert (data / "registry-root.pub").read_bytes() == ROOT
    config = load_config(data, env={})
    assert config.scopes == {"star_hotel"} and config.max_age == timedelta(hours=6) and not config.fail_closed
    assert json.loads(record.read_text())["device_id"] == device_id_for(DEVICE_KEY)
    assert record.name == ENROLMENT_FILE
    for name in ("snapshot.db", "registry-root.pub", "gatecheck.toml", ENROLMENT_FILE):
        assert mode(data / name) == 0o600, name
    assert mode(data) == 0o700


def test_enrolment_keeps_the_operators_already_configured_and_replaces_only_the_policy(tmp_path):
    data = tmp_path / "device"
    data.mkdir(mode=0o700)
    pin = "scrypt:32768:8:1$salt$" + "ab" * 32
    (data / "gatecheck.toml").write_text(f'scopes = ["air_travel"]\nport = 8471\nreporters = ["agent.17"]\n\n'
                                         f'[operators]\n"agent.17" = "{pin}"\n')
    os.chmod(data / "gatecheck.toml", 0o600)
    write_enrolment(data, answer())
    config = load_config(data, env={})
    assert config.scopes == {"star_hotel"} and config.port == 8471
    assert dict(config.operators) == {"agent.17": pin} and config.reporters == {"agent.17"}


def test_enrolment_keeps_nested_tables_such_as_the_scanner_sources(tmp_path):
    data = tmp_path / "device"
    data.mkdir(mode=0o700)
    (data / "gatecheck.toml").write_text('scopes = ["air_travel"]\n\n[scanner]\nqueue = 5\n\n'
                                         '[[scanner.sources]]\nkind = "serial"\nport = "/dev/ttyACM0"\n\n'
                                         '[scanner.indicators]\ngreen = 17\n')
    write_enrolment(data, answer())
    written = tomllib.loads((data / "gatecheck.toml").read_text())
    assert written["scanner"] == {"queue": 5, "sources": [{"kind": "serial", "port": "/dev/ttyACM0"}],
                                  "indicators": {"green": 17}}
    assert written["scopes"] == ["star_hotel"]


def test_enrolling_again_with_the_same_answer_changes_nothing(tmp_path):
    data = tmp_path / "device"
    write_enrolment(data, answer())
    files = ("registry-root.pub", "gatecheck.toml", ENROLMENT_FILE)
    before = {name: (data / name).read_bytes() for name in files}
    write_enrolment(data, answer())
    assert {name: (data / name).read_bytes() for name in files} == before
    with SnapshotStore(snapshot_path(data)) as store:
        assert [info.list_id for info in store.lists()] == ["hx-ban"]


def test_a_directory_that_pins_another_root_is_never_repinned_by_an_answer(tmp_path):
    data = tmp_path / "device"
    data.mkdir()
    (data / "registry-root.pub").write_bytes(raw_public_key(Ed25519PrivateKey.generate()))
    with pytest.raises(EnrolmentError, match="pins another registry root key"):
        write_enrolment(data, answer())
    assert not (data / ENROLMENT_FILE).exists() and not (data / "snapshot.db").exists()


def test_a_directory_enrolled_as_another_device_is_refused(tmp_path):
    data = tmp_path / "device"
    write_enrolment(data, answer())
    other = raw_public_key(Ed25519PrivateKey.generate())
    with pytest.raises(EnrolmentError, match="already enrolled as device"):
        write_enrolment(data, answer(device_id=device_id_for(other)))


def test_an_answer_with_another_token_key_for_a_list_holding_tokens_is_refused(tmp_path):
    data = tmp_path / "device"
    write_enrolment(data, answer())
    with SnapshotStore(snapshot_path(data)) as store:
        store.apply_batch(Batch("hx-ban", 0, 1, (Entry(bytes(12), "hx-ban", TokenKind.DOCUMENT, "c", Action.REFER,
                                                       "r", date(2026, 1, 1), date(2030, 1, 1)),)))
    with pytest.raises(EnrolmentError, match="cannot store the lists"):
        write_enrolment(data, answer(lists=(hotel_list(key=bytes(32)),)))
