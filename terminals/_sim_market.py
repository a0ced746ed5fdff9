"""The simulated market: symbol specifications, seeded random-walk quotes, margin and profit.

Quotes move one step each time somebody reads them (``symbol_info``,
``symbol_info_tick``); orders fill at the quote as it stands. Each symbol has its own
random generator seeded from ``(seed, symbol)``, so one symbol's prices do not depend on
how often another one was read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import get_type_hints

from terminals import constants as c
from terminals.types import SymbolInfo, Tick

_ZERO: dict[type, object] = {bool: False, int: 0, float: 0.0, str: ""}

# Fields computed from the live quote; set_symbol refuses them (use set_price / set_spread).
DYNAMIC_FIELDS = frozenset(
    {"time", "bid", "bidhigh", "bidlow", "ask", "askhigh", "asklow", "trade_tick_value",
     "trade_tick_value_profit", "trade_tick_value_loss", "name"}
)  # fmt: skip

# What a standard FX symbol on a demo server looks like (mt5-api.md §4).
_FX_TEMPLATE: dict[str, object] = {
    "select": True,
    "visible": True,
    "spread_float": True,
    "ticks_bookdepth": 10,
    "trade_calc_mode": c.SYMBOL_CALC_MODE_FOREX,
    "trade_mode": c.SYMBOL_TRADE_MODE_FULL,
    "trade_exemode": c.SYMBOL_TRADE_EXECUTION_MARKET,
    "swap_mode": c.SYMBOL_SWAP_MODE_POINTS,
    "swap_rollover3days": c.DAY_OF_WEEK_WEDNESDAY,
    "expiration_mode": 15,
    "filling_mode": 3,  # SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC
    "order_mode": 127,
    "digits": 5,
    "point": 0.00001,
    "trade_tick_size": 0.00001,
    "trade_contract_size": 100000.0,
    "volume_min": 0.01,
    "volume_max": 500.0,
    "volume_step": 0.01,
    "margin_hedged": 100000.0,
}

_CFD_TEMPLATE: dict[str, object] = {
    **_FX_TEMPLATE,
    "trade_calc_mode": c.SYMBOL_CALC_MODE_CFDLEVERAGE,
    "margin_hedged": 0.0,
}


@dataclass(frozen=True, slots=True)
class _Spec:
    fields: dict[str, object]
    bid: float
    spread: int
    sigma_points: float


def _fx(name: str, base: str, quote: str, description: str, bid: float, spread: int,
        **extra: object) -> tuple[str, _Spec]:  # fmt: skip
    digits = 3 if quote == "JPY" else 5
    point = 10.0**-digits
    fields = {
        **_FX_TEMPLATE,
        "digits": digits,
        "point": point,
        "trade_tick_size": point,
        "currency_base": base,
        "currency_profit": quote,
        "currency_margin": base,
        "description": description,
        "path": f"Forex\\{name}",
        **extra,
    }
    return name, _Spec(fields, bid, spread, sigma_points=3.0)


def default_specs() -> dict[str, _Spec]:
    """The simulated server's symbols. EURJPY is Instant execution with FOK only, like the
    official example; US500 is IOC only; USDCHF is hidden until ``symbol_select``; XAUUSD
    keeps stops 50 points (0.50) from the price (``trade_stops_level``)."""
    specs = dict(
        [
            _fx("EURUSD", "EUR", "USD", "Euro vs US Dollar", 1.08500, 12),
            _fx("GBPUSD", "GBP", "USD", "Great Britain Pound vs US Dollar", 1.27000, 15),
            _fx("USDJPY", "USD", "JPY", "US Dollar vs Japanese Yen", 151.500, 14),
            _fx("EURJPY", "EUR", "JPY", "Euro vs Japanese Yen", 164.200, 20,
                trade_exemode=c.SYMBOL_TRADE_EXECUTION_INSTANT, filling_mode=1),
            _fx("USDCHF", "USD", "CHF", "US Dollar vs Swiss Franc", 0.90500, 16,
                select=False, visible=False),
        ]
    )  # fmt: skip
    specs["XAUUSD"] = _Spec(
        {
            **_CFD_TEMPLATE,
            "digits": 2,
            "point": 0.01,
            "trade_tick_size": 0.01,
            "trade_contract_size": 100.0,
            "volume_max": 100.0,
            "currency_base": "XAU",
            "currency_profit": "USD",
            "currency_margin": "USD",
            "description": "Gold vs US Dollar",
            "path": "Metals\\XAUUSD",
            "trade_stops_level": 50,
        },
        bid=2350.00,
        spread=20,
        sigma_points=8.0,
    )
    specs["US500"] = _Spec(
        {
            **_CFD_TEMPLATE,
            # One digit, so the 0.4 index-point spread is 4 points (pip = point here).
            "digits": 1,
            "point": 0.1,
            "trade_tick_size": 0.1,
            "trade_contract_size": 1.0,
            "volume_min": 0.1,
            "volume_max": 250.0,
            "volume_step": 0.1,
            "filling_mode": 2,  # SYMBOL_FILLING_IOC only, like a real USTEC
            "currency_base": "USD",
            "currency_profit": "USD",
            "currency_margin": "USD",
            "description": "US 500 Cash Index",
            "path": "Indices\\US500",
        },
        bid=5200.0,
        spread=4,
        sigma_points=2.0,
    )
    return specs


@dataclass(slots=True)
class SymbolState:
    """One symbol: its static SymbolInfo fields, the live quote, and the tick clock."""

    name: str
    fields: dict[str, object]
    bid: float
    spread: int
    sigma_points: float
    rng: random.Random
    tick_msc: int
    frozen: bool = False
    market_closed: bool = False
    highs_lows: dict[str, float] = field(default_factory=dict)

    @property
    def digits(self) -> int:
        value = self.fields["digits"]
        assert isinstance(value, int)
        return value

    def num(self, name: str) -> float:
        value = self.fields[name]
        assert isinstance(value, int | float)
        return float(value)

    def int_field(self, name: str) -> int:
        value = self.fields[name]
        assert isinstance(value, int)
        return value

    def text(self, name: str) -> str:
        value = self.fields[name]
        assert isinstance(value, str)
        return value

    @property
    def ask(self) -> float:
        return round(self.bid + self.spread * self.num("point"), self.digits)

    @property
    def selected(self) -> bool:
        return bool(self.fields["select"])

    def set_bid(self, bid: float) -> None:
        self.bid = round(bid, self.digits)
        ask = self.ask
        h = self.highs_lows
        h["bidhigh"] = max(h.get("bidhigh", self.bid), self.bid)
        h["bidlow"] = min(h.get("bidlow", self.bid), self.bid)
        h["askhigh"] = max(h.get("askhigh", ask), ask)
        h["asklow"] = min(h.get("asklow", ask), ask)

    def step(self, now_msc: int) -> None:
        """Advance the walk one step and stamp the tick, unless the feed is frozen."""
        if self.frozen:
            return
        point = self.num("point")
        move = round(self.rng.gauss(0.0, self.sigma_points)) * point
        # Never walk to or below zero: a symbol price stays a positive number of points.
        self.set_bid(max(self.bid + move, 100 * point))
        self.tick_msc = now_msc

    def tick(self) -> Tick:
        return Tick(
            time=self.tick_msc // 1000,
            bid=self.bid,
            ask=self.ask,
            last=0.0,
            volume=0,
            time_msc=self.tick_msc,
            flags=c.TICK_FLAG_BID | c.TICK_FLAG_ASK,
            volume_real=0.0,
        )

    def info(self, usd_per_profit_unit: float) -> SymbolInfo:
        tick_value = self.num("trade_contract_size") * self.num("trade_tick_size")
        tick_value *= usd_per_profit_unit
        values = {
            **self.fields,
            **self.highs_lows,
            "name": self.name,
            "time": self.tick_msc // 1000,
            "bid": self.bid,
            "ask": self.ask,
            "spread": self.spread,
            "trade_tick_value": tick_value,
            "trade_tick_value_profit": tick_value,
            "trade_tick_value_loss": tick_value,
        }
        return SymbolInfo(**values)  # type: ignore[arg-type]


def zero_symbol_fields() -> dict[str, object]:
    """Every SymbolInfo field at its type's zero value."""
    return {name: _ZERO[kind] for name, kind in get_type_hints(SymbolInfo).items()}


