"""The local JSON API over real HTTP: `gatecheck serve` in a subprocess, driven with requests.

Scans use the sample documents and a real snapshot (conftest.py). Every
refusal must be a 4xx JSON error, never a 500, and must lose nothing stored.
"""

from __future__ import annotations

import io
import json
import re
import stat
import struct
import time
import zlib

import pytest
import numpy as np
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from appliance.documents.model import MAX_PAYLOAD_BYTES
from appliance.journal import Journal
from appliance.web.inputs import MAX_IMAGE_BYTES
from tests.appliance.conftest import (
    DENY_REFERENCE,
    NOFLY,
    OPERATORS,
    REFER_REFERENCE,
    REPO,
    csrf_token,
    make_data_dir,
    sample,
    sign_in,
    start_server,
)


def bearer(server) -> dict:
    return {"Authorization": f"Bearer {server.token}"}


def assert_error(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


def stored(server) -> tuple:
    """What must survive a refused request: journal size and head, list versions and digests."""
    status = server.status()
    return (status["journal"]["records"], status["journal"]["head_hash"],
            {k: (v["version"], v["digest"]) for k, v in status["lists"].items()})


# -- verdicts -------------------------------------------------------------------


def test_listed_passport_is_denied_with_reference_and_provenance(server):
    response = server.scan(sample("passport-td3.txt"))
    assert response.status_code == 200
    verdict = response.json()
    assert verdict["verdict"] == "DENY"
    assert verdict["channel"] == "scanner"
    [match] = verdict["matches"]
    assert match["list"] == NOFLY and match["action"] == "DENY" and match["reference"] == DENY_REFERENCE
    assert match["redress"]
    assert verdict["snapshot"]["lists"][NOFLY]["version"] == 1
    assert verdict["snapshot"]["stale"] is False and verdict["snapshot"]["age_seconds"] >= 0
    assert verdict["masked_document_number"].endswith("2C3") and "L898902C3" not in verdict["masked_document_number"]
    assert verdict["document"]["document_number"] == "L898902C3"
    assert isinstance(verdict["seq"], int)


def test_name_and_birth_date_hit_is_at_most_refer(server):
    verdict = server.scan(sample("licence-on.txt")).json()
    assert verdict["verdict"] == "REFER"
    assert verdict["reasons"] == ["possible match — verify identity"]
    assert [m["reference"] for m in verdict["matches"]] == [REFER_REFERENCE]


def test_licence_listed_only_for_hotels_is_clear_at_an_airline_counter(server):
    verdict = server.scan(sample("licence-ca.txt")).json()
    assert verdict["verdict"] == "CLEAR"
    assert verdict["matches"] == []


def test_text_plain_payload_is_read_byte_for_byte(server):
    # The AAMVA sample's LF/RS/CR separators are data and must arrive intact.
    verdict = server.scan(sample("licence-ca.txt"), content_type="text/plain; charset=utf-8").json()
    assert verdict["verdict"] == "CLEAR"
    assert verdict["document"]["format"] == "aamva"


def test_garbage_payload_is_journaled_unreadable_with_the_parser_reason(server):
    before = server.status()["journal"]["records"]
    response = server.scan(b"HELLO, NOT A DOCUMENT")
    body = assert_error(response, 422, "unknown_format")
    assert body["verdict"] == "UNREADABLE"
    assert body["reasons"] == [body["error"]["message"]]
    assert server.status()["journal"]["records"] == before + 1


def test_payload_of_exactly_the_limit_is_judged_not_refused(server):
    response = server.scan(b"A" * MAX_PAYLOAD_BYTES)
    assert response.status_code == 422
    assert response.json()["verdict"] == "UNREADABLE"


# -- refusals: 4xx JSON, nothing lost -------------------------------------------


def test_oversized_payload_is_413_json_and_nothing_stored_is_lost(server):
    server.scan(sample("passport-td3.txt"))
    before = stored(server)
    assert_error(server.scan(b"A" * (MAX_PAYLOAD_BYTES + 1)), 413, "too_large")
    assert stored(server) == before


def test_oversized_chunked_payload_is_refused_too(server):
    before = stored(server)
    chunks = (b"B" * 4096 for _ in range(8))  # no Content-Length: sent chunked
    assert_error(server.scan(chunks), 413, "too_large")
    assert stored(server) == before


@pytest.mark.parametrize("content_type", [
    "application/json", "application/x-www-form-urlencoded", "image/png", "",
])
def test_wrong_content_type_is_415(server, content_type):
    before = stored(server)
    response = requests.post(server.api("/api/scan"), data=sample("passport-td3.txt"), timeout=10,
                             headers={**bearer(server), "Content-Type": content_type})
    assert_error(response, 415, "unsupported_media_type")
    assert stored(server) == before


def test_empty_body_is_400_and_not_journaled(server):
    before = stored(server)
    assert_error(server.scan(b""), 400, "empty")
    assert stored(server) == before


def test_unknown_api_path_and_method_are_json_errors(server):
    assert_error(requests.get(server.api("/api/nothing"), headers=bearer(server), timeout=10), 404, "not_found")
    assert_error(requests.get(server.api("/api/scan"), headers=bearer(server), timeout=10),
                 405, "method_not_allowed")


@settings(max_examples=25, deadline=None)
@given(payload=st.binary(min_size=1, max_size=600))
def test_arbitrary_bytes_never_cause_a_server_error(server, payload):
    response = server.scan(payload)
    assert response.status_code in (200, 422)
    assert response.json()["verdict"] in {"CLEAR", "REFER", "DENY", "UNREADABLE"}


# -- who may call the API -------------------------------------------------------


def test_scan_without_the_device_token_is_refused_even_from_a_signed_in_browser(server):
    # What a cross-site form in the counter's browser could send: a simple
    # content type, the session cookie, but never an Authorization header.
    browser = sign_in(server)
    before = stored(server)
    response = browser.post(server.api("/api/scan"), data=sample("passport-td3.txt"), timeout=10,
                            headers={"Content-Type": "text/plain", "Origin": "http://attacker.invalid"})
    assert_error(response, 401, "unauthorised")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(server) == before


def test_device_secrets_and_the_counter_operator_file_are_private_to_the_device_user(server):
    sign_in(server)
    for name in ("api-token", "web-secret", "counter-operator.json"):
        assert stat.S_IMODE((server.data_dir / name).stat().st_mode) == 0o600, name


def test_scan_with_a_wrong_token_is_refused(server):
    response = requests.post(server.api("/api/scan"), data=b"x", timeout=10, headers={
        "Authorization": "Bearer " + "A" * 43, "Content-Type": "application/octet-stream"})
    assert_error(response, 401, "unauthorised")


def test_a_foreign_host_name_is_refused_against_dns_rebinding(server):
    response = requests.get(server.api("/api/status"), timeout=10,
                            headers={**bearer(server), "Host": "gatecheck.attacker.invalid"})
    assert_error(response, 400, "bad_request")


def test_status_needs_the_token_or_a_signed_in_operator(server):
    assert_error(requests.get(server.api("/api/status"), timeout=10), 401, "unauthorised")
    assert sign_in(server).get(server.api("/api/status"), timeout=10).status_code == 200


def test_scan_records_the_operator_signed_in_at_the_counter(server):
    browser = sign_in(server, "agent-42")
    assert server.scan(sample("licence-ca.txt")).json()["operator"] == "agent-42"
    page = browser.get(server.url, timeout=10)
    browser.post(server.api("/signout"), data={"csrf_token": csrf_token(page.text)}, timeout=10)
    assert server.scan(sample("licence-ca.txt")).json()["operator"] is None


# -- camera frames ----------------------------------------------------------------


def post_image(server, data: bytes, field: str = "image"):
    return requests.post(server.api("/api/scan"), headers=bearer(server), timeout=30,
                         files={field: ("frame.png", data, "image/png")})


def png(size=(64, 64), colour="white") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def test_camera_frame_of_a_licence_is_judged_on_the_camera_channel(server):
    response = post_image(server, (sample("licence-ca.png")))
    assert response.status_code == 200, response.text[:300]
    verdict = response.json()
    assert verdict["channel"] == "camera"
    assert verdict["verdict"] == "CLEAR"
    assert verdict["document"]["surname"] == "RIVERA"


def test_frame_without_a_barcode_is_422_and_not_journaled(server):
    before = stored(server)
    assert_error(post_image(server, png()), 422, "no_barcode")
    assert stored(server) == before


def test_upload_that_is_not_an_image_is_422(server):
    assert_error(post_image(server, b"GIF89a but not really"), 422, "unreadable_image")


def test_image_over_the_size_limit_is_413(server):
    assert_error(post_image(server, b"\x89PNG" + b"\0" * (9 * 1024 * 1024)), 413, "too_large")


# Real camera-sized frames: a photo's worth of sensor noise (incompressible,
# so the file is as big as a real frame) around the sample licence's PDF417.
# The PNG is stored without compression: 1900x1100, just under the pixel
# limit, makes a ~6 MB file.


def camera_frame(size: tuple[int, int], fmt: str, *, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    width, height = size
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    code = np.asarray(Image.open(io.BytesIO(sample("licence-ca.png"))).convert("RGB"))
    top, left = (height - code.shape[0]) // 2, (width - code.shape[1]) // 2
    frame[top - 40:top + code.shape[0] + 40, left - 40:left + code.shape[1] + 40] = 255  # quiet zone
    frame[top:top + code.shape[0], left:left + code.shape[1]] = code
    out = io.BytesIO()
    Image.fromarray(frame).save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 0}))
    return out.getvalue()


