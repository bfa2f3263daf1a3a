"""The agent's snapshot path: stream a full list to disk, verify it, install it as a new store generation.

A 50 M-token snapshot is most of a gigabyte on the wire; decoded into
Python objects it would need tens of gigabytes, and recomputing its digest
element by element costs ~10 µs each (nine minutes on one core). So:

1. the answer is read frame by frame (sync/framing.py ``FrameReader``); a
   snapshot frame's envelope is checked first (signature, time, version
   chain, ``payload_size`` within ``max_snapshot_bytes``), then its payload
   is streamed to ``<data dir>/.snapshot-<list>.download`` (0600), hashed on
   the way, under a byte limit of exactly the signed size, after a free-disk
   check;
2. ``TrustedSet.verify_streamed`` compares size and SHA-256 with the signed
   ones; nothing in the file is parsed before that;
3. the payload carries the list's 2048-byte digest lanes: their SHA-256 must
   be the envelope's signed post-state checksum (``confirm``), so the device
   needs no O(n) digest of the records;
4. the header names the token key its tokens are under (its hash). When
   that is not the key the store holds, the list was re-keyed
   (registry/rekey.py): the new key is fetched and must hash to the signed
   header's value (sync/token_keys.py), or the snapshot is refused whole;
5. the records go, block by block, into ``SnapshotStore.install_list``: a
   new store generation built in one pass and swapped in atomically, with
   the new key in the same generation, so a lookup uses the old key with
   the old tokens or the new key with the new tokens, never a mix.

The trade-off of step 3: the device trusts that the registry's records and
lanes agree, and does not prove that its install reproduced them. A bug
there surfaces only when a later delta's digest check fails (which then
fetches a fresh snapshot). ``audit_list`` is the explicit O(n) check
(``gatecheck sync verify``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from appliance.records import Batch
from appliance.snapshot import SnapshotStore
from sync.agent_state import AgentState, ListRecord
from sync.digest import StateDigest
from sync.envelope import Kind, parse_envelope
from sync.errors import MalformedEnvelope, MixAndMatch, SyncError
from sync.framing import FRAME_UPDATE, FrameReader
from sync.identity import token_key_hash, token_key_id
from sync.snapshot_wire import SnapshotReader
from sync.token_keys import TokenKeyRefused, check_key
from sync.trust import TrustedListState, TrustedSet

log = logging.getLogger("gatecheck.sync")

DOWNLOAD_PREFIX = ".snapshot-"
DOWNLOAD_SUFFIX = ".download"
#: The new store file is estimated at twice the payload (store ~21.5 bytes a
#: token, wire ~15-17), on top of the payload itself and the old store file.
STORE_PER_PAYLOAD_BYTE = 2


class InsufficientDisk(SyncError):
    """Not enough free disk for a snapshot's download and the new store file; nothing was fetched."""

    code = "insufficient_disk"


@dataclass(frozen=True)
class Download:
    """A snapshot payload on disk, with the size and SHA-256 taken while it arrived."""

    path: Path
    size: int
    sha256: bytes

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _is_snapshot(envelope: bytes) -> bool:
    try:
        return parse_envelope(envelope).kind is Kind.SNAPSHOT
    except SyncError:
        return False  # verify_update refuses it later, with its reason


def read_answer(response, reader_limit: int, download,
                progress: Callable[[], None] | None = None) -> list[tuple[bytes, bytes | Download]]:
    """Every frame of an updates answer, read to its end before anything is applied.

    Deltas and heartbeats stay in memory (the answer's byte limit bounds
    them); a snapshot payload goes through ``download(envelope, size,
    frames)``. A truncated or padded answer is refused whole, and the
    downloads it made are deleted. ``progress`` is called before each read
    (the agent's watchdog ping: a slow link takes a while over a big delta).
    """
    def read_pinging(size: int) -> bytes:
        progress()
        return response.read(size)

    frames = FrameReader(response.read if progress is None else read_pinging, max_envelope_bytes=reader_limit)
    out: list[tuple[bytes, bytes | Download]] = []
    try:
        while (frame := frames.next_frame()) is not None:
            kind, envelope, size = frame
            if kind != FRAME_UPDATE:
                raise MalformedEnvelope(f"an updates answer carries a key frame (kind {kind})")
            if size and _is_snapshot(envelope):
                if any(isinstance(p, Download) for _, p in out):
                    raise MalformedEnvelope("an updates answer carries more than one snapshot")
                out.append((envelope, download(envelope, size, frames)))
            else:
                out.append((envelope, frames.read_payload()))
    except BaseException:
        discard(out)
        raise
    return out


def discard(frames: list[tuple[bytes, bytes | Download]]) -> None:
    for _, payload in frames:
        if isinstance(payload, Download):
            payload.discard()


def check_disk(store: SnapshotStore, list_id: str, payload_size: int, reserve: int) -> None:
    """Room for the download, the new store file and ``reserve`` more, or one readable line why not."""
    directory = store.path.parent
    free = shutil.disk_usage(directory).free
    store_bytes = sum(p.stat().st_size for p in (store.file, store.file.with_name(store.file.name + "-wal"))
                      if p.exists())
    need = payload_size * (1 + STORE_PER_PAYLOAD_BYTE) + store_bytes + reserve
    if free < need:
        raise InsufficientDisk(
            f"list {list_id}: not enough free disk for a {payload_size / 2**20:,.0f} MiB snapshot:"
            f" about {need / 2**20:,.0f} MiB needed in {directory} (download, new store file and"
            f" reserve), {free / 2**20:,.0f} MiB free")


