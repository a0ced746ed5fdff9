"""The simulated server's check of a request's stop-loss and take-profit (10016)."""

from __future__ import annotations

from terminals import constants as c
from terminals._sim_market import SymbolState
from terminals.types import TradeRequest


def stops_ok(req: TradeRequest, sym: SymbolState) -> bool:
    """``sl``/``tp`` (absolute prices, 0 = none) on the right side of the price the position
    would close at, at least ``trade_stops_level`` points away (MQL5 "Requirements and
    Limitations in Making Trades"): a buy closes at the bid, a sell at the ask."""
    if req.sl < 0 or req.tp < 0:
        return False
    gap = sym.int_field("trade_stops_level") * sym.num("point")
    tolerance = sym.num("point") / 2
    buy = req.type == c.ORDER_TYPE_BUY
    close = sym.bid if buy else sym.ask
    # Distance from the close price towards the loss (sl) or the gain (tp) side.
    sl_gap = (close - req.sl) if buy else (req.sl - close)
    tp_gap = (req.tp - close) if buy else (close - req.tp)
    if req.sl and (sl_gap <= 0 or sl_gap < gap - tolerance):
        return False
    return not (req.tp and (tp_gap <= 0 or tp_gap < gap - tolerance))