def padded_png(png_bytes: bytes, total: int) -> bytes:
    """The same PNG grown to exactly ``total`` bytes by a private ancillary chunk before IEND."""
    iend = png_bytes.rindex(b"IEND") - 4
    data = b"\0" * (total - len(png_bytes) - 12)
    chunk = struct.pack(">I", len(data)) + b"paDd" + data + struct.pack(">I", zlib.crc32(b"paDd" + data))
    return png_bytes[:iend] + chunk + png_bytes[iend:]


@pytest.fixture(scope="module")
def frames() -> dict[str, bytes]:
    six_mb = camera_frame((1900, 1100), "PNG")
    return {
        "1 MB JPEG": camera_frame((1600, 900), "JPEG"),
        "6 MB PNG": six_mb,
        "8 MiB PNG": padded_png(six_mb, MAX_IMAGE_BYTES),
        "8 MiB + 1 PNG": padded_png(six_mb, MAX_IMAGE_BYTES + 1),
    }


def test_generated_frames_are_the_sizes_they_claim(frames):
    assert 0.9e6 < len(frames["1 MB JPEG"]) < 1.5e6
    assert 5.5e6 < len(frames["6 MB PNG"]) < 7e6
    assert len(frames["8 MiB PNG"]) == MAX_IMAGE_BYTES
    assert len(frames["8 MiB + 1 PNG"]) == MAX_IMAGE_BYTES + 1


