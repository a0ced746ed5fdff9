"""Choosing `type_filling` for a market order (mt5-api.md §4).

Two different numberings meet here and must never be mixed: the symbol's `filling_mode`
bitmask (SYMBOL_FILLING_*, which the MetaTrader5 module does not export) and the request's
`type_filling` value (ORDER_FILLING_*).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

# symbol_info().filling_mode bits.
SYMBOL_FILLING_FOK: Final = 1
SYMBOL_FILLING_IOC: Final = 2
SYMBOL_FILLING_BOC: Final = 4

# order_send type_filling values; omitting type_filling means FOK.
ORDER_FILLING_FOK: Final = 0
ORDER_FILLING_IOC: Final = 1
ORDER_FILLING_RETURN: Final = 2
ORDER_FILLING_BOC: Final = 3

# symbol_info().trade_exemode.
SYMBOL_TRADE_EXECUTION_REQUEST: Final = 0
SYMBOL_TRADE_EXECUTION_INSTANT: Final = 1
SYMBOL_TRADE_EXECUTION_MARKET: Final = 2
SYMBOL_TRADE_EXECUTION_EXCHANGE: Final = 3


def filling_modes(filling_mode_bits: int, trade_exemode: int) -> tuple[int, ...]:
    """ORDER_FILLING_* values allowed for a market order, best first, as MetaQuotes'
    `CTrade::FillingCheck` decides them.

    Request and Instant execution: FOK. Market execution: FOK, then IOC, each only when the
    symbol's bit is set (neither: empty). Exchange execution: FOK and IOC when their bit is
    set, then RETURN, which is always accepted. BOC is never offered: it is for pending
    limit orders only. An execution mode this version does not know gives an empty tuple,
    because a guessed filling mode is what the broker answers with 10030.
    """
    fok: tuple[int, ...] = (ORDER_FILLING_FOK,) if filling_mode_bits & SYMBOL_FILLING_FOK else ()
    ioc: tuple[int, ...] = (ORDER_FILLING_IOC,) if filling_mode_bits & SYMBOL_FILLING_IOC else ()
    if trade_exemode in (SYMBOL_TRADE_EXECUTION_REQUEST, SYMBOL_TRADE_EXECUTION_INSTANT):
        return (ORDER_FILLING_FOK,)
    if trade_exemode == SYMBOL_TRADE_EXECUTION_MARKET:
        return fok + ioc
    if trade_exemode == SYMBOL_TRADE_EXECUTION_EXCHANGE:
        return (*fok, *ioc, ORDER_FILLING_RETURN)
    return ()


def choose_filling(
    filling_mode_bits: int, trade_exemode: int, exclude: Collection[int] = ()
) -> int | None:
    """The first allowed filling mode not in `exclude`, or None when none is left.

    `exclude` holds the modes the broker already refused with 10030 INVALID_FILL, so the
    retry uses the next allowed mode and a symbol with none left is rejected.
    """
    for mode in filling_modes(filling_mode_bits, trade_exemode):
        if mode not in exclude:
            return mode
    return None
