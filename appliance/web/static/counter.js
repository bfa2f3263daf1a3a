/* Gatecheck counter screen: live verdicts (SSE, polling fallback), freshness, sounds.
 *
 * No libraries and nothing fetched from elsewhere: everything comes from this
 * device. The server renders every piece of HTML; this script only asks for
 * the fragment of a new scan (/live?seq=N) when the event stream announces it.
 */
(function () {
  "use strict";

  var body = document.body;
  var STATUS_EVERY_MS = 30000;
  var AGO_EVERY_MS = 15000;
  var POLL_EVERY_MS = 2000;
  var SSE_FAILURES_BEFORE_POLLING = 3;

  /* ---------------------------------------------------------------- sound */
  // One pattern per verdict, different in pitch, timbre and rhythm, so the
  // verdict can be told apart without looking (and without colour).
  var PATTERNS = {
    clear: [{ f: 880, t: 0, d: 0.12, w: "sine" }, { f: 1320, t: 0.14, d: 0.18, w: "sine" }],
    refer: [{ f: 660, t: 0, d: 0.2, w: "triangle" }, { f: 660, t: 0.32, d: 0.2, w: "triangle" }],
    deny: [{ f: 520, t: 0, d: 0.22, w: "square" }, { f: 390, t: 0.26, d: 0.22, w: "square" },
           { f: 260, t: 0.52, d: 0.45, w: "square" }],
    unreadable: [{ f: 170, t: 0, d: 0.35, w: "sawtooth" }, { f: 170, t: 0.45, d: 0.35, w: "sawtooth" }]
  };
  var audio = null;
  var soundWanted = localStorage.getItem("gatecheck.sound") !== "off";
  var soundButton = document.getElementById("sound-toggle");

  function audioContext() {
    if (!audio) {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      audio = new Ctx();
    }
    return audio;
  }

  function showSoundState() {
    if (!soundButton) return;
    var on = soundWanted && audio && audio.state === "running";
    soundButton.textContent = on ? "Sound: on" : (soundWanted ? "Sound: tap to enable" : "Sound: off");
    soundButton.setAttribute("aria-pressed", on ? "true" : "false");
  }

  function play(pattern) {
    body.dataset.lastSound = pattern || "";
    var notes = PATTERNS[pattern];
    if (!notes || !soundWanted) return;
    var ctx = audioContext();
    if (!ctx) return;
    if (ctx.state === "suspended") ctx.resume().catch(function () {});
    var start = ctx.currentTime + 0.02;
    notes.forEach(function (n) {
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.type = n.w;
      osc.frequency.value = n.f;
      gain.gain.setValueAtTime(0.0001, start + n.t);
      gain.gain.exponentialRampToValueAtTime(0.3, start + n.t + 0.015);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + n.t + n.d);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start + n.t);
      osc.stop(start + n.t + n.d + 0.05);
    });
  }

  if (soundButton) {
    soundButton.addEventListener("click", function () {
      var ctx = audioContext();
      if (soundWanted && ctx && ctx.state === "running") {
        soundWanted = false;
      } else {
        soundWanted = true;
        if (ctx) ctx.resume().then(showSoundState).catch(function () {});
      }
      localStorage.setItem("gatecheck.sound", soundWanted ? "on" : "off");
      showSoundState();
    });
    if (soundWanted) audioContext();  // runs at once where the kiosk allows autoplay
    showSoundState();
    if (audio) audio.onstatechange = showSoundState;
  }
  window.gatecheckSound = play;

  /* ------------------------------------------------------------ freshness */
  function agoText(seconds) {
    if (seconds < 60) return "just now";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 48 * 3600) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " days ago";
  }

  function clockText(date) {
    var now = new Date();
    var hm = ("0" + date.getHours()).slice(-2) + ":" + ("0" + date.getMinutes()).slice(-2);
    if (date.toDateString() === now.toDateString()) return hm;
    return date.getDate() + " " + date.toLocaleString("en", { month: "short" }) + " " + hm;
  }

  function setAll(selector, text) {
    document.querySelectorAll(selector).forEach(function (el) { el.textContent = text; });
  }

  function refreshAgo() {
    var el = document.getElementById("freshness");
    if (!el || !el.dataset.asOf) return;
    var asOf = new Date(el.dataset.asOf);
    setAll("#freshness .ago, #stale-banner .ago", agoText((Date.now() - asOf.getTime()) / 1000));
  }

  function applyStatus(status) {
    var fresh = status.freshness;
    var el = document.getElementById("freshness");
    var banner = document.getElementById("stale-banner");
    if (!el) return;
    el.dataset.asOf = fresh.as_of || "";
    el.dataset.stale = fresh.stale ? "true" : "false";
    el.classList.toggle("freshness--stale", fresh.stale);
    setAll("#freshness .fresh-word", fresh.stale ? "OUT OF DATE" : "up to date");
    setAll("#freshness .as-of, #stale-banner .as-of", fresh.as_of ? clockText(new Date(fresh.as_of)) : "never");
    if (fresh.as_of) refreshAgo(); else setAll("#freshness .ago, #stale-banner .ago", "never verified");
    if (banner) banner.hidden = !fresh.stale;
  }

  function pollStatus() {
    if (!body.dataset.statusUrl) return;
    fetch(body.dataset.statusUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s) applyStatus(s); })
      .catch(function () {});
  }

  /* ---------------------------------------------------------- live scans */
  var lastSeq = parseInt(body.dataset.headSeq || "0", 10) || 0;
  var connection = document.getElementById("connection");

  function setConnection(state, text) {
    if (!connection) return;
    connection.dataset.state = state;
    connection.textContent = text;
  }

  function showScan(seq, verdict) {
    fetch(body.dataset.liveUrl + "?seq=" + encodeURIComponent(seq), { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.redirected || !r.ok) { window.location.reload(); return null; }  // signed out
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        var live = document.getElementById("live");
        var shown = parseInt((live && live.dataset.shownSeq) || "0", 10) || 0;
        if (!live || seq < shown) return;  // an older scan arriving late never hides a newer one
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#live");
        if (!fresh) return;
        live.replaceWith(fresh);
        play((verdict || fresh.dataset.verdict || "").toLowerCase());
      })
      .catch(function () {});
  }

  function onEvents(events) {
    if (!events.length) return;
    var newest = events[events.length - 1];
    lastSeq = Math.max(lastSeq, newest.seq);
    showScan(newest.seq, newest.verdict);
  }

  var pollTimer = null;
  function startPolling() {
    if (pollTimer || !body.dataset.scansUrl) return;
    setConnection("polling", "polling");
    pollTimer = setInterval(function () {
      fetch(body.dataset.scansUrl + "?after=" + lastSeq, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { if (data) onEvents(data.events); })
        .catch(function () { setConnection("offline", "no connection to the device"); });
    }, POLL_EVERY_MS);
  }

  function startEvents() {
    if (!body.dataset.eventsUrl) return;
    if (!window.EventSource) { startPolling(); return; }
    var failures = 0;
    var source = new EventSource(body.dataset.eventsUrl + "?after=" + lastSeq);
    source.onopen = function () { failures = 0; setConnection("live", "live"); };
    source.addEventListener("scan", function (e) {
      try { onEvents([JSON.parse(e.data)]); } catch (err) { /* a malformed event is skipped */ }
    });
    source.onerror = function () {
      failures += 1;
      if (failures >= SSE_FAILURES_BEFORE_POLLING || source.readyState === EventSource.CLOSED) {
        source.close();  // the browser gave up or keeps failing: fall back to polling
        startPolling();
      } else {
        setConnection("reconnecting", "reconnecting…");
      }
    };
  }

  /* ---------------------------------------------------------------- start */
  document.addEventListener("DOMContentLoaded", function () {
    refreshAgo();
    setInterval(refreshAgo, AGO_EVERY_MS);
    if (body.dataset.statusUrl) setInterval(pollStatus, STATUS_EVERY_MS);
    startEvents();
    var live = document.getElementById("live");
    if (live && live.dataset.sound && /[?&]scan=/.test(window.location.search)) play(live.dataset.sound);
  });
})();