def post_frame_on_screen(server, data: bytes, name: str = "frame.png") -> requests.Response:
    browser = sign_in(server)
    page = browser.get(server.url, timeout=10).text
    return browser.post(server.api("/image"), timeout=60, data={"csrf_token": csrf_token(page)},
                        files={"image": (name, data, "application/octet-stream")})


@pytest.mark.parametrize("name", ["1 MB JPEG", "6 MB PNG", "8 MiB PNG"])
def test_camera_sized_frames_up_to_the_limit_are_judged_on_the_api(server, frames, name):
    response = post_image(server, frames[name])
    assert response.status_code == 200, response.text[:300]
    verdict = response.json()
    assert verdict["channel"] == "camera" and verdict["verdict"] == "CLEAR"
    assert verdict["document"]["surname"] == "RIVERA"


@pytest.mark.parametrize("name", ["1 MB JPEG", "6 MB PNG", "8 MiB PNG"])
def test_camera_sized_frames_up_to_the_limit_are_judged_on_the_screen(server, frames, name):
    response = post_frame_on_screen(server, frames[name])
    assert response.status_code == 200 and re.search(r"/\?scan=\d+$", response.url), response.text[:300]
    assert 'data-verdict="CLEAR"' in response.text and "RIVERA" in response.text


def test_a_frame_one_byte_over_the_limit_is_413_with_the_limit_named(server, frames):
    before = stored(server)
    body = assert_error(post_image(server, frames["8 MiB + 1 PNG"]), 413, "too_large")
    assert body["error"]["message"] == "image is larger than 8 MiB"
    assert stored(server) == before


