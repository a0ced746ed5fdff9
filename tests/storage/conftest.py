"""Storage fixtures and hand-written factories (fixed ids and times, no randomness)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from core.clock import utc_micros
from core.enums import ExecutionStatus
from core.models import ExecutionLog, TradingStateRecord
from storage.db import create_db_engine
from storage.migrate import upgrade
from storage.ops import WriteOp
from storage.repository import Repository
from storage.writer import JournalWriter

BASE_TIME = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
"""Every factory time is an offset from this instant."""


@pytest.fixture
def migrated_url(database_url: str) -> str:
    upgrade(database_url)
    return database_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = create_db_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine: Engine) -> JournalWriter:
    return JournalWriter(engine)


@pytest.fixture
def repo(engine: Engine) -> Repository:
    return Repository(engine)


def make_log(n: int, **changes: Any) -> ExecutionLog:
    """Execution number `n`, PENDING, created at BASE_TIME + n seconds."""
    created = BASE_TIME + timedelta(seconds=n)
    log = ExecutionLog(
        execution_id=f"exec_{n:032x}",
        request_id=f"req_{n:032x}",
        rpm_decision_id=f"decision-{n}",
        client_id=f"ee-{n}",
        symbol="EURUSD" if n % 2 == 0 else "USDJPY",
        direction=1 if n % 2 == 0 else -1,
        intended_units=10_000.0 * (n % 5 + 1),
        intended_lots=0.1 * (n % 5 + 1),
        magic=424242,
        confidence_score=0.75,
        atr=0.00123,
        rpm_version="rpm-1.4",
        model_version="model-7",
        engine_version="0.1.0",
        rpm_fingerprint=f"{n:064x}",
        rpm_payload={"decision": {"decision_id": f"decision-{n}", "status": "APPROVED"}, "n": n},
        created_at=created,
        updated_at=created,
    )
    return log.evolve(**changes) if changes else log


def advance(
    log: ExecutionLog, status: ExecutionStatus, seconds: float = 1, **changes: Any
) -> ExecutionLog:
    """`log` moved to `status`, `seconds` later, with other field changes."""
    return log.evolve(
        status=status, updated_at=log.updated_at + timedelta(seconds=seconds), **changes
    )


def filled(log: ExecutionLog, seconds: float = 2, order_id: int = 0) -> ExecutionLog:
    """`log` FILLED at a fixed price, with its order ticket and broker time."""
    at = log.updated_at + timedelta(seconds=seconds)
    return log.evolve(
        status=ExecutionStatus.FILLED,
        updated_at=at,
        filled_at=at,
        order_id=order_id or 5_000_000_000 + log.attempts,
        position_id=7_000_000_001,
        executed_units=log.intended_units,
        executed_lots=log.intended_lots or 0.0,
        fill_price=1.08457,
        intended_price=1.08450,
        slippage_pips=0.7,
        slippage_abs_pips=0.7,
        broker_time_msc=1_709_301_600_123,
    )


def op_for(log: ExecutionLog, event_type: str = "EXECUTION_UPDATED", **payload: Any) -> WriteOp:
    """The op that journals `log` as the execution's new state, at its `updated_at`."""
    return WriteOp(
        execution_id=log.execution_id,
        event_type=event_type,
        payload=payload or {"status": log.status.value},
        engine_time_us=utc_micros(log.updated_at),
        projection=log,
    )


def note_op(execution_id: str | None, seconds: float, **payload: Any) -> WriteOp:
    """An event that changes no state (e.g. a broker call), at BASE_TIME + `seconds`."""
    return WriteOp(
        execution_id=execution_id,
        event_type="BROKER_CALL",
        payload=payload,
        engine_time_us=utc_micros(BASE_TIME + timedelta(seconds=seconds)),
        broker_time_msc=1_709_301_600_000 + int(seconds * 1000),
    )


def state_op(state: str, seconds: float, changed_by: str = "ops") -> WriteOp:
    at = BASE_TIME + timedelta(seconds=seconds)
    record = TradingStateRecord(
        state=state, changed_by=changed_by, reason=f"set {state}", changed_at=at
    )
    return WriteOp.trading_state_change(record, utc_micros(at))


def disable_journal_guard(engine: Engine) -> None:
    """Remove the append-only protection, as an attacker with superuser rights could."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE execution_events DISABLE TRIGGER USER")
        else:
            connection.exec_driver_sql("DROP TRIGGER execution_events_no_update")
            connection.exec_driver_sql("DROP TRIGGER execution_events_no_delete")


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        value = connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()
    return int(value)
