"""OrderActor: one per execution, the shell around the pure execution core.

The decisions live in `core.execution.step`; this actor feeds it events (its messages,
and the answers to the effects it carried out) and carries out the effects it returns:
commits through the PersistenceActor, sends and lookups at the BrokerActor, timers on the
scheduler, the margin and position claims, and the caller's answer. Each stage ends by
telling the actor its next stage, so a Halt or Cancel that arrived meanwhile is handled
between any two stages. It never sleeps: back-off, polling and the order timeout are
messages delivered later by the scheduler.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors._failures import InfrastructureFailure
from actors._legs import PositionClaims, plan_trade
from actors._reply import FastInbox, Reply
from actors._scheduler import Handle, Scheduler
from actors._shared import MarginBook, TradingSwitch
from actors._threads import ReusedThreads
from actors.broker import SendRequest
from actors.messages import (
    Advance,
    Cancel,
    FillUpdate,
    Halt,
    NewExecution,
    OrderFinding,
    Rewatch,
    SendOutcome,
)
from actors.metrics import EngineMetrics
from actors.persistence import write_and_wait
from core.clock import Clock
from core.enums import RejectionReason, RetcodeClass
from core.errors import PersistenceError, PersistenceUnavailableError, ReconciliationError
from core.execution import (
    InvalidTransitionError,
    Job,
    Now,
    OrderConfig,
    Stage,
    Trading,
    can_settle_own_failure,
    start,
    step,
)
from core.execution import effects as fx
from core.execution import events as ev
from core.models import ExecutionLog
from core.rules import margin_check
from storage.writer import WriteOp

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OrderContext:
    """The collaborators every OrderActor gets from the facade."""

    broker: Callable[[], Any]
    """Returns the current BrokerActor proxy (it may have been restarted)."""
    persistence: Callable[[], pykka.ActorRef[Any]]
    config: OrderConfig
    clock: Clock
    scheduler: Scheduler
    switch: TradingSwitch
    margin: MarginBook
    on_final: Callable[[ExecutionLog], None]
    metrics: EngineMetrics | None = None
    claims: PositionClaims = field(default_factory=PositionClaims)
    """Position volume that executions in flight are closing (shared by all of them)."""


class _BrokerGoneError(InfrastructureFailure):
    """The BrokerActor was not there to take the request: nothing reached the terminal."""


class _CommitFailedError(Exception):
    """A commit whose failure the execution answers (`fx.Commit.answer_failure`)."""

    def __init__(self, error: PersistenceError) -> None:
        super().__init__(str(error))
        self.error = error


_THREADS = ReusedThreads("OrderActor")
"""Threads for OrderActors: one per live execution, reused once its execution is final."""

_LOOKUP_ERRORS = (_BrokerGoneError, pykka.Timeout, ReconciliationError)


class OrderActor(FastInbox):
    use_daemon_thread = True

    def _start_actor_loop(self) -> None:
        # Pykka's hook for where an actor's loop runs: on a reused thread, not a new one.
        _THREADS.run(self._actor_loop)

    def __init__(self, job: NewExecution, ctx: OrderContext) -> None:
        super().__init__()
        self._job = job
        self._ctx = ctx
        self._cfg = ctx.config
        self._state = start(
            Job(
                execution_id=job.execution_id,
                request_id=job.request_id,
                client_id=job.client_id,
                rpm=job.rpm,
                fingerprint=job.fingerprint,
                rpm_payload=job.rpm_payload,
            ),
            born=ctx.clock.monotonic(),
        )
        self._replied = False
        self._timeout: Handle | None = None

    # --- the doors ----------------------------------------------------------------------

    def on_start(self) -> None:
        self.actor_ref.tell(Advance(Stage.CREATE))

    def on_receive(self, message: Any) -> Any:
        if self._state.done:
            return None
        if isinstance(message, Advance):
            self._feed(ev.StageDue(message.stage, self._trading()))
        elif isinstance(message, FillUpdate):
            self._feed(ev.FillFound(message.finding))
        elif isinstance(message, Halt):
            self._feed(ev.Halted(message.reason))
        elif isinstance(message, Cancel):
            self._feed(ev.Halted(f"cancelled: {message.reason}", RejectionReason.CANCELLED))
        elif isinstance(message, Rewatch):
            self._feed(ev.WatchLost())
        else:
            log.warning("OrderActor ignored unknown message %r", message)
        return None

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        # A bug must not leave the caller waiting forever; the execution keeps its last
        # committed state, which startup recovery reconciles.
        self._release()
        if not self._replied:
            self._replied = True
            self._job.reply.set_exception(exc_info=(exception_type, exception_value, traceback))

    def settle_own_failure(self, exc: Exception) -> bool:
        """Handling this execution's own data raised `exc` (a value no rule foresaw, or a
        bug on its path). While nothing can have been sent (PENDING), end it REJECTED
        with INTERNAL_ERROR and the error named; if not even its record could be built,
        answer REJECTED (INVALID_INPUT) without one. False once it may have reached the
        terminal: then the actor dies and reconciliation settles the execution."""
        if self._replied or not can_settle_own_failure(self._state):
            return False
        details = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        log.error("execution %s failed on its own data", self._job.execution_id, exc_info=exc)
        self._feed(ev.OwnFailure(details))
        return True

    # --- the core and its effects --------------------------------------------------------

    def _feed(self, event: ev.Event) -> None:
        """Step the core on `event`, carry out its effects, and step on their answers."""
        pending: deque[ev.Event] = deque([event])
        while pending:
            now = Now(self._ctx.clock.now(), self._ctx.clock.monotonic())
            self._state, effects = step(self._state, pending.popleft(), now, self._cfg)
            for effect in effects:
                try:
                    answer = self._perform(effect)
                except _CommitFailedError as failed:
                    # What follows a commit needs it: drop the rest, answer the failure.
                    pending.append(ev.CommitFailed(failed.error))
                    break
                if answer is not None:
                    pending.append(answer)

    def _perform(self, effect: fx.Effect) -> ev.Event | None:
        ctx = self._ctx
        execution_id = self._job.execution_id
        if isinstance(effect, fx.Commit):
            return self._commit(effect)
        if isinstance(effect, fx.Next):
            self.actor_ref.tell(Advance(effect.stage))
        elif isinstance(effect, fx.Schedule):
            ctx.scheduler.tell_later(effect.delay, self.actor_ref, Advance(effect.stage))
        elif isinstance(effect, fx.ArmTimeout):
            timeout = Advance(Stage.TIMEOUT)
            self._timeout = ctx.scheduler.tell_later(effect.delay, self.actor_ref, timeout)
        elif isinstance(effect, fx.DisarmTimeout):
            if self._timeout is not None:
                self._timeout.cancel()
                self._timeout = None
        elif isinstance(effect, fx.AskPreflight):
            try:
                pre = self._ask_broker("preflight", effect.symbol)
            except _BrokerGoneError as exc:
                return ev.PreflightFailed(str(exc), broker_gone=True)
            except pykka.Timeout as exc:
                return ev.PreflightFailed(str(exc), broker_gone=False)
            return ev.Preflighted(pre, ctx.margin.held())
        elif isinstance(effect, fx.ReadPositions):
            try:
                read = self._ask_broker("open_positions", effect.symbol)
            except (_BrokerGoneError, pykka.Timeout):
                read = None
            return ev.PositionsRead(read)
        elif isinstance(effect, fx.ClaimLegs):
            return ev.Planned(self._claim(effect), self._trading())
        elif isinstance(effect, fx.HoldMargin):
            return ev.MarginHeld(self._hold(effect))
        elif isinstance(effect, fx.SendLeg):
            return ev.SendCompleted(self._place(effect), self._trading())
        elif isinstance(effect, fx.Watch):
            try:
                self._ask_broker("watch", effect.ticket, effect.lots, self.actor_ref)
            except _BrokerGoneError:
                return ev.WatchFailed()
        elif isinstance(effect, fx.Unwatch):
            self._tell_broker_quietly("unwatch", effect.ticket)
        elif isinstance(effect, fx.RemoveOrder):
            try:
                removal = self._ask_broker("remove_order", effect.ticket)
            except Exception as exc:
                return ev.Removed(None, str(exc))
            if isinstance(removal, SendOutcome):
                return ev.Removed(removal)
            return ev.Removed(None, str(removal))
        elif isinstance(effect, fx.CheckRemoval):
            try:
                finding = self._ask_broker("query_order", effect.ticket, effect.lots)
            except Exception:
                finding = None
            return ev.RemovalChecked(finding if isinstance(finding, OrderFinding) else None)
        elif isinstance(effect, fx.TraceSend | fx.QueryOrder | fx.FindOrder):
            return self._look(effect)
        elif isinstance(effect, fx.MarkSubmitted):
            if ctx.metrics is not None:
                ctx.metrics.submitted(effect.seconds)
        elif isinstance(effect, fx.CountRetry):
            if ctx.metrics is not None:
                ctx.metrics.retry(effect.retcode)
        elif isinstance(effect, fx.MarkUnknown):
            if ctx.metrics is not None:
                ctx.metrics.unknown(execution_id, effect.unknown)
        elif isinstance(effect, fx.Release):
            self._release()
        elif isinstance(effect, fx.Finish):
            ctx.on_final(effect.log)
            self._answer(effect.log.to_confirmation())
        elif isinstance(effect, fx.Refuse):
            self._answer(effect.confirmation)
        elif isinstance(effect, fx.Fail):
            if not self._replied:
                self._replied = True
                error = effect.error
                self._job.reply.set_exception(exc_info=(type(error), error, error.__traceback__))
            self.stop()
        return None

    def _answer(self, confirmation: Any) -> None:
        self._replied = True
        self._job.reply.set(confirmation)
        self.stop()

    def _commit(self, effect: fx.Commit) -> ev.Event | None:
        ops = [
            WriteOp(
                execution_id=entry.execution_id,
                event_type=entry.event_type,
                payload=entry.payload,
                engine_time_us=entry.engine_time_us,
                broker_time_msc=entry.broker_time_msc,
                projection=entry.projection,
                creates=entry.creates,
            )
            for entry in effect.entries
        ]
        try:
            write_and_wait(self._ctx.persistence(), ops, self._cfg.ask_timeout)
        except PersistenceError as exc:
            if effect.answer_failure:
                raise _CommitFailedError(exc) from exc
            raise
        return effect.ack

    def _claim(self, effect: fx.ClaimLegs) -> Any:
        return self._ctx.claims.plan(
            self._job.execution_id,
            effect.pre,
            lambda seen: plan_trade(
                seen,
                effect.trade,
                effect.lots,
                magic=effect.magic,
                scope=effect.scope,
                policy=effect.policy,
            ),
        )

    def _hold(self, effect: fx.HoldMargin) -> Any:
        return self._ctx.margin.reserve(
            self._job.execution_id,
            effect.amount,
            lambda held: margin_check(
                margin_required=effect.amount,
                free_margin=effect.free,
                reserved_margin=held,
                cushion=effect.cushion,
            ),
        )

    def _place(self, effect: fx.SendLeg) -> SendOutcome:
        """The send, queued at the BrokerActor behind the sends before it.

        Sends the BrokerActor never started (it stopped) come back as a clean RETRY; an
        error during the send is AMBIGUOUS (it may have executed).
        """
        reply: Reply[SendOutcome] = Reply()
        try:
            self._ctx.broker().actor_ref.tell(SendRequest(effect.request, effect.deadline, reply))
            return reply.get(timeout=effect.wait + self._cfg.ask_timeout)
        except pykka.ActorDeadError as exc:
            return SendOutcome(klass=RetcodeClass.RETRY, retcode=None, comment=str(exc))
        except Exception as exc:
            return SendOutcome(
                klass=RetcodeClass.AMBIGUOUS,
                retcode=None,
                comment=f"broker failed during the send: {type(exc).__name__}: {exc}",
                request={"unknown": True},
            )

    def _look(self, effect: fx.TraceSend | fx.QueryOrder | fx.FindOrder) -> ev.Event:
        try:
            if isinstance(effect, fx.TraceSend):
                return ev.Traced(self._ask_broker("send_trace", effect.client_id))
            if isinstance(effect, fx.QueryOrder):
                return ev.LookedUp(self._ask_broker("query_order", effect.ticket, effect.lots))
            finding = self._ask_broker(
                "find_order",
                client_id=effect.client_id,
                symbol=effect.symbol,
                direction=effect.direction,
                lots=effect.lots,
                since=effect.since,
            )
            return ev.LookedUp(finding)
        except _LOOKUP_ERRORS as exc:
            return ev.LookFailed(str(exc))

    def _trading(self) -> Trading:
        switch = self._ctx.switch
        return Trading(halted=switch.halted, reducing=switch.reducing, reason=switch.reason)

    def _release(self) -> None:
        ctx = self._ctx
        ctx.margin.release(self._job.execution_id)
        ctx.claims.release(self._job.execution_id, ctx.clock.monotonic())
        if ctx.metrics is not None:
            ctx.metrics.unknown(self._job.execution_id, False)

    # --- asking the broker ---------------------------------------------------------------

    def _ask_broker(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            future = getattr(self._ctx.broker(), method)(*args, **kwargs)
        except pykka.ActorDeadError as exc:
            raise _BrokerGoneError("the broker actor is not running") from exc
        try:
            return future.get(timeout=self._cfg.ask_timeout)
        except pykka.ActorDeadError as exc:
            # Pykka answers this only for messages the actor never started to handle.
            raise _BrokerGoneError(str(exc)) from exc

    def _tell_broker_quietly(self, method: str, *args: Any) -> None:
        try:
            getattr(self._ctx.broker(), method)(*args)
        except pykka.ActorDeadError:
            log.info("broker gone while calling %s", method)


__all__ = [
    "InvalidTransitionError",
    "OrderActor",
    "OrderConfig",
    "OrderContext",
    "PersistenceUnavailableError",
]