def test_a_frame_one_byte_over_the_limit_on_the_screen_says_so(server, frames):
    before = stored(server)
    response = post_frame_on_screen(server, frames["8 MiB + 1 PNG"])
    assert response.status_code == 200 and "Image not checked: image is larger than 8 MiB" in response.text
    assert stored(server) == before


def test_an_upload_over_the_body_cap_on_the_screen_is_a_413_page_not_a_500(server):
    before = stored(server)
    response = post_frame_on_screen(server, b"\x89PNG" + b"\0" * (9 * 1024 * 1024))
    assert response.status_code == 413
    assert "a photo may be at most 8 MiB" in response.text
    assert stored(server) == before


def test_a_frame_over_the_pixel_limit_is_413_before_it_is_decoded(server):
    before = stored(server)
    body = assert_error(post_image(server, png(size=(1920, 1200))), 413, "too_large")
    assert body["error"]["message"] == "image is 1920x1200 pixels; at most 2.1 megapixels"
    assert stored(server) == before


def test_forms_that_take_no_image_keep_the_small_body_limit(server):
    browser = sign_in(server)
    page = browser.get(server.url, timeout=10).text
    before = stored(server)
    response = browser.post(server.api("/manual"), timeout=10, data={
        "csrf_token": csrf_token(page), "document_class": "P", "issuing_country": "UTO",
        "document_number": "L898902C3", "surname": "E" * (100 * 1024), "date_of_birth": "1974-08-12"})
    assert response.status_code == 413 and "a form may be at most 64 KiB" in response.text
    assert stored(server) == before


def test_multipart_without_an_image_field_is_400(server):
    assert_error(post_image(server, png(), field="photo"), 400, "missing_image")


# -- status, events, polling ------------------------------------------------------


def test_status_gives_list_versions_freshness_outbox_and_journal_size(server):
    status = server.status()
    nofly = status["lists"][NOFLY]
    assert nofly["version"] == 1 and len(nofly["digest"]) == 64 and nofly["in_scope"] is True
    assert "token_key" not in json.dumps(status)
    assert status["freshness"]["stale"] is False
    assert 0 <= status["freshness"]["age_seconds"] < 3600
    assert status["outbox"]["depth"] >= 0
    assert status["journal"]["records"] == status["journal"]["head_seq"]


def read_events(lines, count: int) -> list[tuple[int, dict]]:
    """The next ``count`` SSE events as (id, data), from one iterator over the stream's lines."""
    events, event_id, data = [], None, None
    for line in lines:
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            events.append((event_id, data))
            event_id, data = None, None
            if len(events) == count:
                return events
    raise AssertionError(f"stream ended after {len(events)} events")


def test_events_replay_after_last_event_id_then_stream_new_scans(server):
    first = server.scan(sample("licence-ca.txt")).json()["seq"]
    second = server.scan(sample("passport-td3.txt")).json()["seq"]
    with requests.get(server.api("/api/events"), stream=True, timeout=(5, 10),
                      headers={**bearer(server), "Last-Event-ID": str(first - 1)}) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        # chunk_size=None: hand over data as it arrives, never wait to fill a buffer.
        lines = stream.iter_lines(chunk_size=None, decode_unicode=True)
        replayed = read_events(lines, 2)
        assert [seq for seq, _ in replayed] == [first, second]
        assert [e["verdict"] for _, e in replayed] == ["CLEAR", "DENY"]
        assert all(seq == e["seq"] for seq, e in replayed)
        # Events carry the masked audit record, never the parsed document.
        assert "document" not in replayed[1][1] and "L898902C3" not in json.dumps(replayed[1][1])
        third = server.scan(sample("licence-on.txt")).json()["seq"]
        [(seq, event)] = read_events(lines, 1)
        assert seq == third and event["verdict"] == "REFER"


