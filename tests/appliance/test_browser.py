"""The counter screen in real headless Chromium (Debian's package), driven by Playwright.

`gatecheck serve` runs as a subprocess; scans arrive through the JSON API as
the scanner daemon would send them, and must show up on the open page.
Skipped, with the reason, where /usr/bin/chromium is not installed
(.ci/run installs it).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from appliance.outbox import Outbox
from tests.appliance.conftest import DENY_REFERENCE, OPERATORS, sample, set_heartbeat

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed "
                                "(apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

SCREENSHOT = "/tmp/counter-deny.png"
TIMEOUT_MS = 10_000
# The verdict panel's colours (static/counter.css); each also has its own word and icon.
COLOURS = {
    "CLEAR": "rgb(20, 108, 46)",
    "REFER": "rgb(242, 183, 5)",
    "DENY": "rgb(179, 20, 27)",
    "UNREADABLE": "rgb(61, 74, 92)",
}


# What each verdict must play (static/counter.js, docs/counter.md): (waveform, Hz) per note.
TONES = {
    "CLEAR": [("sine", 880), ("sine", 1320)],
    "REFER": [("triangle", 660), ("triangle", 660)],
    "DENY": [("square", 520), ("square", 390), ("square", 260)],
    "UNREADABLE": [("sawtooth", 170), ("sawtooth", 170)],
}
# Records every oscillator the page starts, whether its output reaches the
# speakers (following connect() from it to the context's destination), and
# the context it plays in: proof that sound was made, not just chosen.
SOUND_SPY = """
window.__sound = {tones: [], context: null};
(function () {
  var realConnect = AudioNode.prototype.connect;
  AudioNode.prototype.connect = function (target) {
    (this.__to = this.__to || []).push(target);
    return realConnect.apply(this, arguments);
  };
  function reaches(node, destination) {
    var seen = [], todo = [node];
    while (todo.length) {
      var n = todo.pop();
      if (n === destination) return true;
      if (seen.indexOf(n) >= 0) continue;
      seen.push(n);
      (n.__to || []).forEach(function (t) { todo.push(t); });
    }
    return false;
  }
  var realStart = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (when) {
    var ctx = this.context;
    window.__sound.context = ctx;
    window.__sound.tones.push({type: this.type, hz: this.frequency.value, state: ctx.state,
                               audible: reaches(this, ctx.destination),
                               late: (when || 0) < ctx.currentTime});
    return realStart.apply(this, arguments);
  };
})();
"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--autoplay-policy=no-user-gesture-required",  # as the counter kiosk runs it
        ])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(SOUND_SPY)
    page = context.new_page()
    page.goto(server.url)
    page.fill("#operator", "agent-17")
    page.fill("#pin", OPERATORS["agent-17"])
    page.click("button[type=submit]")
    page.wait_for_selector("#verdict")
    yield page
    context.close()


def wait_live(page) -> None:
    page.wait_for_selector("#connection[data-state=live]")


def panel(page) -> dict:
    return page.eval_on_selector("#verdict", """el => ({
        verdict: el.dataset.verdict,
        word: el.querySelector('.verdict-word').textContent.trim(),
        icon: el.querySelector('svg').dataset.icon,
        colour: getComputedStyle(el).backgroundColor,
        sound: document.body.dataset.lastSound,
    })""")


def tones(page) -> list[dict]:
    return page.evaluate("window.__sound.tones")


def traveller(page) -> dict:
    """The Traveller card: each fact's label -> text, and each check's class and text."""
    return page.eval_on_selector(".traveller", """el => ({
        facts: Object.fromEntries([...el.querySelectorAll('dl.facts > dt')].map(
            dt => [dt.textContent.trim(), dt.nextElementSibling.innerText.trim()])),
        checks: [...el.querySelectorAll('li.check')].map(li => [li.className, li.innerText.trim()]),
    })""")


