"""What `gatecheck provision` does next, decided from the data directory's state alone (appliance/provision_plan.py).

Pure: each test hands the planner the facts a real directory would give
after some step, or after a kill between two steps. The real-process runs
are in tests/appliance/test_provision.py.
"""

from __future__ import annotations

import pytest

from appliance.provision_plan import (
    EXIT_ALREADY_PROVISIONED,
    AlreadyProvisioned,
    DirState,
    Refusal,
    Request,
    Step,
    check_registry_url,
    check_root_key,
    check_transport,
    plan,
)

URL = "http://127.0.0.1:8480"
OLD, NEW = "0123456789abcdef", "fedcba9876543210"
FULL = (Step.ENROLL, Step.WRITE, Step.SYNC, Step.VERIFY, Step.FINISH)
ENROLLED = DirState(key_id=OLD, enrolled_id=OLD, enrolled_registry=URL)
PROVISIONED = DirState(key_id=OLD, enrolled_id=OLD, enrolled_registry=URL, provisioned_id=OLD)


def test_a_blank_directory_makes_a_key_then_enrols_writes_syncs_verifies():
    assert plan(DirState(), Request(URL, "ABCD-EFGH")).steps == (Step.MAKE_KEY, *FULL)


def test_a_key_left_by_a_refused_enrolment_is_reused():
    assert plan(DirState(key_id=OLD), Request(URL, "ABCD-EFGH")).steps == FULL


def test_a_device_enrolled_but_not_synced_resumes_at_the_sync_without_the_code():
    result = plan(ENROLLED, Request())
    assert result.steps == (Step.SYNC, Step.VERIFY, Step.FINISH) and result.registry == URL
    assert not result.code_unused


def test_a_code_given_to_a_device_past_enrolment_is_reported_unused():
    assert plan(ENROLLED, Request(code="ABCD")).code_unused


def test_an_answer_saved_before_a_kill_is_written_without_spending_another_code():
    state = DirState(key_id=OLD, answer_for=OLD, answer_registry=URL)
    result = plan(state, Request())
    assert result.steps == (Step.WRITE, Step.SYNC, Step.VERIFY, Step.FINISH) and result.registry == URL


def test_a_provisioned_device_refuses_with_its_own_exit_status():
    with pytest.raises(AlreadyProvisioned, match=f"already provisioned as device {OLD}") as caught:
        plan(PROVISIONED, Request(URL, "ABCD"))
    assert caught.value.exit_code == EXIT_ALREADY_PROVISIONED == 3


def test_re_enrolment_makes_a_new_key_and_retires_the_old_device():
    result = plan(PROVISIONED, Request(code="NEW-CODE", re_enroll=True))
    assert result.steps == (Step.MAKE_NEXT_KEY, Step.ENROLL, Step.RETIRE, Step.WRITE, Step.SYNC, Step.VERIFY,
                            Step.FINISH)
    assert result.retiring == OLD and result.registry == URL and result.enrols_next_key


def test_re_enrolment_needs_a_new_code():
    with pytest.raises(Refusal, match="needs a new enrolment code"):
        plan(PROVISIONED, Request(re_enroll=True))


def test_a_re_enrolment_the_registry_answered_is_finished_even_without_the_flag():
    state = DirState(key_id=OLD, next_key_id=NEW, answer_for=NEW, answer_registry=URL, enrolled_id=OLD,
                     provisioned_id=OLD)
    result = plan(state, Request())
    assert result.steps[0] is Step.RETIRE and result.retiring == OLD and Step.ENROLL not in result.steps


def test_a_kill_inside_retirement_finishes_it_on_the_rerun():
    # the key was already swapped, the old enrolment.json not yet moved away
    state = DirState(key_id=NEW, answer_for=NEW, answer_registry=URL, enrolled_id=OLD)
    assert plan(state, Request()).steps == (Step.RETIRE, Step.WRITE, Step.SYNC, Step.VERIFY, Step.FINISH)


def test_a_re_enrolment_whose_code_was_refused_reuses_its_new_key():
    state = DirState(key_id=OLD, next_key_id=NEW, enrolled_id=OLD, enrolled_registry=URL, provisioned_id=OLD)
    assert plan(state, Request(code="ANOTHER", re_enroll=True)).steps[0] is Step.ENROLL
    with pytest.raises(AlreadyProvisioned):  # without the flag it is still the old, provisioned device
        plan(state, Request())


@pytest.mark.parametrize("state, says", [
    (DirState(key_id=NEW, enrolled_id=OLD), f"enrolment.json is for device {OLD} but device.key is device {NEW}"),
    (DirState(enrolled_id=OLD), "device.key is missing"),
    (DirState(key_problem="device.key is readable by other users"), "readable by other users; fix it, or"),
])
def test_a_directory_that_does_not_add_up_is_refused_with_the_way_out(state, says):
    with pytest.raises(Refusal, match=says) as caught:
        plan(state, Request(URL, "CODE"))
    assert "--re-enroll" in caught.value.message


def test_a_broken_key_is_replaced_by_re_enrolment():
    result = plan(DirState(key_problem="device.key is not an Ed25519 private key", enrolled_id=OLD),
                  Request(URL, "CODE", re_enroll=True))
    assert Step.MAKE_NEXT_KEY in result.steps and result.retiring == OLD


@pytest.mark.parametrize("request_, says", [
    (Request(URL), "not enrolled yet: give the enrolment code"),
    (Request(code="CODE"), "--registry URL is needed"),
    (Request(URL, "   "), "not enrolled yet"),
])
def test_a_first_run_needs_a_code_and_a_registry(request_, says):
    with pytest.raises(Refusal, match=says):
        plan(DirState(), request_)


def test_resuming_with_another_registry_is_refused():
    with pytest.raises(Refusal, match="is enrolled with http://127.0.0.1:8480, not http://10.0.0.9"):
        plan(ENROLLED, Request("http://10.0.0.9"))


@pytest.mark.parametrize("url, fine", [
    ("https://10.1.2.3:8443/", "https://10.1.2.3:8443"),
    ("http://127.0.0.1:8480", URL),
    ("ftp://x", None), ("127.0.0.1:8480", None), ("http://", None), ("http://h:port", None),
    ("http://h/v1?x=1", None),
])
def test_only_an_http_base_url_is_a_registry(url, fine):
    if fine is None:
        with pytest.raises(Refusal):
            check_registry_url(url)
    else:
        assert check_registry_url(url) == fine


@pytest.mark.parametrize("url, insecure, refused", [
    ("https://registry.internal", False, False), ("http://127.0.0.1:8480", False, False),
    ("http://localhost:8480", False, False), ("http://[::1]:8480", False, False),
    ("http://10.0.0.5:8000", False, True), ("http://registry.internal", False, True),
    ("http://10.0.0.5:8000", True, False),
])
def test_plain_http_is_only_for_this_machine_unless_the_network_is_declared_closed(url, insecure, refused):
    if refused:
        with pytest.raises(Refusal, match="plain http"):
            check_transport(url, insecure_http=insecure)
    else:
        check_transport(url, insecure_http=insecure)


def test_a_root_key_is_64_hex_digits_with_or_without_colons():
    assert check_root_key("AB" * 32) == bytes([0xAB]) * 32
    assert check_root_key(":".join(["ab"] * 32)) == bytes([0xAB]) * 32
    for bad in ("ab" * 31, "zz" * 32, ""):
        with pytest.raises(Refusal, match="64 hex digits"):
            check_root_key(bad)
