"""Engines for the two supported databases: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from core.models import canonical_json

DEFAULT_SQLITE_FILENAME = "execution_engine.db"

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite connection waits for another's write lock before failing."""

POSTGRES_CONNECT_TIMEOUT_S = 5
"""An unreachable server must fail a write quickly: the engine fails closed, it does not hang."""


def default_sqlite_url() -> str:
    """`sqlite:///<cwd>/execution_engine.db`, resolved when called (not at import)."""
    return f"sqlite:///{(Path.cwd() / DEFAULT_SQLITE_FILENAME).resolve()}"


def redact_url(url: str) -> str:
    """The URL with its password masked, safe for logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # An unparseable URL may still hold a secret; show nothing of it.
        return "<invalid database url>"


def create_db_engine(url: str) -> Engine:
    """An engine configured for durability and for use from several threads.

    SQLite: WAL (readers never block the writer), `synchronous=FULL` (a committed write
    survives power loss, not only a process crash), foreign keys on, a busy timeout, and
    SQLAlchemy in charge of BEGIN so that reads and DDL are transactional too.
    PostgreSQL: a small pool with pre-ping, so a connection dropped by a server restart is
    replaced instead of failing the next write.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; psycopg2 is what we ship.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        return create_engine(
            parsed,
            pool_size=5,
            max_overflow=10,
            pool_pre_ping=True,
            pool_recycle=1_800,
            connect_args={
                "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
                "application_name": "mt5-execution-engine",
            },
            json_serializer=canonical_json,
            # The writer updates many projection rows per batch; execute_batch sends them
            # in one round trip instead of one per row.
            executemany_mode="values_plus_batch",
        )
    raise ValueError(f"unsupported database {redact_url(url)}: use sqlite or postgresql")


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, json_serializer=canonical_json)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # The driver's own transaction control skips BEGIN before SELECT and DDL; turn it
        # off here and emit BEGIN ourselves in `_on_begin`.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


__all__ = ["create_db_engine", "default_sqlite_url", "redact_url"]
