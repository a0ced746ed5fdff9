"""The SUBMIT stage and the send's outcome: write-ahead, then order_send, then decide.

The write-ahead rule is a property of this module: `SendLeg` is emitted only on
`IntentCommitted` for the leg and attempt whose SUBMITTING commit carried that ack, in
the AWAITING_INTENT_COMMIT phase, which that same acknowledgement leaves. An ambiguous
outcome is never sent again: it is reconciled.
"""

from __future__ import annotations

from typing import Any

from core.enums import ExecutionStatus, JournalEventType, LegAction, RejectionReason, RetcodeClass
from core.errors import LeaseLostError
from core.execution._payloads import outcome_payload
from core.execution._run import Run
from core.execution._watch import watch
from core.execution.effects import CountRetry, MarkSubmitted, MarkUnknown, Next, Schedule, SendLeg
from core.execution.events import IntentCommitted, SendCompleted
from core.execution.state import Phase, Stage, Trading
from core.records import SendOutcome
from core.rules import backoff_seconds, retcode_name
from core.rules.legs import replace_leg
from core.rules.settlement import VOLUME_EPS

_S = ExecutionStatus
_E = JournalEventType
_R = RejectionReason
RETCODE_DONE = 10009
RETCODE_MARKET_CLOSED = 10018
RETCODE_POSITION_CLOSED = 10036


def submit(r: Run, trading: Trading) -> None:
    s = r.s
    assert s.request is not None
    log = r.log
    if trading.halted or s.halt_reason is not None:
        r.finish_without_send(_R.TRADING_HALTED, s.halt_reason or trading.reason)
        return
    leg = s.legs[s.leg]
    closes = leg.action is LegAction.CLOSE
    if trading.reducing and not closes:
        r.finish_without_send(_R.REDUCE_ONLY, f"trading is reduce-only: {trading.reason}")
        return
    request = s.request.model_copy(
        update={
            "lots": s.order_lots,
            "client_id": leg.client_id,
            "position": leg.position_ticket,
            "reduces": closes,
            # sl/tp belong to the position the OPEN leg creates; a close carries none.
            **({"stop_loss": None, "take_profit": None} if closes else {}),
        }
    )
    attempt = log.attempts + 1
    r.set(leg_request=request, leg_attempts=s.leg_attempts + 1)
    # Write-ahead: SUBMITTING is committed before order_send, or nothing is sent.
    r.transition(
        _S.SUBMITTING,
        _E.SUBMITTING,
        {
            "lots": s.order_lots,
            "attempt": attempt,
            "leg": leg.index,
            "action": leg.action.value,
            "client_id": leg.client_id,
            "position": leg.position_ticket,
        },
        answer_failure=True,
        ack=IntentCommitted(leg.index, attempt),
        attempts=attempt,
        submitted_at=log.submitted_at or r.now.wall,
        legs=replace_leg(s.legs, leg.index, status="SUBMITTING"),
    )
    r.set(legs=r.log.legs, phase=Phase.AWAITING_INTENT_COMMIT)


def intent_committed(r: Run, event: IntentCommitted) -> None:
    """The send, queued at the BrokerActor behind the sends before it.

    The BrokerActor does not start it past the order's deadline, and the shell waits for
    the deadline plus one ask timeout: a send still in the line is never taken for a lost
    one.
    """
    s = r.s
    if (
        s.phase is not Phase.AWAITING_INTENT_COMMIT
        or event.leg != s.leg
        or event.attempt != r.log.attempts
        or s.leg_request is None
    ):
        return  # not the commit this execution waits for: nothing may be sent on it
    if s.halt_reason is not None:
        # Halted while the intent was being committed: the leg never leaves (NOT_SENT).
        r.set(legs=replace_leg(s.legs, s.leg, status="PLANNED"))
        r.finish_without_send(_R.TRADING_HALTED, s.halt_reason)
        return
    now = r.now.mono
    if event.attempt == 1:
        r.emit(MarkSubmitted(now - s.born))
    wait = max((s.deadline if s.deadline is not None else now) - now, 0.0)
    r.set(phase=Phase.AWAITING_SEND)
    r.emit(SendLeg(s.leg_request, s.deadline, wait, event.leg, event.attempt))


def intent_refused(r: Run, error: LeaseLostError) -> None:
    """The intent's commit was fenced: another instance owns the account now. Nothing was
    committed, so nothing may be sent: the leg never leaves (NOT_SENT)."""
    r.set(legs=replace_leg(r.s.legs, r.s.leg, status="PLANNED"))
    r.finish_without_send(_R.NOT_SENT, str(error))


