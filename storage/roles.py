"""PostgreSQL roles: the engine runs as a role that may only append to the journal.

Migrations run as the owner of the tables (whoever runs `execution-engine db upgrade`). The
owner can switch the journal's triggers off; the engine must not be able to. `grant_app_role`
makes (or updates) the engine's role and gives it exactly what the engine does:

- `execution_events`: SELECT, INSERT (no UPDATE, DELETE or TRUNCATE, and as it owns
  nothing it cannot ALTER the table or its triggers);
- `execution_logs`, `trading_state` and `account_leases`: SELECT, INSERT, UPDATE;
- `alembic_version`: SELECT (the engine checks the schema is at head when it starts);
- USAGE on the schema and USAGE, SELECT on its sequences.

Every privilege the owner granted the role before is revoked first, so running it again
leaves exactly this set. SQLite has no roles: its protection is the file's permissions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from sqlalchemy import Connection, text

from core.errors import ConfigurationError

APP_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "execution_events": ("SELECT", "INSERT"),
    "execution_logs": ("SELECT", "INSERT", "UPDATE"),
    "trading_state": ("SELECT", "INSERT", "UPDATE"),
    "account_leases": ("SELECT", "INSERT", "UPDATE"),
    "alembic_version": ("SELECT",),
}
"""What the engine's role may do, per table; nothing else is granted."""

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)


def scram_sha256_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677).

    Sent instead of the password, so the password itself never reaches the server, its
    statement log or `pg_stat_activity`. Printable ASCII only: PostgreSQL normalises other
    passwords (SASLprep) before hashing, which this does not repeat.
    """
    if not password or not all(" " <= char <= "~" for char in password):
        raise ConfigurationError("the app role's password must be non-empty printable ASCII")
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def grant_app_role(connection: Connection, role: str, password: str | None = None) -> bool:
    """Create `role` (LOGIN) if it does not exist, set its password when given, and grant it
    exactly `APP_PRIVILEGES` on the schema the journal is in. Returns True if it was created.

    Refused (ConfigurationError) on SQLite, for a name that is not a plain lower-case
    identifier, for the connecting role itself, and for a role that could undo the
    protection anyway: a superuser, or a member of the tables' owner.
    """
    if connection.dialect.name != "postgresql":
        raise ConfigurationError(
            f"{connection.dialect.name} has no roles: protect the database file with file "
            "permissions instead (--app-role is for PostgreSQL)"
        )
    if not _ROLE_NAME.match(role):
        raise ConfigurationError(
            "--app-role must be 1-63 characters of [a-z0-9_], not starting with a digit"
        )
    schema, owner = _journal_schema_and_owner(connection)
    current = connection.execute(text("SELECT current_user")).scalar_one()
    if role in (current, owner):
        raise ConfigurationError(
            f"--app-role {role} owns the tables: the engine's role must be another one"
        )
    found = connection.execute(
        text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    quoted = connection.dialect.identifier_preparer.quote_identifier(role)
    verifier = scram_sha256_verifier(password) if password is not None else None
    login = f" LOGIN PASSWORD '{verifier}'" if verifier is not None else " LOGIN"
    if found is None:
        connection.exec_driver_sql(f"CREATE ROLE {quoted}{login}")
    elif found.rolsuper:
        raise ConfigurationError(f"--app-role {role} is a superuser: it could undo any grant")
    elif verifier is not None:
        connection.exec_driver_sql(f"ALTER ROLE {quoted}{login}")
    member = connection.execute(
        text("SELECT pg_has_role(:role, :owner, 'MEMBER')"), {"role": role, "owner": owner}
    ).scalar_one()
    if member:
        raise ConfigurationError(
            f"--app-role {role} is a member of {owner}, the tables' owner: it could ALTER "
            "the journal and disable its triggers"
        )
    _grant(connection, quoted, connection.dialect.identifier_preparer.quote_identifier(schema))
    return found is None


def _journal_schema_and_owner(connection: Connection) -> tuple[str, str]:
    row = connection.execute(
        text(
            "SELECT schemaname, tableowner FROM pg_tables WHERE tablename = 'execution_events' "
            "AND schemaname = current_schema()"
        )
    ).first()
    if row is None:
        raise ConfigurationError("no execution_events table in the current schema: migrate first")
    return str(row.schemaname), str(row.tableowner)


def _grant(connection: Connection, role: str, schema: str) -> None:
    statements = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role}",
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    ]
    for table, privileges in APP_PRIVILEGES.items():
        statements.append(f"GRANT {', '.join(privileges)} ON {schema}.{table} TO {role}")
    for statement in statements:
        connection.exec_driver_sql(statement)


__all__ = ["APP_PRIVILEGES", "grant_app_role", "scram_sha256_verifier"]
