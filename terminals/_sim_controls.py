"""The simulated terminal's own API: fault injection, state toggles and inspection.

This is the part of ``SimulatedTerminal`` that the real module does not have: tests and
drills drive the terminal with it. Every method takes plain values (str, int, float,
bool, None) and, except ``calls`` and ``overlapping_calls`` (records; use
``call_records`` / ``overlapping_seqs`` remotely), returns plain values or namedtuples,
so the same calls work through the rpyc bridge. None of it is an MT5 call: no IPC gate,
no latency, not in ``calls``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from terminals._sim_calls import CallRecord, CallRecorder
from terminals._sim_faults import make_fault
from terminals._sim_ledger import DERIVED_ACCOUNT_FIELDS, Ledger
from terminals._sim_market import DYNAMIC_FIELDS, Market, SymbolState
from terminals._sim_trading import TradeDesk
from terminals.types import TradeDeal, TradeOrder, TradePosition


class SimControls:
    """Mixin of ``SimulatedTerminal``; the attributes are set by its ``__init__``."""

    _lock: threading.RLock
    _recorder: CallRecorder
    _clock: Callable[[], float]
    _offset: float
    _latency: dict[str, float]
    _ipc_alive: bool
    _initialized: bool
    _market: Market
    _ledger: Ledger
    _desk: TradeDesk

    # == fault injection ================================================================

    def inject(
        self, kind: str, times: int = 1, symbol: str | None = None, **params: object
    ) -> None:
        """Queue a fault for the next ``times`` market-order sends (``symbol`` only, if given).

        Only a TRADE_ACTION_DEAL request that passed every check uses a fault. Kinds:

        - rejected, nothing executed, ``request_id > 0``: ``requote`` 10004,
          ``price_changed`` 10020 and ``price_off`` 10021 (these three with fresh bid/ask),
          ``reject`` 10006, ``too_many_requests`` 10024, ``market_closed`` 10018,
          ``invalid_fill`` 10030, ``no_money`` 10019, ``connection`` 10031,
          ``timeout_not_executed`` 10012;
        - ``timeout_executed``: the order executes; the result is 10012 with deal=order=0;
        - ``none_executed``: the order executes; ``None`` + (-10002, 'IPC recv failed');
        - ``none_not_executed``: ``None`` + (-10001, 'IPC send failed'); nothing executes;
        - ``partial`` (``ratio``=0.5): 10010; ``ratio`` of the volume, snapped down to
          volume_step (at least volume_min), fills; the rest is cancelled; the history
          order is ORDER_STATE_PARTIAL;
        - ``placed`` (``fill_after_polls``=3): 10008 with order>0, deal=0; the order is open
          (ORDER_STATE_PLACED) and fills on the history query after ``fill_after_polls``
          queries that select it; -1 never fills (remove it with TRADE_ACTION_REMOVE);
        - ``done_no_deal`` (``fill_after_polls``=0): 10009 with deal=0; like ``placed``
          otherwise, and with 0 the deal is in history at once.

        Raises:
            ValueError: unknown kind, bad ``times`` or an unknown / out-of-range parameter.
        """
        fault = make_fault(kind, times, symbol, params)
        with self._lock:
            if symbol is not None:
                self._known(symbol)
            self._desk.faults.add(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._desk.faults.clear()

    def pending_faults(self) -> list[dict[str, object]]:
        """The queued faults: kind, remaining uses, symbol and parameters."""
        with self._lock:
            return self._desk.faults.pending()

    # == state toggles ==================================================================

    def set_connected(self, connected: bool) -> None:
        """Link to the trade server. Down: sends give 10031 (request_id 0), quotes freeze,
        info calls answer from what the terminal has."""
        with self._lock:
            self._desk.connected = bool(connected)

    def set_ipc_alive(self, alive: bool) -> None:
        """The terminal process / IPC link. Down: every call fails with -10004 and stays
        failing until ``initialize()`` succeeds after it is alive again."""
        with self._lock:
            self._ipc_alive = bool(alive)
            if not alive:
                self._initialized = False

    def set_trade_allowed(self, allowed: bool) -> None:
        """The terminal's AutoTrading button; off gives 10027 with request_id 0."""
        with self._lock:
            self._desk.trade_allowed = bool(allowed)

    def set_account(self, **fields: object) -> None:
        """Override AccountInfo fields (balance, leverage, trade_allowed, trade_expert, ...).

        The computed fields (profit, equity, margin, margin_free, margin_level) are refused,
        as is a currency other than USD or a margin-mode change with open positions.
        """
        with self._lock:
            account = self._ledger.account
            for name, value in fields.items():
                if name not in account or name in DERIVED_ACCOUNT_FIELDS:
                    raise ValueError(f"cannot set account field {name!r}")
                _check_type(name, value, account[name])
                if name == "currency" and value != "USD":
                    raise ValueError("the simulated account currency is USD")
                if name == "margin_mode" and value not in (0, 2):
                    raise ValueError("margin_mode must be 0 (netting) or 2 (hedging)")
                if name == "margin_mode" and value != account[name] and self._ledger.positions:
                    raise ValueError("cannot change margin_mode with open positions")
                if name == "leverage" and not (isinstance(value, int) and value >= 1):
                    raise ValueError("leverage must be >= 1")
            for name, value in fields.items():
                account[name] = float(value) if isinstance(account[name], float) else value  # type: ignore[arg-type]

    def set_hedge_prohibited(self, prohibited: bool) -> None:
        """The server's hedge prohibition on a hedging account (no AccountInfo field shows
        it): a new position opposite to an open one of the symbol gets 10046; closing by
        ``position`` still works. The FIFO rule is the account field ``fifo_close``
        (``set_account(fifo_close=True)``): closing any but the symbol's oldest position
        gets 10045. Both are kept in the state file."""
        with self._lock:
            self._ledger.hedge_prohibited = bool(prohibited)

    def set_market_closed(self, symbol: str, closed: bool) -> None:
        """Sends for ``symbol`` get 10018. Quotes keep moving; add ``freeze_ticks`` for a
        weekend."""
        with self._lock:
            self._known(symbol).market_closed = bool(closed)

    def set_symbol(self, symbol: str, **fields: object) -> None:
        """Override SymbolInfo fields, e.g. trade_mode, filling_mode, volume_step, spread,
        select/visible. Quote fields (bid, ask, time, ...) are refused: use ``set_price``."""
        with self._lock:
            sym = self._known(symbol)
            for name, value in fields.items():
                if name in DYNAMIC_FIELDS or name not in sym.fields:
                    raise ValueError(f"cannot set symbol field {name!r}")
                _check_type(name, value, sym.fields[name])
            for name, value in fields.items():
                if name == "spread":
                    assert isinstance(value, int)
                    sym.spread = value
                current = sym.fields[name]
                sym.fields[name] = float(value) if isinstance(current, float) else value  # type: ignore[arg-type]

    def rewrite_comment(self, ticket: int, comment: str) -> None:
        """Replace the comment of order ``ticket`` and of its deals, as brokers may do
        (mt5-api.md §3), so that the comment cannot be the only key to find an order."""
        if not isinstance(comment, str):
            raise ValueError(f"comment must be a str, not {comment!r}")
        with self._lock:
            order = self._ledger.orders.get(ticket)
            if order is None:
                raise ValueError(f"unknown order ticket {ticket!r}")
            order.comment = comment
            self._ledger.deals[:] = [
                d._replace(comment=comment) if d.order == ticket else d for d in self._ledger.deals
            ]

    def set_spread_points(self, symbol: str, points: int) -> None:
        self.set_symbol(symbol, spread=points)

    def set_price(self, symbol: str, bid: float) -> None:
        """Move the quote to ``bid`` (ask follows at the spread) and stamp the tick now."""
        with self._lock:
            sym = self._known(symbol)
            sym.set_bid(float(bid))
            sym.tick_msc = self._now_msc()

    def freeze_ticks(self, symbol: str, frozen: bool) -> None:
        """Frozen: the quote stops moving and its tick time stays where it was."""
        with self._lock:
            self._known(symbol).frozen = bool(frozen)

    def set_latency(
        self,
        order_send: float | None = None,
        order_check: float | None = None,
        ipc: float | None = None,
    ) -> None:
        """Seconds per call kind; ``None`` leaves that kind unchanged."""
        for kind, value in (("order_send", order_send), ("order_check", order_check), ("ipc", ipc)):
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{kind} latency must be a number >= 0, not {value!r}")
            self._latency[kind] = float(value)

    # == inspection (not part of the MT5 API: no IPC, no latency, not recorded) ========

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        return self._recorder.records()

    def sent_requests(self) -> list[dict[str, Any]]:
        """Copies of every dict passed to ``order_send``, in order, rejected ones included."""
        return self._recorder.requests()

    def call_records(self) -> list[dict[str, object]]:
        """``calls`` as plain dicts, for callers on the far side of the rpyc bridge."""
        return [record.to_dict() for record in self._recorder.records()]

    def overlapping_calls(self) -> list[tuple[CallRecord, CallRecord]]:
        """Pairs of calls that were in flight at the same time: a serialization bug."""
        return self._recorder.overlapping()

    def overlapping_seqs(self) -> list[tuple[int, int]]:
        """``overlapping_calls`` as pairs of ``seq`` numbers (plain values)."""
        return [(a.seq, b.seq) for a, b in self._recorder.overlapping()]

    def reset_calls(self) -> None:
        self._recorder.reset()

    def history_orders_snapshot(self) -> tuple[TradeOrder, ...]:
        with self._lock:
            return tuple(o.as_tuple() for o in self._ledger.orders.values())

    def history_deals_snapshot(self) -> tuple[TradeDeal, ...]:
        with self._lock:
            return tuple(self._ledger.deals)

    def positions_snapshot(self) -> tuple[TradePosition, ...]:
        with self._lock:
            return tuple(self._ledger.position_tuple(p) for p in self._ledger.positions.values())

    def open_orders_snapshot(self) -> tuple[TradeOrder, ...]:
        with self._lock:
            return tuple(o.as_tuple() for o in self._ledger.open_orders())

    def orders_for_magic(self, magic: int) -> tuple[TradeOrder, ...]:
        """Every order (open or history) carrying ``magic``."""
        return tuple(o for o in self.history_orders_snapshot() if o.magic == magic)

    def server_time(self) -> float:
        """Now, in broker-server epoch seconds (the clock shifted by the offset)."""
        return self._clock() + self._offset

    def _now_msc(self) -> int:
        return round((self._clock() + self._offset) * 1000)

    def _known(self, symbol: str) -> SymbolState:
        sym = self._market.get(symbol)
        if sym is None:
            raise ValueError(f"unknown symbol {symbol!r}")
        return sym


def _check_type(name: str, value: object, current: object) -> None:
    """An override must have the field's type (an int is fine where a float is)."""
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(current))
    if not ok:
        raise ValueError(f"{name} must be of type {type(current).__name__}, not {value!r}")
