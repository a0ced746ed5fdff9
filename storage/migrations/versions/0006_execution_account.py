"""execution_logs.account: the account each execution trades on (issue 13, many accounts).

Every row already there gets 'default', the one account of a set-up without an accounts
file, which is the account those executions traded on. Indexed for `GET /history?account=`
and the audit export's filter.

The journal gets no column: an execution's first event records its account among the
fields it was created with (left out when it is the default account, as every row written
before this migration does), so the account is covered by the row's hash and no journal
row is rewritten: an old chain verifies unchanged.

Revision ID: 0006_execution_account
Revises: 0005_account_leases
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_execution_account"
down_revision: str | Sequence[str] | None = "0005_account_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_execution_logs_account"


def upgrade() -> None:
    op.add_column(
        "execution_logs",
        sa.Column("account", sa.String(64), nullable=False, server_default=sa.text("'default'")),
    )
    op.create_index(_INDEX, "execution_logs", ["account"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="execution_logs")
    if op.get_context().dialect.name == "sqlite":
        op.execute("ALTER TABLE execution_logs DROP COLUMN account")
    else:
        op.drop_column("execution_logs", "account")
