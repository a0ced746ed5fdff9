"""trading_state: one row per account (issue 13, per-account halt and reduce-only).

The single-row CHECK (id = 1) goes; an `account` column (unique) names whose state a row
is. The row already there, the state of an engine from before accounts, becomes the
default account's: the account those engines traded. A firm-wide change writes every
account's row. PostgreSQL alters the table in place; SQLite rebuilds it in batch mode from
the definition given here (reflection may not see CHECK constraints). Downgrading keeps
the default account's row only: the older engine knows one state.

Revision ID: 0007_trading_state_account
Revises: 0006_execution_account
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_trading_state_account"
down_revision: str | Sequence[str] | None = "0006_execution_account"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = "state IN ('ACTIVE', 'REDUCING', 'HALTED')"
_SINGLE_ROW = "ck_trading_state_single_row"
_UNIQUE = "uq_trading_state_account"


def _before() -> sa.Table:
    """trading_state as migration 0004 left it (what batch mode copies from)."""
    return sa.Table(
        "trading_state",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trading_state"),
        sa.CheckConstraint("id = 1", name=_SINGLE_ROW),
        sa.CheckConstraint(_STATES, name="ck_trading_state_state"),
    )


def upgrade() -> None:
    with op.batch_alter_table("trading_state", copy_from=_before()) as batch:
        batch.drop_constraint(op.f(_SINGLE_ROW), type_="check")
        batch.add_column(
            sa.Column("account", sa.String(64), nullable=False, server_default=sa.text("'default'"))
        )
        batch.create_unique_constraint(op.f(_UNIQUE), ["account"])


def downgrade() -> None:
    op.execute("DELETE FROM trading_state WHERE account <> 'default'")
    op.execute("UPDATE trading_state SET id = 1")
    after = _before()
    after.append_column(
        sa.Column("account", sa.String(64), nullable=False, server_default=sa.text("'default'"))
    )
    after.constraints.discard(next(c for c in after.constraints if c.name == _SINGLE_ROW))
    after.append_constraint(sa.UniqueConstraint("account", name=_UNIQUE))
    with op.batch_alter_table("trading_state", copy_from=after) as batch:
        batch.drop_constraint(op.f(_UNIQUE), type_="unique")
        batch.drop_column("account")
        batch.create_check_constraint(op.f(_SINGLE_ROW), "id = 1")
