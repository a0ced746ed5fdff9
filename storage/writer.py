"""The single writer's connection and transaction (the PersistenceActor calls it).

A batch of `WriteOp`s is one transaction: every op appends one chained journal row and
applies its projection or trading-state change, and nothing is acknowledged before the
commit. What a batch writes is planned without the database (`storage._batch`); this
module owns the connection, the transaction, the retry on a dropped connection, the resync
of the chain's tail after a failure, and picks the write path.

Not thread-safe: exactly one `JournalWriter` per database, used from one thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine, bindparam, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from core.accounts import DEFAULT_ACCOUNT
from core.enums import ExecutionStatus
from core.errors import DuplicateDecisionError, PersistenceUnavailableError
from core.models import JournalEvent, TradingStateRecord
from storage._batch import BatchPlan, State, held_states, plan_batch
from storage._pg_one_trip import (
    INSERT_LOG,
    UPDATE_LOG,
    BulkInsertRefusedError,
    DriverStatements,
    insert_events,
    write_in_one_round_trip,
)
from storage.db import redact_url
from storage.journal import AuditKey, read_tail
from storage.notify import publish
from storage.ops import WriteOp, utc_op
from storage.schema import execution_logs, row_to_log, trading_state

Fence = Callable[[Connection, str], None]
"""Raises (`LeaseLostError`) unless this instance still holds the account's lease; called
inside the write-ahead transaction (`storage.lease.LeaseKeeper.fence`)."""

FIRM_SCOPE = "firm"
"""The scope of the one trading state in NOTIFY payloads (`storage.notify`)."""

# Every instance sharing the database appends to the one chain: each batch takes this
# transaction lock, then reads the tail, so two writers never fork it.
_CHAIN_LOCK = text("SELECT pg_advisory_xact_lock(7526086419520837427)")
_INTENT = ExecutionStatus.SUBMITTING.value

_SELECT_LOGS = select(execution_logs).where(
    execution_logs.c.execution_id.in_(bindparam("execution_ids", expanding=True))
)


class JournalWriter:
    """Appends batches of events to the journal and keeps the projections in step.

    The last committed sequence and hash are read from the database on construction, so a
    restarted writer continues the chain where the previous one stopped. With `audit_key`
    every row is hashed with HMAC-SHA256 under it and records its id; the caller checks
    first that the journal is not keyed with another key (`storage.journal.check_audit_key`).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        audit_key: AuditKey | None = None,
        fence: Fence | None = None,
        shared: bool = False,
    ) -> None:
        self._engine = engine
        self._audit_key = audit_key
        self._fence = fence
        """Hot standby: checked for every account an intent (SUBMITTING) of a batch names."""
        self._shared = shared and engine.dialect.name == "postgresql"
        """Other instances append to the same chain: lock it and read its tail per batch."""
        try:
            with engine.connect() as connection:
                self._last_sequence, self._last_hash = _read_tail(connection)
        except SQLAlchemyError as exc:
            raise PersistenceUnavailableError(
                f"cannot read the journal tail from {redact_url(str(engine.url))}: "
                f"{type(exc).__name__}"
            ) from exc
        # Set after a failed batch whose commit outcome is unknown and whose tail could not
        # be re-read: the next batch re-reads it inside its own transaction.
        self._stale = False
        # The committed state of the non-final executions this writer wrote, so that the
        # usual op (the next status of a live execution) needs no read before its write.
        # Only committed states go in; any failure empties it. Final executions leave it,
        # which bounds it by the executions in flight.
        self._committed: dict[str, State] = {}
        self._connection: Connection | None = None
        self._driver = DriverStatements.for_dialect(engine.dialect)

    @property
    def last_sequence(self) -> int:
        """Sequence of the last row this writer knows committed (0 for an empty journal)."""
        return self._last_sequence

    @property
    def last_hash(self) -> str:
        """Hash of that row (`GENESIS_HASH` for an empty journal)."""
        return self._last_hash

    def write_batch(self, ops: Sequence[WriteOp]) -> list[JournalEvent]:
        """Append `ops` in one transaction; return their events once committed.

        Raises:
            DuplicateDecisionError: a projection's RPM decision id belongs to another
                execution; nothing of the batch was stored.
            PersistenceUnavailableError: the database refused or failed the transaction;
                nothing of the batch is acknowledged (if the commit itself failed, the
                rows may or may not be there: read them back before retrying).
            ValueError: an op cannot be stored as given (naive datetime, a value JSON
                cannot hold such as NaN); nothing of the batch was stored.

        The events' payloads may share values with the ops' payloads and with the writer's
        own state (they are not copied): treat them as read-only, as the events are.
        """
        if not ops:
            return []
        prepared = [utc_op(op) for op in ops]
        try:
            try:
                plan = self._transaction(prepared, bulk_insert=True)
            except BulkInsertRefusedError:
                # Rolled back; again with one INSERT per new execution, which pins the op.
                plan = self._transaction(prepared, bulk_insert=False)
        except DuplicateDecisionError:
            self._resync()
            raise
        except SQLAlchemyError as exc:
            self._resync()
            raise PersistenceUnavailableError(
                f"journal write of {len(ops)} op(s) to {redact_url(str(self._engine.url))} "
                f"failed: {type(exc).__name__}"
            ) from exc
        except BaseException:
            self._resync()
            raise
        events = plan.events
        self._last_sequence = events[-1].sequence
        self._last_hash = events[-1].hash
        self._stale = False
        for execution_id, state in plan.latest.items():
            if state.log.is_final:
                self._committed.pop(execution_id, None)
            else:
                self._committed[execution_id] = state
        return events

    def _transaction(self, ops: Sequence[WriteOp], *, bulk_insert: bool) -> BatchPlan:
        """One transaction on the writer's own connection.

        The connection stays checked out between batches (no pool checkout and liveness
        ping per batch). A connection the server dropped while it was idle fails at its
        first statement, before anything could commit: the batch is then written once more
        on a new connection, as the pool's ping would have done. Any other failure, and
        a failed commit above all (its outcome is unknown), is the caller's.
        """
        for attempt in (1, 2):
            connection = self._connect()
            try:
                transaction = connection.begin()
                if self._shared:
                    connection.execute(_CHAIN_LOCK)
                    self._last_sequence, self._last_hash = _read_tail(connection)
                elif self._stale:
                    self._last_sequence, self._last_hash = _read_tail(connection)
                if self._fence is not None:
                    for account in _intent_accounts(ops):
                        self._fence(connection, account)
                self._check(connection, ops)
                plan = self._plan(connection, ops)
                _execute(connection, plan, self._driver, bulk_insert=bulk_insert)
            except DBAPIError as exc:
                self._discard()
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise
            except BaseException:
                self._discard()
                raise
            try:
                transaction.commit()
            except BaseException:
                self._discard()
                raise
            return plan
        raise AssertionError("unreachable")

    def _check(self, connection: Connection, ops: Sequence[WriteOp]) -> None:
        """A subclass's checks of the batch, with reads in its transaction before anything
        is written: raising refuses the whole batch (nothing of it commits)."""

    def _plan(self, connection: Connection, ops: Sequence[WriteOp]) -> BatchPlan:
        stored, unknown = held_states(ops, self._committed)
        if unknown:
            # One round trip for every execution the writer does not hold.
            stored.update(_load_projections(connection, unknown))
        return plan_batch(ops, self._last_sequence, self._last_hash, stored, self._audit_key)

    def _connect(self) -> Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._engine.connect()
        return self._connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Rolls back whatever a failed batch left; a broken connection is dropped.
            with contextlib.suppress(SQLAlchemyError):
                connection.close()

    def close(self) -> None:
        """Give the writer's connection back (the writer reconnects if used again)."""
        self._discard()

    def _resync(self) -> None:
        """Reload the committed tail; on failure leave it for the next batch to reload."""
        self._stale = True
        self._committed.clear()
        try:
            with self._engine.connect() as connection:
                self._last_sequence, self._last_hash = _read_tail(connection)
        except SQLAlchemyError:
            return
        self._stale = False


