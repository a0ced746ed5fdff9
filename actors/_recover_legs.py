"""Crash recovery of an execution with more than one leg (`core.models.ExecutionLeg`).

Each leg settles exactly once, on its own client id: the leg that was in flight (written
ahead as SUBMITTING, or UNKNOWN after an ambiguous send) is looked up like any order
(by its ticket, else by magic + its client id, else by symbol + side + volume) and
settled on its deals; a leg the terminal provably never got is NOT_SENT. A later leg that
was still PLANNED when the engine stopped is never sent after the crash: sending needs a
live RPM request, and the book may have moved. So such an execution ends PARTIALLY_FILLED
with the legs that did fill (or REJECTED NOT_SENT when none did), and says which legs were
not sent. A close found already done is simply counted: nothing is ever resent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors._recover_order import find, remove
from core.enums import ExecutionStatus, JournalEventType, RejectionReason
from core.models import ExecutionLeg, ExecutionLog
from core.rules.settlement import (
    VOLUME_EPS,
    fills_vwap,
    is_complete,
    leg_status,
    summarize_fills,
)

if TYPE_CHECKING:
    from actors.recovery import Reconciler

_S = ExecutionStatus
_R = RejectionReason


def settle_legs(rec: Reconciler, record: ExecutionLog, claimed: set[int]) -> ExecutionLog | None:
    """Settle a multi-leg execution; None while its in-flight leg must wait for evidence."""
    legs = list(record.legs)
    current = next((leg for leg in legs if leg.status in ("SUBMITTING", "UNKNOWN")), None)
    if current is not None:
        settled = _settle_in_flight(rec, record, current, claimed)
        if settled is None:
            return None
        legs[current.index] = settled
    legs = [
        leg.model_copy(update={"status": "NOT_SENT"}) if leg.status == "PLANNED" else leg
        for leg in legs
    ]
    return _finish(rec, record, tuple(legs))


def _settle_in_flight(
    rec: Reconciler, record: ExecutionLog, leg: ExecutionLeg, claimed: set[int]
) -> ExecutionLeg | None:
    trace = rec.broker.send_trace(leg.client_id)
    finding = find(
        rec,
        record,
        ticket=leg.order_id,
        client_id=leg.client_id,
        lots=leg.volume,
        exclude=claimed,
    )
    if finding is None:
        proof = rec.absence_proof(record, trace)
        if proof is None:
            return None
        rec.writer.journal(
            record, JournalEventType.RECOVERED_LEG_ABSENT, {"leg": leg.index, **proof}
        )
        return leg.model_copy(update={"status": "NOT_SENT"})
    claimed.add(finding.ticket)
    rec.writer.journal(
        record,
        JournalEventType.RECOVERED_LEG_FOUND,
        {"leg": leg.index, "ticket": finding.ticket, "filled_volume": finding.filled_volume},
    )
    if finding.open:
        finding = remove(rec, record, finding, leg.volume)
    filled = round(finding.filled_volume, 8)
    status = leg_status(filled, leg.volume)
    return leg.model_copy(
        update={
            "status": status,
            "filled_volume": filled,
            "fill_price": finding.vwap,
            "order_id": finding.ticket,
            "deal_id": finding.deals[-1].ticket if finding.deals else None,
        }
    )


def _finish(rec: Reconciler, record: ExecutionLog, legs: tuple[ExecutionLeg, ...]) -> ExecutionLog:
    filled, price = fills_vwap([(leg.filled_volume, leg.fill_price or 0.0) for leg in legs])
    unsent = [leg.index for leg in legs if leg.status == "NOT_SENT"]
    payload: dict[str, Any] = {"legs": [leg.model_dump(mode="json") for leg in legs]}
    if filled <= VOLUME_EPS:
        return rec.finish(
            record,
            _S.REJECTED,
            payload,
            reason=_R.NOT_SENT,
            details=f"no leg executed; leg(s) {unsent} not sent (crash recovery)",
            legs=legs,
        )
    summary = summarize_fills(
        filled,
        price,
        spec=rec.broker.symbol_spec(record.symbol),
        direction=record.direction,
        intended_price=record.intended_price,
        pip_override=rec.pip_override(record.symbol),
    )
    complete = is_complete(filled, record.intended_lots or 0.0)
    details = None
    reason = None
    if not complete:
        details = f"filled {filled} of {record.intended_lots} lots"
        if unsent:
            reason = _R.NOT_SENT
            details += (
                f"; leg(s) {unsent} were not sent: the engine stopped before them, and "
                "crash recovery never sends without a live request"
            )
    first = next((leg.order_id for leg in legs if leg.order_id), None)
    return rec.finish(
        record,
        _S.FILLED if complete else _S.PARTIALLY_FILLED,
        {**payload, "pip_size": summary.pip},
        reason=reason,
        details=details,
        order_id=first,
        **summary.record_changes(),
        filled_at=rec.now(),
        legs=legs,
    )


__all__ = ["settle_legs"]
