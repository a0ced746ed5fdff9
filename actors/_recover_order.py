"""Crash recovery of an execution with one order (`actors.recovery` has the rules).

The order is looked for by its ticket, else by magic + client id, else by symbol + side +
volume in a time window; found open, it is removed; then it settles on its deals with the
shared settlement rules (`core.rules.settlement`). Not found, it settles NOT_SENT only on
evidence (`Reconciler.absence_proof`). Nothing is ever resent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.enums import ExecutionStatus, JournalEventType, RejectionReason
from core.errors import ReconciliationError
from core.models import ExecutionLog
from core.records import OrderFinding, SendTrace
from core.rules import SendFate, retcode_name
from core.rules.settlement import (
    VOLUME_EPS,
    closed_unfilled,
    finding_payload,
    is_complete,
    summarize_fills,
)

if TYPE_CHECKING:
    from actors.recovery import Reconciler

_S = ExecutionStatus
_R = RejectionReason


def settle_order(
    rec: Reconciler,
    record: ExecutionLog,
    claimed: set[int],
    present: Mapping[str, int] | None,
) -> ExecutionLog | None:
    """Settle a one-order execution; None while it must wait for evidence of absence."""
    lots = record.intended_lots
    if lots is None:
        raise ReconciliationError(f"{record.status} execution has no intended lots")
    # The trace first: whatever it proves about the terminal holds for the lookup after.
    trace = rec.broker.send_trace(record.client_id)
    if (
        present is not None
        and not record.order_id
        and record.status is not _S.SUBMITTED
        and record.client_id not in present
    ):
        # Not at the terminal by its client id. A broker-rewritten comment is looked
        # for at the next lookup, in the background; this one could not prove absence.
        return _absent(rec, record, trace)
    finding = find(
        rec,
        record,
        ticket=record.order_id,
        client_id=record.client_id,
        lots=lots,
        exclude=claimed - {record.order_id or 0},
    )
    if finding is None:
        return _absent(rec, record, trace)
    claimed.add(finding.ticket)
    rec.writer.journal(record, JournalEventType.RECOVERED_FOUND, finding_payload(finding))
    removed = False
    if finding.open:
        finding = remove(rec, record, finding, lots)
        removed = True
    return _settle(rec, record, finding, lots, removed)


def find(
    rec: Reconciler,
    record: ExecutionLog,
    *,
    ticket: int | None,
    client_id: str,
    lots: float,
    exclude: set[int],
) -> OrderFinding | None:
    """The order by its ticket when known, else by client id or by symbol + side + volume
    (`BrokerActor.find_order`), never one of the `exclude` tickets."""
    if ticket:
        by_ticket = rec.broker.query_order(ticket, lots)
        if by_ticket.found:
            return by_ticket
    return rec.broker.find_order(
        client_id=client_id,
        symbol=record.symbol,
        direction=1 if record.direction > 0 else -1,
        lots=lots,
        since=record.submitted_at or record.created_at,
        exclude=sorted(exclude),
    )


def remove(
    rec: Reconciler, record: ExecutionLog, finding: OrderFinding, lots: float
) -> OrderFinding:
    """Remove an order nobody owns any more; its finding after the removal."""
    outcome = rec.broker.remove_order(finding.ticket)
    rec.writer.journal(
        record,
        JournalEventType.ORDER_REMOVE_REQUESTED,
        {
            "ticket": finding.ticket,
            "retcode": outcome.retcode,
            "retcode_name": retcode_name(outcome.retcode),
            "comment": outcome.comment,
            "by": "recovery",
        },
    )
    after = rec.broker.query_order(finding.ticket, lots)
    if after.open:
        raise ReconciliationError(
            f"order {finding.ticket} is still open after TRADE_ACTION_REMOVE "
            f"({retcode_name(outcome.retcode)})"
        )
    return after


def _absent(rec: Reconciler, record: ExecutionLog, trace: SendTrace) -> ExecutionLog | None:
    if record.status is _S.SUBMITTED:
        raise ReconciliationError(
            f"order {record.order_id} was accepted by the broker but the terminal does not know it"
        )
    proof = rec.absence_proof(record, trace)
    if proof is None:
        return None
    waited = proof["waited_seconds"]
    return rec.finish(
        record,
        _S.REJECTED,
        proof,
        reason=_R.NOT_SENT,
        details=f"no order with client id {record.client_id} at the terminal "
        f"{waited:.1f} s after it was first looked up (crash recovery)"
        if trace.fate is SendFate.UNKNOWN
        else f"no order with client id {record.client_id} at the terminal "
        f"{waited:.1f} s after order_send started (crash recovery)",
    )


def _settle(
    rec: Reconciler, record: ExecutionLog, finding: OrderFinding, lots: float, removed: bool
) -> ExecutionLog:
    filled = round(finding.filled_volume, 8)
    payload = finding_payload(finding)
    if filled > VOLUME_EPS:
        return _filled(rec, record, finding, lots, removed)
    if removed:
        return rec.finish(
            record,
            _S.REJECTED,
            payload,
            reason=_R.CANCELLED,
            details=f"order {finding.ticket} was still open after the restart; removed "
            "with nothing filled (crash recovery)",
            order_id=finding.ticket,
        )
    status, reason = closed_unfilled(finding.state)
    return rec.finish(
        record,
        status,
        payload,
        reason=reason,
        details=f"order {finding.ticket} expired with nothing filled"
        if status is _S.EXPIRED
        else f"order {finding.ticket} closed with nothing filled (state {finding.state})",
        order_id=finding.ticket,
    )


def _filled(
    rec: Reconciler, record: ExecutionLog, finding: OrderFinding, lots: float, removed: bool
) -> ExecutionLog:
    summary = summarize_fills(
        finding.filled_volume,
        finding.vwap if finding.vwap is not None else 0.0,
        spec=rec.broker.symbol_spec(record.symbol),
        direction=record.direction,
        intended_price=record.intended_price,
        pip_override=rec.pip_override(record.symbol),
    )
    filled = summary.lots
    complete = is_complete(filled, lots)
    reason: RejectionReason | None = None
    details: str | None = None
    if not complete:
        details = f"filled {filled} of {lots} lots"
        if removed:
            reason = _R.CANCELLED
            details += "; the rest was removed by crash recovery"
    return rec.finish(
        record,
        _S.FILLED if complete else _S.PARTIALLY_FILLED,
        {**finding_payload(finding), "pip_size": summary.pip},
        reason=reason,
        details=details,
        broker_time_msc=finding.time_msc,
        order_id=finding.ticket,
        **summary.record_changes(),
        filled_at=rec.now(),
    )


__all__ = ["find", "remove", "settle_order"]
