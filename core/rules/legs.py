"""How one approved trade becomes legs, and how each leg's record is kept (pure).

The position effect (`core.rules.positions`) decides the legs; this module adds what the
execution needs around it: the open positions from the preflight, the close-by-ticket of an
approved trade that names a `position_ticket`, the trade-mode rule (closing is allowed in
every restricted mode MT5 has; opening is not), and a deterministic client id per leg so
that reconciliation and crash recovery can find each leg's order on their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.enums import LegAction, OppositePolicy, PositionScope, RejectionReason
from core.models import ApprovedTrade, ExecutionLeg
from core.records import Preflight, SymbolSpec
from core.rules._common import Denied
from core.rules.positions import (
    LegPlan,
    OpenPosition,
    PositionPlan,
    owned_positions,
    plan_position_effect,
)
from core.rules.submission import make_client_id

_R = RejectionReason
_TRADE_MODE_DISABLED = 0
_TRADE_MODE_LONGONLY = 1
_TRADE_MODE_SHORTONLY = 2
_TRADE_MODE_CLOSEONLY = 3
_VOLUME_EPS = 1e-9


def leg_client_id(execution_id: str, base: str, index: int) -> str:
    """The first leg carries the execution's own client id (a one-leg execution looks as
    before); leg i > 0 a digest of `execution_id` and i, with the same prefix."""
    if index == 0:
        return base
    prefix = base.split("-", 1)[0]
    return make_client_id(f"{execution_id}/leg{index}", prefix)


def plan_trade(
    pre: Preflight,
    trade: ApprovedTrade,
    lots: float,
    *,
    magic: int,
    scope: PositionScope,
    policy: OppositePolicy,
) -> PositionPlan | Denied:
    """The legs of `trade` (`lots` already checked against the symbol's volume rules)."""
    spec = pre.spec
    assert spec is not None
    positions = pre.positions
    if positions is None:
        if trade.position_ticket is not None or (pre.hedging and policy is OppositePolicy.REDUCE):
            # Without them a reduction would open a hedge instead: refuse, nothing sent.
            return Denied(
                _R.TERMINAL_NOT_READY, f"the open positions of {trade.symbol} could not be read"
            )
        positions = ()  # netting or hedge: all of it counts as opening, every check applies
    owned = owned_positions(positions, symbol=trade.symbol, magic=magic, scope=scope)
    if trade.position_ticket is not None:
        return _close_ticket(owned, trade, lots)
    return plan_position_effect(
        owned,
        direction=trade.direction,
        volume=lots,
        volume_step=spec.volume_step,
        volume_min=spec.volume_min,
        hedging=pre.hedging,
        policy=policy,
    )


def _close_ticket(
    owned: Sequence[OpenPosition], trade: ApprovedTrade, lots: float
) -> PositionPlan | Denied:
    ticket = trade.position_ticket
    position = next((p for p in owned if p.ticket == ticket), None)
    if position is None:
        return Denied(
            _R.INVALID_INPUT,
            f"position {ticket} is not open on {trade.symbol} (or not the engine's): "
            "nothing was sent",
        )
    if position.direction == trade.direction:
        side = "buy" if position.direction > 0 else "sell"
        return Denied(
            _R.INVALID_INPUT,
            f"position {ticket} is a {side}: closing it needs the opposite direction",
        )
    if lots > position.volume + _VOLUME_EPS:
        return Denied(
            _R.INVALID_VOLUME,
            f"{lots} lots exceed the {position.volume} lots of position {ticket}",
        )
    return PositionPlan(
        (LegPlan(LegAction.CLOSE, lots, position.ticket),),
        reducing_volume=lots,
        opening_volume=0.0,
    )


def trade_mode_refusal(spec: SymbolSpec, direction: int, plan: PositionPlan) -> str:
    """Why the symbol's trade mode forbids the plan ("" when it allows it). Closing is
    allowed in close-only, long-only and short-only modes; only the opening part is held."""
    mode = spec.trade_mode
    if mode == _TRADE_MODE_DISABLED:
        return f"trading is disabled for {spec.name}"
    if plan.opening_volume <= 0:
        return ""
    if mode == _TRADE_MODE_CLOSEONLY:
        return f"{spec.name} is close-only: {plan.opening_volume} lots would open a position"
    if mode == _TRADE_MODE_LONGONLY and direction < 0:
        return f"{spec.name} allows buys only"
    if mode == _TRADE_MODE_SHORTONLY and direction > 0:
        return f"{spec.name} allows sells only"
    return ""


def make_legs(plan: PositionPlan, execution_id: str, client_id: str) -> tuple[ExecutionLeg, ...]:
    return tuple(
        ExecutionLeg(
            index=i,
            action=leg.action,
            volume=leg.volume,
            client_id=leg_client_id(execution_id, client_id, i),
            position_ticket=leg.position,
        )
        for i, leg in enumerate(plan.legs)
    )


def replace_leg(
    legs: tuple[ExecutionLeg, ...], index: int, **changes: object
) -> tuple[ExecutionLeg, ...]:
    return tuple(leg.model_copy(update=changes) if leg.index == index else leg for leg in legs)


def leg_fills(fills: Sequence[tuple[float, float]]) -> tuple[float, float | None]:
    """(lots, volume-weighted price) of one leg's fills."""
    lots = round(sum(v for v, _ in fills), 8)
    if lots <= 0:
        return 0.0, None
    return lots, sum(v * p for v, p in fills) / lots


__all__ = [
    "leg_client_id",
    "leg_fills",
    "make_legs",
    "plan_trade",
    "replace_leg",
    "trade_mode_refusal",
]
