from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import StatementError

from storage.db import create_db_engine, default_sqlite_url, redact_url
from storage.schema import trading_state
from tests.storage.conftest import BASE_TIME


def test_engine_is_configured_for_durability(engine: Engine) -> None:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
            assert pragmas == {
                "journal_mode": "wal",
                "synchronous": 2,  # FULL
                "foreign_keys": 1,
                "busy_timeout": 5000,
            }
        else:
            assert getattr(engine.pool, "_pre_ping", False)
            level = connection.exec_driver_sql("SHOW synchronous_commit").scalar_one()
            assert level == "on"


def test_reads_run_inside_a_database_transaction(engine: Engine) -> None:
    # On SQLite the driver would skip BEGIN before a SELECT; the engine emits it itself, so
    # a read sees one snapshot across statements and DDL in migrations is transactional.
    with engine.connect() as connection:
        connection.execute(select(trading_state))
        dbapi_connection: Any = connection.connection.dbapi_connection
        if engine.dialect.name == "sqlite":
            assert dbapi_connection.in_transaction
        else:
            # psycopg2.extensions.TRANSACTION_STATUS_INTRANS (psycopg2 ships no type stubs).
            assert dbapi_connection.get_transaction_status() == 2


def test_naive_datetime_is_refused_at_the_column(engine: Engine) -> None:
    naive = datetime(2024, 3, 1, 12)  # noqa: DTZ001
    with pytest.raises(StatementError, match="naive"), engine.begin() as connection:
        connection.execute(
            insert(trading_state).values(
                id=1, state="ACTIVE", changed_by="x", reason="y", changed_at=naive
            )
        )
    with engine.begin() as connection:
        connection.execute(
            insert(trading_state).values(
                id=1, state="ACTIVE", changed_by="x", reason="y", changed_at=BASE_TIME
            )
        )


def test_default_sqlite_url_is_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert default_sqlite_url() == f"sqlite:///{tmp_path.resolve() / 'execution_engine.db'}"


def test_redact_url_hides_the_password() -> None:
    redacted = redact_url("postgresql+psycopg2://trader:s3cret@db.internal:5432/engine")

    assert "s3cret" not in redacted
    assert redacted == "postgresql+psycopg2://trader:***@db.internal:5432/engine"
    assert redact_url("not a url") == "<invalid database url>"


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database"):
        create_db_engine("mysql://user:pw@localhost/engine")


def test_a_bare_postgresql_url_uses_psycopg2() -> None:
    engine = create_db_engine("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        assert engine.dialect.driver == "psycopg2"
    finally:
        engine.dispose()
