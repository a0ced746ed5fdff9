"""Dedicated PostgreSQL sessions: one plain psycopg2 connection, outside any pool.

A lease's advisory lock lives exactly as long as the session that took it, and LISTEN
hears only on its own session, so neither may share a pooled connection that SQLAlchemy
could reset, recycle or hand to someone else. Both ends are told to give up on a silent
peer within `liveness_seconds` (TCP keepalives and TCP_USER_TIMEOUT): the client so that a
partitioned instance notices it lost its session, the server so that it frees the lock of
an instance that died without closing its socket (a host crash or power loss).
"""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg2  # type: ignore[import-untyped]  # psycopg2 ships no type stubs
from sqlalchemy.engine import make_url

from core.errors import ConfigurationError
from storage.db import POSTGRES_CONNECT_TIMEOUT_S, redact_url

DEFAULT_LIVENESS_SECONDS = 5.0
"""How long a silent peer is trusted; the bound of a takeover after a host dies."""

SessionError: type[Exception] = psycopg2.Error
"""What a dedicated session raises when it (or its server) fails."""


def is_postgres(database_url: str) -> bool:
    """True when `database_url` names a PostgreSQL database."""
    return make_url(database_url).get_backend_name() == "postgresql"


def connect_args(database_url: str) -> dict[str, Any]:
    """psycopg2.connect keywords for a SQLAlchemy PostgreSQL URL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigurationError(f"{redact_url(database_url)} is not a PostgreSQL database")
    args: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    args.update({key: value for key, value in url.query.items() if isinstance(value, str)})
    return args


def dedicated_session(
    database_url: str, purpose: str, liveness_seconds: float = DEFAULT_LIVENESS_SECONDS
) -> Any:
    """A new autocommit psycopg2 connection for `purpose` (shown in pg_stat_activity).

    Raises psycopg2.Error (`SessionError`) when the server cannot be reached.
    """
    probe = max(1, int(liveness_seconds / 3))
    user_timeout_ms = max(1000, int(liveness_seconds * 1000))
    connection = psycopg2.connect(
        **connect_args(database_url),
        connect_timeout=POSTGRES_CONNECT_TIMEOUT_S,
        application_name=f"mt5-execution-engine {purpose}",
        keepalives=1,
        keepalives_idle=probe,
        keepalives_interval=probe,
        keepalives_count=2,
        tcp_user_timeout=user_timeout_ms,
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            # The server's side of the same bounds (ignored on a Unix socket).
            cursor.execute(
                "SELECT set_config('tcp_keepalives_idle', %(probe)s, false), "
                "set_config('tcp_keepalives_interval', %(probe)s, false), "
                "set_config('tcp_keepalives_count', '2', false), "
                "set_config('tcp_user_timeout', %(timeout)s, false), "
                # No statement of these sessions should take long: a stalled server must
                # not hold the caller past the liveness bound either.
                "set_config('statement_timeout', %(timeout)s, false), "
                # The session idles by design; a server default must not end it.
                "set_config('idle_session_timeout', '0', false)",
                {"probe": str(probe), "timeout": str(user_timeout_ms)},
            )
    except BaseException:
        connection.close()
        raise
    return connection


def close_quietly(connection: Any) -> None:
    """Close a session that may already be broken."""
    with contextlib.suppress(psycopg2.Error):  # already gone: nothing left to close
        connection.close()


__all__ = [
    "DEFAULT_LIVENESS_SECONDS",
    "SessionError",
    "close_quietly",
    "connect_args",
    "dedicated_session",
    "is_postgres",
]
