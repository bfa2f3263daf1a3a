"""The registry's storage: SQLAlchemy Core tables and an engine from a URL.

SQLite is the embedded default; the same tables and statements run on
PostgreSQL (a later issue runs them there), so nothing here uses
SQLite-only SQL: types are portable (``LargeBinary`` is BLOB / BYTEA,
``BigInteger`` holds Unix seconds and versions), upserts are avoided, and
the version counter is bumped with a compare-and-set ``UPDATE``.

Plaintext lives here and only here: ``entries`` and ``entry_documents`` hold
names and document numbers. What leaves the registry is ``deltas`` and
``snapshots``: signed, token-only bytes (docs/registry.md).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy import Table

from appliance.private_files import private_file


class RegistryError(Exception):
    """Base of every registry refusal; ``message`` is one human-readable line.

    Lives in the storage module because it is the package's lowest layer and
    both publishing and key handling raise it.
    """

    code = "registry_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


metadata = MetaData()

#: One deny-list. ``token_key`` is the secret HMAC key of its tokens
#: (docs/token-layout.md); ``token_key_id`` names it without revealing it.
lists = Table(
    "lists", metadata,
    Column("list_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("authority", Text, nullable=False),
    Column("legal_basis", Text, nullable=False),
    Column("scopes", Text, nullable=False),  # JSON array of sanction scopes
    Column("default_action", String(8), nullable=False),
    Column("redress", Text, nullable=False, default=""),
    Column("token_key", LargeBinary(64), nullable=False),
    Column("token_key_id", String(16), nullable=False),
    Column("current_version", BigInteger, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
)

#: One listed person (or document holder), in plaintext, as the authority wrote it.
entries = Table(
    "entries", metadata,
    Column("entry_id", Integer, primary_key=True, autoincrement=True),
    Column("list_id", String(64), ForeignKey("lists.list_id"), nullable=False),
    Column("surnames", Text, nullable=False),
    Column("given_names", Text, nullable=False, default=""),
    Column("original_script", Text),  # the name as written in its own script
    Column("latin_variants", Text, nullable=False, default="[]"),  # JSON [[surnames, given], ...]
    Column("date_of_birth", Date),
    Column("category", Text, nullable=False),
    Column("action", String(8), nullable=False),
    Column("reference", Text, nullable=False),  # the authority's case number
    Column("redress", Text, nullable=False, default=""),
    Column("valid_from", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("status", String(16), nullable=False),  # active | removed | expired
    Column("created_by", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("removed_by", Text),
    Column("removed_at", BigInteger),
    Column("added_in_version", BigInteger),
    Column("removed_in_version", BigInteger),
)
Index("ix_entries_list_status", entries.c.list_id, entries.c.status)

entry_documents = Table(
    "entry_documents", metadata,
    Column("document_id", Integer, primary_key=True, autoincrement=True),
    Column("entry_id", Integer, ForeignKey("entries.entry_id"), nullable=False),
    Column("document_class", String(1), nullable=False),
    Column("issuer", String(16), nullable=False),
    Column("number", Text, nullable=False),
)
Index("ix_entry_documents_entry", entry_documents.c.entry_id)

#: Where an entry came from, for the entries an authority list import made (registry/import_run.py).
#: An entry without a row here came from a person (a review, the CLI), and an import never withdraws
#: it. A table of its own rather than a column on ``entries``: ``init_db`` creates it in an existing
#: registry database, which needs no migration, and every entry made before it existed is rightly
#: "not imported".
imported_entries = Table(
    "imported_entries", metadata,
    Column("entry_id", Integer, ForeignKey("entries.entry_id"), primary_key=True),
    Column("list_id", String(64), nullable=False),
    Column("reference", Text, nullable=False),  # the authority's case number: the key of the row
    Column("fingerprint", String(64), nullable=False),  # registry/importer.py: what the file said
    Column("import_id", String(32), nullable=False),  # the import that listed it
    Column("removed_by_import", String(32)),  # the import that withdrew it (vanished or changed row)
)
Index("ix_imported_entries_list_reference", imported_entries.c.list_id, imported_entries.c.reference)
Index("ix_imported_entries_list_entry", imported_entries.c.list_id, imported_entries.c.entry_id)

#: The tokens each entry expands to; kept so a removal removes exactly them.
entry_tokens = Table(
    "entry_tokens", metadata,
    Column("entry_id", Integer, ForeignKey("entries.entry_id"), primary_key=True),
    Column("token", LargeBinary(12), primary_key=True),
    Column("list_id", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
)
Index("ix_entry_tokens_list_token", entry_tokens.c.list_id, entry_tokens.c.token)

#: The published token state of each list at its current version: what a
#: device holds after applying every delta. One row per (list, token).
list_tokens = Table(
    "list_tokens", metadata,
    Column("list_id", String(64), ForeignKey("lists.list_id"), primary_key=True),
    Column("token", LargeBinary(12), primary_key=True),
    Column("entry_id", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("category", Text, nullable=False),
    Column("action", String(8), nullable=False),
    Column("reference", Text, nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("redress", Text, nullable=False),
)

#: The namesake clearances each list publishes at its current version:
#: allow-tokens for cleared travellers' documents (docs/clearances.md). The
#: register behind them, with the plaintext, is registry/clearances.py's.
list_clearances = Table(
    "list_clearances", metadata,
    Column("list_id", String(64), ForeignKey("lists.list_id"), primary_key=True),
    Column("token", LargeBinary(12), primary_key=True),
    Column("clearance_id", Integer, nullable=False),
    Column("redress_number", Text, nullable=False),
    Column("valid_until", Date, nullable=False),
)

#: Every published version: its full LtHash lanes (2048 bytes) so the next
#: version's digest is computed in time proportional to the change.
versions = Table(
    "versions", metadata,
    Column("list_id", String(64), ForeignKey("lists.list_id"), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("published_at", BigInteger, nullable=False),
    Column("published_by", Text, nullable=False),
    Column("digest", LargeBinary(2048), nullable=False),
    Column("checksum", LargeBinary(32), nullable=False),
    Column("token_count", BigInteger, nullable=False),
)

#: Immutable signed deltas N -> N+1, kept for the retention window.
deltas = Table(
    "deltas", metadata,
    Column("list_id", String(64), ForeignKey("lists.list_id"), primary_key=True),
    Column("from_version", BigInteger, primary_key=True),
    Column("to_version", BigInteger, nullable=False),
    Column("published_at", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

#: The last signed full snapshot of each list, rebuilt when the list moves
#: on or its envelope nears valid_until.
snapshots = Table(
    "snapshots", metadata,
    Column("list_id", String(64), ForeignKey("lists.list_id"), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")  # readers (polls) never wait for the publisher
    cursor.close()


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` by default, or ``postgresql+...://``)."""
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        # The registry holds listed people's names in plaintext: 0600 before
        # SQLite creates the file (its -wal and -shm files take the same mode).
        database = engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_file(database)
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def init_db(engine: Engine) -> None:
    """Create any missing table; existing tables are left as they are."""
    metadata.create_all(engine)
