"""execution_logs.legs: the order_sends of a position-aware execution, as JSON.

An execution on a hedging account may close positions by ticket before it opens the rest
(issue 10); each such order_send is a leg with its own client id and outcome. Existing rows
get an empty list. Adding a column rewrites no journal row.

Revision ID: 0003_execution_legs
Revises: 0002_keyed_chain
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_execution_legs"
down_revision: str | Sequence[str] | None = "0002_keyed_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "execution_logs",
        sa.Column("legs", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        op.execute("ALTER TABLE execution_logs DROP COLUMN legs")
    else:
        op.drop_column("execution_logs", "legs")
