"""The database schema: the execution projection, the journal, the kill switch, the leases.

The tables are declared once here; the Alembic migrations create them (and the triggers that
make the journal append-only), and a test checks that the two agree on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    Integer,
    MetaData,
    Row,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.accounts import DEFAULT_ACCOUNT
from core.enums import ExecutionStatus, TradingState
from core.models import ExecutionLog

#: Constraint and index names are fixed so that migrations can refer to them and so that a
#: violated constraint can be recognised in the driver's message on both databases.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC and always read back as aware UTC.

    PostgreSQL keeps the instant in `timestamptz`. SQLite has no time-zone type, so the value
    is stored as naive UTC text in SQLAlchemy's fixed-width format (which sorts correctly)
    and the zone is put back on read. Naive values are refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: times are stored as UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: SQLite only makes an INTEGER PRIMARY KEY the rowid alias (no second index), so the
#: journal's key is INTEGER there and BIGINT on PostgreSQL.
SequenceType = BigInteger().with_variant(Integer(), "sqlite")


def _in_list(column: str, values: list[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


STATUS_VALUES = [status.value for status in ExecutionStatus]
TRADING_STATE_VALUES = [state.value for state in TradingState]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ExecutionLogRow(Base):
    """One execution's current state; the columns are the fields of `core.models.ExecutionLog`."""

    __tablename__ = "execution_logs"
    __table_args__ = (
        # 0 only for a decision that carried no trade (HOLD/REJECTED), which is recorded as
        # an execution of zero units (then REJECTED), so the audit trail holds every message.
        CheckConstraint(
            "direction IN (1, -1) OR (direction = 0 AND intended_units = 0)", name="direction"
        ),
        CheckConstraint(_in_list("status", STATUS_VALUES), name="status"),
    )

    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    rpm_decision_id: Mapped[str] = mapped_column(String(128), unique=True)
    client_id: Mapped[str] = mapped_column(String(32), unique=True)
    symbol: Mapped[str] = mapped_column(String(32), index=True)
    direction: Mapped[int] = mapped_column(SmallInteger)
    intended_units: Mapped[float] = mapped_column(Double)
    executed_units: Mapped[float] = mapped_column(Double)
    intended_lots: Mapped[float | None] = mapped_column(Double)
    executed_lots: Mapped[float] = mapped_column(Double)
    order_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    position_id: Mapped[int | None] = mapped_column(BigInteger)
    fill_price: Mapped[float | None] = mapped_column(Double)
    intended_price: Mapped[float | None] = mapped_column(Double)
    slippage_pips: Mapped[float | None] = mapped_column(Double)
    slippage_abs_pips: Mapped[float | None] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(20), index=True)
    rejection_reason: Mapped[str | None] = mapped_column(String(40))
    rejection_details: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    magic: Mapped[int | None] = mapped_column(BigInteger)
    confidence_score: Mapped[float | None] = mapped_column(Double)
    atr: Mapped[float | None] = mapped_column(Double)
    rpm_version: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    engine_version: Mapped[str] = mapped_column(String(64))
    rpm_fingerprint: Mapped[str] = mapped_column(String(64))
    rpm_payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    filled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    broker_time_msc: Mapped[int | None] = mapped_column(BigInteger)
    legs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """The execution's order_sends (`core.models.ExecutionLeg`), as JSON."""
    account: Mapped[str] = mapped_column(
        String(64), index=True, server_default=text(f"'{DEFAULT_ACCOUNT}'")
    )
    """Added by migration 0006: every row written before it is the default account's."""


class ExecutionEventRow(Base):
    """One journal row. Append-only: triggers in the migration refuse UPDATE and DELETE."""

    __tablename__ = "execution_events"
    __table_args__ = (CheckConstraint("sequence > 0", name="sequence_positive"),)

    sequence: Mapped[int] = mapped_column(SequenceType, primary_key=True, autoincrement=False)
    execution_id: Mapped[str | None] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    """Canonical JSON text, kept byte for byte so that the hash can be recomputed."""
    engine_time_us: Mapped[int] = mapped_column(BigInteger, index=True)
    broker_time_msc: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(CHAR(64))
    hash: Mapped[str] = mapped_column(CHAR(64))
    hash_key_id: Mapped[str | None] = mapped_column(String(16))
    """None: `hash` is plain SHA-256; else HMAC-SHA256 under the EE_AUDIT_KEY of this id."""


class TradingStateRow(Base):
    """The kill switch: one row per account once its trading state was first set (id = 1 is
    the default account's, the one row of an engine from before accounts)."""

    __tablename__ = "trading_state"
    __table_args__ = (
        CheckConstraint(_in_list("state", TRADING_STATE_VALUES), name="state"),
        UniqueConstraint("account"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account: Mapped[str] = mapped_column(
        String(64), default=DEFAULT_ACCOUNT, server_default=text(f"'{DEFAULT_ACCOUNT}'")
    )
    state: Mapped[str] = mapped_column(String(16))
    changed_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AccountLeaseRow(Base):
    """The fencing epoch of one account's ownership lease (`storage.lease`, PostgreSQL).

    `epoch` grows by one at every acquisition; `backend_pid` is the session holding the
    account's advisory lock, so a write can check that lock is still held, not only taken.
    """

    __tablename__ = "account_leases"
    __table_args__ = (CheckConstraint("epoch > 0", name="epoch_positive"),)

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(String(128))
    advertise_url: Mapped[str | None] = mapped_column(Text)
    backend_pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime)


#: The tables themselves, for Core statements on the hot path (no ORM unit of work).
execution_logs: Table = Base.metadata.tables["execution_logs"]
execution_events: Table = Base.metadata.tables["execution_events"]
trading_state: Table = Base.metadata.tables["trading_state"]
account_leases: Table = Base.metadata.tables["account_leases"]


def log_to_values(log: ExecutionLog) -> dict[str, Any]:
    """The `execution_logs` column values for `log` (enums as their plain values)."""
    values = log.model_dump()
    # The JSON form, so that the stored payload reads back equal to what "changes" records
    # (a datetime inside it would otherwise be stored via str(), not isoformat()).
    values["rpm_payload"] = log.model_dump(mode="json", include={"rpm_payload"})["rpm_payload"]
    values["legs"] = log.model_dump(mode="json", include={"legs"})["legs"]
    values["status"] = log.status.value
    values["rejection_reason"] = (
        log.rejection_reason.value if log.rejection_reason is not None else None
    )
    return values


def row_to_log(row: Row[Any]) -> ExecutionLog:
    """An `execution_logs` row as the `ExecutionLog` record."""
    return ExecutionLog.model_validate(dict(row._mapping))


__all__ = [
    "AccountLeaseRow",
    "Base",
    "ExecutionEventRow",
    "ExecutionLogRow",
    "TradingStateRow",
    "UTCDateTime",
    "account_leases",
    "execution_events",
    "execution_logs",
    "log_to_values",
    "row_to_log",
    "trading_state",
]