def send_completed(r: Run, event: SendCompleted) -> None:
    outcome = event.outcome
    payload = outcome_payload(outcome)
    if outcome.halted:
        reason = _R.REDUCE_ONLY if event.trading.reducing else _R.TRADING_HALTED
        r.finish_without_send(reason, event.trading.reason, payload)
        return
    if outcome.not_sent:
        r.finish_without_send(_R.NOT_SENT, outcome.comment, payload)
        return
    if outcome.klass is RetcodeClass.SUCCESS:
        _accepted(r, outcome, payload)
    elif outcome.klass is RetcodeClass.RETRY:
        _retryable(r, outcome, payload)
    elif outcome.klass is RetcodeClass.AMBIGUOUS:
        legs = replace_leg(r.s.legs, r.s.leg, status="UNKNOWN")
        r.set(legs=legs)
        r.transition(_S.UNKNOWN, _E.SEND_AMBIGUOUS, payload, legs=legs)
        r.emit(MarkUnknown(True))
        r.set(ticket=outcome.order or None, phase=Phase.RECONCILING)
        r.emit(Next(Stage.RECONCILE))
    elif outcome.retcode == RETCODE_POSITION_CLOSED and _closing(r):
        # The position is gone: closed by this leg's own earlier (ambiguous) attempt, by
        # the broker (a stop) or by someone else. Benign: look this leg's order up by its
        # client id, never send it again (it could only fail or open anew).
        legs = replace_leg(r.s.legs, r.s.leg, status="UNKNOWN")
        r.set(position_gone=True, legs=legs)
        r.transition(_S.UNKNOWN, _E.POSITION_ALREADY_CLOSED, payload, legs=legs)
        r.set(phase=Phase.RECONCILING)
        r.emit(Next(Stage.RECONCILE))
    else:
        reason = (
            _R.MARKET_CLOSED if outcome.retcode == RETCODE_MARKET_CLOSED else _R.BROKER_REJECTED
        )
        r.finish_without_send(
            reason, f"{retcode_name(outcome.retcode)}: {outcome.comment}".strip(": "), payload
        )


def _closing(r: Run) -> bool:
    return bool(r.s.legs) and r.s.legs[r.s.leg].action is LegAction.CLOSE


def _accepted(r: Run, outcome: SendOutcome, payload: dict[str, Any]) -> None:
    r.set(ticket=outcome.order)
    if (
        outcome.retcode == RETCODE_DONE
        and outcome.deal > 0
        and outcome.volume >= r.s.order_lots - VOLUME_EPS
    ):
        # A DONE with its deal is a fill: no poll needed.
        r.set(current_fills=((outcome.volume, outcome.price),), last_deal=outcome.deal)
        r.journal(_E.ORDER_ACCEPTED, payload, defer=True)
        r.finalize_fills(broker_time_msc=None)
        return
    r.transition(_S.SUBMITTED, _E.ORDER_ACCEPTED, payload, order_id=outcome.order or None)
    r.set(phase=Phase.WATCHING)
    watch(r)


def _retryable(r: Run, outcome: SendOutcome, payload: dict[str, Any]) -> None:
    cfg = r.cfg
    retries_used = r.s.leg_attempts - 1
    if r.past_deadline() and not outcome.sent:
        r.finish_without_send(
            _R.ORDER_TIMEOUT,
            f"not sent within the order timeout of {cfg.order_timeout} s: "
            f"{retcode_name(outcome.retcode)} {outcome.comment}".strip(),
            payload,
        )
        return
    if retries_used >= cfg.max_retries or r.past_deadline():
        r.finish_without_send(
            _R.RETRIES_EXHAUSTED,
            f"{r.log.attempts} attempts; last: {retcode_name(outcome.retcode)} "
            f"{outcome.comment}".strip(),
            payload,
        )
        return
    delay = backoff_seconds(retries_used + 1, cfg.backoff_base, cfg.backoff_cap)
    r.emit(CountRetry(outcome.retcode))
    r.transition(_S.PENDING, _E.SEND_RETRY, {**payload, "retry_in_seconds": delay})
    r.set(phase=Phase.VALIDATED)
    r.emit(Schedule(delay, Stage.SUBMIT))


__all__ = ["intent_committed", "intent_refused", "send_completed", "submit"]
