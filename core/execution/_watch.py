"""After the send: watching the order, its timeout, a halt's removal, and reconciling an
ambiguous send (looked up with back-off until found or proven absent, never resent)."""

from __future__ import annotations

from core.enums import ExecutionStatus, JournalEventType, PartialFillPolicy, RejectionReason
from core.execution._payloads import outcome_payload
from core.execution._run import Run
from core.execution.effects import (
    ArmTimeout,
    CheckRemoval,
    FindOrder,
    MarkUnknown,
    Next,
    QueryOrder,
    RemoveOrder,
    Schedule,
    TraceSend,
    Unwatch,
    Watch,
)
from core.execution.events import Halted, LookedUp, LookFailed, RemovalChecked, Removed, Traced
from core.execution.state import Phase, Removal, Stage
from core.records import OrderFinding, SendTrace
from core.rules import SendFate, absence_proven, measure_absence, reconcile_backoff
from core.rules.settlement import VOLUME_EPS, closed_unfilled, finding_payload

_S = ExecutionStatus
_E = JournalEventType
_R = RejectionReason


def watch(r: Run) -> None:
    assert r.s.ticket is not None
    r.emit(Watch(r.s.ticket, r.s.order_lots))
    if not r.s.timeout_armed:
        remaining = max((r.s.deadline or 0.0) - r.now.mono, 0.0)
        r.set(timeout_armed=True)
        r.emit(ArmTimeout(remaining))


def fill_found(r: Run, finding: OrderFinding) -> None:
    if r.s.log is None or finding.ticket != r.s.ticket:
        return
    if r.log.status is _S.UNKNOWN:
        r.transition(
            _S.SUBMITTED, _E.ORDER_FOUND, finding_payload(finding), order_id=finding.ticket
        )
        r.emit(MarkUnknown(False))
        r.set(phase=Phase.WATCHING)
    r.take(finding)
    if finding.filled_volume >= r.s.order_lots - VOLUME_EPS:
        r.finalize_fills(finding.time_msc)
        return
    if not finding.done:
        if finding.filled_volume > 0:
            r.journal(_E.PARTIAL_FILL_OBSERVED, finding_payload(finding))
        return
    _closed_short(r, finding)


def _closed_short(r: Run, finding: OrderFinding) -> None:
    """The order is done with less than its volume filled."""
    s = r.s
    assert s.request is not None
    total = round(sum(volume for volume, _ in s.fills), 8)
    remainder = round(s.request.lots - total, 8)
    if (
        r.cfg.partial_policy is PartialFillPolicy.COMPLETE
        and len(s.legs) <= 1
        and total > 0
        and remainder > VOLUME_EPS
        and not r.past_deadline()
        and s.halt_reason is None
    ):
        r.journal(_E.PARTIAL_FILL, {**finding_payload(finding), "remainder_lots": remainder})
        r.set(
            prior_fills=s.fills,
            current_fills=(),
            order_lots=remainder,
            ticket=None,
            phase=Phase.VALIDATED,
        )
        r.emit(Next(Stage.SUBMIT))
        return
    if total > 0:
        r.finalize_fills(finding.time_msc)
        return
    status, reason = closed_unfilled(finding.state)
    r.finish(
        status,
        _E.ORDER_CLOSED_UNFILLED,
        finding_payload(finding),
        reason=reason,
        details=f"order {finding.ticket} closed with nothing filled (state {finding.state})",
    )


def timed_out(r: Run) -> None:
    if r.s.log is None or r.log.status not in (_S.SUBMITTED, _S.UNKNOWN):
        return
    r.set(timeout_armed=False)
    if r.s.ticket is None:
        return
    remove_and_settle(r, _R.ORDER_TIMEOUT, f"no fill within {r.cfg.order_timeout} s")


def halted(r: Run, event: Halted) -> None:
    r.set(halt_reason=event.why)
    if r.s.log is None:
        return  # the create stage will see the reason at validate
    status = r.log.status
    if status is _S.PENDING:
        return  # the next stage (validate or submit) rejects it before anything is sent
    if status is _S.SUBMITTED and r.s.ticket is not None:
        remove_and_settle(r, event.reason, event.why)


def remove_and_settle(r: Run, reason: RejectionReason, details: str) -> None:
    """Remove the working order, then settle on what actually filled (a fill may race)."""
    assert r.s.ticket is not None
    r.set(phase=Phase.REMOVING, removal=Removal(reason, details))
    r.emit(Unwatch(r.s.ticket), RemoveOrder(r.s.ticket))


def removed(r: Run, event: Removed) -> None:
    assert r.s.ticket is not None
    r.journal(
        _E.ORDER_REMOVE_REQUESTED,
        outcome_payload(event.outcome) if event.outcome is not None else {"error": event.error},
    )
    r.emit(CheckRemoval(r.s.ticket, r.s.order_lots))