def test_scans_posted_to_the_api_appear_through_sse_with_word_icon_colour_and_sound(page, server):
    wait_live(page)
    assert page.inner_text("#sound-toggle") == "Sound: on"
    page.evaluate("window.notReloaded = true")
    for payload, verdict in [
        (sample("licence-ca.txt"), "CLEAR"),
        (sample("licence-on.txt"), "REFER"),
        (b"NOT A DOCUMENT", "UNREADABLE"),
        (sample("passport-td3.txt"), "DENY"),
    ]:
        before = len(tones(page))
        seq = server.scan(payload).json()["seq"]
        page.wait_for_selector(f"#live[data-shown-seq='{seq}']")
        assert panel(page) == {"verdict": verdict, "word": verdict, "icon": verdict.lower(),
                               "colour": COLOURS[verdict], "sound": verdict.lower()}
        page.wait_for_function("n => window.__sound.tones.length >= n", arg=before + len(TONES[verdict]))
        played = tones(page)[before:]
        assert [(t["type"], t["hz"]) for t in played] == TONES[verdict]  # this verdict's notes, once
        assert all(t["state"] == "running" and t["audible"] and not t["late"] for t in played)
    # The context really renders: its clock runs on after the notes were started.
    clock = page.evaluate("window.__sound.context.currentTime")
    page.wait_for_function("t => window.__sound.context.currentTime > t", arg=clock)
    assert page.evaluate("window.notReloaded") is True  # no reload: the page updated itself
    match = page.locator(".match").first.text_content()
    assert DENY_REFERENCE in match
    assert "Tell the traveller" in match and "Redress" in match
    shown = traveller(page)
    assert shown["facts"]["Name"] == "ERIKSSON, ANNA MARIA"
    assert shown["facts"]["Number"] == "L898902C3"
    assert shown["facts"]["Date of birth"] == "1974-08-12"
    assert shown["facts"]["Expiry"] == "2012-04-15 EXPIRED"
    assert shown["checks"] == [["check check--ok", f"✓ {name}: passed"] for name in (
        "document number", "date of birth", "expiry date", "personal number", "composite")]
    assert page.locator(".history-row").count() >= 4
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_a_failed_check_digit_is_shown_as_failed_in_words_and_mark(page, server):
    wait_live(page)
    id_card = sample("idcard-td1.txt").replace(b"7408122F", b"7408125F")  # wrong birth-date digit
    seq = server.scan(id_card).json()["seq"]
    page.wait_for_selector(f"#live[data-shown-seq='{seq}']")
    assert panel(page)["verdict"] == "REFER"
    shown = traveller(page)
    assert shown["facts"]["Date of birth"] == "1974-08-12"
    assert shown["facts"]["Expiry"] == "2012-04-15 EXPIRED"
    assert shown["checks"] == [
        ["check check--ok", "✓ document number: passed"],
        ["check check--bad", "✗ date of birth: FAILED"],
        ["check check--ok", "✓ expiry date: passed"],
        ["check check--bad", "✗ composite: FAILED"],
    ]
    assert "document checks failed (date of birth, composite)" in page.locator(".reasons").inner_text()


def test_with_sound_turned_off_a_verdict_plays_nothing(page, server):
    wait_live(page)
    page.click("#sound-toggle")
    assert page.inner_text("#sound-toggle") == "Sound: off"
    before = len(tones(page))
    seq = server.scan(sample("passport-td3.txt")).json()["seq"]
    page.wait_for_selector(f"#live[data-shown-seq='{seq}']")
    assert panel(page)["verdict"] == "DENY"
    page.wait_for_timeout(500)  # longer than any note takes to be scheduled
    assert len(tones(page)) == before  # the verdict was chosen (lastSound) but no oscillator started
    page.click("#sound-toggle")
    assert page.inner_text("#sound-toggle") == "Sound: on"


