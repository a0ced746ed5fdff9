"""The transactional core of the single writer (the PersistenceActor calls it).

A batch of `WriteOp`s is one transaction: every op appends one chained journal row and
applies its projection or trading-state change, and nothing is acknowledged before the
commit. Each event's payload records, under ``"changes"``, the projection fields the op
changed, so that `replay_projection` can rebuild `execution_logs` from the journal alone.

Not thread-safe: exactly one `JournalWriter` per database, used from one thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any, ClassVar

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Insert,
    Update,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.sql.compiler import SQLCompiler

from core.enums import TradingState
from core.errors import PersistenceError, PersistenceUnavailableError
from core.models import ExecutionLog, JournalEvent, TradingStateRecord, canonical_json
from storage.db import redact_url
from storage.journal import (
    TRADING_STATE_CHANGED,
    AuditKey,
    chain_digest,
    iter_event_rows,
    read_tail,
)
from storage.schema import (
    execution_events,
    execution_logs,
    row_to_log,
    trading_state,
)

CHANGES_KEY = "changes"
"""Payload key under which the writer records the projection fields an op changed."""

TRADING_STATE_KEY = "trading_state"
"""Payload key under which the writer records the new trading state."""

_RESERVED_KEYS = frozenset({CHANGES_KEY, TRADING_STATE_KEY})
_DATETIME_FIELDS = ("created_at", "submitted_at", "filled_at", "updated_at")
_MAX_EVENT_TYPE_LENGTH = 64


class DuplicateDecisionError(PersistenceError):
    """Another execution already holds this RPM decision id; the whole batch was rolled back."""

    code: ClassVar[str] = "DUPLICATE_DECISION"

    def __init__(
        self, message: str | None = None, *, decision_id: str, execution_id: str, op_index: int
    ) -> None:
        self.decision_id = decision_id
        self.execution_id = execution_id
        self.op_index = op_index
        super().__init__(
            message
            if message is not None
            else f"decision {decision_id!r} is already stored for another execution "
            f"(op {op_index}, execution {execution_id!r})"
        )

    def details(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "execution_id": self.execution_id,
            "op_index": self.op_index,
        }


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One journal event to append, with the state change it carries.

    Attributes:
        execution_id: The execution the event belongs to; None for engine-wide events.
        event_type: What happened, e.g. ``STATUS_CHANGED`` (at most 64 characters).
        payload: The event's JSON content. The keys ``changes`` and ``trading_state`` are
            the writer's own and are refused here.
        engine_time_us: Engine UTC time of the event, microseconds since the epoch.
        broker_time_msc: MT5 server time when the event came from the broker, else None.
        projection: The execution's new full state when this event changes it; its
            `execution_id` must equal `execution_id`.
        trading_state: The kill switch's new state; such an op has no `execution_id` and
            its type is ``TRADING_STATE_CHANGED``.
        creates: The op creates its execution (the first write of a new execution id): its
            row is inserted without first looking for a stored one. Should one exist, the
            INSERT fails and nothing of the batch is stored.
    """

    execution_id: str | None
    event_type: str
    payload: dict[str, Any]
    engine_time_us: int
    broker_time_msc: int | None = None
    projection: ExecutionLog | None = None
    trading_state: TradingStateRecord | None = None
    creates: bool = False

    def __post_init__(self) -> None:
        if not self.event_type or len(self.event_type) > _MAX_EVENT_TYPE_LENGTH:
            raise ValueError(f"event_type must be 1 to {_MAX_EVENT_TYPE_LENGTH} characters")
        reserved = _RESERVED_KEYS.intersection(self.payload)
        if reserved:
            raise ValueError(f"payload keys {sorted(reserved)} are reserved for the writer")
        if self.projection is not None and self.projection.execution_id != self.execution_id:
            raise ValueError("projection.execution_id must equal the op's execution_id")
        if self.trading_state is not None:
            if self.execution_id is not None or self.event_type != TRADING_STATE_CHANGED:
                raise ValueError(
                    f"a trading-state op has no execution_id and type {TRADING_STATE_CHANGED}"
                )
            TradingState(self.trading_state.state)  # refuses an unknown state by name
            _require_aware("trading_state.changed_at", self.trading_state.changed_at)
        if self.creates and self.projection is None:
            raise ValueError("an op that creates an execution carries its projection")
        if self.projection is not None:
            for name in _DATETIME_FIELDS:
                _require_aware(f"projection.{name}", getattr(self.projection, name))

    @classmethod
    def trading_state_change(
        cls, record: TradingStateRecord, engine_time_us: int, payload: dict[str, Any] | None = None
    ) -> WriteOp:
        """The op that persists and journals a change of the kill switch."""
        return cls(
            execution_id=None,
            event_type=TRADING_STATE_CHANGED,
            payload=dict(payload or {}),
            engine_time_us=engine_time_us,
            trading_state=record,
        )


