"""`WriteOp`: one journal event to append, with the state change it carries, and its checks.

Every check that can refuse an op runs here, before the writer's transaction: inside it,
SQLAlchemy would wrap a refusal as a database error and a caller's bug would look like an
unavailable database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from core.enums import JournalEventType, TradingState
from core.models import ExecutionLog, TradingStateRecord

CHANGES_KEY = "changes"
"""Payload key under which the writer records the projection fields an op changed."""

TRADING_STATE_KEY = "trading_state"
"""Payload key under which the writer records the new trading state."""

DATETIME_FIELDS = ("created_at", "submitted_at", "filled_at", "updated_at")
"""The projection's times, stored (and so read back) in UTC."""

_RESERVED_KEYS = frozenset({CHANGES_KEY, TRADING_STATE_KEY})
_MAX_EVENT_TYPE_LENGTH = 64
_TRADING_STATE_CHANGED = JournalEventType.TRADING_STATE_CHANGED


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One journal event to append, with the state change it carries.

    Attributes:
        execution_id: The execution the event belongs to; None for engine-wide events.
        event_type: What happened: a `JournalEventType` (a plain string of at most 64
            characters is taken too, and stored the same). Kept as a plain `str`, as the
            journal reads it back.
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
        if type(self.event_type) is not str and isinstance(self.event_type, str):
            # An enum member becomes its value: events, rows and hashes stay plain strings
            # (and the hash's fast path for exact `str` applies).
            object.__setattr__(self, "event_type", str.__str__(self.event_type))
        if not self.event_type or len(self.event_type) > _MAX_EVENT_TYPE_LENGTH:
            raise ValueError(f"event_type must be 1 to {_MAX_EVENT_TYPE_LENGTH} characters")
        reserved = _RESERVED_KEYS.intersection(self.payload)
        if reserved:
            raise ValueError(f"payload keys {sorted(reserved)} are reserved for the writer")
        if self.projection is not None and self.projection.execution_id != self.execution_id:
            raise ValueError("projection.execution_id must equal the op's execution_id")
        if self.trading_state is not None:
            if self.execution_id is not None or self.event_type != _TRADING_STATE_CHANGED:
                raise ValueError(
                    f"a trading-state op has no execution_id and type {_TRADING_STATE_CHANGED}"
                )
            TradingState(self.trading_state.state)  # refuses an unknown state by name
            require_aware("trading_state.changed_at", self.trading_state.changed_at)
        if self.creates and self.projection is None:
            raise ValueError("an op that creates an execution carries its projection")
        if self.projection is not None:
            for name in DATETIME_FIELDS:
                require_aware(f"projection.{name}", getattr(self.projection, name))

    @classmethod
    def trading_state_change(
        cls, record: TradingStateRecord, engine_time_us: int, payload: dict[str, Any] | None = None
    ) -> WriteOp:
        """The op that persists and journals a change of the kill switch."""
        return cls(
            execution_id=None,
            event_type=_TRADING_STATE_CHANGED,
            payload=dict(payload or {}),
            engine_time_us=engine_time_us,
            trading_state=record,
        )


def require_aware(name: str, value: datetime | None) -> None:
    """Refuse a naive datetime: every stored time is aware UTC."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} is a naive datetime; times must be aware UTC")


def utc_op(op: WriteOp) -> WriteOp:
    """`op` with its projection's times in UTC, as they will read back from the database.

    "changes" are computed against the stored row, so the projection must already be in
    the stored form, or every event would report the times as changed.
    """
    if op.projection is None:
        return op
    updates: dict[str, datetime] = {}
    for name in DATETIME_FIELDS:
        value: datetime | None = getattr(op.projection, name)
        if value is not None and value.tzinfo is not UTC:
            updates[name] = value.astimezone(UTC)
    if not updates:
        return op
    return replace(op, projection=op.projection.model_copy(update=updates))


__all__ = [
    "CHANGES_KEY",
    "DATETIME_FIELDS",
    "TRADING_STATE_KEY",
    "WriteOp",
    "require_aware",
    "utc_op",
]
