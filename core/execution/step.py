"""`step`: the execution lifecycle as one pure function.

`step(state, event, now, cfg) -> (state, effects)` decides everything an execution does;
the OrderActor (`actors.order`) only feeds it events and carries out the effects. No I/O,
no threads, no clock reads: the time of the step is an argument. An event that does not
fit the phase (a late answer, a stale timer) changes nothing.
"""

from __future__ import annotations

from core.enums import ExecutionStatus, RejectionReason
from core.errors import LeaseLostError
from core.execution import _send, _validate, _watch
from core.execution._run import Run
from core.execution.config import OrderConfig
from core.execution.effects import Effect, Refuse, Release, Schedule
from core.execution.events import (
    CommitFailed,
    Event,
    FillFound,
    Halted,
    IntentCommitted,
    LookedUp,
    LookFailed,
    MarginHeld,
    OwnFailure,
    Planned,
    PositionsRead,
    Preflighted,
    PreflightFailed,
    RemovalChecked,
    Removed,
    SendCompleted,
    StageDue,
    Traced,
    WatchFailed,
    WatchLost,
)
from core.execution.state import Execution, Job, Now, Phase, Stage
from core.models import ExecutionConfirmation

_S = ExecutionStatus
_P = Phase
_VALIDATION_ANSWERS = (Preflighted, PreflightFailed, PositionsRead, Planned, MarginHeld)
_LOOKUP_ANSWERS = (Traced, LookedUp, LookFailed)


def start(job: Job, born: float) -> Execution:
    """A new execution; `born` is about when submit() was called (monotonic)."""
    return Execution(job=job, born=born)


def step(
    state: Execution, event: Event, now: Now, cfg: OrderConfig
) -> tuple[Execution, list[Effect]]:
    if isinstance(event, CommitFailed):
        # Only commits whose failure the execution answers come back (`Commit`).
        r = Run(state, now, cfg)
        if isinstance(event.error, LeaseLostError) and state.phase is _P.AWAITING_INTENT_COMMIT:
            _send.intent_refused(r, event.error)  # fenced: answered NOT_SENT, nothing sent
        else:
            r.fail(event.error)
        return r.s, r.effects
    if state.done:
        return state, []
    r = Run(state, now, cfg)
    _dispatch(r, event)
    return r.s, r.effects


def can_settle_own_failure(state: Execution) -> bool:
    """While nothing can have been sent (PENDING, or no record at all), an execution that
    failed on its own data ends REJECTED; past that it may have reached the terminal, and
    reconciliation settles it."""
    return not state.done and (state.log is None or state.log.status is _S.PENDING)


def _dispatch(r: Run, event: Event) -> None:
    phase = r.s.phase
    if isinstance(event, StageDue):
        _stage(r, event)
    elif isinstance(event, _VALIDATION_ANSWERS):
        if phase is not _P.VALIDATING or (
            not isinstance(event, (Preflighted, PreflightFailed)) and r.s.validation is None
        ):
            return
        if isinstance(event, Preflighted):
            _validate.preflighted(r, event)
        elif isinstance(event, PreflightFailed):
            _validate.preflight_failed(r, event)
        elif isinstance(event, PositionsRead):
            _validate.positions_read(r, event)
        elif isinstance(event, Planned):
            _validate.planned(r, event)
        elif r.s.validation is not None and r.s.validation.market is not None:
            _validate.margin_held(r, event)
    elif isinstance(event, IntentCommitted):
        _send.intent_committed(r, event)
    elif isinstance(event, SendCompleted):
        if phase is _P.AWAITING_SEND:
            _send.send_completed(r, event)
    elif isinstance(event, FillFound):
        if phase is not _P.REMOVING:
            _watch.fill_found(r, event.finding)
    elif isinstance(event, Halted):
        if phase is not _P.REMOVING:
            _watch.halted(r, event)
    elif isinstance(event, Removed | RemovalChecked):
        if phase is _P.REMOVING and r.s.removal is not None:
            if isinstance(event, Removed):
                _watch.removed(r, event)
            else:
                _watch.removal_checked(r, event)
    elif isinstance(event, _LOOKUP_ANSWERS):
        if phase is not _P.RECONCILING:
            return
        if isinstance(event, Traced):
            _watch.traced(r, event)
        elif isinstance(event, LookFailed):
            _watch.look_failed(r, event)
        elif r.s.trace is not None:
            _watch.looked_up(r, event)
    elif isinstance(event, WatchFailed):
        if phase is _P.WATCHING:
            r.emit(Schedule(r.cfg.reconcile_interval, Stage.RECONCILE))
    elif isinstance(event, WatchLost):
        # A restarted BrokerActor has lost the watches of the old one.
        log = r.s.log
        if phase is _P.WATCHING and log is not None and log.status is _S.SUBMITTED and r.s.ticket:
            _watch.watch(r)
    elif isinstance(event, OwnFailure):
        _own_failure(r, event)


def _stage(r: Run, event: StageDue) -> None:
    phase = r.s.phase
    stage = event.stage
    if stage is Stage.CREATE:
        if phase is _P.NEW:
            _validate.create(r)
    elif stage is Stage.VALIDATE:
        if phase is _P.VALIDATING and r.s.validation is None:
            _validate.validate(r, event.trading)
    elif stage is Stage.SUBMIT:
        if phase is _P.VALIDATED and r.s.request is not None:
            _send.submit(r, event.trading)
    elif stage is Stage.RECONCILE:
        if phase in (_P.RECONCILING, _P.WATCHING) and r.s.leg_request is not None:
            _watch.reconcile(r)
    elif stage is Stage.TIMEOUT and phase in (_P.WATCHING, _P.RECONCILING, _P.VALIDATED):
        _watch.timed_out(r)


def _own_failure(r: Run, event: OwnFailure) -> None:
    if not can_settle_own_failure(r.s):
        return
    if r.s.log is None:
        job = r.s.job
        r.set(phase=_P.DONE)
        r.emit(
            Release(),
            Refuse(
                ExecutionConfirmation.refused(
                    job.execution_id,
                    RejectionReason.INVALID_INPUT,
                    f"the message could not be recorded, nothing was sent: {event.details}",
                    job.rpm.decision_id,
                )
            ),
        )
        return
    r.finish_without_send(
        RejectionReason.INTERNAL_ERROR,
        f"failed on its own data, nothing was sent: {event.details}",
    )


__all__ = ["can_settle_own_failure", "start", "step"]
