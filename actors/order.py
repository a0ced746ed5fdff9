"""OrderActor: one per execution, the shell around the pure execution core.

The decisions live in `core.execution.step`; this actor feeds it events and carries out
the effects it returns. It never blocks: every request (a commit, the send, a broker
lookup) is a tell whose answer comes back as a message (`actors._reply.ToActor`), with a
timer message for the answer that does not come. Until the answers it waits for arrive,
other messages (a Halt, a fill, a timer) are kept aside and handled after them, in order,
as they were when the actor blocked: each stage still sees a settled state, and the halt
is as safe as before (the BrokerActor's send gate, `TradingSwitch`, stops any send once a
halt returns). It never sleeps: back-off, polling and the order timeout are messages
delivered later by the scheduler.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors._dispatcher import Dispatcher, PooledActor
from actors._legs import PositionClaims
from actors._order_requests import REQUESTS, Request, answer, commit_error, tell, timeout_of
from actors._reply import Answered, FastInbox, ToActor
from actors._scheduler import Handle, Scheduler
from actors._shared import MarginBook
from actors._threads import ReusedThreads
from actors.kill_switch import TradingSwitch
from actors.messages import Advance, Cancel, FillUpdate, Halt, NewExecution, Rewatch
from actors.metrics import EngineMetrics
from core.clock import Clock
from core.enums import RejectionReason
from core.execution import (
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
from core.rules.legs import plan_trade

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
    dispatcher: Dispatcher | None = None
    """The threads OrderActors run on (`EE_ORDER_THREADS`); None: a thread each."""


@dataclass(frozen=True, slots=True)
class _Alarm:
    """Time to look for requests whose answer is overdue."""


@dataclass(slots=True)
class _Pending:
    effect: Request
    due: float
    """Monotonic time after which the answer is overdue (answered `pykka.Timeout`)."""
    gated: list[fx.Effect]
    """For a commit: the effects of its step that wait for it."""


_THREADS = ReusedThreads("OrderActor")
"""Threads for OrderActors: one per live execution, reused once its execution is final."""


class OrderActor(PooledActor, FastInbox):
    use_daemon_thread = True

    def _start_actor_loop(self) -> None:
        # Pykka's hook for where an actor's loop runs: on the engine's pool when it has
        # one, else on a reused thread of its own.
        if self._ctx.dispatcher is not None:
            self._ctx.dispatcher.attach(self)
        else:
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
        self._tokens = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._alarm: tuple[float, Handle] | None = None
        """The one timer that finds overdue answers (not one per request: most are
        answered in milliseconds, and each timer costs the scheduler a heap entry)."""
        self._aside: deque[Any] = deque()
        """Messages that arrived while a request was unanswered, in order."""

    # --- the doors ----------------------------------------------------------------------

    def on_start(self) -> None:
        self.actor_ref.tell(Advance(Stage.CREATE))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Answered):
            # Even once done: the final commit's answer releases the caller's answer.
            self._settle(message.token, message.value, message.error)
        elif isinstance(message, _Alarm):
            self._overdue()
        elif self._state.done:
            return None
        elif self._pending:
            self._aside.append(message)
            return None
        else:
            self._handle(message)
        while self._aside and not self._pending and not self._state.done:
            self._handle(self._aside.popleft())
        return None

    def _handle(self, message: Any) -> None:
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

    def on_stop(self) -> None:
        # Timers left armed would only find the actor gone, but until they are due (the
        # order timeout, the overdue alarm) they would keep it and its execution in memory.
        for handle in (self._timeout, self._alarm[1] if self._alarm is not None else None):
            if handle is not None:
                handle.cancel()
        self._timeout = self._alarm = None

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
        """Step the core on `event` and carry out its effects."""
        now = Now(self._ctx.clock.now(), self._ctx.clock.monotonic())
        self._state, effects = step(self._state, event, now, self._cfg)
        self._run(effects)

    def _run(self, effects: list[fx.Effect]) -> None:
        """Carry out `effects` in order; what follows a commit waits for its answer. The
        answers known at once (the shared margin and position books) are fed after."""
        answers: list[ev.Event] = []
        for index, effect in enumerate(effects):
            if isinstance(effect, REQUESTS):
                gated = effects[index + 1 :] if isinstance(effect, fx.Commit) else []
                self._request(effect, gated)
                if gated:
                    break
            else:
                answered = self._perform(effect)
                if answered is not None:
                    answers.append(answered)
        for answered in answers:
            self._feed(answered)

    def _request(self, effect: Request, gated: list[fx.Effect]) -> None:
        token = next(self._tokens)
        reply: ToActor[Any] = ToActor(self.actor_ref, token)
        due = self._ctx.clock.monotonic() + timeout_of(effect, self._cfg.ask_timeout)
        self._pending[token] = _Pending(effect, due, gated)
        self._arm(due)
        try:
            ctx = self._ctx
            tell(effect, reply, broker=ctx.broker, persistence=ctx.persistence, me=self.actor_ref)
        except pykka.ActorDeadError as exc:
            # Not running: answered like an ask it never started, as a message all the same.
            reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))

    def _arm(self, due: float) -> None:
        if self._alarm is not None and self._alarm[0] <= due:
            return  # it goes off first, and then arms itself for what is still waiting
        if self._alarm is not None:
            self._alarm[1].cancel()
        delay = due - self._ctx.clock.monotonic()
        self._alarm = (due, self._ctx.scheduler.tell_later(delay, self.actor_ref, _Alarm()))

    def _overdue(self) -> None:
        self._alarm = None
        now = self._ctx.clock.monotonic()
        for token in [t for t, pending in self._pending.items() if pending.due <= now]:
            if token in self._pending:  # settling one may settle others (a failed actor)
                wait = timeout_of(self._pending[token].effect, self._cfg.ask_timeout)
                self._settle(token, None, pykka.Timeout(f"{wait} seconds"))
        if self._pending:
            self._arm(min(pending.due for pending in self._pending.values()))

    def _settle(self, token: int, value: Any, error: BaseException | None) -> None:
        pending = self._pending.pop(token, None)
        if pending is None:
            return  # answered after it was taken for overdue
        effect = pending.effect
        wait = timeout_of(effect, self._cfg.ask_timeout)
        if isinstance(effect, fx.Commit):
            if error is not None:
                failure = commit_error(error, wait)
                if not effect.answer_failure:
                    raise failure  # the actor dies; recovery settles from the last commit
                self._feed(ev.CommitFailed(failure))
                return
            self._run(pending.gated)
            if effect.ack is not None:
                self._feed(effect.ack)
            return
        event = answer(
            effect, value, error, trading=self._trading(), held_margin=self._ctx.margin.held()
        )
        if event is not None:
            self._feed(event)

    def _perform(self, effect: fx.Effect) -> ev.Event | None:
        ctx = self._ctx
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
        elif isinstance(effect, fx.ClaimLegs):
            return ev.Planned(self._claim(effect), self._trading())
        elif isinstance(effect, fx.HoldMargin):
            return ev.MarginHeld(self._hold(effect))
        elif isinstance(effect, fx.Unwatch):
            try:
                ctx.broker().unwatch(effect.ticket)  # a tell: its future is not waited on
            except pykka.ActorDeadError:
                log.info("broker gone while calling unwatch")
        elif isinstance(effect, fx.MarkSubmitted | fx.CountRetry | fx.MarkUnknown):
            self._count(effect)
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

    def _count(self, effect: fx.MarkSubmitted | fx.CountRetry | fx.MarkUnknown) -> None:
        metrics = self._ctx.metrics
        if metrics is None:
            return
        if isinstance(effect, fx.MarkSubmitted):
            metrics.submitted(effect.seconds)
        elif isinstance(effect, fx.CountRetry):
            metrics.retry(effect.retcode)
        else:
            metrics.unknown(self._job.execution_id, effect.unknown)

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

    def _trading(self) -> Trading:
        switch = self._ctx.switch
        # Fenced (another instance owns the account) stops an execution as a halt does.
        halted = switch.halted or switch.fenced is not None
        return Trading(halted=halted, reducing=switch.reducing, reason=switch.reason)

    def _release(self) -> None:
        ctx = self._ctx
        ctx.margin.release(self._job.execution_id)
        ctx.claims.release(self._job.execution_id, ctx.clock.monotonic())
        if ctx.metrics is not None:
            ctx.metrics.unknown(self._job.execution_id, False)


__all__ = ["OrderActor", "OrderContext"]