class JournalWriter:
    """Appends batches of events to the journal and keeps the projections in step.

    The last committed sequence and hash are read from the database on construction, so a
    restarted writer continues the chain where the previous one stopped. With `audit_key`
    every row is hashed with HMAC-SHA256 under it and records its id; the caller checks
    first that the journal is not keyed with another key (`storage.journal.check_audit_key`).
    """

    def __init__(self, engine: Engine, *, audit_key: AuditKey | None = None) -> None:
        self._engine = engine
        self._audit_key = audit_key
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
        self._committed: dict[str, _State] = {}
        self._connection: Connection | None = None
        self._driver = _DriverStatements.for_dialect(engine.dialect)

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
        prepared = [_utc_op(op) for op in ops]
        try:
            try:
                events, written = self._transaction(prepared, bulk_insert=True)
            except _BulkInsertRefusedError:
                # Rolled back; again with one INSERT per new execution, which pins the op.
                events, written = self._transaction(prepared, bulk_insert=False)
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
        self._last_sequence = events[-1].sequence
        self._last_hash = events[-1].hash
        self._stale = False
        for execution_id, state in written.items():
            if state.log.is_final:
                self._committed.pop(execution_id, None)
            else:
                self._committed[execution_id] = state
        return events

    def _transaction(
        self, ops: Sequence[WriteOp], *, bulk_insert: bool
    ) -> tuple[list[JournalEvent], dict[str, _State]]:
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
                if self._stale:
                    self._last_sequence, self._last_hash = _read_tail(connection)
                result = _apply(
                    connection,
                    ops,
                    self._last_sequence,
                    self._last_hash,
                    self._committed,
                    bulk_insert=bulk_insert,
                    driver=self._driver,
                    key=self._audit_key,
                )
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
            return result
        raise AssertionError("unreachable")

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


def _require_aware(name: str, value: datetime | None) -> None:
    # Checked before the transaction: inside it, SQLAlchemy would wrap the refusal as a
    # database error and a caller's bug would look like an unavailable database.
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} is a naive datetime; times must be aware UTC")


def _utc_op(op: WriteOp) -> WriteOp:
    """`op` with its projection's times in UTC, as they will read back from the database.

    "changes" are computed against the stored row, so the projection must already be in
    the stored form, or every event would report the times as changed.
    """
    if op.projection is None:
        return op
    updates: dict[str, datetime] = {}
    for name in _DATETIME_FIELDS:
        value: datetime | None = getattr(op.projection, name)
        if value is not None and value.tzinfo is not UTC:
            updates[name] = value.astimezone(UTC)
    if not updates:
        return op
    return replace(op, projection=op.projection.model_copy(update=updates))


def _read_tail(connection: Connection) -> tuple[int, str]:
    sequence, last_hash, _key_id = read_tail(connection)
    return sequence, last_hash


