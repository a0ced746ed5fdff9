"""One step in progress: the state being replaced, the effects being collected, and the
journaling and finishing every part of the lifecycle shares.

A `Run` lives for one call of `step` and is never shared, so building the next state
with assignments keeps `step` a pure function of its arguments.
"""

from __future__ import annotations

import operator
from dataclasses import fields
from typing import Any

from core.clock import utc_micros
from core.enums import ExecutionStatus, JournalEventType, RejectionReason, can_transition
from core.execution.config import OrderConfig
from core.execution.effects import (
    Commit,
    DisarmTimeout,
    Effect,
    Fail,
    Finish,
    Next,
    Release,
    Unwatch,
)
from core.execution.events import IntentCommitted
from core.execution.state import Entry, Execution, Now, Phase, Stage
from core.models import ExecutionLog
from core.records import OrderFinding
from core.rules.legs import leg_fills, replace_leg
from core.rules.settlement import (
    VOLUME_EPS,
    fills_vwap,
    is_complete,
    leg_status,
    summarize_fills,
)

_S = ExecutionStatus
_E = JournalEventType
_R = RejectionReason


def _evolve(state: Execution, changes: dict[str, Any]) -> Execution:
    """`dataclasses.replace` without its per-call introspection: the values are read in
    one call and written through the slots' descriptors (the record is frozen; its own
    `__init__` writes them past `__setattr__` the same way)."""
    values = list(_VALUES(state))
    for name, value in changes.items():
        values[_INDEX[name]] = value
    new = object.__new__(Execution)
    for write, value in zip(_SLOTS, values, strict=True):
        write(new, value)
    return new


class InvalidTransitionError(Exception):
    """A status change not in the transition table: a bug, so the actor fails loudly."""


_FIELDS = tuple(f.name for f in fields(Execution))
_VALUES = operator.attrgetter(*_FIELDS)
_SLOTS = tuple(Execution.__dict__[name].__set__ for name in _FIELDS)
_INDEX = {name: i for i, name in enumerate(_FIELDS)}


