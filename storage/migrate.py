"""Schema migrations, applied from code: no alembic.ini is needed in the working directory.

The scripts live in the `storage.migrations` package, so they are found the same way from a
checkout, an editable install and a wheel.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

from core.errors import ConfigurationError
from storage.db import create_db_engine
from storage.roles import grant_app_role

if TYPE_CHECKING:
    from alembic.config import Config

_INSUFFICIENT_PRIVILEGE = "42501"

HEAD_REVISION: Final = "0007_trading_state_account"
"""The newest script's revision, written out so that a start on a store already there needs
no Alembic at all (importing it and reading the scripts is ~0.2 s of every start, and a
restart after a crash must trade again in seconds). A test holds it equal to the scripts'
head: a new migration must change it."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged scripts; the database goes in `attributes`."""
    from alembic.config import Config

    config = Config()
    # Config values go through configparser interpolation, where '%' is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def upgrade(
    database_url: str,
    revision: str = "head",
    *,
    app_role: str | None = None,
    app_password: str | None = None,
) -> bool:
    """Bring the database to `revision` (default: the latest). A no-op when already there.

    With `app_role` (PostgreSQL), also create or update the engine's role and grant it only
    what the engine needs (`storage.roles`); returns True when that role was created. The
    whole upgrade is one transaction on both databases, so a failed migration or grant
    leaves the schema as it was.

    Raises ConfigurationError when the connecting role may not change the schema (the
    engine's own role, when the schema is behind).
    """
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            if revision == "head" and app_role is None and _at_head(connection):
                return False
            from alembic import command

            config = alembic_config()
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, revision)
            except ProgrammingError as exc:
                if getattr(exc.orig, "pgcode", None) != _INSUFFICIENT_PRIVILEGE:
                    raise
                raise ConfigurationError(
                    "this database role may not change the schema, which is not at the "
                    f"engine's revision ({head_revision()}): run `execution-engine db "
                    "upgrade` as the tables' owner"
                ) from exc
            if app_role is not None:
                return grant_app_role(connection, app_role, app_password)
            return False
    finally:
        engine.dispose()


def _at_head(connection: Connection) -> bool:
    """True when the store is at HEAD_REVISION (read without Alembic)."""
    try:
        with connection.begin_nested():
            found = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return False  # never migrated (no such table): Alembic creates it
    return [row[0] for row in found] == [HEAD_REVISION]


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The latest revision of the packaged scripts (there is exactly one head)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade",
]