# Built once: statements with bound parameters hit SQLAlchemy's compiled cache cheaply,
# where `.values(literal dict)` re-derives a cache key over every column on every call.
_SELECT_LOGS = select(execution_logs).where(
    execution_logs.c.execution_id.in_(bindparam("execution_ids", expanding=True))
)
_INSERT_LOG = insert(execution_logs)
_UPDATE_LOG = update(execution_logs).where(
    execution_logs.c.execution_id == bindparam("key_execution_id")
)
_EVENT_COLUMNS = (
    "sequence",
    "execution_id",
    "event_type",
    "payload",
    "engine_time_us",
    "broker_time_msc",
    "prev_hash",
    "hash",
    "hash_key_id",
)
_INSERT_EVENTS_HEAD = (
    "INSERT INTO execution_events (sequence, execution_id, event_type, payload, "
    "engine_time_us, broker_time_msc, prev_hash, hash, hash_key_id) VALUES "
)
_ROWS_PER_INSERT = 500

# Fields an execution is created with and that no later op changes in practice. When none
# of them changed, an UPDATE leaves them out (the RPM payload above all: re-encoding it on
# every status change was most of an UPDATE's cost).
_FIXED_FIELDS = frozenset(
    {
        "request_id",
        "rpm_decision_id",
        "client_id",
        "symbol",
        "direction",
        "intended_units",
        "magic",
        "confidence_score",
        "atr",
        "rpm_version",
        "model_version",
        "engine_version",
        "rpm_fingerprint",
        "rpm_payload",
        "created_at",
    }
)
_NOT_CHANGING: set[str] = {*_FIXED_FIELDS, "execution_id"}
_RPM_PAYLOAD: set[str] = {"rpm_payload"}
# Exact types whose JSON text reads back as an equal value of the same type.
_JSON_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


@dataclass(frozen=True, slots=True)
class _State:
    """An execution's state and its JSON form (what "changes" are computed against).

    The RPM payload is kept apart from the other fields: it is most of the JSON form and
    never changes in practice, so the next state avoids dumping it again when it can tell
    the payload is the same without doing so.
    """

    log: ExecutionLog
    fields: dict[str, Any]
    """The JSON form of every field but ``rpm_payload``."""
    rpm_payload: dict[str, Any]
    """The JSON form of ``rpm_payload``."""

    @classmethod
    def of(cls, log: ExecutionLog) -> _State:
        return cls(log, log.model_dump(mode="json", exclude=_RPM_PAYLOAD), _rpm_payload_json(log))

    def all_fields(self) -> dict[str, Any]:
        """The JSON form of every field (``ExecutionLog.model_dump(mode="json")``)."""
        return {**self.fields, "rpm_payload": self.rpm_payload}

    def then(self, log: ExecutionLog) -> tuple[_State, dict[str, Any]]:
        """`log`'s state, and its changes from this one (`ExecutionLog.changes_from`)."""
        fields = log.model_dump(mode="json", exclude=_RPM_PAYLOAD)
        before = self.fields
        changes = {key: value for key, value in fields.items() if before.get(key) != value}
        rpm_payload = self._same_rpm_payload(log)
        if rpm_payload is None:
            rpm_payload = _rpm_payload_json(log)
            if rpm_payload != self.rpm_payload:
                changes["rpm_payload"] = rpm_payload
        return _State(log, fields, rpm_payload), changes

    def _same_rpm_payload(self, log: ExecutionLog) -> dict[str, Any] | None:
        """The JSON form of `log`'s RPM payload if it is known equal to this state's.

        Found without dumping it: plain JSON is its own JSON form. The walk is needed as
        a value that is not plain may equal a plain one (Decimal("1") == 1) and yet have
        another form. None when unsure: the caller then dumps and compares.
        """
        value = log.rpm_payload
        if value is self.log.rpm_payload:  # carried over (model_copy): the same value
            return self.rpm_payload
        with contextlib.suppress(RecursionError):  # a cycle: the dump below reports it
            if value == self.rpm_payload and _is_plain_json(value):
                # Its own form, not this state's: they are equal but may differ in type
                # (1 and 1.0), and the row stores the new state's form.
                return value
        return None

    def row_values(self) -> dict[str, Any]:
        """`log_to_values` of the state, reusing the RPM payload's JSON form."""
        values = self.log.model_dump(exclude=_RPM_PAYLOAD)
        values["rpm_payload"] = self.rpm_payload
        values["legs"] = self.fields["legs"]  # the JSON form, as `log_to_values`
        values["status"] = self.log.status.value
        values["rejection_reason"] = (
            self.log.rejection_reason.value if self.log.rejection_reason is not None else None
        )
        return values


