"""One scan per presentation: a code held in front of a camera is seen in every frame.

A camera decodes the same licence 5-30 times a second for as long as it is in
view, and misses it in the odd frame (motion blur, a glare). The counter wants
one verdict per presentation: a payload is a *new* scan only when it has not
been seen for ``hold`` seconds. Sightings closer together than that are the
same presentation, however long it lasts; a gap of ``hold`` or more (the card
taken away, or another card shown in between long enough) starts a new one.

Pure: the caller passes the time of each sighting (the monotonic clock for a
live camera, the frame's own timestamp for a video file), so the rule is
tested with plain numbers.
"""

from __future__ import annotations

from collections import OrderedDict

#: A code must be out of view this long before showing it again counts (seconds).
DEFAULT_HOLD_SECONDS = 1.0
#: Payloads remembered at once; a counter shows one document at a time.
MAX_TRACKED = 16


class Deduper:
    """Decides, per sighting, whether a payload starts a new presentation."""

    def __init__(self, hold: float = DEFAULT_HOLD_SECONDS, *, max_tracked: int = MAX_TRACKED) -> None:
        if not hold > 0:
            raise ValueError(f"hold must be a positive number of seconds, got {hold!r}")
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")
        self.hold = float(hold)
        self.max_tracked = max_tracked
        self._last_seen: OrderedDict[bytes, float] = OrderedDict()

    def seen(self, payload: bytes, now: float) -> bool:
        """Record a sighting at ``now``; True when it is a new presentation (emit a scan).

        A clock that goes backwards (a looped video file restarting at 0)
        is taken as a new presentation rather than an endless hold.
        """
        self._forget_before(now)
        last = self._last_seen.pop(payload, None)
        self._last_seen[payload] = now
        while len(self._last_seen) > self.max_tracked:
            self._last_seen.popitem(last=False)
        return last is None or not (0 <= now - last < self.hold)

    def _forget_before(self, now: float) -> None:
        """Drop payloads out of view for a whole hold: they would count again anyway."""
        for payload, last in list(self._last_seen.items()):
            if 0 <= now - last < self.hold:
                continue
            del self._last_seen[payload]

    def __len__(self) -> int:
        return len(self._last_seen)
