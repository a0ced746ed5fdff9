"""OrderActor: one per execution, through the nine stages by messages to itself.

Each stage ends by telling the actor its next stage, so a Halt or Cancel that arrived
meanwhile is handled between any two stages. It never sleeps: back-off, polling and the
order timeout are messages delivered later by the scheduler. It asks only downward (the
BrokerActor and the PersistenceActor) and every status change goes through the transition
table and is committed before the actor moves on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pykka

from actors._dispatcher import Dispatcher, PooledActor
from actors._failures import InfrastructureFailure
from actors._legs import (
    PositionClaims,
    leg_fills,
    make_legs,
    plan_trade,
    replace_leg,
    trade_mode_refusal,
)
from actors._reply import FastInbox, Reply
from actors._scheduler import Handle, Scheduler
from actors._send_ledger import AbsenceClock
from actors._shared import MarginBook
from actors._threads import ReusedThreads
from actors.broker import SendRequest
from actors.kill_switch import TradingSwitch
from actors.messages import (
    Advance,
    Cancel,
    FillUpdate,
    Halt,
    NewExecution,
    OrderFinding,
    Preflight,
    Quote,
    Rewatch,
    SendOutcome,
    SendTrace,
    SymbolSpec,
)
from actors.metrics import EngineMetrics
from actors.persistence import write_and_wait
from core.clock import Clock, utc_micros
from core.enums import (
    DecisionStatus,
    ExecutionStatus,
    LegAction,
    OppositePolicy,
    PartialFillPolicy,
    PositionScope,
    RejectionReason,
    RetcodeClass,
    can_transition,
)
from core.errors import PersistenceError, PersistenceUnavailableError, ReconciliationError
from core.models import (
    ApprovedTrade,
    ExecutionConfirmation,
    ExecutionLeg,
    ExecutionLog,
    ExecutionRequest,
)
from core.rules import (
    Denied,
    SendFate,
    absence_proven,
    backoff_seconds,
    deviation_points,
    lots_to_units,
    margin_check,
    pip_size,
    reconcile_backoff,
    retcode_name,
    slippage_pips,
    spread_pips,
    stops_check,
    units_to_lots,
)
from storage.writer import WriteOp

log = logging.getLogger(__name__)

_S = ExecutionStatus
_R = RejectionReason
_RETCODE_DONE = 10009
_RETCODE_MARKET_CLOSED = 10018
_RETCODE_POSITION_CLOSED = 10036
_TRADE_MODE_FULL = 4


_ORDER_STATE_EXPIRED = 6
_VOLUME_EPS = 1e-9
_BROKER_GONE_RETRIES = 20


@dataclass(frozen=True, slots=True)
class OrderConfig:
    """What an OrderActor needs from the settings (defaults are the seeds').

    max_slippage_pips: sets `deviation`, in points. order_timeout: seconds to wait for a fill.
    max_retries: re-sends after a clean (retryable) rejection. margin_cushion: 1.5 x margin.
    max_spread_pips / max_tick_age: market-data checks. reconcile_window: how long after
    order_send actually started an order must stay absent, with evidence that the terminal
    processed past the send (`core.rules.reconcile`), before the execution is NOT_SENT.
    reconcile_interval / reconcile_backoff_cap: first and longest pause between lookups.
    """

    engine_version: str
    magic: int = 770001
    max_slippage_pips: float = 10.0
    order_timeout: float = 60.0
    max_retries: int = 3
    margin_cushion: float = 1.5
    max_spread_pips: float = 5.0
    max_tick_age: float = 10.0
    pip_overrides: dict[str, float] = field(default_factory=dict)
    partial_policy: PartialFillPolicy = PartialFillPolicy.ACCEPT
    backoff_base: float = 0.2
    backoff_cap: float = 2.0
    reconcile_window: float = 30.0
    reconcile_interval: float = 0.25
    reconcile_backoff_cap: float = 2.0
    ask_timeout: float = 30.0
    position_scope: PositionScope = PositionScope.ENGINE
    opposite_positions: OppositePolicy = OppositePolicy.REDUCE


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


class _BrokerGoneError(InfrastructureFailure):
    """The BrokerActor was not there to take the request: nothing reached the terminal."""


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
        self._log: ExecutionLog | None = None
        self._request: ExecutionRequest | None = None
        self._spec: SymbolSpec | None = None
        self._ticket: int | None = None
        self._order_lots = 0.0
        self._prior_fills: list[tuple[float, float]] = []
        """(lots, price) filled by earlier orders of this execution (the `complete` policy)."""
        self._current_fills: list[tuple[float, float]] = []
        """(lots, price) of the current order: its DONE result, or its deals once polled."""
        self._replied = False
        self._sent_at: float | None = None
        self._deadline: float | None = None
        self._timeout_handle: Handle | None = None
        self._halt_reason: str | None = None
        self._done = False
        self._broker_gone = 0
        """Validations retried because the BrokerActor was being replaced."""
        self._deferred: list[WriteOp] = []
        """Events written with the next commit (see `_write`)."""
        self._born = ctx.clock.monotonic()
        """About when submit() was called: the start of the submit-to-send latency."""
        self._looks = 0
        """Lookups of an ambiguous send so far (their back-off)."""
        self._absence = AbsenceClock()
        """How long an ambiguous send's order has had to appear (from order_send's start)."""
        self._fate: str | None = None
        """What the last lookup that found nothing learned (journaled when it changes)."""
        self._legs: tuple[ExecutionLeg, ...] = ()
        """The order_sends of this execution (`actors._legs`); one OPEN leg in most."""
        self._leg = 0
        """Index of the leg being sent or settled."""
        self._leg_request: ExecutionRequest | None = None
        """The current leg's order (its client id, lots, position ticket)."""
        self._leg_attempts = 0
        self._last_deal = 0
        self._position_gone = False
        """The current CLOSE leg was answered 10036: its position no longer exists."""

    # --- the doors ----------------------------------------------------------------------

    def on_start(self) -> None:
        self.actor_ref.tell(Advance("create"))

    def on_receive(self, message: Any) -> Any:
        if self._done:
            return None
        if isinstance(message, Advance):
            getattr(self, f"_stage_{message.stage}")()
        elif isinstance(message, FillUpdate):
            self._on_fill_update(message.finding)
        elif isinstance(message, Halt):
            self._on_halt(message.reason)
        elif isinstance(message, Cancel):
            self._on_halt(f"cancelled: {message.reason}", reason=_R.CANCELLED)
        elif isinstance(message, Rewatch):
            # A restarted BrokerActor has lost the watches of the old one.
            if self._log is not None and self._log.status is _S.SUBMITTED and self._ticket:
                self._watch()
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

    @property
    def _fills(self) -> list[tuple[float, float]]:
        return [*self._prior_fills, *self._current_fills]

    def _take(self, finding: OrderFinding) -> None:
        """Adopt the deals of the current order; the deals are the truth once seen."""
        if finding.deals:
            self._current_fills = [(deal.volume, deal.price) for deal in finding.deals]
            self._last_deal = finding.deals[-1].ticket

    def _next(self, stage: str) -> None:
        self.actor_ref.tell(Advance(stage))

    def _later(self, delay: float, stage: str) -> Handle:
        return self._ctx.scheduler.tell_later(delay, self.actor_ref, Advance(stage))

    # --- stage 3: log (PENDING, with the whole RPM context) -----------------------------

    def _stage_create(self) -> None:
        rpm = self._job.rpm
        trade = rpm.decision.approved_trade
        now = self._ctx.clock.now()
        record = ExecutionLog(
            execution_id=self._job.execution_id,
            request_id=self._job.request_id,
            rpm_decision_id=rpm.decision_id,
            client_id=self._job.client_id,
            symbol=trade.symbol if trade else "",
            direction=trade.direction if trade else 0,
            intended_units=float(trade.position_units) if trade else 0.0,
            intended_price=float(trade.intended_price) if trade and trade.intended_price else None,
            magic=self._cfg.magic,
            confidence_score=trade.confidence_score if trade else None,
            atr=trade.atr if trade else None,
            rpm_version=rpm.rpm_version,
            model_version=rpm.model_version,
            engine_version=self._cfg.engine_version,
            rpm_fingerprint=self._job.fingerprint,
            rpm_payload=self._job.rpm_payload,
            created_at=now,
            updated_at=now,
        )
        # Stored with the first status change (SUBMITTING, or REJECTED by validation), in
        # the same transaction and before anything is sent or answered: nothing reaches the
        # terminal before the decision is stored, and a submit costs one commit fewer.
        self._commit(record, "EXECUTION_CREATED", {"stage": "log"}, initial=True, defer=True)
        self._next("validate")

    # --- stage 1: validate before the broker --------------------------------------------

    def _stage_validate(self) -> None:
        rpm = self._job.rpm
        if self._ctx.switch.halted or self._halt_reason is not None:
            self._reject(_R.TRADING_HALTED, self._halt_reason or self._ctx.switch.reason)
            return
        if rpm.decision.status is not DecisionStatus.APPROVED:
            self._reject(_R.RPM_NOT_APPROVED, f"RPM decision status is {rpm.decision.status}")
            return
        if rpm.portfolio_state.trading_halted:
            self._reject(_R.TRADING_HALTED, "portfolio_state.trading_halted is true")
            return
        trade = rpm.decision.approved_trade
        assert trade is not None  # guaranteed by the model for APPROVED decisions
        try:
            pre: Preflight = self._ask_broker("preflight", trade.symbol)
        except _BrokerGoneError as exc:
            # It never started handling the ask: the Supervisor is replacing it; carry on
            # with the new one after a back-off (bounded), as a dead broker is no refusal.
            if self._broker_gone < _BROKER_GONE_RETRIES:
                self._broker_gone += 1
                delay = backoff_seconds(
                    self._broker_gone, self._cfg.backoff_base, self._cfg.backoff_cap
                )
                self._later(delay, "validate")
                return
            self._reject(_R.TERMINAL_NOT_READY, f"broker unavailable: {exc}")
            return
        except pykka.Timeout as exc:
            self._reject(_R.TERMINAL_NOT_READY, f"broker unavailable: {exc}")
            return
        denied = self._check(pre, trade.symbol, trade.direction, float(trade.position_units))
        if isinstance(denied, Denied):
            self._reject(denied.reason, denied.detail)
            return
        self._next("submit")

    def _check(self, pre: Preflight, symbol: str, direction: int, units: float) -> Denied | None:
        if not pre.ready:
            return Denied(_R.TERMINAL_NOT_READY, pre.not_ready_detail)
        spec = pre.spec
        if spec is None:
            return Denied(_R.SYMBOL_NOT_TRADABLE, pre.symbol_detail)
        lots = units_to_lots(
            units,
            contract_size=spec.trade_contract_size,
            volume_min=spec.volume_min,
            volume_max=spec.volume_max,
            volume_step=spec.volume_step,
        )
        if isinstance(lots, Denied):
            return lots
        trade = self._job.rpm.decision.approved_trade
        assert trade is not None
        if self._netting_positions_needed(pre, spec, trade.position_ticket, lots):
            pre = self._with_positions(pre, symbol)
        plan = self._ctx.claims.plan(
            self._job.execution_id,
            pre,
            lambda seen: plan_trade(
                seen,
                trade,
                lots,
                magic=self._cfg.magic,
                scope=self._cfg.position_scope,
                policy=self._cfg.opposite_positions,
            ),
        )
        if isinstance(plan, Denied):
            return plan
        mode_refusal = trade_mode_refusal(spec, direction, plan)
        if mode_refusal:
            return Denied(_R.SYMBOL_NOT_TRADABLE, mode_refusal)
        if plan.opening_volume > 0 and self._ctx.switch.reducing:
            # The whole trade: the engine never re-sizes what the RPM approved.
            return Denied(
                _R.REDUCE_ONLY,
                f"trading is reduce-only ({self._ctx.switch.reason}): {plan.opening_volume} "
                "of the lots would open exposure; nothing was sent",
            )
        quote = pre.quote
        if quote is None:
            return Denied(_R.NO_MARKET_DATA, f"no quote for {symbol}")
        if quote.age_seconds > self._cfg.max_tick_age:
            return Denied(
                _R.NO_MARKET_DATA,
                f"last tick for {symbol} is {quote.age_seconds:.1f} s old "
                f"(limit {self._cfg.max_tick_age} s)",
            )
        if pre.market_closed:
            return Denied(_R.MARKET_CLOSED, f"the market for {symbol} is closed")
        pip = pip_size(spec.digits, spec.point, self._cfg.pip_overrides.get(symbol))
        spread = spread_pips(quote.bid, quote.ask, pip)
        if spread > self._cfg.max_spread_pips:
            return Denied(
                _R.SPREAD_TOO_WIDE,
                f"spread {spread:.2f} pips exceeds {self._cfg.max_spread_pips} pips",
            )
        if plan.opening_volume > 0:
            # The stops ride on the opening leg only: a close carries none.
            stops = self._stops_refusal(spec, quote, direction)
            if stops is not None:
                return stops
        required = 0.0
        free = pre.margin_free
        if plan.opening_volume > 0:
            # Only the opening part needs (and holds) margin: closing frees it.
            if pre.margin_per_lot is None or free is None:
                return Denied(_R.TERMINAL_NOT_READY, f"margin for {symbol} could not be computed")
            required = pre.margin_per_lot * plan.opening_volume
            usable = free
            refusal = self._ctx.margin.reserve(
                self._job.execution_id,
                required,
                lambda held: margin_check(
                    margin_required=required,
                    free_margin=usable,
                    reserved_margin=held,
                    cushion=self._cfg.margin_cushion,
                ),
            )
            if refusal is not None:
                return refusal
        self._spec = spec
        self._legs = make_legs(plan, self._job.execution_id, self._job.client_id)
        quoted = quote.ask if direction > 0 else quote.bid
        intended = float(trade.intended_price) if trade.intended_price else quoted
        self._request = ExecutionRequest(
            request_id=self._job.request_id,
            execution_id=self._job.execution_id,
            client_id=self._job.client_id,
            symbol=symbol,
            direction=1 if direction > 0 else -1,
            units=units,
            lots=lots,
            intended_price=intended,
            magic=self._cfg.magic,
            deviation_points=deviation_points(self._cfg.max_slippage_pips, pip, spec.point),
            max_slippage_pips=self._cfg.max_slippage_pips,
            timeout_seconds=self._cfg.order_timeout,
            max_retries=self._cfg.max_retries,
            **_stops_fields(trade, spec.digits),
        )
        self._order_lots = self._legs[0].volume
        self._deadline = self._ctx.clock.monotonic() + self._cfg.order_timeout
        self._update(
            "VALIDATED",
            {
                "bid": quote.bid,
                "ask": quote.ask,
                "spread_pips": spread,
                "pip_size": pip,
                "lots": lots,
                "margin_required": required,
                "margin_free": free,
                "tick_time_msc": quote.time_msc,
                "reducing_lots": plan.reducing_volume,
                "opening_lots": plan.opening_volume,
                **_stops_fields(trade, spec.digits),
            },
            broker_time_msc=quote.time_msc,
            defer=True,
            intended_lots=lots,
            intended_price=intended,
            legs=self._legs,
        )
        return None

    def _stops_refusal(self, spec: SymbolSpec, quote: Quote, direction: int) -> Denied | None:
        """The approved stop-loss / take-profit against the side, quote and stops level."""
        trade = self._job.rpm.decision.approved_trade
        assert trade is not None
        stops = _stops_fields(trade, spec.digits)
        if not stops:
            return None
        return stops_check(
            direction=direction,
            stop_loss=stops.get("stop_loss"),
            take_profit=stops.get("take_profit"),
            bid=quote.bid,
            ask=quote.ask,
            point=spec.point,
            stops_level=spec.trade_stops_level,
        )

    # --- stage 4: submit (write-ahead, then order_send) ----------------------------------

    def _stage_submit(self) -> None:
        assert self._request is not None
        assert self._log is not None
        if self._ctx.switch.halted or self._halt_reason is not None:
            self._finish_without_send(
                _R.TRADING_HALTED, self._halt_reason or self._ctx.switch.reason
            )
            return
        leg = self._legs[self._leg]
        closes = leg.action is LegAction.CLOSE
        if self._ctx.switch.reducing and not closes:
            self._finish_without_send(
                _R.REDUCE_ONLY, f"trading is reduce-only: {self._ctx.switch.reason}"
            )
            return
        request = self._request.model_copy(
            update={
                "lots": self._order_lots,
                "client_id": leg.client_id,
                "position": leg.position_ticket,
                "reduces": closes,
                # sl/tp belong to the position the OPEN leg creates; a close carries none.
                **({"stop_loss": None, "take_profit": None} if closes else {}),
            }
        )
        self._leg_request = request
        self._leg_attempts += 1
        try:
            # Write-ahead: SUBMITTING is committed before order_send, or nothing is sent.
            self._transition(
                _S.SUBMITTING,
                "SUBMITTING",
                {
                    "lots": self._order_lots,
                    "attempt": self._log.attempts + 1,
                    "leg": leg.index,
                    "action": leg.action.value,
                    "client_id": leg.client_id,
                    "position": leg.position_ticket,
                },
                attempts=self._log.attempts + 1,
                submitted_at=self._log.submitted_at or self._ctx.clock.now(),
                legs=replace_leg(self._legs, leg.index, status="SUBMITTING"),
            )
            self._legs = self._log.legs
        except PersistenceError as exc:
            self._fail(exc)
            return
        self._sent_at = self._ctx.clock.monotonic()
        if self._ctx.metrics is not None and self._log.attempts == 1:
            self._ctx.metrics.submitted(self._sent_at - self._born)
        outcome = self._place(request)
        self._on_outcome(outcome)

    def _place(self, request: ExecutionRequest) -> SendOutcome:
        """The send, queued at the BrokerActor behind the sends before it.

        The BrokerActor does not start it past the order's deadline, and this waits for
        the deadline plus one ask timeout: a send still in the line is never taken for a
        lost one. Sends the BrokerActor never started (it stopped) come back as a clean
        RETRY; an error during the send is AMBIGUOUS (it may have executed).
        """
        now = self._ctx.clock.monotonic()
        wait = max((self._deadline if self._deadline is not None else now) - now, 0.0)
        reply: Reply[SendOutcome] = Reply()
        try:
            self._ctx.broker().actor_ref.tell(SendRequest(request, self._deadline, reply))
            outcome = reply.get(timeout=wait + self._cfg.ask_timeout)
        except pykka.ActorDeadError as exc:
            return SendOutcome(klass=RetcodeClass.RETRY, retcode=None, comment=str(exc))
        except Exception as exc:
            return SendOutcome(
                klass=RetcodeClass.AMBIGUOUS,
                retcode=None,
                comment=f"broker failed during the send: {type(exc).__name__}: {exc}",
                request={"unknown": True},
            )
        return outcome

    def _on_outcome(self, outcome: SendOutcome) -> None:
        assert self._log is not None
        payload = _outcome_payload(outcome)
        if outcome.halted:
            reason = _R.REDUCE_ONLY if self._ctx.switch.reducing else _R.TRADING_HALTED
            self._finish_without_send(reason, self._ctx.switch.reason, payload)
            return
        if outcome.not_sent:
            self._finish_without_send(_R.NOT_SENT, outcome.comment, payload)
            return
        if outcome.klass is RetcodeClass.SUCCESS:
            self._on_accepted(outcome, payload)
        elif outcome.klass is RetcodeClass.RETRY:
            self._on_retryable(outcome, payload)
        elif outcome.klass is RetcodeClass.AMBIGUOUS:
            self._legs = replace_leg(self._legs, self._leg, status="UNKNOWN")
            self._transition(_S.UNKNOWN, "SEND_AMBIGUOUS", payload, legs=self._legs)
            self._unknown(True)
            self._ticket = outcome.order or None
            self._next("reconcile")
        elif outcome.retcode == _RETCODE_POSITION_CLOSED and self._closing():
            # The position is gone: closed by this leg's own earlier (ambiguous) attempt,
            # by the broker (a stop) or by someone else. Benign: look this leg's order up
            # by its client id, never send it again (it could only fail or open anew).
            self._position_gone = True
            self._legs = replace_leg(self._legs, self._leg, status="UNKNOWN")
            self._transition(_S.UNKNOWN, "POSITION_ALREADY_CLOSED", payload, legs=self._legs)
            self._next("reconcile")
        else:
            reason = (
                _R.MARKET_CLOSED
                if outcome.retcode == _RETCODE_MARKET_CLOSED
                else _R.BROKER_REJECTED
            )
            self._finish_without_send(
                reason,
                f"{retcode_name(outcome.retcode)}: {outcome.comment}".strip(": "),
                payload,
            )

    def _on_accepted(self, outcome: SendOutcome, payload: dict[str, Any]) -> None:
        self._ticket = outcome.order
        if (
            outcome.retcode == _RETCODE_DONE
            and outcome.deal > 0
            and outcome.volume >= self._order_lots - _VOLUME_EPS
        ):
            # A DONE with its deal is a fill: no poll needed.
            self._current_fills = [(outcome.volume, outcome.price)]
            self._last_deal = outcome.deal
            self._journal("ORDER_ACCEPTED", payload, defer=True)
            self._finalize_fills(broker_time_msc=None)
            return
        self._transition(_S.SUBMITTED, "ORDER_ACCEPTED", payload, order_id=outcome.order or None)
        self._watch()

    def _on_retryable(self, outcome: SendOutcome, payload: dict[str, Any]) -> None:
        assert self._log is not None
        retries_used = self._leg_attempts - 1
        if self._past_deadline() and not outcome.sent:
            self._finish_without_send(
                _R.ORDER_TIMEOUT,
                f"not sent within the order timeout of {self._cfg.order_timeout} s: "
                f"{retcode_name(outcome.retcode)} {outcome.comment}".strip(),
                payload,
            )
            return
        if retries_used >= self._cfg.max_retries or self._past_deadline():
            self._finish_without_send(
                _R.RETRIES_EXHAUSTED,
                f"{self._log.attempts} attempts; last: {retcode_name(outcome.retcode)} "
                f"{outcome.comment}".strip(),
                payload,
            )
            return
        delay = backoff_seconds(retries_used + 1, self._cfg.backoff_base, self._cfg.backoff_cap)
        if self._ctx.metrics is not None:
            self._ctx.metrics.retry(outcome.retcode)
        self._transition(_S.PENDING, "SEND_RETRY", {**payload, "retry_in_seconds": delay})
        self._later(delay, "submit")

    # --- stage 5: monitor ----------------------------------------------------------------

    def _watch(self) -> None:
        assert self._ticket is not None
        try:
            self._tell_broker("watch", self._ticket, self._order_lots, self.actor_ref)
        except _BrokerGoneError:
            self._later(self._cfg.reconcile_interval, "reconcile")
        if self._timeout_handle is None:
            remaining = max((self._deadline or 0.0) - self._ctx.clock.monotonic(), 0.0)
            self._timeout_handle = self._later(remaining, "timeout")

    def _on_fill_update(self, finding: OrderFinding) -> None:
        if self._log is None or finding.ticket != self._ticket:
            return
        if self._log.status is _S.UNKNOWN:
            self._transition(
                _S.SUBMITTED, "ORDER_FOUND", _finding_payload(finding), order_id=finding.ticket
            )
            self._unknown(False)
        self._take(finding)
        if finding.filled_volume >= self._order_lots - _VOLUME_EPS:
            self._finalize_fills(finding.time_msc)
            return
        if not finding.done:
            if finding.filled_volume > 0:
                self._journal("PARTIAL_FILL_OBSERVED", _finding_payload(finding))
            return
        self._order_closed_short(finding)

    def _order_closed_short(self, finding: OrderFinding) -> None:
        """The order is done with less than its volume filled."""
        assert self._request is not None
        total = round(sum(volume for volume, _ in self._fills), 8)
        remainder = round(self._request.lots - total, 8)
        if (
            self._cfg.partial_policy is PartialFillPolicy.COMPLETE
            and len(self._legs) <= 1
            and total > 0
            and remainder > _VOLUME_EPS
            and not self._past_deadline()
            and self._halt_reason is None
        ):
            self._journal(
                "PARTIAL_FILL", {**_finding_payload(finding), "remainder_lots": remainder}
            )
            self._prior_fills = self._fills
            self._current_fills = []
            self._order_lots = remainder
            self._ticket = None
            self._next("submit")
            return
        if total > 0:
            self._finalize_fills(finding.time_msc)
            return
        expired = finding.state == _ORDER_STATE_EXPIRED
        self._finish(
            _S.EXPIRED if expired else _S.REJECTED,
            "ORDER_CLOSED_UNFILLED",
            _finding_payload(finding),
            reason=_R.ORDER_TIMEOUT if expired else _R.BROKER_REJECTED,
            details=f"order {finding.ticket} closed with nothing filled (state {finding.state})",
        )

    def _stage_timeout(self) -> None:
        if self._log is None or self._log.status not in (_S.SUBMITTED, _S.UNKNOWN):
            return
        self._timeout_handle = None
        if self._ticket is None:
            return
        self._remove_and_settle(_R.ORDER_TIMEOUT, f"no fill within {self._cfg.order_timeout} s")

    def _remove_and_settle(self, reason: RejectionReason, details: str) -> None:
        """Remove the working order, then settle on what actually filled (a fill may race)."""
        assert self._ticket is not None
        self._tell_broker_quietly("unwatch", self._ticket)
        removal = self._ask_broker_quietly("remove_order", self._ticket)
        self._journal(
            "ORDER_REMOVE_REQUESTED",
            _outcome_payload(removal)
            if isinstance(removal, SendOutcome)
            else {"error": str(removal)},
        )
        finding = self._ask_broker_quietly("query_order", self._ticket, self._order_lots)
        if isinstance(finding, OrderFinding):
            self._take(finding)
        filled = sum(volume for volume, _ in self._fills)
        if filled >= (self._request.lots if self._request else 0) - _VOLUME_EPS and filled > 0:
            self._finalize_fills(finding.time_msc if isinstance(finding, OrderFinding) else None)
        elif filled > 0:
            self._finalize_fills(None, reason=reason, details=details)
        else:
            status = _S.EXPIRED if reason is _R.ORDER_TIMEOUT else _S.REJECTED
            self._finish(
                status,
                "ORDER_EXPIRED" if status is _S.EXPIRED else "ORDER_REMOVED",
                {},
                reason=reason,
                details=details,
            )

    # --- ambiguous outcomes: reconcile, never resend -------------------------------------

    def _stage_reconcile(self) -> None:
        request = self._leg_request
        assert request is not None
        assert self._log is not None
        try:
            # The trace first: whatever it proves about the terminal holds for the lookup
            # that follows it.
            trace: SendTrace = self._ask_broker("send_trace", request.client_id)
            if self._ticket:
                finding: OrderFinding | None = self._ask_broker(
                    "query_order", self._ticket, self._order_lots
                )
                if finding is not None and not finding.found:
                    finding = None
            else:
                finding = self._ask_broker(
                    "find_order",
                    client_id=request.client_id,
                    symbol=request.symbol,
                    direction=request.direction,
                    lots=self._order_lots,
                    since=self._log.submitted_at or self._log.created_at,
                )
        except (_BrokerGoneError, pykka.Timeout, ReconciliationError) as exc:
            if self._fate != f"error: {exc}":
                # Once per change, not per lookup: a terminal down for an hour must not
                # write thousands of identical events.
                self._fate = f"error: {exc}"
                self._journal("RECONCILE_DEFERRED", {"error": str(exc)})
            self._look_again()
            return
        if finding is None:
            waited, fenced = self._absence.measure(trace, self._ctx.clock.monotonic())
            if not absence_proven(
                trace.fate, waited=waited, window=self._cfg.reconcile_window, fenced=fenced
            ):
                if trace.fate != self._fate:
                    # Once per change, not per lookup: the journal says why it still waits.
                    self._fate = trace.fate
                    self._journal(
                        "RECONCILE_WAITING",
                        {"send": trace.fate.value, "waited_seconds": round(waited, 3)},
                    )
                self._look_again()
                return
            if self._position_gone:
                self._finish_without_send(
                    _R.BROKER_REJECTED,
                    f"position {request.position} was already closed (10036) and no order "
                    f"of this leg (client id {request.client_id}) executed: nothing was "
                    "closed or opened by it",
                    {"waited_seconds": round(waited, 3), "send": trace.fate.value},
                )
                return
            if self._fills:
                # Earlier legs filled: the execution keeps them (PARTIALLY_FILLED).
                self._journal("RECONCILED_ABSENT", {"waited_seconds": round(waited, 3)})
                self._finalize_fills(
                    None,
                    reason=_R.NOT_SENT,
                    details=f"leg {self._leg} (client id {request.client_id}) was not "
                    f"executed (send {trace.fate.value})",
                )
                return
            self._finish(
                _S.REJECTED,
                "RECONCILED_ABSENT",
                {"waited_seconds": round(waited, 3), "send": trace.fate.value, "fenced": fenced},
                reason=_R.NOT_SENT,
                details=f"no order with client id {request.client_id} at the terminal "
                f"{waited:.1f} s after "
                + (
                    "it was first looked up"
                    if trace.fate is SendFate.UNKNOWN
                    else "order_send started"
                )
                + f" (send {trace.fate.value})",
            )
            return
        self._ticket = finding.ticket
        self._journal("RECONCILED_FOUND", _finding_payload(finding))
        if finding.open or (not finding.done and finding.filled_volume < self._order_lots):
            self._transition(
                _S.SUBMITTED, "ORDER_FOUND", _finding_payload(finding), order_id=finding.ticket
            )
            self._unknown(False)
            self._watch()
            return
        self._on_fill_update(finding)

    def _look_again(self) -> None:
        """Keep looking, with back-off and no end, until found or proven absent."""
        self._looks += 1
        delay = reconcile_backoff(
            self._looks, self._cfg.reconcile_interval, self._cfg.reconcile_backoff_cap
        )
        self._later(delay, "reconcile")

    def _unknown(self, unknown: bool) -> None:
        if self._ctx.metrics is not None:
            self._ctx.metrics.unknown(self._job.execution_id, unknown)

    # --- halt and cancel -----------------------------------------------------------------

    def _on_halt(self, why: str, reason: RejectionReason = _R.TRADING_HALTED) -> None:
        self._halt_reason = why
        if self._log is None:
            return  # the create stage will see the reason at validate
        status = self._log.status
        if status is _S.PENDING:
            return  # the next stage (validate or submit) rejects it before anything is sent
        if status is _S.SUBMITTED and self._ticket is not None:
            self._remove_and_settle(reason, why)

    # --- finishing -----------------------------------------------------------------------

    def _finalize_fills(
        self,
        broker_time_msc: int | None,
        reason: RejectionReason | None = None,
        details: str | None = None,
    ) -> None:
        assert self._request is not None
        assert self._spec is not None
        if self._settle_leg(reason):
            return
        filled_lots = round(sum(volume for volume, _ in self._fills), 8)
        price = sum(volume * px for volume, px in self._fills) / filled_lots
        pip = pip_size(
            self._spec.digits, self._spec.point, self._cfg.pip_overrides.get(self._request.symbol)
        )
        signed, absolute = slippage_pips(
            self._request.direction, self._request.intended_price, price, pip
        )
        complete = filled_lots >= self._request.lots - _VOLUME_EPS
        status = _S.FILLED if complete else _S.PARTIALLY_FILLED
        if not complete and reason is None:
            details = f"filled {filled_lots} of {self._request.lots} lots"
        unsent = [leg.index for leg in self._legs if leg.status == "PLANNED"]
        if not complete and unsent:
            details = f"{details}; leg(s) {unsent} not sent"
        self._finish(
            status,
            "EXECUTION_FILLED" if complete else "EXECUTION_PARTIALLY_FILLED",
            {"fills": [[v, p] for v, p in self._fills], "pip_size": pip},
            reason=reason,
            details=details,
            broker_time_msc=broker_time_msc,
            executed_lots=filled_lots,
            executed_units=lots_to_units(filled_lots, self._spec.trade_contract_size),
            fill_price=round(price, self._spec.digits + 3),
            slippage_pips=signed,
            slippage_abs_pips=absolute,
            filled_at=self._ctx.clock.now(),
            order_id=self._log.order_id if self._log and self._log.order_id else self._ticket,
        )

    def _settle_leg(self, reason: RejectionReason | None) -> bool:
        """Record the current leg's fills; True when the next leg was started instead."""
        if not self._legs:
            return False
        leg = self._legs[self._leg]
        if leg.status == "PLANNED":
            return False  # stopped before it was sent: `_finish` records it NOT_SENT
        lots, price = leg_fills(self._current_fills)
        done = lots >= leg.volume - _VOLUME_EPS
        status = "FILLED" if done else "PARTIALLY_FILLED" if lots > 0 else "NOT_FILLED"
        self._legs = replace_leg(
            self._legs,
            leg.index,
            status=status,
            filled_volume=lots,
            fill_price=round(price, self._spec.digits + 3) if price and self._spec else price,
            order_id=self._ticket or None,
            deal_id=self._last_deal or None,
        )
        if reason is not None or not done or self._leg + 1 >= len(self._legs):
            return False
        # The next leg, once this one is committed as filled (closes first, then the open).
        if self._ticket is not None:
            self._tell_broker_quietly("unwatch", self._ticket)
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
            self._timeout_handle = None
        self._prior_fills = self._fills
        self._current_fills = []
        self._leg += 1
        self._ticket = None
        self._last_deal = 0
        self._leg_attempts = 0
        self._position_gone = False
        self._looks = 0
        self._fate = None
        self._absence = AbsenceClock()
        self._order_lots = self._legs[self._leg].volume
        self._deadline = self._ctx.clock.monotonic() + self._cfg.order_timeout
        try:
            self._transition(
                _S.SUBMITTED,
                "LEG_FILLED",
                {
                    "leg": leg.index,
                    "lots": lots,
                    "price": price,
                    "order": self._legs[leg.index].order_id,
                },
                legs=self._legs,
            )
        except PersistenceError as exc:
            self._fail(exc)
            return True
        self._next("submit")
        return True

    def _closing(self) -> bool:
        return bool(self._legs) and self._legs[self._leg].action is LegAction.CLOSE

    def _netting_positions_needed(
        self, pre: Preflight, spec: SymbolSpec, ticket: int | None, lots: float
    ) -> bool:
        """On a netting account the positions are read only when they can change the
        verdict: a close by ticket, a restricted trade mode, or a margin check the whole
        trade would fail (its reducing part is exempt)."""
        if pre.hedging or pre.positions is not None:
            return False
        if ticket is not None or spec.trade_mode != _TRADE_MODE_FULL:
            return True
        if pre.margin_per_lot is None or pre.margin_free is None:
            return False
        whole = margin_check(
            margin_required=pre.margin_per_lot * lots,
            free_margin=pre.margin_free,
            reserved_margin=self._ctx.margin.held(),
            cushion=self._cfg.margin_cushion,
        )
        return whole is not None

    def _with_positions(self, pre: Preflight, symbol: str) -> Preflight:
        try:
            read = self._ask_broker("open_positions", symbol)
        except (_BrokerGoneError, pykka.Timeout):
            read = None
        if read is None:
            return pre  # unread: every check holds against the whole trade
        return replace(pre, positions=read[1], positions_read_at=read[0])

    def _ticket_of(self, leg: ExecutionLeg) -> int | None:
        return self._legs[leg.index].order_id

    def _finish_without_send(
        self, reason: RejectionReason, details: str, payload: dict[str, Any] | None = None
    ) -> None:
        if self._fills:
            self._finalize_fills(None, reason=reason, details=details)
            return
        self._finish(
            _S.REJECTED, "EXECUTION_REJECTED", payload or {}, reason=reason, details=details
        )

    def _reject(self, reason: RejectionReason, details: str) -> None:
        self._finish(_S.REJECTED, "EXECUTION_REJECTED", {}, reason=reason, details=details)

    def _finish(
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
        if self._legs:
            # Every leg ends settled: never sent, or sent and (now known) not filled.
            self._legs = tuple(
                leg
                if leg.settled
                else leg.model_copy(
                    update={"status": "NOT_SENT" if leg.status == "PLANNED" else "NOT_FILLED"}
                )
                for leg in self._legs
            )
            changes["legs"] = self._legs
        if self._ticket is not None:
            self._tell_broker_quietly("unwatch", self._ticket)
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        try:
            self._transition(
                status,
                event,
                {**payload, "reason": reason.value if reason else None, "details": details},
                broker_time_msc=broker_time_msc,
                rejection_reason=reason,
                rejection_details=details,
                **changes,
            )
        except PersistenceError as exc:
            self._fail(exc)
            return
        self._release()
        self._done = True
        assert self._log is not None
        self._ctx.on_final(self._log)
        self._replied = True
        self._job.reply.set(self._log.to_confirmation())
        self.stop()

    def _fail(self, exc: Exception) -> None:
        """The database could not take a write: answer with the error and stop. The last
        committed state stands; startup recovery reconciles it with the terminal."""
        self._release()
        self._done = True
        if not self._replied:
            self._replied = True
            self._job.reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
        self.stop()

    def settle_own_failure(self, exc: Exception) -> bool:
        """Handling this execution's own data raised `exc` (a value no rule foresaw, or a
        bug on its path). While nothing can have been sent (PENDING), end it REJECTED
        with INTERNAL_ERROR and the error named; if not even its record could be built,
        answer REJECTED (INVALID_INPUT) without one. False once it may have reached the
        terminal: then the actor dies and reconciliation settles the execution."""
        if self._done or self._replied:
            return False
        details = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
        log.error("execution %s failed on its own data", self._job.execution_id, exc_info=exc)
        if self._log is None:
            self._release()
            self._done = self._replied = True
            self._job.reply.set(
                ExecutionConfirmation.refused(
                    self._job.execution_id,
                    _R.INVALID_INPUT,
                    f"the message could not be recorded, nothing was sent: {details}",
                    self._job.rpm.decision_id,
                )
            )
            self.stop()
            return True
        if self._log.status is not _S.PENDING:
            return False
        self._finish_without_send(
            _R.INTERNAL_ERROR, f"failed on its own data, nothing was sent: {details}"
        )
        return True

    def _release(self) -> None:
        self._ctx.margin.release(self._job.execution_id)
        self._ctx.claims.release(self._job.execution_id, self._ctx.clock.monotonic())
        self._unknown(False)

    # --- writing -------------------------------------------------------------------------

    def _transition(
        self,
        status: ExecutionStatus,
        event: str,
        payload: dict[str, Any],
        broker_time_msc: int | None = None,
        **changes: Any,
    ) -> None:
        assert self._log is not None
        if status is not self._log.status and not can_transition(self._log.status, status):
            raise InvalidTransitionError(f"{self._log.status} -> {status} ({event})")
        self._update(event, payload, broker_time_msc=broker_time_msc, status=status, **changes)

    def _update(
        self,
        event: str,
        payload: dict[str, Any],
        broker_time_msc: int | None = None,
        *,
        defer: bool = False,
        **changes: Any,
    ) -> None:
        assert self._log is not None
        if broker_time_msc is not None:
            changes.setdefault("broker_time_msc", broker_time_msc)
        record = self._log.evolve(updated_at=self._ctx.clock.now(), **changes)
        self._commit(record, event, payload, broker_time_msc=broker_time_msc, defer=defer)

    def _journal(self, event: str, payload: dict[str, Any], *, defer: bool = False) -> None:
        """An event that changes no state (a broker interaction worth keeping)."""
        op = WriteOp(
            execution_id=self._job.execution_id,
            event_type=event,
            payload=payload,
            engine_time_us=utc_micros(self._ctx.clock.now()),
        )
        self._write(op, defer=defer)

    def _commit(
        self,
        record: ExecutionLog,
        event: str,
        payload: dict[str, Any],
        *,
        initial: bool = False,
        broker_time_msc: int | None = None,
        defer: bool = False,
    ) -> None:
        op = WriteOp(
            execution_id=record.execution_id,
            event_type=event,
            payload={"status": record.status.value, **payload},
            engine_time_us=utc_micros(record.updated_at),
            broker_time_msc=broker_time_msc,
            projection=record,
            creates=initial,
        )
        self._write(op, defer=defer)
        self._log = record

    def _write(self, op: WriteOp, *, defer: bool = False) -> None:
        """Commit `op`, together with the events deferred before it, in one write.

        Deferred are the execution's creation (PENDING, before validation) and events that
        change no status (VALIDATED, a DONE's ORDER_ACCEPTED): they ride with the next
        status change, which is committed before anything is sent or answered, so the
        journal keeps every event, in order, with fewer round trips.
        """
        if defer:
            self._deferred.append(op)
            return
        ops, self._deferred = [*self._deferred, op], []
        write_and_wait(self._ctx.persistence(), ops, self._cfg.ask_timeout)

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

    def _tell_broker(self, method: str, *args: Any) -> None:
        self._ask_broker(method, *args)

    def _tell_broker_quietly(self, method: str, *args: Any) -> None:
        try:
            getattr(self._ctx.broker(), method)(*args)
        except pykka.ActorDeadError:
            log.info("broker gone while calling %s", method)

    def _ask_broker_quietly(self, method: str, *args: Any) -> Any:
        try:
            return self._ask_broker(method, *args)
        except Exception as exc:
            return exc

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._ctx.clock.monotonic() >= self._deadline


class InvalidTransitionError(Exception):
    """A status change not in the transition table: a bug, so the actor fails loudly."""


def _stops_fields(trade: ApprovedTrade, digits: int) -> dict[str, float]:
    """The trade's stops as the broker takes them (rounded to the symbol's digits), by
    field name; empty without stops, so nothing about such a trade changes."""
    stops = {"stop_loss": trade.stop_loss, "take_profit": trade.take_profit}
    return {name: round(float(v), digits) for name, v in stops.items() if v is not None}


def _outcome_payload(outcome: SendOutcome) -> dict[str, Any]:
    return {
        "retcode": outcome.retcode,
        "retcode_name": retcode_name(outcome.retcode),
        "class": outcome.klass.value,
        "order": outcome.order,
        "deal": outcome.deal,
        "volume": outcome.volume,
        "price": outcome.price,
        "bid": outcome.bid,
        "ask": outcome.ask,
        "comment": outcome.comment,
        "request_id": outcome.request_id,
        "last_error": list(outcome.last_error) if outcome.last_error else None,
        "request": outcome.request,
    }


def _finding_payload(finding: OrderFinding) -> dict[str, Any]:
    return {
        "ticket": finding.ticket,
        "open": finding.open,
        "state": finding.state,
        "filled_volume": finding.filled_volume,
        "vwap": finding.vwap,
        "deals": [[d.ticket, d.volume, d.price] for d in finding.deals],
    }


__all__ = ["OrderActor", "OrderConfig", "OrderContext", "PersistenceUnavailableError"]
