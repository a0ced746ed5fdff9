"""Pips, slippage, spread, deviation and fill prices.

MT5 has no pip: only `point` and `digits` (mt5-api.md §6). Broker-facing numbers
(`deviation`) are in points; what the engine reports and limits (slippage, spread) is in pips.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from core.rules._common import denoise, finite_positive


def pip_size(digits: int, point: float, override: float | None = None) -> float:
    """Pip size in price units: `override` when given, else 10 x point for 3- and 5-digit
    quotes (fractional pips), else point. Metals and indices have no standard pip, hence the
    per-symbol override.
    """
    if override is not None:
        if not finite_positive(override):
            raise ValueError(f"pip size override must be a positive number, got {override!r}")
        return override
    if not finite_positive(point) or digits < 0:
        raise ValueError(f"digits={digits!r}, point={point!r}")
    if digits in (3, 5):
        return round(10 * point, digits - 1)
    return point


def _check_pip(pip: float) -> None:
    if not finite_positive(pip):
        raise ValueError(f"pip size must be a positive number, got {pip!r}")


def _check_prices(*prices: float) -> None:
    if not all(math.isfinite(p) for p in prices):
        raise ValueError(f"prices must be finite, got {prices!r}")


def _pips(value: float) -> float:
    # round() keeps -0.0; adding 0.0 makes it 0.0, so no slippage never reads "-0.0".
    return round(value, 6) + 0.0


def slippage_pips(
    direction: int, intended_price: float, fill_price: float, pip: float
) -> tuple[float, float]:
    """(signed, absolute) slippage in pips. Signed is positive when adverse: a buy filled
    above the intended price, a sell filled below it. Rounded to 6 decimals (noise only).
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (buy) or -1 (sell), got {direction!r}")
    _check_pip(pip)
    _check_prices(intended_price, fill_price)
    signed = _pips((fill_price - intended_price) / pip * direction)
    return signed, abs(signed)


def spread_pips(bid: float, ask: float, pip: float) -> float:
    """Ask minus bid in pips; negative for a crossed quote, which the caller should refuse."""
    _check_pip(pip)
    _check_prices(bid, ask)
    return _pips((ask - bid) / pip)


def deviation_points(max_slippage_pips: float, pip: float, point: float) -> int:
    """`deviation` for order_send, which MT5 takes in POINTS, not pips.

    Rounded down after removing float noise, so the broker is never allowed more slippage
    than configured: 0.25 pips on a 5-digit quote (2.5 points) is 2 points, not 3.
    """
    if not math.isfinite(max_slippage_pips) or max_slippage_pips < 0:
        raise ValueError(f"max_slippage_pips must be >= 0, got {max_slippage_pips!r}")
    _check_pip(pip)
    if not finite_positive(point):
        raise ValueError(f"point must be a positive number, got {point!r}")
    return math.floor(round(max_slippage_pips * pip / point, 6))


def vwap(fills: Iterable[tuple[float, float]]) -> float:
    """Volume-weighted mean price of (volume, price) fills, without float noise."""
    pairs = list(fills)
    if not pairs:
        raise ValueError("vwap of no fills")
    if not all(finite_positive(volume) and finite_positive(price) for volume, price in pairs):
        raise ValueError(f"fills need positive volumes and prices, got {pairs!r}")
    total = math.fsum(volume for volume, _ in pairs)
    return denoise(math.fsum(volume * price for volume, price in pairs) / total)