def test_polling_takes_over_where_event_streams_are_unavailable(browser, server):
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script("delete window.EventSource")
    page = context.new_page()
    try:
        page.goto(server.url)
        page.fill("#operator", "agent-17")
        page.fill("#pin", OPERATORS["agent-17"])
        page.click("button[type=submit]")
        page.wait_for_selector("#connection[data-state=polling]")
        seq = server.scan(sample("licence-on.txt")).json()["seq"]
        page.wait_for_selector(f"#live[data-shown-seq='{seq}']")
        assert panel(page)["verdict"] == "REFER"
    finally:
        context.close()


def test_manual_entry_form_checks_a_typed_document(page):
    page.click("#manual-entry summary")
    page.select_option("#document_class", "P")
    page.fill("#issuing_country", "UTO")
    page.fill("#document_number", "L898902C3")
    page.fill("#surname", "ERIKSSON")
    page.fill("#given_names", "ANNA MARIA")
    page.fill("#date_of_birth", "1974-08-12")
    page.click("#manual-entry button[type=submit]")
    page.wait_for_selector("#verdict[data-verdict=DENY]")
    assert "typed in" in page.locator(".verdict-meta").inner_text()
    assert DENY_REFERENCE in page.locator(".match").first.inner_text()


def test_manual_entry_form_shows_what_is_missing(page):
    page.click("#manual-entry summary")
    page.fill("#issuing_country", "UTO")
    page.fill("#document_number", "L898902C3")
    page.click("#manual-entry button[type=submit]")
    assert page.locator("#manual-entry[open] .field--error #surname").count() == 1
    assert "This field is required" in page.locator("#surname-error").inner_text()


def test_flag_form_queues_a_report_prefilled_from_the_last_scan(page, server):
    wait_live(page)
    seq = server.scan(sample("boarding-pass.txt")).json()["seq"]
    page.wait_for_selector(f"#live[data-shown-seq='{seq}']")
    page.click("#flag-link")
    assert page.input_value("#surname") == "ERIKSSON"
    assert page.input_value("#flight") == "LH 863"
    page.select_option("#category", "crew_interference")
    page.fill("#narrative", "Refused to stow hand luggage and pushed past the gate agent.")
    page.click("#flag-form button[type=submit]")
    page.wait_for_selector("#report[data-state=queued]")
    assert page.locator(".state-word").inner_text() == "QUEUED"
    report_id = page.get_attribute("#report", "data-report-id")
    assert page.locator(f".report-item[data-report-id='{report_id}'][data-state=queued]").count() == 1
    # The sync agent (another process) delivers it; the page shows each state.
    with Outbox(server.data_dir) as outbox:
        outbox.mark_sent(report_id)
        page.reload()
        assert page.locator(".state-word").inner_text() == "SENT"
        outbox.mark_acknowledged(report_id)
        page.reload()
        assert page.locator(".state-word").inner_text() == "ACKNOWLEDGED"
        assert "ERIKSSON" not in page.locator("#report").inner_text()  # the device forgot who


def test_stale_banner_shows_when_the_lists_are_old_and_clear_becomes_refer(page, server):
    banner = page.locator("#stale-banner")
    assert banner.is_hidden()
    set_heartbeat(server.data_dir, datetime.now(timezone.utc) - timedelta(hours=30))
    try:
        page.reload()
        assert banner.is_visible()
        assert "LISTS OUT OF DATE" in banner.inner_text()
        assert "30 h ago" in banner.inner_text()
        assert "OUT OF DATE" in page.locator("#freshness").inner_text()
        wait_live(page)
        seq = server.scan(sample("licence-ca.txt")).json()["seq"]  # CLEAR when fresh
        page.wait_for_selector(f"#live[data-shown-seq='{seq}']")
        assert panel(page)["verdict"] == "REFER"  # fail closed
    finally:
        set_heartbeat(server.data_dir, datetime.now(timezone.utc))
    page.reload()
    assert banner.is_hidden()
    assert "just now" in page.locator("#freshness").inner_text()
