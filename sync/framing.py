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
    return (struct.pack(">BI", FRAME_UPDATE, len(envelope)) + envelope
            + _U64.pack(len(payload)) + payload)


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