def test_event_streams_are_capped_and_a_closed_one_frees_its_slot_at_once(server):
    from appliance.web.api import MAX_STREAMS

    def open_stream():
        return requests.get(server.api("/api/events"), stream=True, timeout=(5, 10), headers=bearer(server))

    streams = []
    try:
        for _ in range(MAX_STREAMS + 1):
            streams.append(open_stream())
            if streams[-1].status_code != 200:
                break
        assert_error(streams[-1], 503, "busy")
        assert streams[-1].headers["Retry-After"]
        assert len(streams) <= MAX_STREAMS + 1
    finally:
        for stream in streams:
            stream.close()
    deadline = time.monotonic() + 5
    while True:  # each server thread notices its client left within about a second
        with open_stream() as again:
            if again.status_code == 200:
                break
        assert time.monotonic() < deadline, "closed streams still hold their slots"
        time.sleep(0.2)


def test_events_refuse_a_last_event_id_that_is_not_a_seq(server):
    response = requests.get(server.api("/api/events"), timeout=10,
                            headers={**bearer(server), "Last-Event-ID": "abc"})
    assert_error(response, 400, "bad_cursor")


def test_polling_returns_the_scans_after_a_seq(server):
    seq = server.scan(sample("licence-ca.txt")).json()["seq"]
    body = requests.get(server.api(f"/api/scans?after={seq - 1}"), headers=bearer(server), timeout=10).json()
    assert [e["seq"] for e in body["events"]] == [seq]
    assert body["last_seq"] == seq and body["head_seq"] >= seq
    assert_error(requests.get(server.api("/api/scans?after=-1"), headers=bearer(server), timeout=10),
                 400, "bad_cursor")


# -- the HTML side, over HTTP ---------------------------------------------------


def test_counter_pages_need_a_signed_in_operator(server):
    for path in ("/", "/live", "/flag"):
        response = requests.get(server.api(path), allow_redirects=False, timeout=10)
        assert response.status_code == 302, path
        assert "/signin" in response.headers["Location"]


def test_html_forms_refuse_a_post_without_the_csrf_token(server):
    browser = sign_in(server)
    before = stored(server)
    response = browser.post(server.api("/manual"), timeout=10, data={
        "document_class": "P", "issuing_country": "UTO", "document_number": "L898902C3",
        "surname": "ERIKSSON", "date_of_birth": "1974-08-12"})
    assert response.status_code == 400
    assert stored(server) == before


def test_photo_upload_on_the_screen_shows_its_verdict(server):
    browser = sign_in(server)
    page = browser.get(server.url, timeout=10).text
    response = browser.post(server.api("/image"), timeout=30, data={"csrf_token": csrf_token(page)},
                            files={"image": ("frame.png", sample("licence-ca.png"), "image/png")})
    assert re.search(r"/\?scan=\d+$", response.url)
    assert 'data-verdict="CLEAR"' in response.text and "camera" in response.text
    assert "RIVERA" in response.text


def test_photo_without_a_barcode_on_the_screen_says_so(server):
    browser = sign_in(server)
    before = stored(server)
    page = browser.get(server.url, timeout=10).text
    response = browser.post(server.api("/image"), timeout=30, data={"csrf_token": csrf_token(page)},
                            files={"image": ("frame.png", png(), "image/png")})
    assert response.status_code == 200 and "no barcode was found" in response.text
    assert stored(server) == before


def test_five_wrong_pins_lock_the_operator_out(server):
    session = requests.Session()
    statuses = []
    for pin in ["0000"] * 5 + ["8642"]:  # the last one is right, but too late
        page = session.get(server.api("/signin"), timeout=10)
        response = session.post(server.api("/signin"), timeout=10, data={
            "csrf_token": csrf_token(page.text), "operator": "agent-7", "pin": pin})
        statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]