def _execute(
    connection: Connection,
    plan: BatchPlan,
    driver: DriverStatements | None,
    *,
    bulk_insert: bool,
) -> None:
    """Stage `plan` on `connection` by one of three paths.

    With `driver` (psycopg2) and `bulk_insert`, everything but the trading state goes out
    as one round trip. Otherwise through SQLAlchemy: the new executions in one INSERT
    (`bulk_insert`) or, on the retry after a refused one, one INSERT each, which names the
    op at fault.
    """
    writes = plan.writes
    if driver is not None and bulk_insert:
        # Not part of the one call: the upsert reads its UPDATE's row count (and is rare).
        for record in plan.trading_states:
            _store_trading_state(connection, record)
        write_in_one_round_trip(connection, driver, writes, plan.rows)
        return
    if len(writes.inserts) > 1 and bulk_insert:
        try:
            connection.execute(INSERT_LOG, [new.row_values() for new, _ in writes.inserts])
        except IntegrityError as exc:
            raise BulkInsertRefusedError from exc
    else:
        for new, op_index in writes.inserts:
            _insert_projection(connection, new, op_index)
    if writes.updates:
        connection.execute(UPDATE_LOG, writes.updates)
    if writes.full_updates:
        connection.execute(UPDATE_LOG, writes.full_updates)
    for record in plan.trading_states:
        _store_trading_state(connection, record)
    insert_events(connection, plan.rows)


