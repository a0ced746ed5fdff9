"""Throw-away PostgreSQL databases: one per drill, benchmark run or test, dropped after.

Drills, benchmarks and tests each need a store of their own that nothing else touches and
that leaves nothing behind; this is the one way they make one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool


def admin_engine(server_url: str | URL) -> Engine:
    """An engine on `server_url` fit for CREATE/DROP DATABASE (autocommit, no pool)."""
    return create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@contextmanager
def scratch_database(admin: Engine, prefix: str) -> Iterator[str]:
    """A new empty database `<prefix>_<random>` on `admin`'s server, dropped on exit.

    Yields its URL (with the password, for the code that connects to it). `admin` must be
    in autocommit mode (see `admin_engine`). The drop goes through whatever was left:
    connections a caller forgot to close are ended, and a database a drill closed to new
    connections (the database-outage drill) is opened again first.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def scratch_database_at(server_url: str | URL, prefix: str) -> Iterator[str]:
    """`scratch_database` on the server of `server_url`, with an admin engine of its own."""
    admin = admin_engine(server_url)
    try:
        with scratch_database(admin, prefix) as url:
            yield url
    finally:
        admin.dispose()


__all__ = ["admin_engine", "scratch_database", "scratch_database_at"]
