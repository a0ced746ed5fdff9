"""BrokerActor: the only code that calls the terminal.

The MetaTrader5 module is one process-global IPC connection and is not thread-safe, so every
call goes through this actor's single thread. It owns the terminal, reconnects after IPC
errors (never replaying an `order_send`: a send that met an IPC error may have executed),
caches what is static, coalesces what is hot, and runs one poll per interval for every
watched order.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pykka

from actors._broker_cache import TickAges, WindowCache
from actors._failures import TerminalClosedError
from actors._reply import FastInbox, Settable
from actors._scheduler import Handle, Scheduler
from actors._send_ledger import SendLedger
from actors._shared import TradingSwitch
from actors._terminal_identity import IdentityGuard, identity_of
from actors._terminal_watch import TerminalWatch, describe_terminal
from actors.messages import (
    Deal,
    FillUpdate,
    OrderFinding,
    Preflight,
    Quote,
    SendOutcome,
    SendTrace,
    SymbolSpec,
)
from actors.metrics import EngineMetrics
from core.clock import Clock
from core.enums import RetcodeClass
from core.errors import ReconciliationError
from core.models import ExecutionRequest
from core.rules import choose_filling, classify_last_error, classify_retcode
from core.rules.positions import OpenPosition

log = logging.getLogger(__name__)

# MetaTrader5 error codes (last_error) that mean the IPC link itself failed.
_IPC_ERRORS = frozenset({-10001, -10002, -10003, -10004, -10005})
_RETCODE_INVALID_FILL = 10030
_RETCODE_MARKET_CLOSED = 10018
_RETCODE_TRADE_DISABLED = 10017
_NETTING = 0
_ReadPositions = tuple[float, tuple[OpenPosition, ...]]
"""When (monotonic) a symbol's open positions were read, and what they were."""
_HEDGING = 2  # ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
_ORDER_STATE_STARTED = 0
_ORDER_STATE_PLACED = 1
_ORDER_STATE_REQUEST_ADD = 7
_ORDER_STATE_REQUEST_MODIFY = 8
_ORDER_STATE_REQUEST_CANCEL = 9
# An order in history has stopped working, except in these transient states; PARTIAL there
# means "partly filled, rest cancelled" (a working partial order is in orders_get instead).
_WORKING_STATES = frozenset(
    {
        _ORDER_STATE_STARTED,
        _ORDER_STATE_PLACED,
        _ORDER_STATE_REQUEST_ADD,
        _ORDER_STATE_REQUEST_MODIFY,
        _ORDER_STATE_REQUEST_CANCEL,
    }
)
_VOLUME_EPS = 1e-9
# SYMBOL_TRADE_EXECUTION_REQUEST and _INSTANT: the server checks the request price.
_PRICE_CHECKED_EXEMODES = frozenset({0, 1})


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """What the BrokerActor needs from the settings.

    magic: stamped on every order so reconciliation can tell ours from others (default 770001).
    client_id_prefix: start of our order comments; a fallback match never takes an order
        that still carries another execution's client id.
    tick_window / account_window / margin_window: coalescing windows in seconds.
    send_quote_window: how old a cached quote may be to price a send on a Market or
        Exchange execution symbol, where the server fills at its own price and the request
        price is not checked (Instant and Request execution always use `tick_window`).
        Under load this spares most sends a tick read of their own.
    market_closed_backoff: how long a 10018 keeps a symbol marked closed before it is probed again.
    poll_interval: seconds between passes of the shared poll.
    login/password/server/path: passed to `initialize`; the password is never logged.
    terminal_wait: how long a send may wait for a terminal that does not answer (its link
        known down, or one call unanswered that long) before it is answered NOT_SENT.
    """

    magic: int = 770001
    client_id_prefix: str = "ee"
    tick_window: float = 0.05
    account_window: float = 0.25
    margin_window: float = 1.0
    send_quote_window: float = 0.5
    market_closed_backoff: float = 60.0
    poll_interval: float = 0.1
    login: int | None = None
    password: str | None = field(default=None, repr=False)
    server: str | None = None
    path: str | None = None
    history_pad: timedelta = timedelta(days=2)
    terminal_wait: float = 10.0


@dataclass(slots=True)
class _Watch:
    ticket: int
    volume: float
    notify: pykka.ActorRef[Any]
    last_filled: float = -1.0


class _PollTick:
    """The shared poll's own timer message."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A send told to the BrokerActor (`BrokerActor.queue_send`), answered on `reply`.

    request: the order. not_after: the engine's monotonic time after which it must not
    be started (see `place_order`). reply: set to the `SendOutcome`, or failed with
    `pykka.ActorDeadError` when the actor stopped before starting it (nothing was sent).
    """

    request: ExecutionRequest
    not_after: float | None
    reply: Settable[SendOutcome]


