"""The stop-loss / take-profit check: the broker's rule, applied before anything is sent.

MT5 refuses stops on the wrong side of the price a position closes at, or nearer to it than
``SYMBOL_TRADE_STOPS_LEVEL`` points, with 10016 INVALID_STOPS (MQL5 "Requirements and
Limitations in Making Trades"). A buy closes at the bid: its stop-loss must lie at least the
stops level below the bid, its take-profit as far above. A sell closes at the ask: mirrored.
Checking here refuses such a trade with ``INVALID_STOPS`` and nothing sent; the broker still
has the last word (the quote can move between this check and the send).
"""

from __future__ import annotations

import math

from core.enums import RejectionReason
from core.rules._common import Denied, fmt


def stops_check(
    *,
    direction: int,
    stop_loss: float | None,
    take_profit: float | None,
    bid: float,
    ask: float,
    point: float,
    stops_level: int,
) -> Denied | None:
    """None when the stops (``None``: none) suit a trade in ``direction`` at this quote.

    ``stops_level`` is in points; 0 still requires each stop strictly on its side.

    Raises:
        ValueError: a point or quote that is not a finite positive number, or a negative
            stops level (a broken symbol spec, not a refusal).
    """
    if not all(math.isfinite(v) and v > 0 for v in (point, bid, ask)) or stops_level < 0:
        raise ValueError(
            f"unusable quote or spec: bid={bid!r} ask={ask!r} point={point!r} "
            f"stops_level={stops_level!r}"
        )
    buy = direction > 0
    close, side = (bid, "bid") if buy else (ask, "ask")
    gap = stops_level * point
    # Half a point absorbs float noise: prices are whole points, so it never lets one through.
    tolerance = point / 2
    for name, price, loss_side in (
        ("stop_loss", stop_loss, True),
        ("take_profit", take_profit, False),
    ):
        if price is None:
            continue
        below = loss_side == buy  # a buy's stop-loss and a sell's take-profit lie below
        distance = close - price if below else price - close
        if distance <= 0 or distance < gap - tolerance:
            where = "below" if below else "above"
            return Denied(
                RejectionReason.INVALID_STOPS,
                f"{name} {fmt(price)} of a {'buy' if buy else 'sell'} must be {where} the "
                f"{side} {fmt(close)} by at least the stops level of {stops_level} points "
                f"({fmt(gap)}); it is {fmt(distance)} {where}",
            )
    return None
