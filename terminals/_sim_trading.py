"""The simulated trade path: terminal-side checks, the trade server, faults, late fills.

``order_send`` goes through, in this order:

1. argument checks (``None`` + ``last_error``; see ``_sim_requests``), unknown symbol;
2. terminal-side rejects, which never reach the server and have ``request_id == 0``:
   no connection to the server (10031), AutoTrading off (10027), symbol not selected
   in Market Watch (10013);
3. the server's checks, in the order of ``TradeDesk.validate``;
4. an injected fault, if one is queued for this symbol;
5. execution.

Not thread-safe by itself: the terminal calls it under its state lock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from terminals import constants as c
from terminals._sim_faults import REJECT_RETCODES, WITH_FRESH_PRICES, Fault, FaultQueue
from terminals._sim_ledger import OPEN_STATES, Ledger, SimOrder, SimPosition, net_effect
from terminals._sim_market import Market, SymbolState
from terminals._sim_requests import NOT_FOUND, CallError, parse_request
from terminals._sim_stops import stops_ok
from terminals.types import OrderCheckResult, OrderSendResult, TradeRequest

#: ``OrderSendResult.comment`` / ``OrderCheckResult.comment`` per retcode.
RETCODE_COMMENTS: dict[int, str] = {
    0: "Done",
    c.TRADE_RETCODE_REQUOTE: "Requote",
    c.TRADE_RETCODE_REJECT: "Request rejected",
    c.TRADE_RETCODE_PLACED: "Order placed",
    c.TRADE_RETCODE_DONE: "Request executed",
    c.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
    c.TRADE_RETCODE_TIMEOUT: "Request canceled by timeout",
    c.TRADE_RETCODE_INVALID: "Invalid request",
    c.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    c.TRADE_RETCODE_INVALID_PRICE: "Invalid price",
    c.TRADE_RETCODE_TRADE_DISABLED: "Trade disabled",
    c.TRADE_RETCODE_MARKET_CLOSED: "Market closed",
    c.TRADE_RETCODE_NO_MONEY: "No money",
    c.TRADE_RETCODE_PRICE_CHANGED: "Prices changed",
    c.TRADE_RETCODE_PRICE_OFF: "Off quotes",
    c.TRADE_RETCODE_TOO_MANY_REQUESTS: "Too many requests",
    c.TRADE_RETCODE_SERVER_DISABLES_AT: "AutoTrading disabled by server",
    c.TRADE_RETCODE_CLIENT_DISABLES_AT: "AutoTrading disabled by client",
    c.TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    c.TRADE_RETCODE_CONNECTION: "Request rejected due to absence of network connection",
    c.TRADE_RETCODE_INVALID_ORDER: "Invalid order type",
    c.TRADE_RETCODE_POSITION_CLOSED: "Position already closed",
    c.TRADE_RETCODE_INVALID_CLOSE_VOLUME: "Invalid close volume",
    c.TRADE_RETCODE_LONG_ONLY: "Only long positions are allowed",
    c.TRADE_RETCODE_SHORT_ONLY: "Only short positions are allowed",
    c.TRADE_RETCODE_CLOSE_ONLY: "Only position closing is allowed",
    c.TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    c.TRADE_RETCODE_FIFO_CLOSE: "Position closing is allowed only by FIFO rule",
    c.TRADE_RETCODE_HEDGE_PROHIBITED: "Opposite positions on a single symbol are disabled",
}

_IPC_SEND_FAILED = CallError(c.RES_E_INTERNAL_FAIL_SEND, "IPC send failed")
_IPC_RECV_FAILED = CallError(c.RES_E_INTERNAL_FAIL_RECEIVE, "IPC recv failed")
_PRICE_CHECKED = frozenset({c.SYMBOL_TRADE_EXECUTION_REQUEST, c.SYMBOL_TRADE_EXECUTION_INSTANT})


@dataclass(slots=True)
class _LateFill:
    """An accepted order that fills after ``fill_after`` history polls (-1: never)."""

    fill_after: int
    polls: int = 0


def volume_ok(sym: SymbolState, volume: float) -> bool:
    """Within [volume_min, volume_max] and a whole number of volume_step."""
    step = sym.num("volume_step")
    if not math.isfinite(volume) or volume <= 0:
        return False
    if volume < sym.num("volume_min") - 1e-9 or volume > sym.num("volume_max") + 1e-9:
        return False
    if step <= 0:
        return True
    steps = volume / step
    return abs(steps - round(steps)) < 1e-6


def filling_ok(sym: SymbolState, type_filling: int) -> bool:
    """The server's filling rule for market orders (mt5-api.md §4, "Choosing type_filling").

    FOK needs the FOK bit, except under Request/Instant execution where the server fills
    FOK anyway; IOC needs the IOC bit; RETURN only under Exchange execution; BOC is for
    limit orders and any other value is unknown, so both are refused.
    """
    bits = sym.int_field("filling_mode")
    exemode = sym.int_field("trade_exemode")
    if type_filling == c.ORDER_FILLING_FOK:
        return exemode in _PRICE_CHECKED or bool(bits & c.SYMBOL_FILLING_FOK)
    if type_filling == c.ORDER_FILLING_IOC:
        return bool(bits & c.SYMBOL_FILLING_IOC)
    if type_filling == c.ORDER_FILLING_RETURN:
        return exemode == c.SYMBOL_TRADE_EXECUTION_EXCHANGE
    return False


def snap_down(volume: float, step: float) -> float:
    return round(math.floor(volume / step + 1e-9) * step, 8)


class TradeDesk:
    """Terminal and trade server for order_send / order_check."""

    def __init__(
        self,
        market: Market,
        ledger: Ledger,
        now_msc: Callable[[], int],
        *,
        seed: int,
        slippage_points: int,
        comment_limit: int,
    ) -> None:
        self.market = market
        self.ledger = ledger
        self.now_msc = now_msc
        self.slippage_points = slippage_points
        self.comment_limit = comment_limit
        self.connected = True
        self.trade_allowed = True
        self.faults = FaultQueue()
        self._slippage_rng = random.Random(f"{seed}:slippage")
        self._request_id = 0
        self._late: dict[int, _LateFill] = {}

    # -- what a state file keeps (see ``_sim_state``) -------------------------------------

    def persistent(self) -> tuple[int, dict[int, tuple[int, int]]]:
        """The request-id counter and the late fills still due, by order ticket."""
        return self._request_id, {t: (f.fill_after, f.polls) for t, f in self._late.items()}

    def restore(self, request_id: int, late: dict[int, tuple[int, int]]) -> None:
        self._request_id = request_id
        self._late = {t: _LateFill(after, polls) for t, (after, polls) in late.items()}

    # -- order_send ---------------------------------------------------------------------

    def send(self, raw: object) -> OrderSendResult:
        req = parse_request(raw, self.comment_limit)
        sym = self._symbol_of(req)
        local = self._local_reject(sym)
        if local:
            return self._result(req, local, request_id=0)
        self._request_id += 1
        rid = self._request_id
        if req.action == c.TRADE_ACTION_REMOVE:
            return self._remove(req, rid)
        if req.action != c.TRADE_ACTION_DEAL or sym is None:
            # Pending orders, SL/TP and close-by are outside what the simulator trades.
            return self._result(req, c.TRADE_RETCODE_INVALID, rid)
        verdict = self.validate(req, sym, checking=False)
        if verdict:
            quote = sym if verdict == c.TRADE_RETCODE_REQUOTE else None
            return self._result(req, verdict, rid, quote=quote)
        fault = self.faults.take(sym.name)
        if fault is not None:
            return self._apply_fault(fault, req, sym, rid)
        order = self._new_order(req, sym)
        price = self._fill_price(order.type, req.price, sym)
        deal = self.ledger.fill(order, req.volume, price, self.now_msc())
        return self._result(
            req, c.TRADE_RETCODE_DONE, rid, deal=deal.ticket, order=order.ticket,
            volume=req.volume, price=price,
        )  # fmt: skip

    def _symbol_of(self, req: TradeRequest) -> SymbolState | None:
        if req.action != c.TRADE_ACTION_DEAL:
            return self.market.get(req.symbol) if req.symbol else None
        name = req.symbol
        if not name:
            pos = self.ledger.position_for("", req.position)
            name = pos.symbol if pos is not None else ""
        sym = self.market.get(name)
        if sym is None:
            raise CallError(*NOT_FOUND)
        return sym

    def _local_reject(self, sym: SymbolState | None) -> int:
        if not self.connected:
            return c.TRADE_RETCODE_CONNECTION
        if not self.trade_allowed:
            return c.TRADE_RETCODE_CLIENT_DISABLES_AT
        if sym is not None and not sym.selected:
            return c.TRADE_RETCODE_INVALID
        return 0

    def validate(self, req: TradeRequest, sym: SymbolState, *, checking: bool) -> int:
        """The server's checks of a market order, first failure wins; 0 when it would execute.

        In order: account permissions (10017 trade_allowed, 10026 trade_expert), order
        type (10035), the ``position`` named (10036 gone, 10013 wrong symbol or direction,
        10038 too much volume), symbol trade_mode (10017, 10042-10044; closing is always
        allowed), the account's FIFO rule (10045) and hedge prohibition (10046), market
        closed (10018), volume (10014), filling (10030), price under Instant/Request
        execution (10015 none, 10004 beyond ``deviation``), sl/tp (10016), margin (10019;
        a close or reduction frees margin, so it never fails here).
        ``checking`` (order_check) skips the requote, which only a live send can meet.
        """
        account = self.ledger.account
        if not account["trade_allowed"]:
            return c.TRADE_RETCODE_TRADE_DISABLED
        if not account["trade_expert"]:
            return c.TRADE_RETCODE_SERVER_DISABLES_AT
        if req.type not in (c.ORDER_TYPE_BUY, c.ORDER_TYPE_SELL):
            return c.TRADE_RETCODE_INVALID_ORDER
        pos = self.ledger.position_for(sym.name, req.position)
        verdict = (
            self._position_check(req, sym, pos)
            or self._mode_check(req, sym, pos)
            or self._account_rule_check(req, sym, pos)
        )
        if verdict:
            return verdict
        if sym.market_closed:
            return c.TRADE_RETCODE_MARKET_CLOSED
        if not volume_ok(sym, req.volume):
            return c.TRADE_RETCODE_INVALID_VOLUME
        if not filling_ok(sym, req.type_filling):
            return c.TRADE_RETCODE_INVALID_FILL
        if sym.int_field("trade_exemode") in _PRICE_CHECKED:
            if req.price <= 0:
                return c.TRADE_RETCODE_INVALID_PRICE
            quote = sym.ask if req.type == c.ORDER_TYPE_BUY else sym.bid
            if not checking and abs(req.price - quote) > req.deviation * sym.num("point") + 1e-9:
                return c.TRADE_RETCODE_REQUOTE
        if not stops_ok(req, sym):
            return c.TRADE_RETCODE_INVALID_STOPS
        # A trade that does not add margin (a reduction, a close) is never short of money.
        increase = self._margin_increase(req, sym, pos)
        if increase > 0 and increase > self._margin_free():
            return c.TRADE_RETCODE_NO_MONEY
        return 0

    def _position_check(self, req: TradeRequest, sym: SymbolState, pos: SimPosition | None) -> int:
        if not req.position:
            return 0
        if pos is None:
            return c.TRADE_RETCODE_POSITION_CLOSED
        if pos.symbol != sym.name or (not self.ledger.netting and pos.type == req.type):
            return c.TRADE_RETCODE_INVALID
        if not self.ledger.netting and req.volume > pos.volume + 1e-9:
            return c.TRADE_RETCODE_INVALID_CLOSE_VOLUME
        return 0

    @staticmethod
    def _mode_check(req: TradeRequest, sym: SymbolState, pos: SimPosition | None) -> int:
        mode = sym.int_field("trade_mode")
        if mode == c.SYMBOL_TRADE_MODE_DISABLED:
            return c.TRADE_RETCODE_TRADE_DISABLED
        # Reducing or closing a position is allowed under every restricted mode.
        closing = pos is not None and pos.type != req.type and req.volume <= pos.volume + 1e-9
        if closing or mode == c.SYMBOL_TRADE_MODE_FULL:
            return 0
        if mode == c.SYMBOL_TRADE_MODE_CLOSEONLY:
            return c.TRADE_RETCODE_CLOSE_ONLY
        if mode == c.SYMBOL_TRADE_MODE_LONGONLY and req.type == c.ORDER_TYPE_SELL:
            return c.TRADE_RETCODE_LONG_ONLY
        if mode == c.SYMBOL_TRADE_MODE_SHORTONLY and req.type == c.ORDER_TYPE_BUY:
            return c.TRADE_RETCODE_SHORT_ONLY
        return 0

    def _account_rule_check(
        self, req: TradeRequest, sym: SymbolState, pos: SimPosition | None
    ) -> int:
        """The account's FIFO rule and hedge prohibition; both concern hedging accounts
        only (a netting account holds one position per symbol)."""
        if self.ledger.netting:
            return 0
        same_symbol = [p for p in self.ledger.positions.values() if p.symbol == sym.name]
        if pos is not None and req.position:
            if self.ledger.account["fifo_close"]:
                oldest = min(same_symbol, key=lambda p: (p.time_msc, p.identifier))
                if oldest is not pos:
                    return c.TRADE_RETCODE_FIFO_CLOSE
            return 0
        if self.ledger.hedge_prohibited and any(p.type != req.type for p in same_symbol):
            return c.TRADE_RETCODE_HEDGE_PROHIBITED
        return 0

    def _margin_after(self, req: TradeRequest, sym: SymbolState, pos: SimPosition | None) -> float:
        price = sym.ask if req.type == c.ORDER_TYPE_BUY else sym.bid
        return self.ledger.margin_after(pos, net_effect(pos, req.type, req.volume, price), sym)

    def _margin_increase(
        self, req: TradeRequest, sym: SymbolState, pos: SimPosition | None
    ) -> float:
        return self._margin_after(req, sym, pos) - self.ledger.total_margin()

    def _margin_free(self) -> float:
        return self.ledger.equity() - self.ledger.total_margin()

    # -- faults and late fills ----------------------------------------------------------

    def _apply_fault(
        self, fault: Fault, req: TradeRequest, sym: SymbolState, rid: int
    ) -> OrderSendResult:
        kind = fault.kind
        if kind in REJECT_RETCODES:
            quote = sym if kind in WITH_FRESH_PRICES else None
            return self._result(req, REJECT_RETCODES[kind], rid, quote=quote)
        if kind == "none_not_executed":
            raise _IPC_SEND_FAILED
        order = self._new_order(req, sym)
        if kind in ("placed", "done_no_deal"):
            order.state = c.ORDER_STATE_PLACED
            if kind == "done_no_deal" and fault.fill_after_polls == 0:
                self.ledger.fill(order, req.volume, self._fill_price(req.type, req.price, sym),
                                 self.now_msc())  # fmt: skip
            else:
                self._late[order.ticket] = _LateFill(fault.fill_after_polls)
            code = c.TRADE_RETCODE_PLACED if kind == "placed" else c.TRADE_RETCODE_DONE
            return self._result(req, code, rid, order=order.ticket, volume=req.volume)
        volume = req.volume
        if kind == "partial":
            step = sym.num("volume_step")
            volume = min(max(snap_down(req.volume * fault.ratio, step), sym.num("volume_min")),
                         req.volume)  # fmt: skip
        price = self._fill_price(req.type, req.price, sym)
        deal = self.ledger.fill(order, volume, price, self.now_msc())
        if kind == "partial":
            return self._result(
                req, c.TRADE_RETCODE_DONE_PARTIAL, rid, deal=deal.ticket, order=order.ticket,
                volume=volume, price=price,
            )  # fmt: skip
        if kind == "none_executed":
            raise _IPC_RECV_FAILED
        assert kind == "timeout_executed", kind
        return self._result(req, c.TRADE_RETCODE_TIMEOUT, rid)

    def poll(self, orders: list[SimOrder]) -> None:
        """A history query looked at ``orders``: late fills that are due now fill."""
        for order in orders:
            late = self._late.get(order.ticket)
            if late is None:
                continue
            if 0 <= late.fill_after <= late.polls:
                del self._late[order.ticket]
                sym = self.market.get(order.symbol)
                assert sym is not None
                price = self._fill_price(order.type, order.price_open, sym)
                self.ledger.fill(order, order.volume_initial, price, self.now_msc())
            else:
                late.polls += 1

    def _remove(self, req: TradeRequest, rid: int) -> OrderSendResult:
        order = self.ledger.orders.get(req.order)
        if order is None or order.state not in OPEN_STATES:
            return self._result(req, c.TRADE_RETCODE_INVALID, rid)
        self._late.pop(order.ticket, None)
        order.state = c.ORDER_STATE_CANCELED
        order.done_msc = self.now_msc()
        return self._result(req, c.TRADE_RETCODE_DONE, rid, order=order.ticket)

    # -- order_check --------------------------------------------------------------------

    def check(self, raw: object) -> OrderCheckResult:
        req = parse_request(raw, self.comment_limit)
        sym = self._symbol_of(req)
        verdict = self._local_reject(sym)
        margin = self.ledger.total_margin()
        if not verdict and req.action == c.TRADE_ACTION_REMOVE:
            order = self.ledger.orders.get(req.order)
            if order is None or order.state not in OPEN_STATES:
                verdict = c.TRADE_RETCODE_INVALID
        elif not verdict and (req.action != c.TRADE_ACTION_DEAL or sym is None):
            verdict = c.TRADE_RETCODE_INVALID
        elif not verdict and sym is not None:
            verdict = self.validate(req, sym, checking=True)
            if not verdict:
                margin = self._margin_after(
                    req, sym, self.ledger.position_for(sym.name, req.position)
                )
        equity = self.ledger.equity()
        return OrderCheckResult(
            retcode=verdict,
            balance=self.ledger.balance,
            equity=equity,
            profit=self.ledger.floating_profit(),
            margin=margin,
            margin_free=round(equity - margin, 2),
            margin_level=round(equity / margin * 100, 2) if margin else 0.0,
            comment=RETCODE_COMMENTS.get(verdict, ""),
            request=req,
        )

    # -- helpers ------------------------------------------------------------------------

    def _new_order(self, req: TradeRequest, sym: SymbolState) -> SimOrder:
        quote = sym.ask if req.type == c.ORDER_TYPE_BUY else sym.bid
        return self.ledger.new_order(
            symbol=sym.name,
            type=req.type,
            type_filling=req.type_filling,
            type_time=req.type_time,
            state=c.ORDER_STATE_STARTED,
            magic=req.magic,
            volume_initial=req.volume,
            volume_current=req.volume,
            price_open=req.price if req.price > 0 else quote,
            price_current=quote,
            sl=req.sl,
            tp=req.tp,
            comment=req.comment,
            setup_msc=self.now_msc(),
            request_position=req.position,
        )

    def _fill_price(self, order_type: int, requested: float, sym: SymbolState) -> float:
        """Instant/Request execution fills at the requested price (the requote check already
        held it within ``deviation``); Market execution at the quote, plus seeded slippage."""
        if sym.int_field("trade_exemode") in _PRICE_CHECKED and requested > 0:
            return requested
        quote = sym.ask if order_type == c.ORDER_TYPE_BUY else sym.bid
        if self.slippage_points > 0:
            points = self._slippage_rng.randint(-self.slippage_points, self.slippage_points)
            quote += points * sym.num("point")
        return round(quote, sym.digits)

    def _result(
        self,
        req: TradeRequest,
        retcode: int,
        request_id: int,
        *,
        deal: int = 0,
        order: int = 0,
        volume: float = 0.0,
        price: float = 0.0,
        quote: SymbolState | None = None,
    ) -> OrderSendResult:
        return OrderSendResult(
            retcode=retcode,
            deal=deal,
            order=order,
            volume=volume,
            price=price,
            bid=quote.bid if quote is not None else 0.0,
            ask=quote.ask if quote is not None else 0.0,
            comment=RETCODE_COMMENTS.get(retcode, ""),
            request_id=request_id,
            retcode_external=0,
            request=req,
        )
