"""scratch_database: a database of one's own, gone afterwards whatever was left open."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, text

from storage.scratch import scratch_database


def _exists(admin: Engine, name: str) -> bool:
    with admin.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
    return found is not None


@pytest.mark.postgres
def test_a_scratch_database_is_dropped_even_with_a_connection_left_open(
    postgres_admin_engine: Engine,
) -> None:
    with scratch_database(postgres_admin_engine, "ee_scratch") as url:
        engine = create_engine(url)
        name = engine.url.database
        assert name is not None
        assert name.startswith("ee_scratch_")
        assert _exists(postgres_admin_engine, name)
        leaked = engine.connect()  # never closed, as a buggy caller would leave it
        leaked.exec_driver_sql("SELECT 1")
        with postgres_admin_engine.connect() as admin:
            # As the database-outage drill does: no new connections.
            admin.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')

    assert not _exists(postgres_admin_engine, name)
    leaked.invalidate()  # the server ended it: drop it without a rollback
    engine.dispose()
