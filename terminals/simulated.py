"""An in-process MetaTrader 5 terminal that behaves like the real module, faults included.

``SimulatedTerminal`` is the embedded default terminal and the test double. It has the
``MetaTrader5`` module's functions, keyword rules, result types and constants (all 223,
as class attributes; the four names the module does not export are absent here too),
and a public API to drive it: fault injection, state toggles and inspection (see
``_sim_controls``). That API takes plain values only, so it can be driven over the rpyc
bridge too; ``call_records()`` and ``overlapping_seqs()`` report in plain values.

Behaviour the engine must know about (see also ``_sim_trading`` for the order path):

- Every call but ``last_error`` and ``shutdown`` needs an initialized, live IPC link;
  otherwise it returns ``None`` (``False`` for the bool functions) with
  ``(-10004, 'No IPC connection')``. After ``set_ipc_alive(False)`` the link stays down
  until ``initialize()`` is called again once it is alive.
- Times in results are broker-server times: epoch seconds shifted by
  ``server_utc_offset_hours``. History date filters compare against those, inclusive at
  both ends, and read naive datetimes as UTC.
- Quotes move one seeded random-walk step per read (``symbol_info``,
  ``symbol_info_tick``), and not while the symbol is frozen or the terminal is
  disconnected. Market-execution orders fill at the current quote plus up to
  ``slippage_points`` of seeded slippage; Instant-execution orders fill at the request
  price if it is within ``deviation`` points, else REQUOTE (10004).
- History queries (``history_orders_get`` / ``history_deals_get``) show open PLACED
  orders too. Each such query that selects a late-filling order (fault ``placed`` or
  ``done_no_deal``) counts as one poll of it; once it has been polled
  ``fill_after_polls`` times, the next query fills it before answering.
- Latency is slept outside the state lock, half before and half after the work, so an
  order is in history before its ``order_send`` returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from terminals import constants as c
from terminals._sim_calls import CallRecorder
from terminals._sim_controls import SimControls
from terminals._sim_history import HistoryFilter, check_filters
from terminals._sim_ledger import Ledger
from terminals._sim_market import Market, SymbolState, build_symbols
from terminals._sim_requests import CALL_FAILED, NO_IPC, NOT_FOUND, CallError, invalid
from terminals._sim_state import StateFile, restore, snapshot
from terminals._sim_trading import TradeDesk
from terminals.base import Terminal
from terminals.types import (
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
)

#: The integer constants the real module exports, by name.
MODULE_CONSTANTS: dict[str, int] = {
    name: value
    for name, value in vars(c).items()
    if name.isupper() and type(value) is int and name not in c.NOT_EXPORTED
}

_T = TypeVar("_T")
_OK = (c.RES_S_OK, "Success")
_IPC_INIT_FAILED = CallError(
    c.RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed, MetaTrader 5 x64 not found"
)
# version() is (terminal version, build, build date); the date is only a plausible one.
_TERMINAL_VERSION = 500
_BUILD_DATE = "20 Nov 2025"


class SimulatedTerminal(SimControls, Terminal):
    """A MetaTrader 5 terminal in this process. Safe to call from several threads.

    Args:
        seed: Seeds the price walks and the slippage; same seed and calls, same results.
        clock: Epoch seconds (UTC); ``time.time`` by default.
        server_utc_offset_hours: Broker-server time minus UTC, for every time in results.
        margin_mode: ``ACCOUNT_MARGIN_MODE_RETAIL_HEDGING`` (2, default) or ``_NETTING`` (0).
        balance, leverage, login: The account's starting values (USD account).
        order_send_latency, order_check_latency: Server round trip per call, seconds.
        ipc_latency: Every other call except ``last_error``, seconds.
        slippage_points: Largest slippage, either way, of a Market-execution fill.
        comment_limit: Longest accepted request comment; longer gives ``None``.
        build: Terminal build reported by ``version()`` and ``terminal_info()``.
        state_file: Where the account's state is kept across restarts (``_sim_state``):
            loaded here if it exists, written whenever a call changed it.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        server_utc_offset_hours: float = 2.0,
        margin_mode: int = c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
        balance: float = 100_000.0,
        leverage: int = 100,
        login: int = 5_000_001,
        order_send_latency: float = 0.0,
        order_check_latency: float = 0.0,
        ipc_latency: float = 0.0,
        slippage_points: int = 0,
        comment_limit: int = 31,
        build: int = 5430,
        state_file: str | None = None,
    ) -> None:
        if margin_mode not in (
            c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
            c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
        ):
            raise ValueError(f"margin_mode must be 0 (netting) or 2 (hedging), not {margin_mode!r}")
        if slippage_points < 0 or comment_limit < 0:
            raise ValueError("slippage_points and comment_limit must be >= 0")
        self._lock = threading.RLock()
        self._recorder = CallRecorder()
        self._clock = clock or time.time
        self._offset = server_utc_offset_hours * 3600.0
        self._latency: dict[str, float] = {}
        self.set_latency(order_send_latency, order_check_latency, ipc_latency)
        self._build = build
        self._ipc_alive = True
        self._initialized = False
        self._last_error: tuple[int, str] = _OK
        self._market = Market(build_symbols(seed, self._now_msc()))
        self._ledger = Ledger(self._market, _account_fields(login, margin_mode, balance, leverage))
        self._desk = TradeDesk(
            self._market, self._ledger, self._now_msc,
            seed=seed, slippage_points=slippage_points, comment_limit=comment_limit,
        )  # fmt: skip
        self._state = StateFile(state_file) if state_file else None
        saved = self._state.read() if self._state is not None else None
        if saved is not None:
            self._desk.restore(*restore(self._ledger, saved))

    # == the MetaTrader5 API ============================================================

    def initialize(
        self,
        path: object = None,
        *,
        login: object = None,
        password: object = None,
        server: object = None,
        timeout: object = None,
        portable: object = False,
    ) -> bool:
        kwargs = {"login": login, "password": password, "server": server,
                  "timeout": timeout, "portable": portable}  # fmt: skip
        return self._run("initialize", (path,), kwargs, "ipc", lambda: self._attach(path, kwargs),
                         False, needs_link=False)  # fmt: skip

    def login(
        self,
        login: object,
        *,
        password: object = None,
        server: object = None,
        timeout: object = None,
    ) -> bool:
        kwargs = {"password": password, "server": server, "timeout": timeout}
        return self._run("login", (login,), kwargs, "ipc",
                         lambda: self._login(login, kwargs), False)  # fmt: skip

    def shutdown(self) -> None:
        def detach() -> None:
            self._initialized = False

        self._run("shutdown", (), {}, "ipc", detach, None, needs_link=False)

    def last_error(self) -> tuple[int, str]:
        ticket = self._recorder.begin()
        error = self._last_error
        self._recorder.end(ticket, "last_error", (), {}, repr(error))
        return error

    def version(self) -> tuple[int, int, str] | None:
        return self._run("version", (), {}, "ipc",
                         lambda: (_TERMINAL_VERSION, self._build, _BUILD_DATE), None)  # fmt: skip

    def terminal_info(self) -> TerminalInfo | None:
        return self._run("terminal_info", (), {}, "ipc", self._terminal_info, None)

    def account_info(self) -> AccountInfo | None:
        return self._run("account_info", (), {}, "ipc", self._ledger.account_info, None)

    def symbol_info(self, symbol: object, /) -> SymbolInfo | None:
        def info() -> SymbolInfo:
            sym = self._quote(symbol)
            return sym.info(self._market.usd_per(sym.text("currency_profit")))

        return self._run("symbol_info", (symbol,), {}, "ipc", info, None)

    def symbol_info_tick(self, symbol: object, /) -> Tick | None:
        def tick() -> Tick:
            sym = self._symbol(symbol)
            if not sym.selected:
                # The terminal only streams quotes of symbols in Market Watch.
                raise CallError(*CALL_FAILED)
            return self._quote(symbol).tick()

        return self._run("symbol_info_tick", (symbol,), {}, "ipc", tick, None)

    def symbol_select(self, symbol: object, enable: object = True, /) -> bool:
        return self._run("symbol_select", (symbol, enable), {}, "ipc",
                         lambda: self._select(symbol, enable), False)  # fmt: skip

    def order_check(self, request: object, /) -> OrderCheckResult | None:
        return self._run("order_check", (_copy(request),), {}, "order_check",
                         lambda: self._desk.check(request), None)  # fmt: skip

    def order_send(self, request: object, /) -> OrderSendResult | None:
        if isinstance(request, dict):
            self._recorder.add_request(request)
        return self._run("order_send", (_copy(request),), {}, "order_send",
                         lambda: self._desk.send(request), None)  # fmt: skip

    def order_calc_margin(
        self, action: object, symbol: object, volume: object, price: object, /
    ) -> float | None:
        def margin() -> float:
            numbers_ok = all(isinstance(v, int | float) and not isinstance(v, bool)
                             for v in (volume, price))  # fmt: skip
            if action not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL) or not numbers_ok:
                raise invalid("Invalid arguments")
            assert isinstance(volume, int | float)
            assert isinstance(price, int | float)
            sym = self._symbol(symbol)
            return self._market.margin(sym, float(volume), float(price), self._ledger.leverage)

        return self._run("order_calc_margin", (action, symbol, volume, price), {}, "ipc",
                         margin, None)  # fmt: skip

    def orders_get(
        self, *args: object, symbol: object = None, ticket: object = None, group: object = None
    ) -> tuple[TradeOrder, ...] | None:
        kwargs = {"symbol": symbol, "ticket": ticket, "group": group}

        def select() -> tuple[TradeOrder, ...]:
            match = check_filters(args, symbol, ticket, group)
            return tuple(
                o.as_tuple() for o in self._ledger.open_orders() if match(o.symbol, o.ticket)
            )

        return self._run("orders_get", args, kwargs, "ipc", select, None)

    def positions_get(
        self, *args: object, symbol: object = None, ticket: object = None, group: object = None
    ) -> tuple[TradePosition, ...] | None:
        kwargs = {"symbol": symbol, "ticket": ticket, "group": group}

        def select() -> tuple[TradePosition, ...]:
            match = check_filters(args, symbol, ticket, group)
            positions = self._ledger.positions.values()
            return tuple(
                self._ledger.position_tuple(p) for p in positions if match(p.symbol, p.ticket)
            )

        return self._run("positions_get", args, kwargs, "ipc", select, None)

    def history_orders_get(
        self, *args: object, group: object = None, ticket: object = None, position: object = None
    ) -> tuple[TradeOrder, ...] | None:
        kwargs = {"group": group, "ticket": ticket, "position": position}

        def select() -> tuple[TradeOrder, ...]:
            scope = self._poll(HistoryFilter.parse(args, group, ticket, position))
            return tuple(o.as_tuple() for o in self._ledger.orders.values() if scope.order(o))

        return self._run("history_orders_get", args, kwargs, "ipc", select, None)

    def history_deals_get(
        self, *args: object, group: object = None, ticket: object = None, position: object = None
    ) -> tuple[TradeDeal, ...] | None:
        kwargs = {"group": group, "ticket": ticket, "position": position}

        def select() -> tuple[TradeDeal, ...]:
            scope = self._poll(HistoryFilter.parse(args, group, ticket, position))
            return tuple(d for d in self._ledger.deals if scope.deal(d))

        return self._run("history_deals_get", args, kwargs, "ipc", select, None)

    # == internals ======================================================================

    def _run(
        self,
        name: str,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        kind: str,
        work: Callable[[], _T],
        failed: _T,
        *,
        needs_link: bool = True,
    ) -> _T:
        """One recorded MT5 call: latency, the IPC gate, then ``work`` under the state lock.

        A ``CallError`` from ``work`` becomes ``failed`` plus ``last_error``; anything
        else sets ``last_error`` to success.
        """
        ticket = self._recorder.begin()
        summary = "raised an exception"
        try:
            # A dead link fails at once; a live one costs the round trip.
            delay = self._latency[kind] / 2 if (self._link_up() or not needs_link) else 0.0
            _sleep(delay)
            with self._lock:
                try:
                    if needs_link and not self._link_up():
                        raise CallError(*NO_IPC)
                    result = work()
                    self._last_error = _OK
                except CallError as exc:
                    result = failed
                    self._last_error = (exc.code, exc.message)
                summary = _summarize(result, self._last_error)
                if self._state is not None:
                    # Before the answer leaves: nothing acknowledged is lost to a SIGKILL.
                    self._state.write(snapshot(self._ledger, *self._desk.persistent()))
            _sleep(delay)
            return result
        finally:
            self._recorder.end(ticket, name, args, kwargs, summary)

    def _link_up(self) -> bool:
        return self._ipc_alive and self._initialized

    def _attach(self, path: object, kwargs: dict[str, object]) -> bool:
        _check_kwargs({"path": path, **kwargs}, {"path": str, "login": int, "password": str,
                                                  "server": str, "timeout": int})  # fmt: skip
        if not self._ipc_alive:
            raise _IPC_INIT_FAILED
        self._initialized = True
        self._apply_login(kwargs["login"], kwargs["server"])
        return True

    def _login(self, login: object, kwargs: dict[str, object]) -> bool:
        if not isinstance(login, int) or isinstance(login, bool):
            raise invalid('Invalid "login" argument')
        _check_kwargs(kwargs, {"password": str, "server": str, "timeout": int})
        self._apply_login(login, kwargs["server"])
        return True

    def _apply_login(self, login: object, server: object) -> None:
        if login is not None:
            self._ledger.account["login"] = login
        if server is not None:
            self._ledger.account["server"] = server

    def _terminal_info(self) -> TerminalInfo:
        return TerminalInfo(
            community_account=False, community_connection=False,
            connected=self._desk.connected, dlls_allowed=False,
            trade_allowed=self._desk.trade_allowed, tradeapi_disabled=False,
            email_enabled=False, ftp_enabled=False, notifications_enabled=False, mqid=False,
            build=self._build, maxbars=100000, codepage=0,
            ping_last=round(self._latency["order_send"] * 1e6), community_balance=0.0,
            retransmission=0.0, company="Simulated Broker Ltd", name="MetaTrader 5 (simulated)",
            language="English", path="C:\\Program Files\\MetaTrader 5",
            data_path="C:\\Program Files\\MetaTrader 5",
            commondata_path="C:\\Users\\sim\\AppData\\Roaming\\MetaQuotes\\Terminal\\Common",
        )  # fmt: skip

    def _symbol(self, symbol: object) -> SymbolState:
        if not isinstance(symbol, str):
            raise invalid("Invalid arguments")
        sym = self._market.get(symbol)
        if sym is None:
            raise CallError(*NOT_FOUND)
        return sym

    def _quote(self, symbol: object) -> SymbolState:
        """The symbol after one step of its walk; without a server feed it does not move."""
        sym = self._symbol(symbol)
        if self._desk.connected:
            sym.step(self._now_msc())
        return sym

    def _select(self, symbol: object, enable: object) -> bool:
        sym = self._symbol(symbol)
        if not enable:
            in_use = any(p.symbol == sym.name for p in self._ledger.positions.values()) or any(
                o.symbol == sym.name for o in self._ledger.open_orders()
            )
            if in_use:
                raise CallError(*CALL_FAILED)
        sym.fields["select"] = bool(enable)
        sym.fields["visible"] = bool(enable)
        return True

    def _poll(self, scope: HistoryFilter) -> HistoryFilter:
        self._desk.poll([o for o in self._ledger.orders.values() if scope.order(o)])
        return scope


