from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from storage.db import create_db_engine
from storage.migrate import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from storage.schema import Base

TABLES = {"execution_logs", "execution_events", "trading_state", "account_leases"}


def test_upgrade_creates_the_schema_at_the_single_head(database_url: str) -> None:
    assert current_revision(database_url) is None

    upgrade(database_url)

    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [
        "0007_trading_state_account"
    ]
    assert current_revision(database_url) == head_revision() == "0007_trading_state_account"
    assert head_revision() == HEAD_REVISION  # a new migration must move HEAD_REVISION too
    engine = create_db_engine(database_url)
    try:
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= TABLES
        indexed = {
            tuple(index["column_names"]) for index in inspector.get_indexes("execution_logs")
        }
        assert {("symbol",), ("created_at",), ("status",), ("order_id",)} <= indexed
        unique = {
            tuple(constraint["column_names"])
            for constraint in inspector.get_unique_constraints("execution_logs")
        }
        assert ("rpm_decision_id",) in unique
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)

    assert current_revision(database_url) == head_revision()


def test_a_store_at_head_starts_without_importing_alembic(database_url: str) -> None:
    # Every start (and every restart after a crash) calls upgrade(); at head it must not pay
    # for importing Alembic and reading its scripts.
    upgrade(database_url)
    script = (
        "import sys\n"
        "from storage.migrate import upgrade\n"
        f"assert upgrade({database_url!r}) is False\n"
        "assert not [m for m in sys.modules if m.startswith('alembic')], 'alembic imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert current_revision(database_url) == HEAD_REVISION


def test_migrated_schema_matches_the_declared_models(database_url: str) -> None:
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(database_url: str) -> None:
    upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()

    upgrade(database_url)

    assert current_revision(database_url) == head_revision()


def test_scripts_ship_inside_the_storage_package() -> None:
    # The packaged location is what pyproject's package-data ships; no alembic.ini needed.
    assert MIGRATIONS_DIR.parent.name == "storage"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()


def test_the_reducing_state_is_stored_and_a_downgrade_makes_it_halted(database_url: str) -> None:
    # Before 0004 the CHECK constraint allowed only ACTIVE and HALTED: a REDUCING engine
    # could not persist its state.
    upgrade(database_url)
    engine = create_db_engine(database_url)
    insert = (
        "INSERT INTO trading_state (id, state, changed_by, reason, changed_at) "
        "VALUES (1, '{}', 'alice', 'cut risk', '2024-03-01 12:00:00+00:00')"
    )
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(insert.format("REDUCING"))
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.exec_driver_sql("UPDATE trading_state SET state = 'PAUSED'")
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0003_execution_legs")
        with engine.connect() as connection:
            row = connection.exec_driver_sql("SELECT state, reason FROM trading_state").one()
        assert tuple(row) == ("HALTED", "cut risk")
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.exec_driver_sql("UPDATE trading_state SET state = 'REDUCING'")
    finally:
        engine.dispose()

    upgrade(database_url)

    assert current_revision(database_url) == head_revision()