def flag_form(page: str, **fields: str) -> dict:
    """The flag form as the page rendered it (csrf token, report id), with a valid incident."""
    report_id = re.search(r'id="report_id" name="report_id" type="hidden" value="([^"]+)"', page).group(1)
    return {
        "csrf_token": csrf_token(page), "report_id": report_id, "category": "threat_or_verbal_abuse",
        "narrative": "Shouted at the agent and threatened staff at the counter.",
        "flight": "LH 863", "flight_date": "2026-11-28", "surname": "ERIKSSON", "given_names": "ANNA",
        **fields,
    }


def strip_csrf(html: str) -> str:
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", html)


def file_report(browser: requests.Session, server) -> str:
    form = flag_form(browser.get(server.api("/flag"), timeout=10).text)
    response = browser.post(server.api("/flag"), data=form, timeout=10)
    assert response.url.endswith(f"/reports/{form['report_id']}"), response.text[:300]
    return form["report_id"]


def test_flag_report_is_queued_once_even_when_submitted_twice(server):
    browser = sign_in(server)  # agent-17, a reporter
    server.scan(sample("boarding-pass.txt"))
    depth = server.status()["outbox"]["depth"]
    page = browser.get(server.api("/flag"), timeout=10).text
    assert 'value="ERIKSSON"' in page  # prefilled from the last scan
    form = flag_form(page)
    first = browser.post(server.api("/flag"), data=form, timeout=10)
    again = browser.post(server.api("/flag"), data=form, timeout=10)
    assert first.url.endswith(f"/reports/{form['report_id']}") and again.url == first.url
    assert 'data-state="queued"' in first.text
    assert server.status()["outbox"]["depth"] == depth + 1


def test_operator_who_is_not_a_reporter_cannot_open_or_post_the_flag_form(server):
    browser = sign_in(server, "agent-42")
    screen = browser.get(server.url, timeout=10).text
    assert 'id="flag-link"' not in screen
    assert "Only reporters can flag a passenger; ask a supervisor." in screen
    page = browser.get(server.api("/flag"), timeout=10)
    assert page.status_code == 403
    assert "Only reporters can flag a passenger; ask a supervisor." in page.text
    assert "ERIKSSON" not in page.text and "report-item" not in page.text
    depth = server.status()["outbox"]["depth"]
    # A well-formed post with a valid CSRF token (from the screen) is refused too.
    form = {"csrf_token": csrf_token(screen), "report_id": "0f8e2f43-2b7a-4a2c-9d0a-6c1f4b9e7d21",
            "category": "intoxication", "narrative": "A narrative long enough to pass the length check.",
            "flight": "LH 863", "flight_date": "2026-11-28", "surname": "ERIKSSON"}
    posted = browser.post(server.api("/flag"), data=form, allow_redirects=False, timeout=10)
    assert posted.status_code == 403
    assert "Only reporters can flag a passenger; ask a supervisor." in posted.text
    assert server.status()["outbox"]["depth"] == depth


def test_a_report_is_shown_and_listed_only_to_the_reporter_who_filed_it(server):
    author = sign_in(server, "agent-17")
    report_id = file_report(author, server)
    page = author.get(server.api(f"/reports/{report_id}"), timeout=10)
    assert page.status_code == 200 and "ERIKSSON" in page.text
    assert f'data-report-id="{report_id}"' in author.get(server.api("/flag"), timeout=10).text

    other_reporter = sign_in(server, "agent-23")
    not_a_reporter = sign_in(server, "agent-42")
    for browser in (other_reporter, not_a_reporter):
        response = browser.get(server.api(f"/reports/{report_id}"), timeout=10)
        never_filed = browser.get(server.api("/reports/3c5e4f1a-9b2d-4e6f-8a7c-1d2e3f4a5b6c"), timeout=10)
        # The same answer as for an id never filed: nothing tells that it exists.
        assert response.status_code == never_filed.status_code == 404
        assert strip_csrf(response.text) == strip_csrf(never_filed.text)
        assert "ERIKSSON" not in response.text
    their_flag_page = other_reporter.get(server.api("/flag"), timeout=10).text
    assert report_id not in their_flag_page and "report-item" not in their_flag_page
    # Reusing the id in a form of one's own queues nothing and does not confirm the id either.
    reuse = other_reporter.post(server.api("/flag"), timeout=10,
                                data=flag_form(their_flag_page, report_id=report_id))
    assert reuse.status_code == 400 and "already sent with other details" in reuse.text
    assert reuse.text.count(report_id) == 1  # only echoed back in the hidden field it came in
    # agent-23's own report is listed for agent-23, and not for agent-17.
    their_report = file_report(other_reporter, server)
    assert their_report in other_reporter.get(server.api("/flag"), timeout=10).text
    assert their_report not in author.get(server.api("/flag"), timeout=10).text


