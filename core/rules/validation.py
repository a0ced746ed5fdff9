"""Pre-trade validation of an approved trade against the terminal's preflight (pure).

The checks run in the order the journal and the tests know: the terminal is ready, the
symbol exists, the volume fits the symbol, then (once the legs are planned) the trade mode,
reduce-only, market data, the market being open, the spread, the stops and the margin
being computable. A refusal is a `Denied` value. Holding the margin is not a check: it is
an effect of the execution (`core.execution`), checked and held atomically by its caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.enums import RejectionReason
from core.models import ApprovedTrade
from core.records import Preflight, Quote, SymbolSpec
from core.rules._common import Denied
from core.rules.legs import trade_mode_refusal
from core.rules.margin import margin_check
from core.rules.positions import PositionPlan
from core.rules.prices import pip_size, spread_pips
from core.rules.stops import stops_check
from core.rules.volume import units_to_lots

_R = RejectionReason
TRADE_MODE_FULL = 4
"""SYMBOL_TRADE_MODE_FULL (MetaTrader5 5.0.6231): no side or close-only restriction."""


@dataclass(frozen=True, slots=True)
class Market:
    """What the market checks measured, for the request and the VALIDATED event."""

    quote: Quote
    pip: float
    spread: float
    required_margin: float
    """Margin the opening part of the trade needs (0 when it only reduces)."""


def screen(pre: Preflight, units: float) -> tuple[SymbolSpec, float] | Denied:
    """The terminal is ready, the symbol exists, and `units` is a volume it takes:
    (spec, lots)."""
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
    return spec, lots


def positions_needed(
    pre: Preflight,
    spec: SymbolSpec,
    ticket: int | None,
    lots: float,
    *,
    held_margin: float,
    cushion: float,
) -> bool:
    """On a netting account the positions are read only when they can change the verdict:
    a close by ticket, a restricted trade mode, or a margin check the whole trade would
    fail (its reducing part is exempt)."""
    if pre.hedging or pre.positions is not None:
        return False
    if ticket is not None or spec.trade_mode != TRADE_MODE_FULL:
        return True
    if pre.margin_per_lot is None or pre.margin_free is None:
        return False
    whole = margin_check(
        margin_required=pre.margin_per_lot * lots,
        free_margin=pre.margin_free,
        reserved_margin=held_margin,
        cushion=cushion,
    )
    return whole is not None


def check_market(
    pre: Preflight,
    spec: SymbolSpec,
    trade: ApprovedTrade,
    plan: PositionPlan,
    *,
    reducing: bool,
    reducing_reason: str,
    max_tick_age: float,
    max_spread_pips: float,
    pip_override: float | None,
) -> Market | Denied:
    """The checks that need the planned legs and the market, in the journal's order."""
    symbol = trade.symbol
    direction = trade.direction
    mode_refusal = trade_mode_refusal(spec, direction, plan)
    if mode_refusal:
        return Denied(_R.SYMBOL_NOT_TRADABLE, mode_refusal)
    if plan.opening_volume > 0 and reducing:
        # The whole trade: the engine never re-sizes what the RPM approved.
        return Denied(
            _R.REDUCE_ONLY,
            f"trading is reduce-only ({reducing_reason}): {plan.opening_volume} "
            "of the lots would open exposure; nothing was sent",
        )
    quote = pre.quote
    if quote is None:
        return Denied(_R.NO_MARKET_DATA, f"no quote for {symbol}")
    if quote.age_seconds > max_tick_age:
        return Denied(
            _R.NO_MARKET_DATA,
            f"last tick for {symbol} is {quote.age_seconds:.1f} s old (limit {max_tick_age} s)",
        )
    if pre.market_closed:
        return Denied(_R.MARKET_CLOSED, f"the market for {symbol} is closed")
    pip = pip_size(spec.digits, spec.point, pip_override)
    spread = spread_pips(quote.bid, quote.ask, pip)
    if spread > max_spread_pips:
        return Denied(
            _R.SPREAD_TOO_WIDE, f"spread {spread:.2f} pips exceeds {max_spread_pips} pips"
        )
    required = 0.0
    if plan.opening_volume > 0:
        # The stops ride on the opening leg only: a close carries none.
        stops = _stops_refusal(trade, spec, quote)
        if stops is not None:
            return stops
        # Only the opening part needs (and holds) margin: closing frees it.
        if pre.margin_per_lot is None or pre.margin_free is None:
            return Denied(_R.TERMINAL_NOT_READY, f"margin for {symbol} could not be computed")
        required = pre.margin_per_lot * plan.opening_volume
    return Market(quote=quote, pip=pip, spread=spread, required_margin=required)


def stops_fields(trade: ApprovedTrade, digits: int) -> dict[str, float]:
    """The trade's stops as the broker takes them (rounded to the symbol's digits), by
    field name; empty without stops, so nothing about such a trade changes."""
    stops = {"stop_loss": trade.stop_loss, "take_profit": trade.take_profit}
    return {name: round(float(v), digits) for name, v in stops.items() if v is not None}


def _stops_refusal(trade: ApprovedTrade, spec: SymbolSpec, quote: Quote) -> Denied | None:
    """The approved stop-loss / take-profit against the side, quote and stops level."""
    stops = stops_fields(trade, spec.digits)
    if not stops:
        return None
    return stops_check(
        direction=trade.direction,
        stop_loss=stops.get("stop_loss"),
        take_profit=stops.get("take_profit"),
        bid=quote.bid,
        ask=quote.ask,
        point=spec.point,
        stops_level=spec.trade_stops_level,
    )


__all__ = [
    "TRADE_MODE_FULL",
    "Market",
    "check_market",
    "positions_needed",
    "screen",
    "stops_fields",
]