class _SendTurn:
    """Start the next queued send (told by the actor to itself, one at a time)."""

    __slots__ = ()


def not_sent(reason: str) -> SendOutcome:
    """The answer to a send that certainly never reached `order_send`, and why."""
    return SendOutcome(klass=RetcodeClass.FINAL, retcode=None, comment=reason, not_sent=True)


_CLOSING_ENTRIES = frozenset({1, 3})
"""DEAL_ENTRY_OUT and DEAL_ENTRY_OUT_BY: the deals that realize a position's P&L."""


class BrokerActor(FastInbox):
    """Serializes all access to one terminal (the real module, the simulator or the bridge)."""

    use_daemon_thread = True

    def __init__(
        self,
        terminal: Any,
        config: BrokerConfig,
        clock: Clock,
        scheduler: Scheduler,
        metrics: EngineMetrics | None = None,
        switch: TradingSwitch | None = None,
        watch: TerminalWatch | None = None,
        identity: IdentityGuard | None = None,
    ) -> None:
        super().__init__()
        self._identity = identity
        self._last_ticket: int | None = None
        """The last order ticket the terminal gave us: a remade link must still know it."""
        self._watch = watch if watch is not None else TerminalWatch(describe_terminal(terminal))
        self._watch.set_drain(self.answer_unstarted)
        self._line_lock = threading.Lock()
        """Guards `_sends` and `_closed`: other threads answer unstarted sends too."""
        self._closed = ""
        """Why this actor may no longer call the terminal (it was replaced); "" while it may."""
        self._metrics = metrics
        self._switch = switch
        """The shared kill switch, checked under its gate right before every order_send."""
        self._pending_error: tuple[int, str] | None = None
        self._t = terminal
        self._config = config
        self._clock = clock
        self._scheduler = scheduler
        self._connected = False
        self._halted = False
        self._specs: dict[str, SymbolSpec] = {}
        self._ticks: WindowCache[str, Any] = WindowCache(config.tick_window, clock.monotonic)
        self._tick_ages = TickAges(clock.monotonic)
        self._account: WindowCache[str, Any] = WindowCache(config.account_window, clock.monotonic)
        self._margin: WindowCache[tuple[str, int], float] = WindowCache(
            config.margin_window, clock.monotonic
        )
        self._open_positions: WindowCache[str, tuple[float, tuple[OpenPosition, ...]]] = (
            WindowCache(config.tick_window, clock.monotonic)
        )
        self._closed_until: dict[str, float] = {}
        self._open_checked: set[str] = set()
        self._watches: dict[int, _Watch] = {}
        self._poll_handle: Handle | None = None
        self._sends: deque[SendRequest] = deque()
        self._send_turn_queued = False
        self.calls: dict[str, int] = {}
        self.reconnects = 0
        self._ledger = SendLedger()
        """What became of each client id's send: reconciliation's evidence."""

    # --- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        self._connect()

    def on_stop(self) -> None:
        self._drop_queued_sends()
        if self._poll_handle is not None:
            self._poll_handle.cancel()
        if self._closed:
            return  # the terminal now belongs to the new incarnation: no shutdown()
        try:
            self._t.shutdown()
        except Exception:
            log.debug("terminal shutdown failed", exc_info=True)

    def close_line(self, reason: str) -> int:
        """From any thread: this actor never calls the terminal again, and every send it
        has not started is answered now as not sent, for `reason`. Returns how many."""
        with self._line_lock:
            self._closed = reason or "this broker was closed"
        return self.answer_unstarted(self._closed)

    def answer_unstarted(self, reason: str) -> int:
        """From any thread: answer every send not yet started (in the line and still in the
        inbox) as not sent, for `reason`; the send in progress, if any, is not touched."""
        with self._line_lock:
            unsent = [*self._sends, *self._take_from_inbox(SendRequest)]
            self._sends.clear()
        for queued in unsent:
            _answer(queued, not_sent(reason))
        if unsent:
            log.warning("%d queued send(s) answered NOT_SENT: %s", len(unsent), reason)
        return len(unsent)

    def _connect(self) -> bool:
        accepting = self._identity is not None and self._identity.accepting()
        if self._closed or not (self._watch.may_try() or accepting):
            return False  # replaced, or the last attempt failed too recently (paced)
        kwargs: dict[str, Any] = {}
        if self._config.login is not None:
            kwargs["login"] = self._config.login
        if self._config.password is not None:
            kwargs["password"] = self._config.password
        if self._config.server is not None:
            kwargs["server"] = self._config.server
        args = (self._config.path,) if self._config.path else ()
        started = time.monotonic()
        cause = ""
        try:
            ok = bool(self._call_raw("initialize", *args, **kwargs))
            if ok and self._identity is not None:
                cause = self._verify_identity()
                ok = not cause
        except Exception as exc:
            log.warning("terminal initialize raised", exc_info=True)
            ok = False
            cause = f"initialize raised {type(exc).__name__}: {exc}"
        if ok:
            self._connected = True
            # A new connection may be a new terminal: drop everything learned from the old.
            self._specs.clear()
            self._ticks.clear()
            self._account.clear()
            self._margin.clear()
            self._open_checked.clear()
            self._watch.link_up()
        else:
            if not cause:
                error = self._last_error()
                self._pending_error = error  # still the caller's to read
                cause = f"initialize failed: {error}"
            log.warning("%s: %s", self._watch.where, cause)
            took = time.monotonic() - started
            if self._identity is not None and cause == self._identity.mismatch:
                took = max(took, 1.0)  # a refused terminal is checked again once a second
            self._watch.link_failed(cause, took)
        return ok

    def _verify_identity(self) -> str:
        """ "" when the terminal just connected is the one the journal knows (and still
        knows our last order); else why it may not be used. See `actors._terminal_identity`."""
        assert self._identity is not None
        account = self._call_raw("account_info")
        terminal = self._call_raw("terminal_info")
        if account is None or terminal is None:
            return f"account_info / terminal_info failed after initialize: {self._last_error()}"
        accepting = self._identity.accepting()
        refusal = self._identity.check(identity_of(account, terminal), self._watch.where)
        if refusal or accepting:
            if accepting:
                self._last_ticket = None
            return refusal
        ticket = self._last_ticket
        if ticket is None:
            return ""
        found = self._call_raw("orders_get", ticket=ticket) or self._call_raw(
            "history_orders_get", ticket=ticket
        )
        if found:
            return ""
        error = self._last_error()
        if error[0] in _IPC_ERRORS:
            return f"history_orders_get failed after initialize: {error}"
        return self._identity.refuse(
            f"{self._watch.where} does not know order {ticket}, which it accepted before the "
            "link was remade: its history is gone (a restarted or another terminal); trading "
            "halts until an admin resumes, which accepts it"
        )

    # --- the one door to the terminal ---------------------------------------------------

    def _call_raw(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise TerminalClosedError(f"{self._closed}; {name} not called")
        self.calls[name] = self.calls.get(name, 0) + 1
        self._pending_error = None
        started = time.perf_counter()
        self._watch.call_started(name)
        try:
            result = getattr(self._t, name)(*args, **kwargs)
        except Exception as exc:
            self._report(name, "exception", started)
            self._watch.link_failed(f"{name} raised {type(exc).__name__}: {exc}")
            raise
        finally:
            self._watch.call_ended()
        if result is None:
            # last_error() explains this call only if read before the next call.
            self._pending_error = self._read_last_error()
            ipc = self._pending_error[0] in _IPC_ERRORS
            outcome = "ipc_error" if ipc else "none"
            if ipc:
                self._watch.link_failed(f"{name} failed: {self._pending_error}")
        else:
            outcome = "ok"
            if name != "initialize":  # initialize answers False, not None: see _connect
                self._watch.link_up()
        self._report(name, outcome, started)
        return result

    def _report(self, name: str, outcome: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.terminal_call(name, outcome, time.perf_counter() - started)

    def _last_error(self) -> tuple[int, str]:
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            return error
        return self._read_last_error()

    def _read_last_error(self) -> tuple[int, str]:
        if self._closed:
            return (-10004, f"No IPC connection: {self._closed}")
        try:
            code, text = self._t.last_error()
            return int(code), str(text)
        except Exception:
            return (-10004, "No IPC connection")

    def _info(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, tuple[int, str] | None]:
        """An info call: safe to repeat, so one reconnect-and-retry on an IPC failure."""
        for attempt in range(2):
            if not self._connected and not self._connect():
                return None, self._last_error()
            try:
                result = self._call_raw(name, *args, **kwargs)
            except Exception as exc:
                log.warning("terminal %s raised %r", name, exc)
                self._connected = False
                self.reconnects += 1
                continue
            if result is not None:
                return result, None
            error = self._last_error()  # read in the same turn as the call it explains
            if error[0] in _IPC_ERRORS and attempt == 0:
                self._connected = False
                self.reconnects += 1
                continue
            return None, error
        return None, self._last_error()

    # --- validation data ----------------------------------------------------------------

    def preflight(self, symbol: str) -> Preflight:
        """Symbol spec, a coalesced quote, account and terminal readiness, margin per lot."""
        terminal, account, error = self._readiness()
        if error:
            return Preflight(ready=False, not_ready_detail=error)
        assert terminal is not None
        assert account is not None
        spec, symbol_error = self._spec(symbol)
        if spec is None:
            return Preflight(ready=True, symbol_detail=symbol_error)
        quote = self._quote(symbol)
        if quote is None:
            return Preflight(ready=True, spec=spec, margin_free=float(account.margin_free))
        closed = self._market_closed(spec, quote)
        margin = self._margin_per_lot(symbol, quote)
        hedging = int(getattr(account, "margin_mode", _NETTING)) == _HEDGING
        # A netting account's positions only matter when a check would refuse the trade:
        # the OrderActor then asks `open_positions` (no read on the common path).
        positions = self._positions(symbol) if hedging else None
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

    def open_positions(self, symbol: str) -> _ReadPositions | None:
        """`_positions` for an OrderActor that needs them on a netting account."""
        return self._positions(symbol)

    def positions_now(self, symbol: str | None = None) -> tuple[OpenPosition, ...] | None:
        """Every open position (or `symbol`'s), read now and not cached: what a flatten
        closes. None when the terminal could not say."""
        rows, err = self._info("positions_get", **({"symbol": symbol} if symbol else {}))
        if rows is None and err is not None and err[0] != 1:
            return None
        return _open_positions(rows)

    def closing_profits(self, positions: Sequence[int]) -> dict[int, float]:
        """The `profit` MT5 reports on the closing deals (DEAL_ENTRY_OUT / OUT_BY) of each
        of `positions`: their realized P&L. A position with no such deal found is left out."""
        found: dict[int, float] = {}
        for ticket in positions:
            rows, _ = self._info("history_deals_get", position=int(ticket))
            closing = [r for r in rows or () if int(getattr(r, "entry", 0)) in _CLOSING_ENTRIES]
            if closing:
                found[int(ticket)] = sum(float(getattr(r, "profit", 0.0)) for r in closing)
        return found

    def _positions(self, symbol: str) -> _ReadPositions | None:
        """When they were read (monotonic) and the symbol's open positions, coalesced like
        ticks (`tick_window`) and forgotten when a send for the symbol is made: a sell right
        after a buy's fill must see the new position, or it would hedge instead of close."""
        cached = self._open_positions.get(symbol)
        if cached is not None:
            return cached
        rows, err = self._info("positions_get", symbol=symbol)
        if rows is None and err is not None and err[0] != 1:
            return None
        positions = _open_positions(rows)
        return self._open_positions.put(symbol, (self._clock.monotonic(), positions))

    def _readiness(self) -> tuple[Any, Any, str]:
        terminal = self._account.get("terminal")
        if terminal is None:
            terminal, err = self._info("terminal_info")
            if terminal is None:
                if not self._connected and self._watch.down_for() is not None:
                    return None, None, f"terminal_info failed: {self._watch.stall_text()}"
                return None, None, f"terminal_info failed: {err}"
            self._account.put("terminal", terminal)
        account = self._account.get("account")
        if account is None:
            account, err = self._info("account_info")
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

    def _spec(self, symbol: str) -> tuple[SymbolSpec | None, str]:
        spec = self._specs.get(symbol)
        if spec is not None:
            return spec, ""
        info, err = self._info("symbol_info", symbol)
        if info is None:
            return None, f"symbol {symbol!r} is unknown to the terminal: {err}"
        if not info.visible:
            # Hidden symbols have no ticks until they are selected into Market Watch.
            selected, err = self._info("symbol_select", symbol, True)
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
        self._specs[symbol] = spec
        return spec, ""

    def _quote(self, symbol: str, window: float | None = None) -> Quote | None:
        tick = self._ticks.get(symbol, window)
        if tick is None:
            tick, _ = self._info("symbol_info_tick", symbol)
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

    def _market_closed(self, spec: SymbolSpec, quote: Quote) -> bool:
        """MT5 has no trading-hours API, so closed markets are learned, not looked up.

        A symbol is probed once with `order_check` (no trade request) when first used and
        again after each back-off; a 10018 from a probe or a real send marks it closed.
        """
        now = self._clock.monotonic()
        until = self._closed_until.get(spec.name)
        if until is not None and now < until:
            return True
        if until is None and spec.name in self._open_checked:
            return False
        self._closed_until.pop(spec.name, None)
        check, _ = self._info("order_check", self._probe_request(spec, quote))
        self._open_checked.add(spec.name)
        if check is not None and int(check.retcode) == _RETCODE_MARKET_CLOSED:
            self._closed_until[spec.name] = now + self._config.market_closed_backoff
            return True
        return False

    def _probe_request(self, spec: SymbolSpec, quote: Quote) -> dict[str, Any]:
        filling = choose_filling(spec.filling_mode, spec.trade_exemode)
        return {
            "action": self._t.TRADE_ACTION_DEAL,
            "symbol": spec.name,
            "volume": spec.volume_min,
            "type": self._t.ORDER_TYPE_BUY,
            "price": quote.ask,
            "type_filling": filling if filling is not None else 0,
            "type_time": self._t.ORDER_TIME_GTC,
            "magic": self._config.magic,
        }

    def _margin_per_lot(self, symbol: str, quote: Quote) -> float | None:
        key = (symbol, 1)
        cached = self._margin.get(key)
        if cached is not None:
            return cached
        margin, _ = self._info("order_calc_margin", self._t.ORDER_TYPE_BUY, symbol, 1.0, quote.ask)
        if margin is None or not math.isfinite(float(margin)):
            return None
        return self._margin.put(key, float(margin))

    # --- trading ------------------------------------------------------------------------

    def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        """The static part of `symbol_info` (cached); None when the terminal cannot say."""
        spec, _ = self._spec(symbol)
        return spec

    def set_halted(self, halted: bool) -> None:
        """After this returns, no `order_send` for a new position starts (the kill switch)."""
        self._halted = halted

    def is_halted(self) -> bool:
        return self._halted

    def place_order(
        self,
        request: ExecutionRequest,
        filling_exclude: Collection[int] = (),
        not_after: float | None = None,
    ) -> SendOutcome:
        """One market order; retried once here only on INVALID_FILL, with the next mode.

        `not_after` (the engine's monotonic clock): a request still waiting for its turn
        at that moment is not sent (a clean RETRY with nothing sent), so an order queued
        behind a long line of sends never goes out after its own timeout.
        """
        if self._halted or (self._switch is not None and self._switch.halted):
            return SendOutcome(klass=RetcodeClass.FINAL, retcode=None, halted=True)
        if self._closed:
            return not_sent(self._closed)
        if not_after is not None and self._clock.monotonic() > not_after:
            return SendOutcome(
                klass=RetcodeClass.RETRY,
                retcode=None,
                comment="not sent: its deadline passed while it waited for the terminal",
            )
        spec = self._specs.get(request.symbol)
        if spec is None:
            spec, detail = self._spec(request.symbol)
            if spec is None and not self._connected:
                # The terminal did not answer: no verdict on the symbol, and nothing sent.
                return SendOutcome(
                    klass=RetcodeClass.RETRY,
                    retcode=None,
                    comment=self._watch.stall_text(),
                    last_error=(-10004, "No IPC connection"),
                )
            if spec is None:
                return SendOutcome(klass=RetcodeClass.FINAL, retcode=None, comment=detail)
        excluded = set(filling_exclude)
        outcome = self._send_once(request, spec, excluded)
        if outcome.retcode == _RETCODE_INVALID_FILL and outcome.request:
            excluded.add(int(outcome.request["type_filling"]))
            if choose_filling(spec.filling_mode, spec.trade_exemode, exclude=excluded) is not None:
                outcome = self._send_once(request, spec, excluded)
        if outcome.retcode == _RETCODE_MARKET_CLOSED:
            self._closed_until[spec.name] = (
                self._clock.monotonic() + self._config.market_closed_backoff
            )
        return outcome

    def _send_once(
        self, request: ExecutionRequest, spec: SymbolSpec, excluded: set[int]
    ) -> SendOutcome:
        filling = choose_filling(spec.filling_mode, spec.trade_exemode, exclude=excluded)
        if filling is None:
            return SendOutcome(
                klass=RetcodeClass.FINAL,
                retcode=_RETCODE_INVALID_FILL,
                comment=f"no filling mode allowed for {spec.name} "
                f"(filling_mode={spec.filling_mode}, trade_exemode={spec.trade_exemode})",
            )
        # The quote first: refreshing it can find the link dead, and then nothing may be sent.
        quote = self._quote(request.symbol, self._send_quote_window(spec))
        if not self._connected and not self._connect():
            # Nothing left this process: the link was down before the send.
            return SendOutcome(
                klass=RetcodeClass.RETRY, retcode=None, last_error=self._last_error()
            )
        price = 0.0
        if quote is not None:
            price = quote.ask if request.direction > 0 else quote.bid
        order_request: dict[str, Any] = {
            "action": self._t.TRADE_ACTION_DEAL,
            "symbol": request.symbol,
            "volume": float(request.lots),
            "type": self._t.ORDER_TYPE_BUY if request.direction > 0 else self._t.ORDER_TYPE_SELL,
            "price": float(price),
            "deviation": int(request.deviation_points),
            "magic": int(request.magic),
            "comment": request.client_id,
            "type_time": self._t.ORDER_TIME_GTC,
            "type_filling": int(filling),
        }
        if request.position:
            order_request["position"] = int(request.position)  # close exactly this position
        # Stops the broker holds on the position it opens; absent, the request is as before.
        if request.stop_loss is not None:
            order_request["sl"] = float(request.stop_loss)
        if request.take_profit is not None:
            order_request["tp"] = float(request.take_profit)
        if self._closed:
            return not_sent(self._closed)  # replaced meanwhile: it never talks again
        if self._switch is None:
            return self._send(order_request)
        # The kill switch is checked last, under its gate: a halt that returned before this
        # point is seen here, and a halt that comes later waits for this send to return.
        with self._switch.sending(reduces=request.reduces) as allowed:
            if not allowed:
                return SendOutcome(klass=RetcodeClass.FINAL, retcode=None, halted=True)
            return self._send(order_request)

    def _send_quote_window(self, spec: SymbolSpec) -> float:
        if spec.trade_exemode in _PRICE_CHECKED_EXEMODES:
            return self._config.tick_window
        return max(self._config.tick_window, self._config.send_quote_window)

    def _send(self, order_request: dict[str, Any]) -> SendOutcome:
        client_id = order_request.get("comment")
        self._open_positions.forget(order_request.get("symbol"))
        seq = self._ledger.started(client_id, self._clock.monotonic())
        outcome = self._send_call(order_request)
        if outcome.not_sent:  # refused before order_send was called
            if client_id:
                self._ledger.withdrawn(client_id)
            return outcome
        self._ledger.ended(
            client_id,
            seq,
            self._clock.monotonic(),
            answered=outcome.retcode is not None or outcome.last_error is not None,
            definite=outcome.retcode is not None and outcome.klass is not RetcodeClass.AMBIGUOUS,
        )
        return outcome

    def _send_call(self, order_request: dict[str, Any]) -> SendOutcome:
        try:
            result = self._call_raw("order_send", order_request)
        except TerminalClosedError as exc:
            return not_sent(str(exc))  # refused before the call: nothing was sent
        except Exception as exc:
            self._connected = False
            return SendOutcome(
                klass=RetcodeClass.AMBIGUOUS,
                retcode=None,
                comment=f"terminal raised {type(exc).__name__}: {exc}",
                request=order_request,
            )
        if result is None:
            error = self._last_error()  # read in the same turn as the call it explains
            if error[0] in _IPC_ERRORS:
                self._connected = False  # reconnect later; never replay this send
            return SendOutcome(
                klass=classify_last_error(error[0]),
                retcode=None,
                last_error=error,
                comment=error[1],
                request=order_request,
            )
        retcode = int(result.retcode)
        if int(result.order) > 0:
            self._last_ticket = int(result.order)
        return SendOutcome(
            klass=classify_retcode(retcode),
            retcode=retcode,
            order=int(result.order),
            deal=int(result.deal),
            volume=float(result.volume),
            price=float(result.price),
            bid=float(result.bid),
            ask=float(result.ask),
            comment=str(result.comment),
            request_id=int(result.request_id),
            request=order_request,
        )

    def remove_order(self, ticket: int) -> SendOutcome:
        """Remove a still-working order (a timed-out PLACED order). Allowed while halted."""
        if not self._connected and not self._connect():
            return SendOutcome(
                klass=RetcodeClass.RETRY, retcode=None, last_error=self._last_error()
            )
        return self._send({"action": self._t.TRADE_ACTION_REMOVE, "order": int(ticket)})

    # --- finding orders: the shared poll and reconciliation ------------------------------

    def query_order(self, ticket: int, volume: float) -> OrderFinding:
        """Where order `ticket` stands: deals summed, state from the order book or history."""
        deals_raw, _ = self._info("history_deals_get", ticket=int(ticket))
        deals = tuple(
            Deal(
                ticket=int(d.ticket),
                order=int(d.order),
                volume=float(d.volume),
                price=float(d.price),
                time_msc=int(d.time_msc),
                position_id=int(d.position_id),
            )
            for d in (deals_raw or ())
        )
        filled = sum(d.volume for d in deals)
        vwap = sum(d.volume * d.price for d in deals) / filled if filled > 0 else None
        last_time = max((d.time_msc for d in deals), default=None)
        if volume > 0 and filled >= volume - _VOLUME_EPS:
            return OrderFinding(ticket, True, False, None, volume, filled, vwap, deals, last_time)
        active, _ = self._info("orders_get", ticket=int(ticket))
        if active:
            order = active[0]
            return OrderFinding(
                ticket,
                True,
                True,
                int(order.state),
                float(order.volume_initial),
                filled,
                vwap,
                deals,
                last_time,
            )
        history, _ = self._info("history_orders_get", ticket=int(ticket))
        if history:
            order = history[0]
            state = int(order.state)
            return OrderFinding(
                ticket,
                True,
                state in _WORKING_STATES,
                state,
                float(order.volume_initial),
                filled,
                vwap,
                deals,
                last_time,
            )
        found = bool(deals)
        return OrderFinding(ticket, found, False, None, volume, filled, vwap, deals, last_time)

    def find_order(
        self,
        *,
        client_id: str,
        symbol: str,
        direction: int,
        lots: float,
        since: datetime,
        exclude: Collection[int] = (),
    ) -> OrderFinding | None:
        """Reconciliation: our order by magic + client id, else by magic + symbol + side +
        volume + time window (brokers may rewrite comments). None when provably absent."""
        magic = self._config.magic
        order_type = self._t.ORDER_TYPE_BUY if direction > 0 else self._t.ORDER_TYPE_SELL
        candidates: list[Any] = []
        active, _ = self._info("orders_get", symbol=symbol)
        candidates.extend(active or ())
        # Broker times are server times in an unknown zone: pad the window generously.
        date_from = since - self._config.history_pad
        date_to = self._clock.now() + self._config.history_pad
        history, err = self._info("history_orders_get", date_from, date_to, group=symbol)
        if history is None and err is not None and err[0] != 1:
            raise ReconciliationError(f"history_orders_get failed: {err}")
        candidates.extend(history or ())
        ours = [o for o in candidates if int(o.magic) == magic and int(o.ticket) not in exclude]
        by_comment = [o for o in ours if str(o.comment) == client_id]
        match = by_comment[0] if by_comment else None
        if match is None:
            match = next(
                (
                    o
                    for o in ours
                    if str(o.symbol) == symbol
                    and int(o.type) == order_type
                    and abs(float(o.volume_initial) - lots) < _VOLUME_EPS
                    and not str(o.comment).startswith(self._config.client_id_prefix)
                ),
                None,
            )
        if match is None:
            return None
        return self.query_order(int(match.ticket), float(match.volume_initial))

    def our_client_ids(self, since: datetime) -> dict[str, int]:
        """Comment -> ticket of every order with our magic the terminal knows (working, or
        in history since `since`): one look for late-appearing orders."""
        magic = self._config.magic
        active, _ = self._info("orders_get")
        history, err = self._info(
            "history_orders_get",
            since - self._config.history_pad,
            self._clock.now() + self._config.history_pad,
        )
        if history is None and err is not None and err[0] != 1:
            raise ReconciliationError(f"history_orders_get failed: {err}")
        return {
            str(o.comment): int(o.ticket)
            for o in (*(history or ()), *(active or ()))
            if int(o.magic) == magic
        }

    def send_trace(self, client_id: str) -> SendTrace:
        """What became of `client_id`'s send here, and the send fence (`SendLedger`)."""
        return self._ledger.trace(client_id)

    def watch(self, ticket: int, volume: float, notify: pykka.ActorRef[Any]) -> None:
        """Report news about `ticket` to `notify` until it is done (FillUpdate messages)."""
        self._watches[int(ticket)] = _Watch(int(ticket), float(volume), notify)
        self._ensure_polling()

    def unwatch(self, ticket: int) -> None:
        self._watches.pop(int(ticket), None)

    def watched(self) -> list[int]:
        return sorted(self._watches)

    def _ensure_polling(self) -> None:
        if self._poll_handle is None and self._watches:
            self._poll_handle = self._scheduler.tell_later(
                self._config.poll_interval, self.actor_ref, _PollTick()
            )

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._drop_queued_sends()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SendRequest):
            refusal = self._refusal()
            if refusal:
                _answer(message, not_sent(refusal))
                return None
            with self._line_lock:
                closed = self._closed
                if not closed:
                    self._ledger.queued(message.request.client_id)
                    self._sends.append(message)
            if closed:
                _answer(message, not_sent(closed))
            self._queue_send_turn()
            return None
        if isinstance(message, _SendTurn):
            self._send_turn_queued = False
            self._send_next()
            return None
        if isinstance(message, _PollTick):
            self._poll_handle = None
            self._poll()
            self._ensure_polling()
            return None
        log.warning("BrokerActor ignored unknown message %r", message)
        return None

    # --- the send queue -------------------------------------------------------------------

    def _queue_send_turn(self, delay: float = 0.0) -> None:
        if self._sends and not self._send_turn_queued:
            self._send_turn_queued = True
            if delay > 0:
                self._scheduler.tell_later(delay, self.actor_ref, _SendTurn())
            else:
                self.actor_ref.tell(_SendTurn())

    def _refusal(self) -> str:
        """Why a send must be answered NOT_SENT without waiting its turn, or ""."""
        if self._closed:
            return self._closed
        down = self._watch.down_for()
        if (
            not self._connected
            and down is not None
            and down >= self._config.terminal_wait
            and not self._watch.may_try()
        ):
            return self._down_reason()
        return ""

    def _down_reason(self) -> str:
        return (
            f"not sent: {self._watch.stall_text()}; a send waits at most "
            f"{self._config.terminal_wait:g} s (EE_TERMINAL_WAIT_SECONDS)"
        )

    def _hold_while_down(self) -> bool:
        """The link is down: keep the line waiting for the terminal (True), up to
        `terminal_wait`, after which the whole line is answered NOT_SENT."""
        down = self._watch.down_for()
        if self._connected or down is None:
            return False
        if down >= self._config.terminal_wait:
            self.answer_unstarted(self._down_reason())
            return True
        if self._watch.may_try():
            return False  # try the send: its own reconnect decides
        wait = min(self._watch.retry_in(), self._config.terminal_wait - down)
        self._queue_send_turn(max(wait, 0.01))
        return True

    def _send_next(self) -> None:
        """One queued send, then the next one's turn goes to the back of the inbox.

        With a thousand sends waiting, everything else this actor is asked (the
        Supervisor's heartbeat, a validation's preflight, the shared poll) is answered
        between two sends, not after the whole line: a long line is not a hung actor.
        """
        if not self._sends or self._hold_while_down():
            return
        with self._line_lock:
            if not self._sends:
                return
            queued = self._sends.popleft()
        client_id = queued.request.client_id
        try:
            outcome = self.place_order(queued.request, not_after=queued.not_after)
        except Exception as exc:
            # As an ask would: the error goes to the caller, and the actor carries on.
            self._ledger.not_started(client_id)  # unless it got as far as order_send
            queued.reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
            self._queue_send_turn()
            return
        if _link_down_before_send(outcome) and not self._connected:
            # Nothing left this process: wait for the terminal in the line, not in a retry.
            with self._line_lock:
                self._sends.appendleft(queued)
            if not self._hold_while_down():
                self._queue_send_turn(0.01)
            return
        if not outcome.sent:
            self._ledger.not_started(client_id)
        _answer(queued, outcome)
        self._queue_send_turn()

    def _drop_queued_sends(self) -> None:
        """The actor is stopping: the sends it never started are answered as not sent.

        That is the ones in its own line and the ones still in its inbox: Pykka drops the
        tells left in a stopped actor's inbox without a word, and their senders would wait
        out their whole order timeout for an answer that never comes.
        """
        with self._line_lock:
            unsent = [*self._sends, *self._take_from_inbox(SendRequest)]
            self._sends.clear()
        for queued in unsent:
            self._ledger.not_started(queued.request.client_id)
            error = pykka.ActorDeadError("the broker stopped before this order was sent")
            queued.reply.set_exception(exc_info=(type(error), error, None))

    def _poll(self) -> None:
        """One pass over every watched order: the shared poll."""
        for watch in list(self._watches.values()):
            finding = self.query_order(watch.ticket, watch.volume)
            if finding.filled_volume != watch.last_filled or finding.done:
                watch.last_filled = finding.filled_volume
                try:
                    watch.notify.tell(FillUpdate(finding))
                except pykka.ActorDeadError:
                    self._watches.pop(watch.ticket, None)
                    continue
            if finding.done:
                self._watches.pop(watch.ticket, None)

    # --- health -------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        terminal, _ = self._info("terminal_info")
        return {
            "connected": bool(self._connected and terminal is not None and terminal.connected),
            "terminal": self._watch.stall_text(),
            "halted": self._halted,
            "watched_orders": len(self._watches),
            "reconnects": self.reconnects,
            "calls": dict(self.calls),
        }

    def call_counts(self) -> dict[str, int]:
        return dict(self.calls)


def _answer(queued: SendRequest, outcome: SendOutcome) -> None:
    try:
        queued.reply.set(outcome)
    except queue.Full:
        return  # answered already (a drain from another thread won the race)


def _open_positions(rows: Any) -> tuple[OpenPosition, ...]:
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


def _link_down_before_send(outcome: SendOutcome) -> bool:
    """A RETRY because the link was down before the send (nothing was sent)."""
    return (
        outcome.klass is RetcodeClass.RETRY
        and not outcome.sent
        and outcome.last_error is not None
        and outcome.last_error[0] in _IPC_ERRORS
    )
