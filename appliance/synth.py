"""Synthetic snapshots for benchmarks and demos (`gatecheck snapshot synth`).

What a device would hold for ~N/2.5 listed people: per person one document
token and one or two person tokens (full name, and name without middle
names), all sharing the person's list, category, action, dates, redress and
case number. Tokens are random 96-bit values, which is what HMAC outputs look
like (sync/identity.py), so no names are generated at all.

Two parts: ``generate()`` is pure (a seed in, numpy arrays out, the same for
the same seed) and ``build_snapshot()`` writes them through
appliance/snapshot_bulk.py with an external sort: records are spilled into
partitions by their leading token bits, and each partition is sorted in
memory, so the build's memory does not grow with N (about 230 MB at 50 M
tokens, measured by bench/bench_snapshot.py).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from appliance import snapshot_codec as codec
from appliance.records import Action, ListInfo
from appliance.snapshot_bulk import BulkLoader

#: Records exactly as codec.RECORD lays them out: big-endian token halves
#: (so .tobytes() is the token), then little-endian meta id and ref (kind + number).
RECORD_DTYPE = np.dtype([("hi", ">u8"), ("lo", ">u4"), ("meta", "<u4"), ("ref", "<u4")])
assert RECORD_DTYPE.itemsize == codec.RECORD_BYTES

PERSONS_PER_CHUNK = 250_000
TOKENS_PER_PARTITION = 500_000
#: Entries whose valid-until passed up to this many days ago: the device
#: holds a few until the next sync removes them.
EXPIRED_GRACE_DAYS = 30


@dataclass(frozen=True)
class SynthCategory:
    code: str
    weight: float
    term_days: int  # valid-until = valid-from + term


@dataclass(frozen=True)
class SynthList:
    list_id: str
    name: str
    authority: str
    legal_basis: str
    scopes: tuple[str, ...]
    default_action: Action
    share: float  # of listed people
    ref_code: str  # case numbers look like NFL-2024-00012345
    redress: str
    categories: tuple[SynthCategory, ...]
    refer_share: float = 0.0  # entries of a DENY list that only ask for REFER


#: Invented lists with different scopes; any resemblance to a real register is
#: only in shape.
SYNTH_LISTS: tuple[SynthList, ...] = (
    SynthList("no-fly", "National No-Fly List", "Civil Aviation Security Directorate",
              "Aviation Security Act s. 12", ("air_travel",), Action.DENY, 0.45, "NFL",
              "Redress form NFL-R1 at the counter, or write to the Directorate's redress office",
              (SynthCategory("AVSEC-THREAT", 0.6, 5 * 365), SynthCategory("AVSEC-DISRUPTIVE", 0.4, 2 * 365)),
              refer_share=0.05),
    SynthList("travel-ban", "Court-Ordered Travel Bans", "Judicial Enforcement Office",
              "Criminal Procedure Code art. 81 (bail conditions)", ("air_travel", "rail"),
              Action.DENY, 0.25, "CTB", "Apply to the issuing court to vary the order",
              (SynthCategory("BAIL-CONDITION", 0.7, 365), SynthCategory("CHILD-ABDUCTION-RISK", 0.3, 3 * 365))),
    SynthList("hotel-safety", "Hospitality Safety Register", "Tourism Safety Board",
              "Hospitality Licensing Regulation 14", ("star_hotel",), Action.REFER, 0.20, "HSR",
              "Dispute form HSR-D2 from the Tourism Safety Board",
              (SynthCategory("PAYMENT-FRAUD", 0.5, 2 * 365), SynthCategory("VIOLENCE", 0.5, 3 * 365))),
    SynthList("sanctions", "Consolidated Travel Sanctions", "Ministry of Foreign Affairs",
              "Sanctions Act s. 4", ("air_travel", "star_hotel"), Action.DENY, 0.10, "CTS",
              "Delisting request to the Ministry's sanctions unit",
              (SynthCategory("TRAVEL-BAN", 0.6, 10 * 365), SynthCategory("ASSET-FREEZE", 0.4, 5 * 365)),
              refer_share=0.02),
)


def token_key(list_id: str, seed: int) -> bytes:
    """A synthetic list's HMAC key: fixed by the seed, so tests can make its tokens."""
    return hashlib.sha256(f"gatecheck-synth\0{seed}\0{list_id}".encode()).digest()


