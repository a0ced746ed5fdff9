"""Creating the record and validating the trade (the CREATE and VALIDATE stages).

Validation asks the world three things on its way, each answered by an event: the
preflight, the open positions (on a netting account, only when they can change the
verdict), and, for trades that open exposure, the margin hold. The legs are planned against
the positions other executions in flight are not already closing (`ClaimLegs`).
"""

from __future__ import annotations

from dataclasses import replace

from core.enums import DecisionStatus, JournalEventType, RejectionReason
from core.execution._run import Run
from core.execution.effects import (
    AskPreflight,
    ClaimLegs,
    HoldMargin,
    Next,
    ReadPositions,
    Schedule,
)
from core.execution.events import MarginHeld, Planned, PositionsRead, Preflighted, PreflightFailed
from core.execution.state import Phase, Stage, Trading, Validation
from core.models import ApprovedTrade, ExecutionLog, ExecutionRequest
from core.rules import Denied, backoff_seconds, deviation_points
from core.rules.legs import make_legs
from core.rules.validation import check_market, positions_needed, screen, stops_fields

_E = JournalEventType
_R = RejectionReason
BROKER_GONE_RETRIES = 20
"""Validations retried while the BrokerActor is being replaced, before TERMINAL_NOT_READY."""


def _trade(r: Run) -> ApprovedTrade:
    trade = r.s.job.rpm.decision.approved_trade
    assert trade is not None  # guaranteed by the model for APPROVED decisions
    return trade


def create(r: Run) -> None:
    job = r.s.job
    rpm = job.rpm
    trade = rpm.decision.approved_trade
    now = r.now.wall
    record = ExecutionLog(
        execution_id=job.execution_id,
        request_id=job.request_id,
        rpm_decision_id=rpm.decision_id,
        client_id=job.client_id,
        symbol=trade.symbol if trade else "",
        direction=trade.direction if trade else 0,
        intended_units=float(trade.position_units) if trade else 0.0,
        intended_price=float(trade.intended_price) if trade and trade.intended_price else None,
        magic=r.cfg.magic,
        account=rpm.account,
        confidence_score=trade.confidence_score if trade else None,
        atr=trade.atr if trade else None,
        rpm_version=rpm.rpm_version,
        model_version=rpm.model_version,
        engine_version=r.cfg.engine_version,
        rpm_fingerprint=job.fingerprint,
        rpm_payload=job.rpm_payload,
        created_at=now,
        updated_at=now,
    )
    # Stored with the first status change (SUBMITTING, or REJECTED by validation), in the
    # same transaction and before anything is sent or answered: nothing reaches the
    # terminal before the decision is stored, and a submit costs one commit fewer.
    r.commit(record, _E.EXECUTION_CREATED, {"stage": "log"}, initial=True, defer=True)
    r.set(phase=Phase.VALIDATING)
    r.emit(Next(Stage.VALIDATE))


def validate(r: Run, trading: Trading) -> None:
    rpm = r.s.job.rpm
    if trading.halted or r.s.halt_reason is not None:
        r.reject(_R.TRADING_HALTED, r.s.halt_reason or trading.reason)
        return
    if rpm.decision.status is not DecisionStatus.APPROVED:
        r.reject(_R.RPM_NOT_APPROVED, f"RPM decision status is {rpm.decision.status}")
        return
    if rpm.portfolio_state.trading_halted:
        r.reject(_R.TRADING_HALTED, "portfolio_state.trading_halted is true")
        return
    r.emit(AskPreflight(_trade(r).symbol))


def preflight_failed(r: Run, event: PreflightFailed) -> None:
    if event.broker_gone and r.s.broker_gone < BROKER_GONE_RETRIES:
        # It never started handling the ask: the Supervisor is replacing it; carry on with
        # the new one after a back-off (bounded), as a dead broker is no refusal.
        tries = r.s.broker_gone + 1
        r.set(broker_gone=tries)
        r.emit(
            Schedule(backoff_seconds(tries, r.cfg.backoff_base, r.cfg.backoff_cap), Stage.VALIDATE)
        )
        return
    r.reject(_R.TERMINAL_NOT_READY, f"broker unavailable: {event.error}")


