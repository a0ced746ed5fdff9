"""Tests of storage.sessions: dedicated sessions outside the pool, with liveness bounds."""

from __future__ import annotations

import pytest

from core.errors import ConfigurationError
from storage.sessions import close_quietly, connect_args, dedicated_session, is_postgres


def test_connect_args_come_from_the_sqlalchemy_url() -> None:
    args = connect_args("postgresql+psycopg2://trader:pw@db.internal:6432/engine?sslmode=require")

    assert args == {
        "host": "db.internal",
        "port": 6432,
        "user": "trader",
        "password": "pw",
        "dbname": "engine",
        "sslmode": "require",
    }
    assert is_postgres("postgresql://u@h/d")
    assert not is_postgres("sqlite:///engine.db")
    with pytest.raises(ConfigurationError, match="not a PostgreSQL database"):
        connect_args("sqlite:///engine.db")


@pytest.mark.postgres
def test_a_dedicated_session_is_autocommit_named_and_bounded(postgres_url: str) -> None:
    session = dedicated_session(postgres_url, "lease", liveness_seconds=6.0)
    try:
        assert session.autocommit
        with session.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('application_name'), "
                "current_setting('statement_timeout'), current_setting('idle_session_timeout')"
            )
            assert cursor.fetchone() == ("mt5-execution-engine lease", "6s", "0")
    finally:
        close_quietly(session)
    close_quietly(session)  # a second close of a closed session is harmless
