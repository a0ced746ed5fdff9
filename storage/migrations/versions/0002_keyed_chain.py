"""Keyed hash chain: execution_events.hash_key_id names the HMAC key of a row's hash.

NULL (every row written before) means plain SHA-256, as before; the hash input is
unchanged. Adding a nullable column rewrites no row, so the append-only triggers are not
in the way.

Revision ID: 0002_keyed_chain
Revises: 0001_initial
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_keyed_chain"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not batch mode: SQLite adds a column in place, and a rebuilt table would lose its
    # append-only triggers.
    op.add_column("execution_events", sa.Column("hash_key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    keyed = (
        op.get_bind()
        .exec_driver_sql("SELECT 1 FROM execution_events WHERE hash_key_id IS NOT NULL LIMIT 1")
        .first()
    )
    if keyed is not None:
        # Without the marker those rows would read as plain SHA-256 and fail verification.
        raise RuntimeError("execution_events holds keyed rows: the downgrade would lose their key")
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        # SQLite drops a column in place (3.35+); the triggers do not name it.
        op.execute("ALTER TABLE execution_events DROP COLUMN hash_key_id")
    else:
        op.drop_column("execution_events", "hash_key_id")
