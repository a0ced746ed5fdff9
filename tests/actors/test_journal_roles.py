"""The role split on a real PostgreSQL: migrations as an owner role, the engine as a role that
may only append to the journal. `db upgrade --app-role` sets it up; as that role, switching
the triggers off, UPDATE, DELETE and TRUNCATE of the journal all fail, and the engine works.

Each test makes its own owner and engine roles (unique names, dropped afterwards) and a
database owned by the owner role, as an operator would set one up."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from api.cli import main
from core.enums import ExecutionStatus
from core.errors import ConfigurationError
from storage.db import create_db_engine
from storage.journal import verify_chain
from storage.migrate import alembic_config, upgrade
from storage.roles import scram_sha256_verifier
from storage.scratch import scratch_database
from tests.actors.conftest import EngineFactory, rpm

pytestmark = pytest.mark.postgres

INSUFFICIENT_PRIVILEGE = "42501"


@dataclass(frozen=True)
class Roles:
    owner_url: str
    app_url: str
    app: str


@pytest.fixture
def roles(postgres_admin_engine: Engine) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:10]
    owner, app = f"ee_owner_{suffix}", f"ee_app_{suffix}"
    admin = postgres_admin_engine
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {owner} LOGIN CREATEROLE")
    try:
        with scratch_database(admin, "ee_test") as url:
            parsed = make_url(url)
            with admin.connect() as connection:
                connection.exec_driver_sql(f'ALTER DATABASE "{parsed.database}" OWNER TO {owner}')
            with create_db_engine(url).connect() as connection:
                connection.exec_driver_sql(f"ALTER SCHEMA public OWNER TO {owner}")
                connection.commit()
            yield Roles(
                parsed.set(username=owner, password=None).render_as_string(hide_password=False),
                parsed.set(username=app, password=None).render_as_string(hide_password=False),
                app,
            )
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {app}")
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {owner}")


def _upgrade(roles: Roles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EE_TEST_APP_PASSWORD", "app-password-1")
    command = ["db", "upgrade", "--database-url", roles.owner_url, "--app-role", roles.app]
    assert main([*command, "--app-password-env", "EE_TEST_APP_PASSWORD"]) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE execution_events DISABLE TRIGGER ALL",
        "ALTER TABLE execution_events DISABLE TRIGGER USER",
        "UPDATE execution_events SET payload = payload",
        "DELETE FROM execution_events",
        "TRUNCATE execution_events",
        "DROP TABLE execution_events",
        "DELETE FROM execution_logs",
        "CREATE TABLE execution_events_copy (sequence bigint)",
    ],
)
def test_the_engine_role_cannot_touch_the_journals_history(
    roles: Roles, monkeypatch: pytest.MonkeyPatch, statement: str
) -> None:
    _upgrade(roles, monkeypatch)
    engine = create_db_engine(roles.app_url)
    try:
        with pytest.raises(ProgrammingError) as refused, engine.begin() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()

    assert getattr(refused.value.orig, "pgcode", None) == INSUFFICIENT_PRIVILEGE


def test_the_engine_runs_as_the_app_role(
    roles: Roles, monkeypatch: pytest.MonkeyPatch, make_engine: EngineFactory, tmp_path: Path
) -> None:
    _upgrade(roles, monkeypatch)
    checkpoints = tmp_path / "checkpoints.jsonl"

    ee = make_engine(database_url=roles.app_url, audit_checkpoint_file=str(checkpoints))
    confirmations = [ee.execute(rpm(f"dec-{n}")) for n in range(3)]
    ee.halt("role test", "ops")
    ee.resume("ops")
    ee.stop()

    assert [c.status for c in confirmations] == [ExecutionStatus.FILLED] * 3
    app = create_db_engine(roles.app_url)
    try:
        report = verify_chain(app)
        assert report.ok
        with app.connect() as connection:
            state = connection.exec_driver_sql("SELECT state FROM trading_state").scalar_one()
        assert state == "ACTIVE"
    finally:
        app.dispose()
    # The shutdown checkpoint names the head the engine wrote, and verifies.
    head = checkpoints.read_text().splitlines()[-1]
    assert f'"sequence":{report.rows_checked}' in head
    assert main(["audit", "verify", "--database-url", roles.app_url, "--checkpoint", head]) == 0


def test_upgrade_again_keeps_exactly_the_grants_and_sends_no_clear_password(
    roles: Roles, monkeypatch: pytest.MonkeyPatch, postgres_admin_engine: Engine
) -> None:
    _upgrade(roles, monkeypatch)
    owner = create_db_engine(roles.owner_url)
    try:
        with owner.begin() as connection:
            connection.exec_driver_sql(f"GRANT DELETE ON execution_events TO {roles.app}")
    finally:
        owner.dispose()

    _upgrade(roles, monkeypatch)  # run again: the stray grant is gone

    owner = create_db_engine(roles.owner_url)
    try:
        with owner.connect() as connection:
            granted = connection.execute(
                text(
                    "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
                    " WHERE grantee = :role ORDER BY 1, 2"
                ),
                {"role": roles.app},
            ).all()
    finally:
        owner.dispose()
    assert [tuple(row) for row in granted] == [
        ("account_leases", "INSERT"),
        ("account_leases", "SELECT"),
        ("account_leases", "UPDATE"),
        ("alembic_version", "SELECT"),
        ("execution_events", "INSERT"),
        ("execution_events", "SELECT"),
        ("execution_logs", "INSERT"),
        ("execution_logs", "SELECT"),
        ("execution_logs", "UPDATE"),
        ("trading_state", "INSERT"),
        ("trading_state", "SELECT"),
        ("trading_state", "UPDATE"),
    ]
    with postgres_admin_engine.connect() as connection:
        stored = connection.execute(
            text("SELECT rolpassword FROM pg_authid WHERE rolname = :role"), {"role": roles.app}
        ).scalar_one()
    salt = base64.b64decode(stored.split("$")[1].split(":")[1])
    assert stored == scram_sha256_verifier("app-password-1", salt)


def test_our_scram_verifier_is_the_one_postgresql_computes(
    roles: Roles, monkeypatch: pytest.MonkeyPatch, postgres_admin_engine: Engine
) -> None:
    _upgrade(roles, monkeypatch)
    with postgres_admin_engine.connect() as connection:
        connection.exec_driver_sql("SET password_encryption = 'scram-sha-256'")
        connection.exec_driver_sql(f"ALTER ROLE {roles.app} PASSWORD 'Tr0ub4dor&3 x'")
        stored = connection.execute(
            text("SELECT rolpassword FROM pg_authid WHERE rolname = :role"), {"role": roles.app}
        ).scalar_one()
    salt = base64.b64decode(stored.split("$")[1].split(":")[1])

    assert scram_sha256_verifier("Tr0ub4dor&3 x", salt) == stored


@pytest.mark.parametrize(
    ("role", "message"),
    [
        ("postgres", "is a superuser"),
        ("Bad-Name", "--app-role must be"),
    ],
)
def test_a_role_that_could_undo_the_protection_is_refused(
    roles: Roles, role: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--database-url", roles.owner_url, "--app-role", role]) == 1
    assert message in capsys.readouterr().err


def test_the_engine_role_does_not_migrate_a_schema_behind_the_code(
    roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upgrade(roles, monkeypatch)
    owner = create_db_engine(roles.owner_url)
    try:
        with owner.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0001_initial")
    finally:
        owner.dispose()

    with pytest.raises(ConfigurationError, match="as the tables' owner"):
        upgrade(roles.app_url)


def test_sqlite_has_no_roles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'roles.db'}"

    assert main(["db", "upgrade", "--database-url", url, "--app-role", "ee_app"]) == 1
    assert "file permissions" in capsys.readouterr().err
