"""Initial schema: execution_logs, the append-only execution_events journal, trading_state.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_MESSAGE = "execution_events is append-only"

_SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER execution_events_no_update BEFORE UPDATE ON execution_events
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END
    """,
    f"""
    CREATE TRIGGER execution_events_no_delete BEFORE DELETE ON execution_events
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END
    """,
)

_POSTGRES_TRIGGERS = (
    f"""
    CREATE FUNCTION execution_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{APPEND_ONLY_MESSAGE} (% refused)', TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER execution_events_no_update_delete
    BEFORE UPDATE OR DELETE ON execution_events
    FOR EACH ROW EXECUTE FUNCTION execution_events_append_only()
    """,
    """
    CREATE TRIGGER execution_events_no_truncate
    BEFORE TRUNCATE ON execution_events
    FOR EACH STATEMENT EXECUTE FUNCTION execution_events_append_only()
    """,
)


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "execution_logs",
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("rpm_decision_id", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("direction", sa.SmallInteger(), nullable=False),
        sa.Column("intended_units", sa.Double(), nullable=False),
        sa.Column("executed_units", sa.Double(), nullable=False),
        sa.Column("intended_lots", sa.Double(), nullable=True),
        sa.Column("executed_lots", sa.Double(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("position_id", sa.BigInteger(), nullable=True),
        sa.Column("fill_price", sa.Double(), nullable=True),
        sa.Column("intended_price", sa.Double(), nullable=True),
        sa.Column("slippage_pips", sa.Double(), nullable=True),
        sa.Column("slippage_abs_pips", sa.Double(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rejection_reason", sa.String(40), nullable=True),
        sa.Column("rejection_details", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("magic", sa.BigInteger(), nullable=True),
        sa.Column("confidence_score", sa.Double(), nullable=True),
        sa.Column("atr", sa.Double(), nullable=True),
        sa.Column("rpm_version", sa.String(64), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("engine_version", sa.String(64), nullable=False),
        sa.Column("rpm_fingerprint", sa.String(64), nullable=False),
        sa.Column("rpm_payload", sa.JSON(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("submitted_at", _utc(), nullable=True),
        sa.Column("filled_at", _utc(), nullable=True),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("broker_time_msc", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_execution_logs")),
        sa.UniqueConstraint("rpm_decision_id", name=op.f("uq_execution_logs_rpm_decision_id")),
        sa.UniqueConstraint("client_id", name=op.f("uq_execution_logs_client_id")),
        sa.CheckConstraint(
            "direction IN (1, -1) OR (direction = 0 AND intended_units = 0)",
            name=op.f("ck_execution_logs_direction"),
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SUBMITTING', 'SUBMITTED', 'UNKNOWN', 'FILLED', "
            "'PARTIALLY_FILLED', 'REJECTED', 'EXPIRED')",
            name=op.f("ck_execution_logs_status"),
        ),
    )
    for column in ("symbol", "created_at", "status", "order_id"):
        op.create_index(op.f(f"ix_execution_logs_{column}"), "execution_logs", [column])

    op.create_table(
        "execution_events",
        sa.Column(
            "sequence",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("execution_id", sa.String(64), nullable=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("engine_time_us", sa.BigInteger(), nullable=False),
        sa.Column("broker_time_msc", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.CHAR(64), nullable=False),
        sa.Column("hash", sa.CHAR(64), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_execution_events")),
        sa.CheckConstraint("sequence > 0", name=op.f("ck_execution_events_sequence_positive")),
    )
    op.create_index(op.f("ix_execution_events_execution_id"), "execution_events", ["execution_id"])
    op.create_index(
        op.f("ix_execution_events_engine_time_us"), "execution_events", ["engine_time_us"]
    )

    op.create_table(
        "trading_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trading_state")),
        sa.CheckConstraint("id = 1", name=op.f("ck_trading_state_single_row")),
        sa.CheckConstraint("state IN ('ACTIVE', 'HALTED')", name=op.f("ck_trading_state_state")),
    )

    dialect = op.get_context().dialect.name
    triggers = {"postgresql": _POSTGRES_TRIGGERS, "sqlite": _SQLITE_TRIGGERS}.get(dialect)
    if triggers is None:
        # An unprotected journal is not an acceptable fallback.
        raise RuntimeError(f"no append-only triggers for the {dialect} dialect")
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS execution_events_no_truncate ON execution_events")
        op.execute("DROP TRIGGER IF EXISTS execution_events_no_update_delete ON execution_events")
        op.execute("DROP FUNCTION IF EXISTS execution_events_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS execution_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS execution_events_no_delete")
    op.drop_table("trading_state")
    op.drop_table("execution_events")
    op.drop_table("execution_logs")
