"""account_leases: the fencing epoch of each account's ownership lease (hot standby).

One row per account. The instance that takes an account's PostgreSQL advisory lock bumps
`epoch` in the same session and records its backend pid; a write-ahead transaction checks
both (`storage.lease.check_lease`), so an instance that lost the lock can no longer commit an
intent. The table exists on SQLite too, so that both stores keep one schema, but SQLite
stays single-instance and never writes it.

Revision ID: 0005_account_leases
Revises: 0004_reducing_state
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_account_leases"
down_revision: str | Sequence[str] | None = "0004_reducing_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "account_leases",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("advertise_url", sa.Text(), nullable=True),
        sa.Column("backend_pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", _utc(), nullable=False),
        sa.Column("renewed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_account_leases")),
        sa.CheckConstraint("epoch > 0", name=op.f("ck_account_leases_epoch_positive")),
    )


def downgrade() -> None:
    op.drop_table("account_leases")