def _rpm_payload_json(log: ExecutionLog) -> dict[str, Any]:
    payload: dict[str, Any] = log.model_dump(mode="json", include=_RPM_PAYLOAD)["rpm_payload"]
    return payload


class _BulkInsertRefusedError(Exception):
    """The one INSERT of every new execution of a batch was refused (the batch is rolled
    back and written again with one INSERT each, which names the op at fault).

    Also raised when the one round trip of a batch that inserts fails on a constraint: the
    driver does not say which statement failed, and the retry finds out.
    """


def _apply(
    connection: Connection,
    ops: Sequence[WriteOp],
    last_sequence: int,
    last_hash: str,
    committed: dict[str, _State],
    *,
    bulk_insert: bool = True,
    driver: _DriverStatements | None = None,
    key: AuditKey | None = None,
) -> tuple[list[JournalEvent], dict[str, _State]]:
    """Stage the batch on `connection`; return its events and each execution's new state.

    With `driver` (PostgreSQL) and `bulk_insert`, the projection and journal writes go out
    as one round trip; without `bulk_insert` (the retry after a refused INSERT), each new
    execution is inserted on its own through SQLAlchemy, which names the op at fault.
    """
    sequence, prev_hash = last_sequence, last_hash
    key_id = key.key_id if key is not None else None
    ids: dict[str, bool] = {}  # execution id -> its first op in the batch creates it
    for op in ops:
        if op.projection is not None:
            ids.setdefault(op.projection.execution_id, op.creates)
    stored = {key: committed[key] for key in ids if key in committed}
    unknown = [key for key, creates in ids.items() if key not in stored and not creates]
    if unknown:
        # One round trip for every execution the writer does not hold.
        stored.update(_load_projections(connection, unknown))
    # The state of each execution as of the op being processed; several ops of one batch
    # may move the same execution, and each must diff against the one before it.
    latest: dict[str, _State] = {}
    changed: dict[str, set[str]] = {}
    first_op: dict[str, int] = {}
    new_trading_state: TradingStateRecord | None = None
    rows: list[dict[str, Any]] = []
    events: list[JournalEvent] = []
    for index, op in enumerate(ops):
        payload = dict(op.payload)
        if op.projection is not None:
            execution_id = op.projection.execution_id
            previous = latest[execution_id] if execution_id in latest else stored.get(execution_id)
            if (
                previous is not None
                and previous.log.rpm_decision_id != op.projection.rpm_decision_id
            ):
                raise ValueError(f"execution {execution_id!r} cannot change its rpm_decision_id")
            first_op.setdefault(execution_id, index)
            if previous is None:
                state = _State.of(op.projection)
                payload[CHANGES_KEY] = state.all_fields()
            else:
                state, payload[CHANGES_KEY] = previous.then(op.projection)
            changed.setdefault(execution_id, set()).update(payload[CHANGES_KEY])
            latest[execution_id] = state
        if op.trading_state is not None:
            payload[TRADING_STATE_KEY] = op.trading_state.model_dump(mode="json")
            new_trading_state = op.trading_state
        parsed, text = _canonical_payload(payload, op.payload)
        sequence += 1
        digest = _chain_hash(
            prev_hash,
            sequence,
            op.execution_id,
            op.event_type,
            text,
            op.engine_time_us,
            op.broker_time_msc,
            key,
        )
        rows.append(
            {
                "sequence": sequence,
                "execution_id": op.execution_id,
                "event_type": op.event_type,
                "payload": text,
                "engine_time_us": op.engine_time_us,
                "broker_time_msc": op.broker_time_msc,
                "prev_hash": prev_hash,
                "hash": digest,
                "hash_key_id": key_id,
            }
        )
        events.append(
            # Every field is built just above from checked values: no need to validate again.
            JournalEvent.model_construct(
                sequence=sequence,
                execution_id=op.execution_id,
                event_type=op.event_type,
                payload=parsed,
                engine_time_us=op.engine_time_us,
                broker_time_msc=op.broker_time_msc,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        prev_hash = digest
    writes = _ProjectionWrites.of(latest, stored, changed, first_op)
    if driver is not None and bulk_insert:
        # Not part of the one call: the upsert reads its UPDATE's row count (and is rare).
        if new_trading_state is not None:
            _store_trading_state(connection, new_trading_state)
        _write_in_one_round_trip(connection, driver, writes, rows)
        return events, latest
    if len(writes.inserts) > 1 and bulk_insert:
        try:
            connection.execute(_INSERT_LOG, [new.row_values() for new, _ in writes.inserts])
        except IntegrityError as exc:
            raise _BulkInsertRefusedError from exc
    else:
        for new, op_index in writes.inserts:
            _insert_projection(connection, new, op_index)
    if writes.updates:
        connection.execute(_UPDATE_LOG, writes.updates)
    if writes.full_updates:
        connection.execute(_UPDATE_LOG, writes.full_updates)
    if new_trading_state is not None:
        _store_trading_state(connection, new_trading_state)
    _insert_events(connection, rows)
    return events, latest


@dataclass(frozen=True, slots=True)
class _ProjectionWrites:
    """The `execution_logs` rows a batch writes, as the statements' parameters."""

    inserts: list[tuple[_State, int]]
    """Each new execution's state and the index of the op that created it."""
    updates: list[dict[str, Any]]
    """UPDATEs of the changing columns only (no fixed field changed)."""
    full_updates: list[dict[str, Any]]
    """UPDATEs of every column."""

    @classmethod
    def of(
        cls,
        latest: dict[str, _State],
        stored: dict[str, _State],
        changed: dict[str, set[str]],
        first_op: dict[str, int],
    ) -> _ProjectionWrites:
        writes = cls([], [], [])
        for execution_id, state in latest.items():
            if execution_id not in stored:
                writes.inserts.append((state, first_op[execution_id]))
            elif changed[execution_id].isdisjoint(_FIXED_FIELDS):
                values = _changing_values(state.log)
                values["key_execution_id"] = execution_id
                writes.updates.append(values)
            else:
                values = state.row_values()
                values["key_execution_id"] = values.pop("execution_id")
                writes.full_updates.append(values)
        return writes


def _canonical_payload(
    payload: dict[str, Any], given: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The payload as a reader parses it back from the stored text, and that text.

    The text must be canonical for the value read back, not for the value given: e.g. an
    integer key becomes a string and would sort differently. Only `given` (the caller's
    part) needs checking: what the writer adds is pydantic's JSON form, already plain.
    When it is plain JSON, one encoding gives both (NaN is still refused by the encoder);
    otherwise the payload is encoded, parsed back and encoded again.
    """
    try:
        plain = _is_plain_json(given)
    except RecursionError:  # a cycle: the encoder names it
        plain = False
    if plain:
        return payload, canonical_json(payload)
    parsed: dict[str, Any] = json.loads(canonical_json(payload))
    return parsed, canonical_json(parsed)


def _is_plain_json(value: Any) -> bool:
    """Whether JSON reads `value` back as itself: dicts with str keys, lists and scalars.

    Exact types: a subclass (an enum, a tuple, an OrderedDict) may read back as another
    type, so it takes the slow path.
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _JSON_SCALARS and not _is_plain_json(item):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) not in _JSON_SCALARS and not _is_plain_json(item):
                return False
        return True
    return kind in _JSON_SCALARS


def _chain_hash(
    prev_hash: str,
    sequence: int,
    execution_id: str | None,
    event_type: str,
    payload_text: str,
    engine_time_us: int,
    broker_time_msc: int | None,
    key: AuditKey | None = None,
) -> str:
    """`storage.journal.event_hash`, given the payload's canonical text instead of its value.

    The content is the canonical JSON of the row (keys sorted, no spaces), put together
    around the text already made for the row instead of encoding the payload a second time.
    `verify_chain` recomputes every hash with `event_hash`, so the two cannot drift apart
    unnoticed.
    """
    content = (
        f'{{"broker_time_msc":{_json_scalar(broker_time_msc)},'
        f'"engine_time_us":{_json_scalar(engine_time_us)},'
        f'"event_type":{_json_scalar(event_type)},'
        f'"execution_id":{_json_scalar(execution_id)},'
        f'"payload":{payload_text},'
        f'"sequence":{_json_scalar(sequence)}}}'
    )
    return chain_digest((prev_hash + content).encode(), key)


def _json_scalar(value: str | int | None) -> str:
    """`json.dumps(value)`, without its generic path for the usual exact str and int."""
    if type(value) is str:
        return encode_basestring_ascii(value)
    if type(value) is int:
        return int.__repr__(value)
    return json.dumps(value) if value is not None else "null"


def _insert_events(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """INSERT the journal rows, many per statement.

    Every column is a plain integer or text that needs no conversion, so the statement is
    written out here and sent as is: SQLAlchemy's per-row parameter processing was the
    largest cost of a batch. Errors still come back as SQLAlchemy's (the transaction and
    the error handling are SQLAlchemy's).
    """
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    for sql, params in _event_statements(marker, rows):
        connection.exec_driver_sql(sql, params)


def _event_statements(
    marker: str, rows: list[dict[str, Any]]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The journal rows' INSERT statements, as driver SQL and its parameters."""
    row_sql = "(" + ", ".join([marker] * len(_EVENT_COLUMNS)) + ")"
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        params = tuple(row[column] for row in chunk for column in _EVENT_COLUMNS)
        yield _INSERT_EVENTS_HEAD + ", ".join([row_sql] * len(chunk)), params


_PYFORMAT_MARKER = re.compile(r"%\((\w+)\)s")
_BindProcessor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    """A compiled statement as driver SQL with positional ``%s`` markers.

    The parameters are converted by the same bind processors SQLAlchemy would apply (the
    UTC datetime type, JSON through the engine's serializer), so the stored values are the
    same, without SQLAlchemy's per-row work around them.
    """

    sql: str
    binds: tuple[tuple[str, _BindProcessor | None], ...]
    """Each marker's value name, in order, and its bind processor if it has one."""

    @classmethod
    def compile(
        cls, statement: Insert | Update, dialect: Dialect, column_keys: Sequence[str]
    ) -> _DriverStatement:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys))
        assert isinstance(compiled, SQLCompiler)
        text = str(compiled)
        binds = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in _PYFORMAT_MARKER.findall(text)
        )
        return cls(_PYFORMAT_MARKER.sub("%s", text), binds)

    def params(self, values: dict[str, Any]) -> list[Any]:
        return [
            values[name] if process is None else process(values[name])
            for name, process in self.binds
        ]


@dataclass(frozen=True, slots=True)
class _DriverStatements:
    """The projection statements as driver SQL, for psycopg2 only.

    psycopg2 sends a statement with its parameters inlined, so several statements joined by
    semicolons go to the server as one round trip; drivers that bind on the server (psycopg
    3) refuse that, and SQLite runs one statement per call.
    """

    insert: _DriverStatement
    """The INSERT of one row; `insert_head` and `insert_row` split it for several rows."""
    insert_head: str
    insert_row: str
    update: _DriverStatement
    full_update: _DriverStatement

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> _DriverStatements | None:
        if (
            dialect.name != "postgresql"
            or dialect.driver != "psycopg2"
            or dialect.paramstyle not in ("pyformat", "format")
        ):
            return None
        columns = execution_logs.c.keys()
        changing = [name for name in columns if name not in _NOT_CHANGING]
        # As the UPDATEs' parameters name them: the row's own id only in the WHERE clause.
        every = [name for name in columns if name != "execution_id"]
        key = ["key_execution_id"]
        insert = _DriverStatement.compile(_INSERT_LOG, dialect, columns)
        head, row = insert.sql.split(" VALUES ", 1)
        return cls(
            insert=insert,
            insert_head=head + " VALUES ",
            insert_row=row,
            update=_DriverStatement.compile(_UPDATE_LOG, dialect, changing + key),
            full_update=_DriverStatement.compile(_UPDATE_LOG, dialect, every + key),
        )


def _write_in_one_round_trip(
    connection: Connection,
    driver: _DriverStatements,
    writes: _ProjectionWrites,
    rows: list[dict[str, Any]],
) -> None:
    """Send the batch's projection and journal writes as one multi-statement call.

    One round trip instead of one per statement, and none of SQLAlchemy's per-row
    processing; errors still come back wrapped as SQLAlchemy's.

    Raises:
        _BulkInsertRefusedError: a constraint refused the call and the batch inserts
            executions (a duplicate decision id, most likely).
    """
    statements: list[str] = []
    params: list[Any] = []
    for sql, statement_params in itertools.chain(
        _projection_statements(driver, writes), _event_statements("%s", rows)
    ):
        statements.append(sql)
        params += statement_params
    try:
        connection.exec_driver_sql("; ".join(statements), tuple(params))
    except IntegrityError as exc:
        if writes.inserts:
            raise _BulkInsertRefusedError from exc
        raise


def _projection_statements(
    driver: _DriverStatements, writes: _ProjectionWrites
) -> Iterator[tuple[str, list[Any]]]:
    """The `execution_logs` INSERTs and UPDATEs of `writes`, as driver SQL and parameters."""
    for start in range(0, len(writes.inserts), _ROWS_PER_INSERT):
        chunk = writes.inserts[start : start + _ROWS_PER_INSERT]
        params: list[Any] = []
        for state, _ in chunk:
            params += driver.insert.params(state.row_values())
        yield driver.insert_head + ", ".join([driver.insert_row] * len(chunk)), params
    for statement, updates in (
        (driver.update, writes.updates),
        (driver.full_update, writes.full_updates),
    ):
        for values in updates:
            yield statement.sql, statement.params(values)


def _load_projections(connection: Connection, execution_ids: list[str]) -> dict[str, _State]:
    result = connection.execute(_SELECT_LOGS, {"execution_ids": execution_ids})
    return {row.execution_id: _State.of(row_to_log(row)) for row in result}


def _changing_values(log: ExecutionLog) -> dict[str, Any]:
    """`log_to_values` without the fixed fields: an UPDATE sets only the columns named."""
    values = log.model_dump(exclude=_NOT_CHANGING)
    values["status"] = log.status.value
    values["rejection_reason"] = (
        log.rejection_reason.value if log.rejection_reason is not None else None
    )
    return values


def _insert_projection(connection: Connection, state: _State, op_index: int) -> None:
    # One INSERT per new execution (not executemany) so that a duplicate decision id is
    # pinned to its op.
    try:
        connection.execute(_INSERT_LOG, state.row_values())
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
    result = connection.execute(update(trading_state).where(trading_state.c.id == 1).values(values))
    if result.rowcount == 0:
        connection.execute(insert(trading_state).values(id=1, **values))


def replay_projection(engine: Engine, batch_size: int = 1000) -> dict[str, dict[str, Any]]:
    """Every execution's state rebuilt from the journal alone, as JSON-ready field dicts.

    Applies each event's ``changes`` in sequence order; the result must equal
    `ExecutionLog.model_dump(mode="json")` of every `execution_logs` row.
    """
    states: dict[str, dict[str, Any]] = {}
    with engine.connect() as connection:
        rows = iter_event_rows(connection, execution_events.c.execution_id.is_not(None), batch_size)
        for row in rows:
            changes = json.loads(row.payload).get(CHANGES_KEY)
            if changes is not None:
                states.setdefault(row.execution_id, {}).update(changes)
    return states


__all__ = [
    "CHANGES_KEY",
    "TRADING_STATE_KEY",
    "DuplicateDecisionError",
    "JournalWriter",
    "WriteOp",
    "replay_projection",
]
