"""trading_state.state may be REDUCING (the reduce-only state) as well as ACTIVE and HALTED.

Only the CHECK constraint changes. PostgreSQL swaps it in place; SQLite cannot alter a
constraint, so batch mode rebuilds the table from the definition given here (not from
reflection, which may not see CHECK constraints). The table has one row and no triggers.
Downgrading turns a REDUCING row into HALTED: the older engine knows no reduce-only state,
and the safe reading of "only reduce" for it is "send nothing".

Revision ID: 0004_reducing_state
Revises: 0003_execution_legs
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_reducing_state"
down_revision: str | Sequence[str] | None = "0003_execution_legs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("ACTIVE", "HALTED")
_AFTER = ("ACTIVE", "REDUCING", "HALTED")
_NAME = "ck_trading_state_state"


def _allowed(states: Sequence[str]) -> str:
    return "state IN (" + ", ".join(f"'{state}'" for state in states) + ")"


def _table(states: Sequence[str]) -> sa.Table:
    """trading_state as it stands with `states` allowed (what batch mode copies from)."""
    return sa.Table(
        "trading_state",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trading_state"),
        sa.CheckConstraint("id = 1", name="ck_trading_state_single_row"),
        sa.CheckConstraint(_allowed(states), name=_NAME),
    )


def _switch(before: Sequence[str], after: Sequence[str]) -> None:
    with op.batch_alter_table("trading_state", copy_from=_table(before)) as batch:
        batch.drop_constraint(op.f(_NAME), type_="check")
        batch.create_check_constraint(op.f(_NAME), _allowed(after))


def upgrade() -> None:
    _switch(_BEFORE, _AFTER)


def downgrade() -> None:
    op.execute("UPDATE trading_state SET state = 'HALTED' WHERE state = 'REDUCING'")
    _switch(_AFTER, _BEFORE)