def preflighted(r: Run, event: Preflighted) -> None:
    trade = _trade(r)
    screened = screen(event.pre, float(trade.position_units))
    if isinstance(screened, Denied):
        r.reject(screened.reason, screened.detail)
        return
    spec, lots = screened
    r.set(validation=Validation(pre=event.pre, spec=spec, lots=lots))
    needed = positions_needed(
        event.pre,
        spec,
        trade.position_ticket,
        lots,
        held_margin=event.held_margin,
        cushion=r.cfg.margin_cushion,
    )
    if needed:
        r.emit(ReadPositions(trade.symbol))
        return
    _claim(r)


def positions_read(r: Run, event: PositionsRead) -> None:
    v = r.s.validation
    assert v is not None
    if event.read is not None:
        pre = replace(v.pre, positions=event.read[1], positions_read_at=event.read[0])
        r.set(validation=replace(v, pre=pre))
    # Unread: every check holds against the whole trade.
    _claim(r)


def _claim(r: Run) -> None:
    v = r.s.validation
    assert v is not None
    cfg = r.cfg
    r.emit(
        ClaimLegs(
            v.pre,
            _trade(r),
            v.lots,
            magic=cfg.magic,
            scope=cfg.position_scope,
            policy=cfg.opposite_positions,
        )
    )


def planned(r: Run, event: Planned) -> None:
    v = r.s.validation
    assert v is not None
    if isinstance(event.plan, Denied):
        r.reject(event.plan.reason, event.plan.detail)
        return
    trade = _trade(r)
    market = check_market(
        v.pre,
        v.spec,
        trade,
        event.plan,
        reducing=event.trading.reducing,
        reducing_reason=event.trading.reason,
        max_tick_age=r.cfg.max_tick_age,
        max_spread_pips=r.cfg.max_spread_pips,
        pip_override=r.cfg.pip_overrides.get(trade.symbol),
    )
    if isinstance(market, Denied):
        r.reject(market.reason, market.detail)
        return
    r.set(validation=replace(v, plan=event.plan, market=market))
    if event.plan.opening_volume > 0:
        free = v.pre.margin_free
        assert free is not None  # `check_market` refused a trade without it
        r.emit(HoldMargin(market.required_margin, free, r.cfg.margin_cushion))
        return
    _validated(r)


def margin_held(r: Run, event: MarginHeld) -> None:
    if event.refusal is not None:
        r.reject(event.refusal.reason, event.refusal.detail)
        return
    _validated(r)


def _validated(r: Run) -> None:
    v = r.s.validation
    assert v is not None
    assert v.plan is not None
    assert v.market is not None
    job, cfg, trade = r.s.job, r.cfg, _trade(r)
    spec, quote, plan, pip = v.spec, v.market.quote, v.plan, v.market.pip
    legs = make_legs(plan, job.execution_id, job.client_id)
    quoted = quote.ask if trade.direction > 0 else quote.bid
    intended = float(trade.intended_price) if trade.intended_price else quoted
    request = ExecutionRequest(
        request_id=job.request_id,
        execution_id=job.execution_id,
        client_id=job.client_id,
        symbol=trade.symbol,
        direction=1 if trade.direction > 0 else -1,
        units=float(trade.position_units),
        lots=v.lots,
        intended_price=intended,
        magic=cfg.magic,
        deviation_points=deviation_points(cfg.max_slippage_pips, pip, spec.point),
        max_slippage_pips=cfg.max_slippage_pips,
        timeout_seconds=cfg.order_timeout,
        max_retries=cfg.max_retries,
        **stops_fields(trade, spec.digits),
    )
    r.set(
        spec=spec,
        legs=legs,
        request=request,
        order_lots=legs[0].volume,
        deadline=r.now.mono + cfg.order_timeout,
        validation=None,
    )
    r.update(
        _E.VALIDATED,
        {
            "bid": quote.bid,
            "ask": quote.ask,
            "spread_pips": v.market.spread,
            "pip_size": pip,
            "lots": v.lots,
            "margin_required": v.market.required_margin,
            "margin_free": v.pre.margin_free,
            "tick_time_msc": quote.time_msc,
            "reducing_lots": plan.reducing_volume,
            "opening_lots": plan.opening_volume,
            **stops_fields(trade, spec.digits),
        },
        broker_time_msc=quote.time_msc,
        defer=True,
        intended_lots=v.lots,
        intended_price=intended,
        legs=legs,
    )
    r.set(phase=Phase.VALIDATED)
    r.emit(Next(Stage.SUBMIT))


__all__ = [
    "create",
    "margin_held",
    "planned",
    "positions_read",
    "preflight_failed",
    "preflighted",
    "validate",
]