for _name, _value in MODULE_CONSTANTS.items():
    setattr(SimulatedTerminal, _name, _value)


def _account_fields(
    login: int, margin_mode: int, balance: float, leverage: int
) -> dict[str, object]:
    return {
        "login": login, "trade_mode": c.ACCOUNT_TRADE_MODE_DEMO, "leverage": leverage,
        "limit_orders": 200, "margin_so_mode": c.ACCOUNT_STOPOUT_MODE_PERCENT,
        "trade_allowed": True, "trade_expert": True, "margin_mode": margin_mode,
        "currency_digits": 2, "fifo_close": False, "balance": float(balance), "credit": 0.0,
        "margin_so_call": 50.0, "margin_so_so": 30.0, "margin_initial": 0.0,
        "margin_maintenance": 0.0, "assets": 0.0, "liabilities": 0.0, "commission_blocked": 0.0,
        "name": "Simulated Account", "server": "Simulated-Demo", "currency": "USD",
        "company": "Simulated Broker Ltd",
    }  # fmt: skip


def _check_kwargs(values: dict[str, object], kinds: dict[str, type]) -> None:
    for name, kind in kinds.items():
        value = values[name]
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise invalid(f'Invalid "{name}" argument')


def _copy(value: object) -> object:
    return dict(value) if isinstance(value, dict) else value


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def _summarize(result: object, error: tuple[int, str]) -> str:
    if result is None or result is False:
        return f"{result!r} {error!r}"
    retcode = getattr(result, "retcode", None)
    if retcode is not None:
        return f"{type(result).__name__}(retcode={retcode})"
    if isinstance(result, tuple) and not hasattr(result, "_fields"):
        return f"tuple[{len(result)}]"
    if hasattr(result, "_fields"):
        return type(result).__name__
    return repr(result)
