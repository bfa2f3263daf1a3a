"""Sign-in throttling, kept in the registry database so every server process sees it.

Issue 5: "Login attempts are rate-limited". Two sliding windows over failed
attempts: per account (guessing one user's password) and per client address
(trying many accounts). In the database, not in memory, because the
registry runs as several gunicorn processes and a per-process counter would
multiply the allowance by their number.
"""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, String, Table, and_, delete, func, insert, select

WINDOW_SECONDS = 15 * 60
MAX_PER_ACCOUNT = 5
MAX_PER_CLIENT = 20

metadata = MetaData()

login_failures = Table(
    "login_failures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, index=True),
    Column("client", String(64), nullable=False, index=True),
    Column("at", BigInteger, nullable=False),
)


class LoginThrottle:
    def __init__(self, engine: Engine, *, clock=time.time) -> None:
        self.engine = engine
        self.clock = clock
        metadata.create_all(engine)

    def wait_seconds(self, username: str, client: str) -> int:
        """0 when a sign-in may be tried now, else the seconds until the oldest failure leaves the window."""
        now = int(self.clock())
        since = now - WINDOW_SECONDS
        c = login_failures.c
        with self.engine.connect() as conn:
            waits = []
            for column, value, limit in ((c.username, username, MAX_PER_ACCOUNT), (c.client, client, MAX_PER_CLIENT)):
                rows = conn.execute(select(c.at).where(and_(column == value, c.at > since))
                                    .order_by(c.at.desc()).limit(limit)).scalars().all()
                if len(rows) >= limit:
                    waits.append(rows[-1] + WINDOW_SECONDS - now)
        return max([0, *waits])

    def failed(self, username: str, client: str) -> None:
        now = int(self.clock())
        with self.engine.begin() as conn:
            conn.execute(insert(login_failures).values(username=username[:64], client=client[:64], at=now))
            conn.execute(delete(login_failures).where(login_failures.c.at <= now - WINDOW_SECONDS))

    def succeeded(self, username: str) -> None:
        """A right password clears the account's failures (not the client's)."""
        with self.engine.begin() as conn:
            conn.execute(delete(login_failures).where(login_failures.c.username == username))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(login_failures)).scalar_one()