class Run:
    def __init__(self, state: Execution, now: Now, cfg: OrderConfig) -> None:
        self._s = state
        self._changes: dict[str, Any] = {}
        self.now = now
        self.cfg = cfg
        self.effects: list[Effect] = []

    @property
    def s(self) -> Execution:
        """The state so far. Changes are gathered and applied on the next read: a step
        makes a dozen of them, and copying the record for each was a third of its cost."""
        if self._changes:
            self._s = _evolve(self._s, self._changes)
            self._changes = {}
        return self._s

    def set(self, **changes: Any) -> None:
        self._changes.update(changes)

    def emit(self, *effects: Effect) -> None:
        self.effects.extend(effects)

    @property
    def log(self) -> ExecutionLog:
        assert self.s.log is not None
        return self.s.log

    def past_deadline(self) -> bool:
        return self.s.deadline is not None and self.now.mono >= self.s.deadline

    def take(self, finding: OrderFinding) -> None:
        """Adopt the deals of the current order; the deals are the truth once seen."""
        if finding.deals:
            self.set(
                current_fills=tuple((deal.volume, deal.price) for deal in finding.deals),
                last_deal=finding.deals[-1].ticket,
            )

    # --- writing -------------------------------------------------------------------------

    def transition(
        self,
        status: ExecutionStatus,
        event: str,
        payload: dict[str, Any],
        broker_time_msc: int | None = None,
        *,
        answer_failure: bool = False,
        ack: IntentCommitted | None = None,
        **changes: Any,
    ) -> None:
        current = self.log.status
        if status is not current and not can_transition(current, status):
            raise InvalidTransitionError(f"{current} -> {status} ({event})")
        self.update(
            event,
            payload,
            broker_time_msc=broker_time_msc,
            answer_failure=answer_failure,
            ack=ack,
            status=status,
            **changes,
        )

    def update(
        self,
        event: str,
        payload: dict[str, Any],
        broker_time_msc: int | None = None,
        *,
        defer: bool = False,
        answer_failure: bool = False,
        ack: IntentCommitted | None = None,
        **changes: Any,
    ) -> None:
        if broker_time_msc is not None:
            changes.setdefault("broker_time_msc", broker_time_msc)
        record = self.log.evolve(updated_at=self.now.wall, **changes)
        self.commit(
            record,
            event,
            payload,
            broker_time_msc=broker_time_msc,
            defer=defer,
            answer_failure=answer_failure,
            ack=ack,
        )

    def journal(self, event: str, payload: dict[str, Any], *, defer: bool = False) -> None:
        """An event that changes no state (a broker interaction worth keeping)."""
        entry = Entry(
            execution_id=self.s.job.execution_id,
            event_type=event,
            payload=payload,
            engine_time_us=utc_micros(self.now.wall),
        )
        self.write(entry, defer=defer)

    def commit(
        self,
        record: ExecutionLog,
        event: str,
        payload: dict[str, Any],
        *,
        initial: bool = False,
        broker_time_msc: int | None = None,
        defer: bool = False,
        answer_failure: bool = False,
        ack: IntentCommitted | None = None,
    ) -> None:
        entry = Entry(
            execution_id=record.execution_id,
            event_type=event,
            payload={"status": record.status.value, **payload},
            engine_time_us=utc_micros(record.updated_at),
            broker_time_msc=broker_time_msc,
            projection=record,
            creates=initial,
        )
        self.write(entry, defer=defer, answer_failure=answer_failure, ack=ack)
        self.set(log=record)

    def write(
        self,
        entry: Entry,
        *,
        defer: bool = False,
        answer_failure: bool = False,
        ack: IntentCommitted | None = None,
    ) -> None:
        """Commit `entry`, together with the entries deferred before it, in one write.

        Deferred are the execution's creation (PENDING, before validation) and events that
        change no status (VALIDATED, a DONE's ORDER_ACCEPTED): they ride with the next
        status change, which is committed before anything is sent or answered, so the
        journal keeps every event, in order, with fewer round trips.
        """
        if defer:
            self.set(deferred=(*self.s.deferred, entry))
            return
        entries = (*self.s.deferred, entry)
        self.set(deferred=())
        self.emit(Commit(entries, ack=ack, answer_failure=answer_failure))

    # --- finishing -----------------------------------------------------------------------

    def reject(self, reason: RejectionReason, details: str) -> None:
        self.finish(_S.REJECTED, _E.EXECUTION_REJECTED, {}, reason=reason, details=details)

    def finish_without_send(
        self, reason: RejectionReason, details: str, payload: dict[str, Any] | None = None
    ) -> None:
        if self.s.fills:
            self.finalize_fills(None, reason=reason, details=details)
            return
        self.finish(
            _S.REJECTED, _E.EXECUTION_REJECTED, payload or {}, reason=reason, details=details
        )

    def finish(
        self,
        status: ExecutionStatus,
        event: str,
        payload: dict[str, Any],
        *,
        reason: RejectionReason | None = None,
        details: str | None = None,
        broker_time_msc: int | None = None,
        **changes: Any,
    ) -> None:
        """Commit the final state, then (and only then) answer the caller."""
        if self.s.legs:
            # Every leg ends settled: never sent, or sent and (now known) not filled.
            legs = tuple(
                leg
                if leg.settled
                else leg.model_copy(
                    update={"status": "NOT_SENT" if leg.status == "PLANNED" else "NOT_FILLED"}
                )
                for leg in self.s.legs
            )
            self.set(legs=legs)
            changes["legs"] = legs
        if self.s.ticket is not None:
            self.emit(Unwatch(self.s.ticket))
        if self.s.timeout_armed:
            self.emit(DisarmTimeout())
        self.transition(
            status,
            event,
            {**payload, "reason": reason.value if reason else None, "details": details},
            broker_time_msc=broker_time_msc,
            answer_failure=True,
            rejection_reason=reason,
            rejection_details=details,
            **changes,
        )
        self.set(phase=Phase.DONE, timeout_armed=False)
        self.emit(Release(), Finish(self.log))

    def fail(self, error: Exception) -> None:
        """The database could not take a write: answer with the error and stop. The last
        committed state stands; startup recovery reconciles it with the terminal."""
        self.set(phase=Phase.DONE)
        self.emit(Release(), Fail(error))

    def finalize_fills(
        self,
        broker_time_msc: int | None,
        reason: RejectionReason | None = None,
        details: str | None = None,
    ) -> None:
        request, spec = self.s.request, self.s.spec
        assert request is not None
        assert spec is not None
        if self.settle_leg(reason):
            return
        fills = self.s.fills
        filled_lots, price = fills_vwap(fills)
        summary = summarize_fills(
            filled_lots,
            price,
            spec=spec,
            direction=request.direction,
            intended_price=request.intended_price,
            pip_override=self.cfg.pip_overrides.get(request.symbol),
        )
        complete = is_complete(filled_lots, request.lots)
        if not complete and reason is None:
            details = f"filled {filled_lots} of {request.lots} lots"
        unsent = [leg.index for leg in self.s.legs if leg.status == "PLANNED"]
        if not complete and unsent:
            details = f"{details}; leg(s) {unsent} not sent"
        log = self.log
        self.finish(
            _S.FILLED if complete else _S.PARTIALLY_FILLED,
            _E.EXECUTION_FILLED if complete else _E.EXECUTION_PARTIALLY_FILLED,
            {"fills": [[v, p] for v, p in fills], "pip_size": summary.pip},
            reason=reason,
            details=details,
            broker_time_msc=broker_time_msc,
            **summary.record_changes(),
            filled_at=self.now.wall,
            order_id=log.order_id if log.order_id else self.s.ticket,
        )

    def settle_leg(self, reason: RejectionReason | None) -> bool:
        """Record the current leg's fills; True when the next leg was started instead."""
        s = self.s
        if not s.legs:
            return False
        leg = s.legs[s.leg]
        if leg.status == "PLANNED":
            return False  # stopped before it was sent: `finish` records it NOT_SENT
        lots, price = leg_fills(s.current_fills)
        done = lots >= leg.volume - VOLUME_EPS
        legs = replace_leg(
            s.legs,
            leg.index,
            status=leg_status(lots, leg.volume),
            filled_volume=lots,
            fill_price=round(price, s.spec.digits + 3) if price and s.spec else price,
            order_id=s.ticket or None,
            deal_id=s.last_deal or None,
        )
        self.set(legs=legs)
        if reason is not None or not done or s.leg + 1 >= len(legs):
            return False
        # The next leg, once this one is committed as filled (closes first, then the open).
        if s.ticket is not None:
            self.emit(Unwatch(s.ticket))
        if s.timeout_armed:
            self.emit(DisarmTimeout())
        self.set(
            timeout_armed=False,
            prior_fills=s.fills,
            current_fills=(),
            leg=s.leg + 1,
            ticket=None,
            last_deal=0,
            leg_attempts=0,
            position_gone=False,
            looks=0,
            fate=None,
            absence_base=None,
            order_lots=legs[s.leg + 1].volume,
            deadline=self.now.mono + self.cfg.order_timeout,
        )
        self.transition(
            _S.SUBMITTED,
            _E.LEG_FILLED,
            {"leg": leg.index, "lots": lots, "price": price, "order": legs[leg.index].order_id},
            answer_failure=True,
            legs=legs,
        )
        self.set(phase=Phase.VALIDATED)
        self.emit(Next(Stage.SUBMIT))
        return True


__all__ = ["InvalidTransitionError", "Run"]
