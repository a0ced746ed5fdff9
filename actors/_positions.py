"""Open positions and realized P&L as the terminal reports them (`PositionReads`).

A validation on a hedging account (and a netting one whose check would refuse) reads a
symbol's positions, coalesced like ticks; a flatten reads them all, uncached; its report
reads the closing deals' profit. A plain controller of the BrokerActor, on its thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from actors._broker_cache import WindowCache
from actors._terminal_link import TerminalLink
from core.rules.positions import OpenPosition
from core.rules.retcodes import RES_S_OK
from terminals.constants import DEAL_ENTRY_OUT, DEAL_ENTRY_OUT_BY

ReadPositions = tuple[float, tuple[OpenPosition, ...]]
"""When (monotonic) a symbol's open positions were read, and what they were."""

_CLOSING_ENTRIES = frozenset({DEAL_ENTRY_OUT, DEAL_ENTRY_OUT_BY})
"""The deals that realize a position's P&L."""


class PositionReads:
    def __init__(self, link: TerminalLink, window: float, monotonic: Callable[[], float]):
        self._link = link
        self._monotonic = monotonic
        self._cache: WindowCache[str, ReadPositions] = WindowCache(window, monotonic)

    def cached(self, symbol: str) -> ReadPositions | None:
        """When they were read (monotonic) and the symbol's open positions, coalesced like
        ticks (`tick_window`) and forgotten when a send for the symbol is made: a sell right
        after a buy's fill must see the new position, or it would hedge instead of close."""
        cached = self._cache.get(symbol)
        if cached is not None:
            return cached
        rows, err = self._link.info("positions_get", symbol=symbol)
        if rows is None and err is not None and err[0] != RES_S_OK:
            return None
        return self._cache.put(symbol, (self._monotonic(), open_positions(rows)))

    def forget(self, symbol: str | None) -> None:
        """A send for `symbol` is being made: its cached positions are stale from now on."""
        self._cache.forget(symbol)

    def now(self, symbol: str | None = None) -> tuple[OpenPosition, ...] | None:
        """Every open position (or `symbol`'s), read now and not cached: what a flatten
        closes. None when the terminal could not say."""
        rows, err = self._link.info("positions_get", **({"symbol": symbol} if symbol else {}))
        if rows is None and err is not None and err[0] != RES_S_OK:
            return None
        return open_positions(rows)

    def closing_profits(self, positions: Sequence[int]) -> dict[int, float]:
        """The `profit` MT5 reports on the closing deals (DEAL_ENTRY_OUT / OUT_BY) of each
        of `positions`: their realized P&L. A position with no such deal found is left out."""
        found: dict[int, float] = {}
        for ticket in positions:
            rows, _ = self._link.info("history_deals_get", position=int(ticket))
            closing = [r for r in rows or () if int(getattr(r, "entry", 0)) in _CLOSING_ENTRIES]
            if closing:
                found[int(ticket)] = sum(float(getattr(r, "profit", 0.0)) for r in closing)
        return found


def open_positions(rows: Any) -> tuple[OpenPosition, ...]:
    """`positions_get` rows (or None / () when there are none) as the rules read them."""
    return tuple(
        OpenPosition(
            ticket=int(p.ticket),
            type=int(p.type),
            volume=float(p.volume),
            time_msc=int(p.time_msc),
            magic=int(p.magic),
            symbol=str(p.symbol),
        )
        for p in (rows or ())
    )


__all__ = ["PositionReads", "ReadPositions", "open_positions"]