def _intent_accounts(ops: Sequence[WriteOp]) -> set[str]:
    """The accounts whose intents (the write-ahead SUBMITTING) `ops` commit."""
    return {
        op.projection.account
        for op in ops
        if op.projection is not None and op.event_type == _INTENT
    }


def _read_tail(connection: Connection) -> tuple[int, str]:
    sequence, last_hash, _key_id = read_tail(connection)
    return sequence, last_hash


def _load_projections(connection: Connection, execution_ids: list[str]) -> dict[str, State]:
    result = connection.execute(_SELECT_LOGS, {"execution_ids": execution_ids})
    return {row.execution_id: State.of(row_to_log(row)) for row in result}


def _insert_projection(connection: Connection, state: State, op_index: int) -> None:
    # One INSERT per new execution (not executemany) so that a duplicate decision id is
    # pinned to its op.
    try:
        connection.execute(INSERT_LOG, state.row_values())
    except IntegrityError as exc:
        # Both drivers name the violated column or constraint in the message.
        if "rpm_decision_id" in str(exc.orig):
            raise DuplicateDecisionError(
                decision_id=state.log.rpm_decision_id,
                execution_id=state.log.execution_id,
                op_index=op_index,
            ) from exc
        raise


def _store_trading_state(connection: Connection, record: TradingStateRecord) -> None:
    values = {
        "state": record.state,
        "changed_by": record.changed_by,
        "reason": record.reason,
        "changed_at": record.changed_at,
    }
    where = trading_state.c.account == record.account
    result = connection.execute(update(trading_state).where(where).values(values))
    if result.rowcount == 0:
        # id 1 is the default account's, as it was before accounts; the others follow it.
        # One writer inserts, so the next id cannot be taken meanwhile.
        highest = connection.execute(select(func.max(trading_state.c.id))).scalar()
        new_id = 1 if record.account == DEFAULT_ACCOUNT else max(highest or 1, 1) + 1
        connection.execute(
            insert(trading_state).values(id=new_id, account=record.account, **values)
        )
    # Leaves with the commit, never for a rollback: every instance's gate hears it.
    publish(connection, FIRM_SCOPE, record.state)


__all__ = ["FIRM_SCOPE", "Fence", "JournalWriter"]