def _with_progress(blocks, progress: Callable[[], None] | None):
    for block in blocks:
        yield block
        if progress is not None:
            progress()


def remove_stale_downloads(directory: Path) -> None:
    """Downloads left by an agent that was killed (a running one deletes its own)."""
    for stale in directory.glob(f"{DOWNLOAD_PREFIX}*{DOWNLOAD_SUFFIX}"):
        stale.unlink(missing_ok=True)


def download_payload(frames: FrameReader, directory: Path, list_id: str, size: int,
                     progress: Callable[[], None] | None = None) -> Download:
    """Stream the current frame's payload (exactly ``size`` bytes) to a 0600 file, hashing it.

    Stale files of a killed agent were removed when the list's sync began.
    ``progress`` is called after each chunk (the agent's watchdog ping; it may
    raise to abandon the download, which deletes the file).
    """
    path = directory / f"{DOWNLOAD_PREFIX}{list_id}{DOWNLOAD_SUFFIX}"
    digest = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in frames.payload_chunks():
                digest.update(chunk)
                fh.write(chunk)
                if progress is not None:
                    progress()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Download(path, size, digest.digest())


def install_snapshot(store: SnapshotStore, state: AgentState, trusted: TrustedSet, record: ListRecord,
                     envelope: bytes, download: Download, *, max_entries: int, now: float,
                     fetch_key: Callable[[str], bytes] | None = None,
                     progress: Callable[[], None] | None = None) -> tuple[ListRecord, int]:
    """Verify a downloaded snapshot against the signed envelope and install it; returns (new record, tokens).

    Order: size and SHA-256 of the whole file (verify_streamed), then the
    header's list, version and lanes (SHA-256 of the lanes = the signed
    checksum), then the token key (a re-keyed list's new key, from
    ``fetch_key(list_id)``, must hash to the header's), and only then the
    records, straight into a new store generation. Any failure leaves the
    store and sync.db as they were. ``progress`` is called after each block
    of records goes in (the agent's watchdog ping).
    """
    list_id = record.state.list_id
    update = trusted.verify_streamed(record.state, envelope, payload_size=download.size,
                                     payload_sha256=download.sha256, now=now)
    env = update.envelope
    with open(download.path, "rb") as fh:
        reader = SnapshotReader(fh, max_entries=max_entries)
        header = reader.header
        if (header.list_id, header.version) != (env.list_id, env.to_version):
            raise MixAndMatch(f"snapshot payload is {header.list_id} version {header.version}, "
                              f"its envelope {env.list_id} version {env.to_version}")
        new_state = trusted.confirm(record.state, update, header.checksum)  # DigestMismatch: wrong lanes
        info = store.get_list(list_id)
        new_key = None
        if token_key_hash(info.token_key) != header.token_key_hash:
            if fetch_key is None:
                raise TokenKeyRefused(f"snapshot of version {env.to_version} refused: its tokens are under token key"
                                      f" {header.token_key_hash[:8].hex()}, not the store's {token_key_id(info.token_key)},"
                                      " and there is no way to fetch the new key")
            try:
                fetched = fetch_key(list_id)
            except TokenKeyRefused as exc:
                raise TokenKeyRefused(f"snapshot of version {env.to_version} refused: its tokens are under a new token"
                                      f" key, {header.token_key_hash[:8].hex()}, and {exc.message};"
                                      " the store keeps the state it had") from None
            new_key = check_key(list_id, env.to_version, fetched, header.token_key_hash)
            log.warning("list %s was re-keyed: token key %s -> %s with version %d", list_id,
                        token_key_id(info.token_key), token_key_id(new_key), env.to_version)
        batch = Batch(list_id, info.version, env.to_version, add_clearances=tuple(reader.clearances),
                      state_digest=env.post_state_digest, signed_at=_utc(env.issued_at),
                      valid_until=_utc(env.valid_until), token_key=new_key)
        state.stage(ListRecord(new_state, header.lanes))
        try:
            tokens = store.install_list(batch, _with_progress(reader.blocks(), progress))
        except BaseException:
            state.discard_staged(list_id)
            raise
    return state.commit_staged(list_id), tokens


@dataclass(frozen=True)
class Audit:
    """The outcome of recomputing a list's digest from the store (O(n))."""

    list_id: str
    version: int
    entries: int
    store_checksum: bytes
    held_checksum: bytes | None

    @property
    def ok(self) -> bool:
        return self.held_checksum == self.store_checksum


def audit_list(store: SnapshotStore, state: AgentState, list_id: str, *, adopt: bool = False) -> Audit:
    """Recompute the list's digest from every entry and clearance the store holds; compare it with sync.db.

    Costs ~10 µs an element (minutes at 50 M). With ``adopt``, a mismatch
    replaces the held lanes with the store's, so the next signed digest (a
    delta or heartbeat) fails and the agent fetches a fresh snapshot.
    """
    counted = [0]

    def elements():
        for element in store.iter_entries(list_id):
            counted[0] += 1
            yield element
        for element in store.iter_clearances(list_id):
            counted[0] += 1
            yield element

    with store.read():  # one consistent view: the version and every element of it
        version = store.get_list(list_id).version
        digest = StateDigest.of(elements())
    record = state.get(list_id)
    held = StateDigest.from_bytes(record.lanes).checksum() if record.state.version == version else None
    audit = Audit(list_id, version, counted[0], digest.checksum(), held)
    if adopt and not audit.ok:
        state.save(ListRecord(TrustedListState(list_id, version, digest.checksum()), digest.to_bytes()))
    return audit