def list_infos(n_lists: int, seed: int, now: datetime, counts: dict[str, int] | None = None) -> list[ListInfo]:
    """The first ``n_lists`` synthetic lists at version 1, verified at ``now``."""
    infos = []
    for spec in SYNTH_LISTS[:n_lists]:
        digest = hashlib.sha256(
            f"synthetic\0{seed}\0{spec.list_id}\0{(counts or {}).get(spec.list_id, 0)}".encode()
        ).digest()
        infos.append(ListInfo(
            list_id=spec.list_id, name=spec.name, authority=spec.authority,
            legal_basis=spec.legal_basis, scopes=spec.scopes, default_action=spec.default_action,
            token_key=token_key(spec.list_id, seed), version=1, state_digest=digest,
            signed_at=now, valid_until=now + timedelta(days=1), heartbeat_at=now,
            redress=spec.redress,
        ))
    return infos


@dataclass(frozen=True)
class Chunk:
    """Tokens of consecutive people: token halves, metadata code, kind and case number, list."""

    hi: np.ndarray  # uint64, first 8 token bytes
    lo: np.ndarray  # uint32, last 4 token bytes
    code: np.ndarray  # int64, see meta_fields()
    ref: np.ndarray  # uint32, codec.pack_ref(the person's case number, person token)
    list_index: np.ndarray  # uint8


_AGE_BITS = 24  # days since valid-from, below the rest of the code


def meta_fields(code: int, lists: tuple[SynthList, ...], today: date, width: int) -> dict:
    """The metadata row a generate() code stands for (BulkLoader.meta_id arguments)."""
    age = code & ((1 << _AGE_BITS) - 1)
    rest = code >> _AGE_BITS
    refer, rest = rest & 1, rest >> 1
    category, list_index = rest % 8, rest // 8
    spec = lists[list_index]
    cat = spec.categories[category]
    valid_from = today - timedelta(days=age)
    return {
        "list_id": spec.list_id,
        "category": cat.code,
        "action": Action.REFER if refer else spec.default_action,
        "valid_from": valid_from,
        "valid_until": valid_from + timedelta(days=cat.term_days),
        "redress": spec.redress,
        "template": codec.ReferenceTemplate(f"{spec.ref_code}-{valid_from.year}-", width, ""),
    }


def reference_width(n_tokens: int) -> int:
    return max(8, len(str(n_tokens)))