def removal_checked(r: Run, event: RemovalChecked) -> None:
    removal = r.s.removal
    assert removal is not None
    finding = event.finding
    if finding is not None:
        r.take(finding)
    filled = sum(volume for volume, _ in r.s.fills)
    lots = r.s.request.lots if r.s.request else 0
    if filled >= lots - VOLUME_EPS and filled > 0:
        r.finalize_fills(finding.time_msc if finding is not None else None)
    elif filled > 0:
        r.finalize_fills(None, reason=removal.reason, details=removal.details)
    else:
        status = _S.EXPIRED if removal.reason is _R.ORDER_TIMEOUT else _S.REJECTED
        r.finish(
            status,
            _E.ORDER_EXPIRED if status is _S.EXPIRED else _E.ORDER_REMOVED,
            {},
            reason=removal.reason,
            details=removal.details,
        )


# --- ambiguous outcomes: reconcile, never resend -------------------------------------------


def reconcile(r: Run) -> None:
    request = r.s.leg_request
    assert request is not None
    # The trace first: whatever it proves about the terminal holds for the lookup after it.
    r.set(phase=Phase.RECONCILING, trace=None)
    r.emit(TraceSend(request.client_id))


def traced(r: Run, event: Traced) -> None:
    request = r.s.leg_request
    assert request is not None
    r.set(trace=event.trace)
    if r.s.ticket:
        r.emit(QueryOrder(r.s.ticket, r.s.order_lots))
        return
    log = r.log
    r.emit(
        FindOrder(
            client_id=request.client_id,
            symbol=request.symbol,
            direction=request.direction,
            lots=r.s.order_lots,
            since=log.submitted_at or log.created_at,
        )
    )


def look_failed(r: Run, event: LookFailed) -> None:
    fate = f"error: {event.error}"
    if r.s.fate != fate:
        # Once per change, not per lookup: a terminal down for an hour must not write
        # thousands of identical events.
        r.set(fate=fate)
        r.journal(_E.RECONCILE_DEFERRED, {"error": event.error})
    _look_again(r)


def looked_up(r: Run, event: LookedUp) -> None:
    trace = r.s.trace
    assert trace is not None
    finding = event.finding
    if r.s.ticket and finding is not None and not finding.found:
        finding = None
    r.set(trace=None)
    if finding is None:
        _absent(r, trace)
        return
    r.set(ticket=finding.ticket)
    r.journal(_E.RECONCILED_FOUND, finding_payload(finding))
    if finding.open or (not finding.done and finding.filled_volume < r.s.order_lots):
        r.transition(
            _S.SUBMITTED, _E.ORDER_FOUND, finding_payload(finding), order_id=finding.ticket
        )
        r.emit(MarkUnknown(False))
        r.set(phase=Phase.WATCHING)
        watch(r)
        return
    fill_found(r, finding)


def _absent(r: Run, trace: SendTrace) -> None:
    request = r.s.leg_request
    assert request is not None
    waited, fenced = _measure(r, trace)
    if not absence_proven(trace.fate, waited=waited, window=r.cfg.reconcile_window, fenced=fenced):
        if trace.fate != r.s.fate:
            # Once per change, not per lookup: the journal says why it still waits.
            r.set(fate=trace.fate)
            r.journal(
                _E.RECONCILE_WAITING, {"send": trace.fate.value, "waited_seconds": round(waited, 3)}
            )
        _look_again(r)
        return
    if r.s.position_gone:
        r.finish_without_send(
            _R.BROKER_REJECTED,
            f"position {request.position} was already closed (10036) and no order "
            f"of this leg (client id {request.client_id}) executed: nothing was "
            "closed or opened by it",
            {"waited_seconds": round(waited, 3), "send": trace.fate.value},
        )
        return
    if r.s.fills:
        # Earlier legs filled: the execution keeps them (PARTIALLY_FILLED).
        r.journal(_E.RECONCILED_ABSENT, {"waited_seconds": round(waited, 3)})
        r.finalize_fills(
            None,
            reason=_R.NOT_SENT,
            details=f"leg {r.s.leg} (client id {request.client_id}) was not "
            f"executed (send {trace.fate.value})",
        )
        return
    since = "it was first looked up" if trace.fate is SendFate.UNKNOWN else "order_send started"
    r.finish(
        _S.REJECTED,
        _E.RECONCILED_ABSENT,
        {"waited_seconds": round(waited, 3), "send": trace.fate.value, "fenced": fenced},
        reason=_R.NOT_SENT,
        details=f"no order with client id {request.client_id} at the terminal "
        f"{waited:.1f} s after {since} (send {trace.fate.value})",
    )


def _measure(r: Run, trace: SendTrace) -> tuple[float, bool]:
    """(seconds waited, fenced): the same measure as crash recovery's (`measure_absence`)."""
    waited, fenced, base = measure_absence(trace, r.now.mono, r.s.absence_base)
    if base != r.s.absence_base:
        r.set(absence_base=base)
    return waited, fenced


def _look_again(r: Run) -> None:
    """Keep looking, with back-off and no end, until found or proven absent."""
    looks = r.s.looks + 1
    r.set(looks=looks)
    delay = reconcile_backoff(looks, r.cfg.reconcile_interval, r.cfg.reconcile_backoff_cap)
    r.emit(Schedule(delay, Stage.RECONCILE))


__all__ = [
    "fill_found",
    "halted",
    "look_failed",
    "looked_up",
    "reconcile",
    "removal_checked",
    "removed",
    "timed_out",
    "traced",
    "watch",
]
