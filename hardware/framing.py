"""Cutting a scanner's byte stream into payloads: by suffix, by idle time, or both.

A serial scanner (and a keyboard wedge, once its keys are decoded) delivers a
stream of bytes with no built-in message boundary. The scanner is programmed
to mark the end of each read, and the appliance must cut the stream at that
same mark, exactly, or an AAMVA payload reaches the parser torn in two.

Two marks are in use:

- a *suffix* the scanner appends after each read (CR, LF, CR LF, or any
  other byte string it can be programmed with, such as EOT 0x04);
- *idle time*: a read is over when no byte has arrived for ``idle_seconds``.

AAMVA DL/ID payloads contain LF (data element separator) and CR (segment
terminator) themselves (AAMVA DL/ID Card Design Standard 2020, D.12.3 header:
``@`` LF RS CR), so a CR or LF suffix cuts them apart. For AAMVA use idle-time
framing (the default) or a suffix the payload cannot contain (EOT, ETX, or a
multi-byte sequence); see docs/scanners.md.

This module is pure: it never reads a device or a clock. Callers pass each
chunk with the time it arrived, and call :meth:`Framer.poll` with the current
time to flush a read that has gone idle. The buffer never holds more than
``max_bytes``: a longer read is discarded whole and reported as
:class:`Dropped`, never passed on truncated.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Names the configuration may use for the usual suffixes.
SUFFIXES: dict[str, bytes | None] = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n", "none": None}
MAX_SUFFIX_BYTES = 8
DEFAULT_MAX_BYTES = 4096
#: USB CDC-ACM and 9600-baud RS-232 scanners send a read with gaps of a few
#: milliseconds at most; people present documents seconds apart.
DEFAULT_IDLE_SECONDS = 0.1


class FramingError(ValueError):
    """A framing option that cannot work; the message names the option."""


@dataclass(frozen=True)
class Framing:
    """How one source's stream is cut into payloads.

    - ``suffix``: bytes that end a read and are removed (``None``: no suffix).
    - ``prefix``: bytes removed from the start of a read when present (a
      scanner-programmed start marker such as STX); a read without it is kept.
    - ``idle_seconds``: a read also ends after this long with no new byte
      (``None``: only the suffix ends a read).
    - ``max_bytes``: a longer read is discarded and reported, never truncated.

    The default is idle-time framing with no suffix: safe for AAMVA, whose
    payloads contain CR and LF.
    """

    suffix: bytes | None = None
    prefix: bytes | None = None
    idle_seconds: float | None = DEFAULT_IDLE_SECONDS
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.suffix is not None:
            if not isinstance(self.suffix, bytes) or not 1 <= len(self.suffix) <= MAX_SUFFIX_BYTES:
                raise FramingError(f"suffix must be 1 to {MAX_SUFFIX_BYTES} bytes or none, "
                                   f"not {self.suffix!r}")
        if self.prefix is not None:
            if not isinstance(self.prefix, bytes) or not 1 <= len(self.prefix) <= MAX_SUFFIX_BYTES:
                raise FramingError(f"prefix must be 1 to {MAX_SUFFIX_BYTES} bytes or none, "
                                   f"not {self.prefix!r}")
        if self.idle_seconds is not None and not 0 < self.idle_seconds <= 60:
            raise FramingError(f"idle_seconds must be above 0 and at most 60, "
                               f"not {self.idle_seconds!r}")
        if not isinstance(self.max_bytes, int) or not 16 <= self.max_bytes <= 1 << 20:
            raise FramingError(f"max_bytes must be an integer from 16 to {1 << 20}, "
                               f"not {self.max_bytes!r}")

    @property
    def ends_reads(self) -> bool:
        """True when the stream alone marks where a read ends (suffix or idle time)."""
        return self.suffix is not None or self.idle_seconds is not None

    def describe(self) -> str:
        parts = []
        if self.prefix is not None:
            parts.append(f"prefix {self.prefix!r}")
        if self.suffix is not None:
            parts.append(f"suffix {self.suffix!r}")
        if self.idle_seconds is not None:
            parts.append(f"idle {self.idle_seconds:g} s")
        return ", ".join(parts) or "no framing"


def parse_bytes_option(text: str) -> bytes | None:
    """A suffix or prefix as written in configuration.

    Accepts ``cr``, ``lf``, ``crlf``, ``none``, or hex bytes such as ``04`` or
    ``"02"`` / ``"0d 0a"`` (so EOT, STX, ETX can be named).
    """
    key = text.strip().lower()
    if key in SUFFIXES:
        return SUFFIXES[key]
    try:
        value = bytes.fromhex(key.replace("0x", " "))
    except ValueError:
        raise FramingError(f"{text!r} is not cr, lf, crlf, none or hex bytes like '04'") from None
    if not value:
        raise FramingError(f"{text!r} names no bytes")
    return value


@dataclass(frozen=True)
class Dropped:
    """A read that was not passed on, and why (one human-readable line)."""

    reason: str
    size: int


Item = bytes | Dropped


class Framer:
    """The incremental state of one stream; feed chunks, collect payloads.

    :meth:`feed` and :meth:`poll` return lists of complete payloads (``bytes``,
    prefix and suffix removed, never empty) and :class:`Dropped` reports, in
    stream order. Empty reads (two suffixes in a row) are skipped silently.
    """

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self._buffer = bytearray()
        self._overflow = 0  # bytes discarded from the current over-long read
        self._carry = b""  # while discarding: the last bytes, in case a suffix straddles chunks
        self._last_at: float | None = None  # arrival time of the newest buffered byte

    @property
    def pending(self) -> int:
        """Bytes of the unfinished read (including any already discarded)."""
        return len(self._buffer) + self._overflow

    def deadline(self) -> float | None:
        """When :meth:`poll` would flush the unfinished read (``None``: nothing to flush)."""
        if self.framing.idle_seconds is None or self._last_at is None or not self.pending:
            return None
        return self._last_at + self.framing.idle_seconds

    def feed(self, data: bytes, now: float) -> list[Item]:
        """Add a chunk that arrived at ``now``; return the reads it completed."""
        out: list[Item] = []
        if not data:
            return out
        # A gap before this chunk ended the previous read, whether or not the
        # caller polled in time: framing depends on arrival times, not on polling.
        out.extend(self.poll(now))
        suffix = self.framing.suffix
        if suffix is None:
            self._append(data)
        else:
            start = 0
            # The suffix may straddle chunks: search again from just before the new data.
            keep = len(suffix) - 1
            if self._overflow:
                carry, self._overflow = self._carry, self._overflow - len(self._carry)
            else:
                carry = _tail(bytes(self._buffer), keep)
                del self._buffer[len(self._buffer) - len(carry):]
            data = carry + data
            while True:
                at = data.find(suffix, start)
                if at < 0:
                    self._append(data[start:])
                    break
                self._append(data[start:at])
                out.extend(self._finish())
                start = at + len(suffix)
        self._last_at = now
        return out

    def poll(self, now: float) -> list[Item]:
        """Flush the unfinished read if it has been idle for ``idle_seconds``."""
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            return self._finish()
        return []

    def end(self) -> list[Item]:
        """End the unfinished read now (an out-of-band mark, e.g. a wedge's Enter key)."""
        return self._finish()

    def discard(self) -> int:
        """Forget the unfinished read (the device went away mid-read); return its size."""
        size = self.pending
        self._buffer = bytearray()
        self._overflow = 0
        self._carry = b""
        self._last_at = None
        return size

    def _append(self, data: bytes) -> None:
        keep = len(self.framing.suffix) - 1 if self.framing.suffix else 0
        if self._overflow:
            self._overflow += len(data)
            self._carry = _tail(self._carry + data, keep)
        elif len(self._buffer) + len(data) > self.framing.max_bytes:
            self._overflow = len(self._buffer) + len(data)
            self._carry = _tail(bytes(self._buffer) + data, keep)
            self._buffer = bytearray()
        else:
            self._buffer += data

    def _finish(self) -> list[Item]:
        buffer, overflow = bytes(self._buffer), self._overflow
        self._buffer = bytearray()
        self._overflow = 0
        self._carry = b""
        self._last_at = None
        if overflow:
            return [Dropped(f"read of {overflow} bytes exceeds max_bytes "
                            f"{self.framing.max_bytes}; discarded", overflow)]
        prefix = self.framing.prefix
        if prefix is not None and buffer.startswith(prefix):
            buffer = buffer[len(prefix):]
        return [buffer] if buffer else []


def _tail(data: bytes, keep: int) -> bytes:
    return data[len(data) - keep:] if keep > 0 else b""
