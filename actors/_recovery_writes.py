"""How crash recovery writes: every change committed through the PersistenceActor, in order.

A settlement walks the transition table (`core.enums.TRANSITIONS`): a missing intermediate
status, e.g. SUBMITTING -> SUBMITTED before EXPIRED, is journaled as its own
RECOVERY_STEP, and each step is committed before the next one is written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pykka

from actors.persistence import write_and_wait
from core.clock import Clock, utc_micros
from core.enums import TRANSITIONS, ExecutionStatus, JournalEventType, RejectionReason
from core.errors import ReconciliationError
from core.models import ExecutionLeg, ExecutionLog
from storage.ops import WriteOp

_S = ExecutionStatus
_R = RejectionReason


class RecoveryWriter:
    """Commits recovery's journal events and status changes, one round trip each."""

    def __init__(
        self, persistence: Callable[[], pykka.ActorRef[Any]], clock: Clock, timeout: float
    ) -> None:
        self._persistence = persistence
        self._clock = clock
        self._timeout = timeout

    def settle(
        self,
        record: ExecutionLog,
        status: ExecutionStatus,
        payload: dict[str, Any],
        *,
        reason: RejectionReason | None,
        details: str | None,
        broker_time_msc: int | None = None,
        **changes: Any,
    ) -> ExecutionLog:
        """Walk the transition table to `status`, one committed step at a time."""
        if len(record.legs) == 1 and "legs" not in changes:
            changes["legs"] = _one_leg(record.legs[0], status, reason, changes)
        path = _path(record.status, status)
        if path is None:
            raise ReconciliationError(f"no transition from {record.status} to {status}")
        current = record
        for step in path[:-1]:
            current = self._commit(
                current,
                step,
                JournalEventType.RECOVERY_STEP,
                {},
                order_id=changes.get("order_id"),
            )
        return self._commit(
            current,
            status,
            JournalEventType.recovered(status),
            {**payload, "reason": reason.value if reason else None, "details": details},
            broker_time_msc=broker_time_msc,
            rejection_reason=reason,
            rejection_details=details,
            **changes,
        )

    def _commit(
        self,
        record: ExecutionLog,
        status: ExecutionStatus,
        event: JournalEventType,
        payload: dict[str, Any],
        broker_time_msc: int | None = None,
        **changes: Any,
    ) -> ExecutionLog:
        if broker_time_msc is not None:
            changes["broker_time_msc"] = broker_time_msc
        if changes.get("order_id") is None:
            changes.pop("order_id", None)
        updated = record.evolve(updated_at=self._clock.now(), status=status, **changes)
        op = WriteOp(
            execution_id=record.execution_id,
            event_type=event,
            payload={"status": status.value, "recovery": True, **payload},
            engine_time_us=utc_micros(updated.updated_at),
            broker_time_msc=broker_time_msc,
            projection=updated,
        )
        write_and_wait(self._persistence(), [op], self._timeout)
        return updated

    def journal(
        self, record: ExecutionLog, event: JournalEventType, payload: dict[str, Any]
    ) -> None:
        """An event that changes no status (a lookup's finding, a removal)."""
        op = WriteOp(
            execution_id=record.execution_id,
            event_type=event,
            payload={"recovery": True, **payload},
            engine_time_us=utc_micros(self._clock.now()),
        )
        write_and_wait(self._persistence(), [op], self._timeout)


def _one_leg(
    leg: ExecutionLeg,
    status: ExecutionStatus,
    reason: RejectionReason | None,
    changes: dict[str, Any],
) -> tuple[ExecutionLeg]:
    """The one leg of an execution settled as the execution itself was."""
    filled = float(changes.get("executed_lots") or 0.0)
    if status in (_S.FILLED, _S.PARTIALLY_FILLED):
        outcome = "FILLED" if status is _S.FILLED else "PARTIALLY_FILLED"
    elif reason is _R.NOT_SENT or changes.get("order_id") is None:
        outcome = "NOT_SENT"
    else:
        outcome = "NOT_FILLED"
    return (
        leg.model_copy(
            update={
                "status": outcome,
                "filled_volume": filled,
                "fill_price": changes.get("fill_price"),
                "order_id": changes.get("order_id"),
            }
        ),
    )


def _path(start: ExecutionStatus, goal: ExecutionStatus) -> list[ExecutionStatus] | None:
    """The shortest way from `start` to `goal` through the transition table."""
    frontier: deque[list[ExecutionStatus]] = deque([[start]])
    seen = {start}
    while frontier:
        route = frontier.popleft()
        for nxt in sorted(TRANSITIONS[route[-1]]):
            if nxt in seen:
                continue
            if nxt is goal:
                return [*route[1:], nxt]
            seen.add(nxt)
            frontier.append([*route, nxt])
    return None


__all__ = ["RecoveryWriter"]