def build_symbols(seed: int, now_msc: int) -> dict[str, SymbolState]:
    symbols: dict[str, SymbolState] = {}
    for name, spec in default_specs().items():
        state = SymbolState(
            name=name,
            fields={**zero_symbol_fields(), **spec.fields},
            bid=spec.bid,
            spread=spec.spread,
            sigma_points=spec.sigma_points,
            # A str seed is hashed with SHA-512: stable across runs and PYTHONHASHSEED.
            rng=random.Random(f"{seed}:{name}"),
            tick_msc=now_msc,
        )
        state.set_bid(spec.bid)
        symbols[name] = state
    return symbols


class Market:
    """All symbols, plus conversions to the account currency (USD)."""

    def __init__(self, symbols: dict[str, SymbolState]) -> None:
        self.symbols = symbols

    def get(self, name: str) -> SymbolState | None:
        return self.symbols.get(name)

    def usd_per(self, currency: str) -> float:
        """Value of one unit of ``currency`` in USD at the current bid."""
        if currency == "USD":
            return 1.0
        direct = self.symbols.get(f"{currency}USD")
        if direct is not None:
            return direct.bid
        inverse = self.symbols.get(f"USD{currency}")
        if inverse is not None:
            return 1.0 / inverse.bid
        raise ValueError(f"no USD rate for {currency}")

    def margin(self, sym: SymbolState, volume: float, price: float, leverage: int) -> float:
        """MT5's margin formula for the two calculation modes the simulator uses.

        Forex: lots x contract / leverage, in the margin (base) currency; for XXXUSD that
        is converted at ``price`` itself. CFD-leverage (metals, indices): lots x contract x
        price / leverage, in the margin currency.
        """
        contract = sym.num("trade_contract_size")
        currency = sym.text("currency_margin")
        if sym.int_field("trade_calc_mode") == c.SYMBOL_CALC_MODE_FOREX:
            amount = volume * contract / leverage
            if sym.text("currency_profit") == "USD":
                return round(amount * price, 2)
        else:
            amount = volume * contract * price / leverage
        return round(amount * self.usd_per(currency), 2)

    def profit(
        self, sym: SymbolState, position_type: int, volume: float, open_: float, close: float
    ) -> float:
        """Profit of closing ``volume`` lots, in USD at the current conversion rate."""
        sign = 1.0 if position_type == c.POSITION_TYPE_BUY else -1.0
        raw = sign * (close - open_) * volume * sym.num("trade_contract_size")
        return round(raw * self.usd_per(sym.text("currency_profit")), 2)

    def close_price(self, sym: SymbolState, position_type: int) -> float:
        """The price a position closes at: bid for a long, ask for a short."""
        return sym.bid if position_type == c.POSITION_TYPE_BUY else sym.ask
