"""From a scan to a journaled verdict: the I/O around the pure verdict rules.

Parse, derive the identity, turn it into each in-scope list's tokens, look
them up in the snapshot, decide (appliance/verdict.py) and commit the
result to the journal before anyone sees it (docs/journal.md, "Durability").
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from appliance.config import DeviceConfig
from appliance.documents import DocumentError, parse_payload
from appliance.documents.manual import manual_document
from appliance.documents.model import Document
from appliance.journal import Journal
from appliance.records import ListInfo
from appliance.snapshot import SnapshotStore
from appliance.verdict import Decision, decide
from sync.identity import Identity, identity_from_document

class Checker:
    """One counter's checking pipeline over a snapshot and a journal.

    ``store`` is None on a device that has no snapshot yet: there are no
    lists, so the verdict rules report the lists missing (and fail closed by
    default) rather than the checker creating an empty store as a side effect.
    """

    def __init__(self, store: SnapshotStore | None, journal: Journal, config: DeviceConfig) -> None:
        self.store = store
        self.journal = journal
        self.config = config

    def check(
        self,
        payload: bytes | None = None,
        *,
        channel: str = "scanner",
        operator: str | None = None,
        manual: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """Verdict for one scanned payload or one manually typed document, journaled."""
        now = now or datetime.now(timezone.utc)
        document: Document | None = None
        error: DocumentError | None = None
        try:
            if manual is not None:
                document = manual_document(manual)
            else:
                document = parse_payload(payload or b"", today=now.date())
        except DocumentError as exc:
            error = exc
        identity = identity_from_document(document) if document is not None else None
        profile = self.config.profile()
        lists: list[ListInfo] = []
        entries, clearances = [], []
        if self.store is not None:
            with self.store.read():  # one scan sees one version of every list
                lists = self.store.lists()
                in_scope = [info for info in lists if profile.covers(info)]
                entries, clearances = self._lookups(identity, in_scope)
        decision = decide(
            document=document, error=error, identity=identity, entries=entries,
            clearances=clearances, lists=lists, profile=profile, now=now,
            channel=channel, operator=operator,
        )
        self.journal.append(decision.to_dict())
        return decision

    def _lookups(self, identity: Identity | None, lists: list[ListInfo]):
        if identity is None or not lists:
            return [], []
        person_tokens: list[bytes] = []
        document_tokens: list[bytes] = []
        for info in lists:
            tokens = identity.tokens(info.token_key)
            person_tokens.extend(tokens.persons)
            if tokens.document is not None:
                document_tokens.append(tokens.document)
        entries = self.store.lookup(document_tokens + person_tokens)
        clearances = self.store.clearances(document_tokens) if document_tokens else []
        return entries, clearances
