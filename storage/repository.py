"""Read-only queries over the store, safe from any thread.

Each call takes its own short-lived connection from the engine's pool. The streaming calls
(`audit_trail`, `audit_events`) take a fresh connection per batch and page by key, so a
consumer that stops early holds no connection and a long export never pins one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError

from core.accounts import DEFAULT_ACCOUNT
from core.clock import utc_micros
from core.enums import FINAL_STATUSES, ExecutionStatus
from core.errors import PersistenceUnavailableError
from core.models import ExecutionLog, JournalEvent, TradingStateRecord
from storage.db import redact_url
from storage.journal import row_to_event
from storage.schema import execution_events, execution_logs, row_to_log, trading_state

T = TypeVar("T")

DEFAULT_BATCH_SIZE = 500
_FINAL_VALUES = sorted(status.value for status in FINAL_STATUSES)


_ACCOUNT_EVENTS_SCANNED = 1000
"""Engine events of one type read to find one account's newest: they are rare (a terminal
identified, a state changed), and the payload is JSON that no index covers."""


class Repository:
    """Queries over `execution_logs`, the journal and the trading state."""

    def __init__(self, engine: Engine, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._engine = engine
        self._batch_size = batch_size

    def get_execution(self, execution_id: str) -> ExecutionLog | None:
        return self._one(execution_logs.c.execution_id == execution_id)

    def get_by_decision_id(self, decision_id: str) -> ExecutionLog | None:
        return self._one(execution_logs.c.rpm_decision_id == decision_id)

    def history(
        self,
        symbol: str | None = None,
        status: ExecutionStatus | None = None,
        limit: int = 50,
        account: str | None = None,
    ) -> list[ExecutionLog]:
        """The newest executions first (by `created_at`, then `execution_id`); only
        `account`'s when given."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = select(execution_logs)
        if account is not None:
            query = query.where(execution_logs.c.account == account)
        if symbol is not None:
            query = query.where(execution_logs.c.symbol == symbol)
        if status is not None:
            query = query.where(execution_logs.c.status == ExecutionStatus(status).value)
        query = query.order_by(
            execution_logs.c.created_at.desc(), execution_logs.c.execution_id.desc()
        ).limit(limit)
        return self._logs(query)

    def audit_trail(
        self, start: datetime, end: datetime, account: str | None = None
    ) -> Iterator[ExecutionLog]:
        """Executions created in `[start, end)`, oldest first, fetched in batches; only
        `account`'s when given.

        The range is checked at once; rows are read only as the caller iterates.
        """
        _check_range(start, end)
        return self._stream_logs(start, end, account)

    def _stream_logs(
        self, start: datetime, end: datetime, account: str | None
    ) -> Iterator[ExecutionLog]:
        created, key = execution_logs.c.created_at, execution_logs.c.execution_id
        after: tuple[datetime, str] | None = None
        while True:
            query = select(execution_logs).where(created >= start, created < end)
            if account is not None:
                query = query.where(execution_logs.c.account == account)
            if after is not None:
                query = query.where(
                    or_(created > after[0], and_(created == after[0], key > after[1]))
                )
            query = query.order_by(created, key).limit(self._batch_size)
            batch = self._logs(query)
            yield from batch
            if len(batch) < self._batch_size:
                return
            after = (batch[-1].created_at, batch[-1].execution_id)

    def audit_events(
        self, start: datetime, end: datetime, account: str | None = None
    ) -> Iterator[JournalEvent]:
        """Journal events whose engine time is in `[start, end)`, in sequence order.

        With `account`: the events of that account's executions, and the engine-wide events
        that name that account or none (a firm-wide halt concerns every account).
        The range is checked at once; rows are read only as the caller iterates.
        """
        _check_range(start, end)
        return self._stream_events(start, end, account)

    def _stream_events(
        self, start: datetime, end: datetime, account: str | None
    ) -> Iterator[JournalEvent]:
        engine_time = execution_events.c.engine_time_us
        in_range = and_(engine_time >= utc_micros(start), engine_time < utc_micros(end))
        if account is not None:
            executions = select(execution_logs.c.execution_id).where(
                execution_logs.c.account == account
            )
            in_range = and_(
                in_range,
                or_(
                    execution_events.c.execution_id.is_(None),
                    execution_events.c.execution_id.in_(executions),
                ),
            )
        after = 0
        while True:
            query = (
                select(execution_events)
                .where(in_range, execution_events.c.sequence > after)
                .order_by(execution_events.c.sequence)
                .limit(self._batch_size)
            )
            batch = self._events(query)
            # Engine-wide rows keep the account in their payload (a JSON text column): they
            # are few, so they are told apart here rather than in SQL on both databases.
            yield from (event for event in batch if _concerns(event, account))
            if len(batch) < self._batch_size:
                return
            after = batch[-1].sequence

    def events_for(self, execution_id: str) -> list[JournalEvent]:
        """Every journal event of one execution, in sequence order."""
        query = (
            select(execution_events)
            .where(execution_events.c.execution_id == execution_id)
            .order_by(execution_events.c.sequence)
        )
        return self._events(query)

    def changed_after(self, sequence: int, limit: int = 500) -> tuple[list[ExecutionLog], int]:
        """The executions with a journal event after `sequence` (at most `limit` events are
        looked at), and the last sequence looked at: what a live view polls for. The journal
        key is indexed, so an idle poll is one index probe."""
        seq = execution_events.c.sequence
        query = (
            select(seq, execution_events.c.execution_id)
            .where(seq > sequence)
            .order_by(seq)
            .limit(limit)
        )

        def read(connection: Connection) -> tuple[list[ExecutionLog], int]:
            rows = connection.execute(query).all()
            if not rows:
                return [], sequence
            ids = sorted({row.execution_id for row in rows if row.execution_id is not None})
            logs = connection.execute(
                select(execution_logs).where(execution_logs.c.execution_id.in_(ids))
            )
            return [row_to_log(row) for row in logs], int(rows[-1].sequence)

        return self._read(read)

    def last_sequence(self) -> int:
        """The journal's newest sequence (0 when empty)."""
        query = select(func.max(execution_events.c.sequence))
        return self._read(lambda c: int(c.execute(query).scalar() or 0))

    def last_engine_event(self, event_type: str, account: str | None = None) -> JournalEvent | None:
        """The newest engine-wide journal event of `event_type` (e.g. the known terminal);
        only `account`'s when given (its payload's "account", absent: the default account).
        """
        query = (
            select(execution_events)
            .where(
                execution_events.c.execution_id.is_(None),
                execution_events.c.event_type == event_type,
            )
            .order_by(execution_events.c.sequence.desc())
            .limit(1 if account is None else _ACCOUNT_EVENTS_SCANNED)
        )
        for event in self._events(query):
            if account is None or event.payload.get("account", DEFAULT_ACCOUNT) == account:
                return event
        return None

    def non_final(self, account: str | None = None) -> list[ExecutionLog]:
        """Executions whose status is not final (crash recovery reconciles these), oldest
        first; only `account`'s when given (a standby taking one account over)."""
        query = select(execution_logs).where(execution_logs.c.status.not_in(_FINAL_VALUES))
        if account is not None:
            query = query.where(execution_logs.c.account == account)
        query = query.order_by(execution_logs.c.created_at, execution_logs.c.execution_id)
        return self._logs(query)

    def trading_state(self, account: str = DEFAULT_ACCOUNT) -> TradingStateRecord | None:
        """`account`'s persisted kill switch; None when its trading state was never set."""
        query = select(trading_state).where(trading_state.c.account == account)

        def read(connection: Connection) -> TradingStateRecord | None:
            row = connection.execute(query).first()
            if row is None:
                return None
            return TradingStateRecord(
                state=row.state,
                changed_by=row.changed_by,
                reason=row.reason,
                changed_at=row.changed_at,
                account=row.account,
            )

        return self._read(read)

    def count_by_status(self) -> dict[str, int]:
        """Number of executions per status; statuses with none are absent."""
        query = select(execution_logs.c.status, func.count()).group_by(execution_logs.c.status)
        return self._read(lambda c: {str(s): int(n) for s, n in c.execute(query)})

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def _one(self, condition: ColumnElement[bool]) -> ExecutionLog | None:
        query = select(execution_logs).where(condition)

        def read(connection: Connection) -> ExecutionLog | None:
            row = connection.execute(query).first()
            return row_to_log(row) if row is not None else None

        return self._read(read)

    def _logs(self, query: Select[Any]) -> list[ExecutionLog]:
        return self._read(lambda c: [row_to_log(row) for row in c.execute(query)])

    def _events(self, query: Select[Any]) -> list[JournalEvent]:
        return self._read(lambda c: [row_to_event(row) for row in c.execute(query)])

    def _read(self, fn: Callable[[Connection], T]) -> T:
        try:
            with self._engine.connect() as connection:
                return fn(connection)
        except SQLAlchemyError as exc:
            raise PersistenceUnavailableError(
                f"read from {redact_url(str(self._engine.url))} failed: {type(exc).__name__}"
            ) from exc


def _concerns(event: JournalEvent, account: str | None) -> bool:
    """Whether `event` belongs in `account`'s export (an execution's event was picked in SQL)."""
    if account is None or event.execution_id is not None:
        return True
    named = event.payload.get("account")
    return named is None or named == account


def _check_range(start: datetime, end: datetime) -> None:
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware (UTC)")
    if end < start:
        raise ValueError("end is before start")


__all__ = ["Repository"]