def test_flag_form_offers_only_the_closed_list_of_categories(server):
    browser = sign_in(server)
    form = flag_form(browser.get(server.api("/flag"), timeout=10).text, category="other")
    depth = server.status()["outbox"]["depth"]
    assert browser.post(server.api("/flag"), data=form, timeout=10).status_code == 400
    assert server.status()["outbox"]["depth"] == depth


# -- restart ---------------------------------------------------------------------


def test_restart_keeps_the_journal_and_replays_it_masked(tmp_path):
    data_dir = make_data_dir(tmp_path / "device")
    first = start_server(data_dir)
    try:
        seq = first.scan(sample("passport-td3.txt")).json()["seq"]
    finally:
        first.stop()
    second = start_server(data_dir)
    try:
        events = requests.get(second.api(f"/api/scans?after={seq - 1}"), headers=bearer(second),
                              timeout=10).json()["events"]
        assert [(e["seq"], e["verdict"], e["masked_document_number"]) for e in events] == \
            [(seq, "DENY", "******2C3")]
        assert second.scan(sample("licence-ca.txt")).json()["seq"] == seq + 1
    finally:
        second.stop()
    with Journal(data_dir) as journal:
        assert journal.verify().ok


# -- route declarations (in process: the app's own table) ---------------------------


EXPECTED_ACCESS = {
    "static": "public", "auth.signin": "public",
    "auth.signout": "operator", "counter.screen": "operator", "counter.live": "operator",
    "counter.manual": "operator", "counter.image": "operator", "counter.flag": "reporter",
    "counter.report": "operator",
    "api.scan": "scanner", "api.status": "reader", "api.events": "reader", "api.scans": "reader",
    "metrics.metrics": "metrics",
}


def test_every_route_declares_who_may_call_it_and_the_docs_list_them(tmp_path):
    from appliance.config import load_config
    from appliance.web import access, create_app

    app = create_app(load_config(make_data_dir(tmp_path / "device")))
    try:
        declared = {endpoint: access.access_of(app, endpoint) for endpoint in app.view_functions}
        assert declared == EXPECTED_ACCESS
        docs = (REPO / "docs" / "counter.md").read_text()
        for rule in app.url_map.iter_rules():
            if rule.endpoint != "static":
                methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
                for method in methods:
                    row = f"| `{method} {rule.rule}` | {declared[rule.endpoint]} |"
                    assert row in docs, f"docs/counter.md lacks the row {row}"
    finally:
        app.extensions["gatecheck"].close()


def test_an_app_with_an_undeclared_route_refuses_to_start():
    from flask import Flask

    from appliance.web import access

    app = Flask(__name__)
    app.add_url_rule("/open", "open", lambda: "")
    with pytest.raises(RuntimeError, match="open"):
        access.install(app)


def test_a_device_that_grants_nobody_refuses_the_flag_form_to_every_operator(tmp_path):
    from appliance.config import load_config
    from appliance.web import create_app

    app = create_app(load_config(make_data_dir(tmp_path / "device", reporters="[]")),
                     test_config={"WTF_CSRF_ENABLED": False})
    try:
        for operator, pin in OPERATORS.items():
            client = app.test_client()
            assert client.post("/signin", data={"operator": operator, "pin": pin}).status_code == 302
            response = client.get("/flag")
            assert response.status_code == 403, operator
            assert "Only reporters can flag a passenger; ask a supervisor." in response.get_data(as_text=True)
    finally:
        app.extensions["gatecheck"].close()
