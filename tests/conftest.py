"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from storage.scratch import scratch_database

# =============================================================================================
# Databases
#
# `database_url` is the URL of a new, EMPTY database (no tables), once on SQLite and once on
# PostgreSQL; the database is removed afterwards. Migrate it yourself if you need the schema.
#
# PostgreSQL: the server named by EE_TEST_POSTGRES_URL (a URL of its maintenance database),
# default postgresql+psycopg2://postgres@127.0.0.1:5432/postgres. Each test gets a database
# `ee_test_<random>` of its own. When CI is set, an unreachable server fails the tests;
# otherwise they are skipped with the reason.
# SQLite: a file under the test's tmp_path (WAL and several connections need a real file).
# =============================================================================================

# Hundreds of engines start in this one process: a full collection and gc.freeze() at each
# start would cost seconds and keep the stopped ones' cycles alive until it ends. The one
# test of the freeze turns it on for its own engine (tests/actors/test_facade_gc.py).
os.environ.setdefault("EE_GC_FREEZE_ON_START", "false")

POSTGRES_ADMIN_URL = os.environ.get(
    "EE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def _running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


@pytest.fixture(scope="session")
def postgres_admin_engine() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the server's maintenance database (CREATE/DROP DATABASE)."""
    engine = create_engine(
        POSTGRES_ADMIN_URL,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )
    try:
        engine.connect().close()  # reachable, or the OperationalError below
    except OperationalError as exc:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        reason = f"PostgreSQL is not reachable at {where}: {exc.orig}"
        if _running_in_ci():
            pytest.fail(f"{reason} (CI is set: PostgreSQL tests must run, not skip)")
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new empty database on each backend; see the section comment above."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ee_test.db'}"
        return
    with scratch_database(request.getfixturevalue("postgres_admin_engine"), "ee_test") as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_engine: Engine) -> Iterator[str]:
    """A new empty PostgreSQL database only (for tests that need the production store)."""
    with scratch_database(postgres_admin_engine, "ee_test") as url:
        yield url


# ============================================================================= end Databases