def generate(n_tokens: int, *, seed: int, lists: tuple[SynthList, ...], today: date,
             persons_per_chunk: int = PERSONS_PER_CHUNK) -> Iterator[Chunk]:
    """Exactly ``n_tokens`` tokens, ~2.5 per person, in chunks of people. Pure."""
    shares = np.array([spec.share for spec in lists], dtype=float)
    shares /= shares.sum()
    n_cat = max(len(spec.categories) for spec in lists)
    cum = np.ones((len(lists), n_cat))
    terms = np.ones((len(lists), n_cat), dtype=np.int64)
    for i, spec in enumerate(lists):
        weights = np.array([c.weight for c in spec.categories], dtype=float)
        cum[i, :len(weights)] = np.cumsum(weights / weights.sum())
        terms[i, :len(weights)] = [c.term_days for c in spec.categories]
    refer_share = np.array([spec.refer_share if spec.default_action == Action.DENY else 0.0
                            for spec in lists])
    done = 0
    person = 0
    chunk_no = 0
    while done < n_tokens:
        rng = np.random.default_rng([seed, chunk_no])
        count = min(persons_per_chunk, -(-(n_tokens - done) // 2))  # >= 2 tokens per person
        list_index = rng.choice(len(lists), size=count, p=shares)
        category = (rng.random(count)[:, None] > cum[list_index]).sum(axis=1)
        refer = rng.random(count) < refer_share[list_index]
        term = terms[list_index, category]
        age = (rng.random(count) * (term + EXPIRED_GRACE_DAYS)).astype(np.int64)
        per_person = 2 + (rng.random(count) < 0.5)  # 1 document + 1 or 2 person tokens
        owner = np.repeat(np.arange(count), per_person)[: n_tokens - done]
        first = np.r_[True, owner[1:] != owner[:-1]]
        code = ((((list_index[owner].astype(np.int64) * 8 + category[owner]) * 2
                  + refer[owner]) << _AGE_BITS) | age[owner])
        person_bit = np.where(first, 0, codec.PERSON_BIT).astype(np.uint32)
        size = len(owner)
        yield Chunk(
            hi=rng.integers(0, 1 << 64, size=size, dtype=np.uint64, endpoint=False),
            lo=rng.integers(0, 1 << 32, size=size, dtype=np.uint32, endpoint=False),
            code=code,
            ref=(person + owner).astype(np.uint32) | person_bit,
            list_index=list_index[owner].astype(np.uint8),
        )
        done += size
        person += count
        chunk_no += 1


Progress = Callable[[str, int], None]


def build_snapshot(path: str | Path, n_tokens: int, *, n_lists: int = len(SYNTH_LISTS), seed: int = 0,
                   now: datetime | None = None, overwrite: bool = False,
                   progress: Progress | None = None) -> Path:
    """Write a synthetic snapshot of ``n_tokens`` tokens to ``path``.

    ``progress(phase, n)`` is told about every n tokens done in the phases
    "generate" and "write" (each counts up to n_tokens).
    """
    if n_tokens < 1:
        raise ValueError("a synthetic snapshot needs at least one token")
    if not 1 <= n_lists <= len(SYNTH_LISTS):
        raise ValueError(f"between 1 and {len(SYNTH_LISTS)} synthetic lists")
    now = now or datetime.now(timezone.utc)
    today = now.date()
    lists = SYNTH_LISTS[:n_lists]
    width = reference_width(n_tokens)
    report = progress or (lambda phase, n: None)
    bits = min(8, max(0, math.ceil(math.log2(max(1, n_tokens / TOKENS_PER_PARTITION)))))
    loader = BulkLoader(path, overwrite=overwrite)
    try:
        metas: dict[int, int] = {}
        counts = np.zeros(len(lists), dtype=np.int64)
        with tempfile.TemporaryDirectory(dir=Path(path).parent, prefix=".synth-") as spill:
            parts = [open(Path(spill) / f"part{p:03d}", "wb") for p in range(1 << bits)]
            try:
                for chunk in generate(n_tokens, seed=seed, lists=lists, today=today):
                    codes, inverse = np.unique(chunk.code, return_inverse=True)
                    ids = np.empty(len(codes), dtype=np.uint32)
                    for i, code in enumerate(codes.tolist()):
                        if code not in metas:
                            metas[code] = loader.meta_id(**meta_fields(code, lists, today, width))
                        ids[i] = metas[code]
                    records = np.empty(len(chunk.hi), dtype=RECORD_DTYPE)
                    records["hi"], records["lo"] = chunk.hi, chunk.lo
                    records["meta"], records["ref"] = ids[inverse.ravel()], chunk.ref
                    part = (chunk.hi >> np.uint64(64 - bits)).astype(np.int64) if bits else \
                        np.zeros(len(chunk.hi), dtype=np.int64)
                    order = np.argsort(part, kind="stable")
                    bounds = np.searchsorted(part[order], np.arange((1 << bits) + 1))
                    records = records[order]
                    for p, fh in enumerate(parts):
                        records[bounds[p]:bounds[p + 1]].tofile(fh)
                    counts += np.bincount(chunk.list_index, minlength=len(lists))
                    report("generate", len(records))
            finally:
                for fh in parts:
                    fh.close()
            for fh in parts:
                records = np.fromfile(fh.name, dtype=RECORD_DTYPE)
                records = records[np.lexsort((records["lo"], records["hi"]))]
                loader.append(records.tobytes())
                report("write", len(records))
        token_counts = {spec.list_id: int(n) for spec, n in zip(lists, counts)}
        for info in list_infos(n_lists, seed, now, token_counts):
            loader.put_list(info)
        return loader.finish(token_counts)
    except BaseException:
        loader.abort()
        raise
