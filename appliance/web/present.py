"""What the counter screen shows for a verdict, as plain values for the templates.

Each verdict has a colour, an icon of its own shape, a word and a sound, so
colour is never the only cue (WCAG 2.1 SC 1.4.1 "Use of Color"). Times are
shown in the device's local time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from appliance.journal import JournalRecord
from appliance.records import ListInfo
from appliance.web.state import Scan


@dataclass(frozen=True)
class VerdictStyle:
    word: str
    icon: str  # name of the SVG symbol in templates/_icons.html
    headline: str  # what the agent does now
    sound: str  # the Web Audio pattern in static/counter.js


STYLES = {
    "CLEAR": VerdictStyle("CLEAR", "clear", "Proceed with check-in", "clear"),
    "REFER": VerdictStyle("REFER", "refer", "Call a supervisor before continuing", "refer"),
    "DENY": VerdictStyle("DENY", "deny", "Do not check in — follow the denial procedure", "deny"),
    "UNREADABLE": VerdictStyle("UNREADABLE", "unreadable", "Scan again, or type the document in", "unreadable"),
}

CHANNEL_WORDS = {"scanner": "scanner", "camera": "camera", "manual": "typed in"}

_TELL_DENY = ("I'm sorry, I can't check you in today. Your document appears on the {list_name}, "
              "kept by {authority} (reference {reference}). The counter can't change this decision; "
              "here is how you can ask for it to be reviewed.")
_TELL_REFER_PERSON = ("Please wait a moment: a supervisor needs to confirm a detail of your booking. "
                      "Do not mention any list until the supervisor has checked the identity.")
_TELL_REFER = "Please wait a moment: a supervisor will help you with your check-in."


def local(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone()


def clock(moment: datetime | None, now: datetime | None = None) -> str:
    """"14:02", or "26 Nov 14:02" when not today."""
    moment = local(moment)
    if moment is None:
        return "never"
    now = local(now or datetime.now(timezone.utc))
    if moment.date() == now.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%d %b %H:%M").lstrip("0")


def ago(seconds: float | None) -> str:
    """"just now", "3 min ago", "5 h ago", "2 days ago"."""
    if seconds is None:
        return "never verified"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def freshness_view(status: dict[str, Any]) -> dict[str, Any]:
    """The freshness line and the stale banner, from CounterState.status()."""
    fresh = status["freshness"]
    as_of = datetime.fromisoformat(fresh["as_of"]) if fresh["as_of"] else None
    return {
        "as_of_iso": fresh["as_of"],
        "clock": clock(as_of) if as_of else None,
        "ago": ago(fresh["age_seconds"]),
        "stale": fresh["stale"],
        "reason": fresh["reason"],
        "fail_closed": fresh["fail_closed"],
        "limit": f"{fresh['max_age_seconds'] / 3600:g} h",
    }


def _tell(match: dict[str, Any], info: ListInfo | None) -> str:
    if match["action"] == "DENY":
        return _TELL_DENY.format(list_name=match.get("list_name") or match["list"],
                                 authority=info.authority if info else "the listing authority",
                                 reference=match["reference"])
    if match.get("kind") == "person":
        return _TELL_REFER_PERSON
    return _TELL_REFER


def scan_view(scan: Scan | None, record: JournalRecord | None, lists: dict[str, ListInfo]) -> dict[str, Any] | None:
    """Everything the verdict panel and its side columns show for one scan.

    ``scan`` (held in memory) has the parsed document; a journal ``record``
    alone has only the masked audit view.
    """
    if scan is None and record is None:
        return None
    if scan is not None:
        data = scan.decision.to_dict()
        seq, at = scan.seq, scan.decision.decided_at
        document = data["document"]
    else:
        data = record.to_dict()  # type: ignore[union-attr]
        seq, at = record.seq, record.at  # type: ignore[union-attr]
        document = None
    style = STYLES[data["verdict"]]
    matches = []
    for match in data["matches"]:
        info = lists.get(match["list"])
        matches.append({
            **match,
            "list_name": match.get("list_name") or (info.name if info else match["list"]),
            "authority": info.authority if info else None,
            "legal_basis": info.legal_basis if info else None,
            "tell": _tell(match, info),
            "redress": match.get("redress") or (info.redress if info else "") or
            "Ask the listing authority for a review, quoting the reference.",
        })
    return {
        "seq": seq,
        "verdict": data["verdict"],
        "style": style,
        "clock": clock(at),
        "at_iso": at.isoformat(),
        "channel": CHANNEL_WORDS.get(data["channel"] or "", data["channel"] or "unknown"),
        "operator": data["operator"],
        "reasons": data["reasons"],
        "notes": data["notes"],
        "matches": matches,
        "document": document,
        "error": data.get("error"),
        "masked_document_number": data["masked_document_number"],
        "held": scan is not None,
        "expired": bool(document and document.get("expiry_date")
                        and document["expiry_date"] < at.date().isoformat()),
    }


def history_row(record: JournalRecord) -> dict[str, Any]:
    style = STYLES[record.verdict]
    return {
        "seq": record.seq,
        "verdict": record.verdict,
        "style": style,
        "clock": clock(record.at),
        "channel": CHANNEL_WORDS.get(record.channel or "", record.channel or ""),
        "masked_document_number": record.masked_document_number or "—",
        "reason": record.reasons[0] if record.reasons else "",
    }
