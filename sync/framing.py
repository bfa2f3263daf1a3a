"""The framing of the registry's binary answers (docs/registry-api.md).

A body is a run of frames: kind (u8), then a u32 length and that many bytes
(an envelope, a key certificate or a revocation), and for an update frame a
u64 length and the payload. The registry builds frames and the agent parses
them; both use this one module.
"""

from __future__ import annotations

import struct

from sync.errors import MalformedEnvelope

FRAME_UPDATE, FRAME_CERT, FRAME_REVOCATION = 1, 2, 3
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def frame_update(envelope: bytes, payload: bytes) -> bytes:
    """One signed update: its envelope and its payload (empty for a heartbeat)."""
    return frame_update_head(envelope, len(payload)) + payload


def frame_update_head(envelope: bytes, payload_size: int) -> bytes:
    """An update frame up to its payload, for a payload streamed after it (a snapshot file)."""
    return struct.pack(">BI", FRAME_UPDATE, len(envelope)) + envelope + _U64.pack(payload_size)


def frame_key_statement(kind: int, data: bytes) -> bytes:
    """A root-signed key certificate (FRAME_CERT) or revocation (FRAME_REVOCATION)."""
    return struct.pack(">BI", kind, len(data)) + data


def parse_frames(body: bytes, *, max_envelope_bytes: int) -> list[tuple[int, bytes, bytes]]:
    """Split a binary body into (kind, envelope-or-statement, payload) frames.

    Framing (docs/sync-agent.md): kind u8, u32 length + bytes, and for kind 1
    a u64 length + payload. Anything truncated, padded or of unknown kind
    refuses the whole body: a truncated download applies nothing.
    """
    frames: list[tuple[int, bytes, bytes]] = []
    view = memoryview(body)
    pos = 0
    while pos < len(view):
        kind = view[pos]
        pos += 1
        if kind not in (FRAME_UPDATE, FRAME_CERT, FRAME_REVOCATION):
            raise MalformedEnvelope(f"frame of unknown kind {kind} at byte {pos - 1}")
        if pos + _U32.size > len(view):
            raise MalformedEnvelope("response is truncated inside a frame header")
        (size,) = _U32.unpack_from(view, pos)
        pos += _U32.size
        if size > max_envelope_bytes or pos + size > len(view):
            raise MalformedEnvelope(f"frame declares {size} bytes; the response is truncated or forged")
        first = bytes(view[pos:pos + size])
        pos += size
        payload = b""
        if kind == FRAME_UPDATE:
            if pos + _U64.size > len(view):
                raise MalformedEnvelope("response is truncated inside a payload length")
            (psize,) = _U64.unpack_from(view, pos)
            pos += _U64.size
            if pos + psize > len(view):
                raise MalformedEnvelope(f"payload declares {psize} bytes, only {len(view) - pos} arrived: truncated")
            payload = bytes(view[pos:pos + psize])
            pos += psize
        frames.append((kind, first, payload))
    return frames


class FrameReader:
    """Reads frames one at a time from a stream, so a payload can go to disk instead of memory.

    ``read(n)`` returns up to n bytes (b"" at the end). ``next_frame()``
    returns (kind, envelope-or-statement, payload size) or None at a clean
    end; the caller then reads exactly that many payload bytes with
    ``read_payload`` or ``payload_chunks`` before asking for the next frame.
    The same refusals as parse_frames: a truncated or padded body, or an
    unknown kind, is MalformedEnvelope.
    """

    def __init__(self, read, *, max_envelope_bytes: int) -> None:
        self._read = read
        self._max = max_envelope_bytes
        self._owed = 0

    def _exact(self, size: int, what: str) -> bytes:
        parts, left = [], size
        while left:
            chunk = self._read(left)
            if not chunk:
                raise MalformedEnvelope(f"response is truncated inside {what}")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def next_frame(self) -> tuple[int, bytes, int] | None:
        if self._owed:
            raise MalformedEnvelope("the previous frame's payload was not read")
        first = self._read(1)
        if not first:
            return None
        kind = first[0]
        if kind not in (FRAME_UPDATE, FRAME_CERT, FRAME_REVOCATION):
            raise MalformedEnvelope(f"frame of unknown kind {kind}")
        (size,) = _U32.unpack(self._exact(_U32.size, "a frame header"))
        if size > self._max:
            raise MalformedEnvelope(f"frame declares {size} bytes; the response is truncated or forged")
        data = self._exact(size, "a frame")
        if kind == FRAME_UPDATE:
            (self._owed,) = _U64.unpack(self._exact(_U64.size, "a payload length"))
        return kind, data, self._owed

    def read_payload(self) -> bytes:
        data = self._exact(self._owed, "a payload") if self._owed else b""
        self._owed = 0
        return data

    def payload_chunks(self, chunk: int = 1 << 20):
        """The current payload a chunk at a time (for a file on disk)."""
        while self._owed:
            data = self._read(min(chunk, self._owed))
            if not data:
                raise MalformedEnvelope(f"payload is truncated: {self._owed} bytes did not arrive")
            self._owed -= len(data)
            yield data
