"""What validation needs from the terminal, cached or coalesced (`MarketData`).

Symbol specs are static for a connection (kept until the link is remade); ticks, account
and terminal info and margin per lot are coalesced over short windows, so a burst of
validations costs one read each; whether a market is closed is learned, not looked up.
A plain controller of the BrokerActor, on its thread.
"""

from __future__ import annotations

import math
from typing import Any

from actors._broker_cache import TickAges, WindowCache
from actors._broker_config import BrokerConfig
from actors._positions import PositionReads
from actors._terminal_link import TerminalLink
from core.clock import Clock
from core.records import Preflight, Quote, SymbolSpec
from core.rules import choose_filling
from core.rules.retcodes import TRADE_RETCODE_MARKET_CLOSED
from terminals.constants import (
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
)


class MarketData:
    def __init__(
        self, link: TerminalLink, config: BrokerConfig, clock: Clock, positions: PositionReads
    ) -> None:
        monotonic = clock.monotonic
        self._link = link
        self._config = config
        self._monotonic = monotonic
        self._positions = positions
        self.specs: dict[str, SymbolSpec] = {}
        """Static per connection: read on the send path without a call (`spec`)."""
        self._ticks: WindowCache[str, Any] = WindowCache(config.tick_window, monotonic)
        self._tick_ages = TickAges(monotonic)
        self._account: WindowCache[str, Any] = WindowCache(config.account_window, monotonic)
        self._margin: WindowCache[tuple[str, int], float] = WindowCache(
            config.margin_window, monotonic
        )
        self._closed_until: dict[str, float] = {}
        self._open_checked: set[str] = set()
        link.on_connect(self._forget)

    def _forget(self) -> None:
        """A new connection may be a new terminal: drop everything learned from the old."""
        self.specs.clear()
        self._ticks.clear()
        self._account.clear()
        self._margin.clear()
        self._open_checked.clear()

    def preflight(self, symbol: str) -> Preflight:
        """Symbol spec, a coalesced quote, account and terminal readiness, margin per lot."""
        terminal, account, error = self._readiness()
        if error:
            return Preflight(ready=False, not_ready_detail=error)
        assert terminal is not None
        assert account is not None
        spec, symbol_error = self.spec(symbol)
        if spec is None:
            return Preflight(ready=True, symbol_detail=symbol_error)
        quote = self.quote(symbol)
        if quote is None:
            return Preflight(ready=True, spec=spec, margin_free=float(account.margin_free))
        closed = self._market_closed(spec, quote)
        margin = self._margin_per_lot(symbol, quote)
        margin_mode = int(getattr(account, "margin_mode", ACCOUNT_MARGIN_MODE_RETAIL_NETTING))
        hedging = margin_mode == ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
        # A netting account's positions only matter when a check would refuse the trade:
        # the OrderActor then asks `open_positions` (no read on the common path).
        positions = self._positions.cached(symbol) if hedging else None
        return Preflight(
            ready=True,
            spec=spec,
            quote=quote,
            margin_per_lot=margin,
            margin_free=float(account.margin_free),
            market_closed=closed,
            hedging=hedging,
            positions=positions[1] if positions is not None else None,
            positions_read_at=positions[0] if positions is not None else 0.0,
        )

    def _readiness(self) -> tuple[Any, Any, str]:
        link = self._link
        terminal = self._account.get("terminal")
        if terminal is None:
            terminal, err = link.info("terminal_info")
            if terminal is None:
                if not link.connected and link.watch.down_for() is not None:
                    return None, None, f"terminal_info failed: {link.watch.stall_text()}"
                return None, None, f"terminal_info failed: {err}"
            self._account.put("terminal", terminal)
        account = self._account.get("account")
        if account is None:
            account, err = link.info("account_info")
            if account is None:
                return None, None, f"account_info failed: {err}"
            self._account.put("account", account)
        if not terminal.connected:
            return terminal, account, "terminal is not connected to the trade server"
        if not terminal.trade_allowed:
            return terminal, account, "AutoTrading is disabled in the terminal"
        if not account.trade_allowed:
            return terminal, account, "trading is not allowed for this account"
        if not account.trade_expert:
            return terminal, account, "expert (algorithmic) trading is not allowed for this account"
        return terminal, account, ""

    def spec(self, symbol: str) -> tuple[SymbolSpec | None, str]:
        """The static part of `symbol_info` (cached), or None and why not."""
        spec = self.specs.get(symbol)
        if spec is not None:
            return spec, ""
        info, err = self._link.info("symbol_info", symbol)
        if info is None:
            return None, f"symbol {symbol!r} is unknown to the terminal: {err}"
        if not info.visible:
            # Hidden symbols have no ticks until they are selected into Market Watch.
            selected, err = self._link.info("symbol_select", symbol, True)
            if not selected:
                return None, f"symbol {symbol!r} could not be selected: {err}"
        spec = SymbolSpec(
            name=str(info.name),
            digits=int(info.digits),
            point=float(info.point),
            trade_contract_size=float(info.trade_contract_size),
            volume_min=float(info.volume_min),
            volume_max=float(info.volume_max),
            volume_step=float(info.volume_step),
            trade_mode=int(info.trade_mode),
            trade_exemode=int(info.trade_exemode),
            filling_mode=int(info.filling_mode),
            visible=True,
            trade_stops_level=int(info.trade_stops_level),
        )
        self.specs[symbol] = spec
        return spec, ""

    def quote(self, symbol: str, window: float | None = None) -> Quote | None:
        """The symbol's quote, read at most `window` (default `tick_window`) seconds ago."""
        tick = self._ticks.get(symbol, window)
        if tick is None:
            tick, _ = self._link.info("symbol_info_tick", symbol)
            if tick is None:
                return None
            self._ticks.put(symbol, tick)
        if tick.bid <= 0 or tick.ask <= 0:
            return None
        time_msc = int(tick.time_msc)
        return Quote(
            bid=float(tick.bid),
            ask=float(tick.ask),
            time_msc=time_msc,
            age_seconds=self._tick_ages.age(symbol, time_msc),
        )

    def mark_closed(self, symbol: str) -> None:
        """A send met 10018 MARKET_CLOSED: the symbol counts as closed for the back-off."""
        self._closed_until[symbol] = self._monotonic() + self._config.market_closed_backoff

    def _market_closed(self, spec: SymbolSpec, quote: Quote) -> bool:
        """MT5 has no trading-hours API, so closed markets are learned, not looked up.

        A symbol is probed once with `order_check` (no trade request) when first used and
        again after each back-off; a 10018 from a probe or a real send marks it closed.
        """
        now = self._monotonic()
        until = self._closed_until.get(spec.name)
        if until is not None and now < until:
            return True
        if until is None and spec.name in self._open_checked:
            return False
        self._closed_until.pop(spec.name, None)
        check, _ = self._link.info("order_check", self._probe_request(spec, quote))
        self._open_checked.add(spec.name)
        if check is not None and int(check.retcode) == TRADE_RETCODE_MARKET_CLOSED:
            self._closed_until[spec.name] = now + self._config.market_closed_backoff
            return True
        return False

    def _probe_request(self, spec: SymbolSpec, quote: Quote) -> dict[str, Any]:
        terminal = self._link.terminal
        filling = choose_filling(spec.filling_mode, spec.trade_exemode)
        return {
            "action": terminal.TRADE_ACTION_DEAL,
            "symbol": spec.name,
            "volume": spec.volume_min,
            "type": terminal.ORDER_TYPE_BUY,
            "price": quote.ask,
            "type_filling": filling if filling is not None else 0,
            "type_time": terminal.ORDER_TIME_GTC,
            "magic": self._config.magic,
        }

    def _margin_per_lot(self, symbol: str, quote: Quote) -> float | None:
        key = (symbol, 1)
        cached = self._margin.get(key)
        if cached is not None:
            return cached
        buy = self._link.terminal.ORDER_TYPE_BUY
        margin, _ = self._link.info("order_calc_margin", buy, symbol, 1.0, quote.ask)
        if margin is None or not math.isfinite(float(margin)):
            return None
        return self._margin.put(key, float(margin))


__all__ = ["MarketData"]
