"""One market order to the terminal (`OrderSender`): its filling mode (with one fallback
on 10030 INVALID_FILL), its price from a fresh enough quote, the kill switch checked last
under its gate, and what became of it in the `SendLedger` (reconciliation's evidence).

An `order_send` is never repeated here after it was called: one that met an IPC error may
have executed. A plain controller of the BrokerActor, on its thread; the send line
(`actors._send_line`) decides when each queued send starts.
"""

from __future__ import annotations

from typing import Any

from actors._broker_config import BrokerConfig
from actors._failures import TerminalClosedError
from actors._market_data import MarketData
from actors._positions import PositionReads
from actors._send_ledger import SendLedger
from actors._terminal_link import IPC_ERRORS, TerminalLink
from actors.kill_switch import TradingSwitch
from core.clock import Clock
from core.enums import RetcodeClass
from core.models import ExecutionRequest
from core.records import SendOutcome, SymbolSpec
from core.rules import (
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_EXECUTION_REQUEST,
    TRADE_RETCODE_INVALID_FILL,
    choose_filling,
    classify_last_error,
    classify_retcode,
)
from core.rules.retcodes import RES_E_INTERNAL_FAIL_CONNECT, TRADE_RETCODE_MARKET_CLOSED

_PRICE_CHECKED_EXEMODES = frozenset(
    {SYMBOL_TRADE_EXECUTION_REQUEST, SYMBOL_TRADE_EXECUTION_INSTANT}
)
"""Execution modes where the server checks the request price."""


def not_sent(reason: str) -> SendOutcome:
    """The answer to a send that certainly never reached `order_send`, and why."""
    return SendOutcome(klass=RetcodeClass.FINAL, retcode=None, comment=reason, not_sent=True)


class OrderSender:
    def __init__(
        self,
        link: TerminalLink,
        config: BrokerConfig,
        clock: Clock,
        market: MarketData,
        positions: PositionReads,
        ledger: SendLedger,
        switch: TradingSwitch | None = None,
    ) -> None:
        self._link = link
        self._config = config
        self._monotonic = clock.monotonic
        self._market = market
        self._positions = positions
        self._ledger = ledger
        self._switch = switch
        """The shared kill switch, checked under its gate right before every order_send."""

    def place_order(self, request: ExecutionRequest, not_after: float | None = None) -> SendOutcome:
        """One market order; retried once here only on INVALID_FILL, with the next mode.

        `not_after` (the engine's monotonic clock): a request still waiting for its turn
        at that moment is not sent (a clean RETRY with nothing sent), so an order queued
        behind a long line of sends never goes out after its own timeout.
        """
        link = self._link
        if self._switch is not None and self._switch.halted:
            return SendOutcome(klass=RetcodeClass.FINAL, retcode=None, halted=True)
        if link.closed:
            return not_sent(link.closed)
        if not_after is not None and self._monotonic() > not_after:
            return SendOutcome(
                klass=RetcodeClass.RETRY,
                retcode=None,
                comment="not sent: its deadline passed while it waited for the terminal",
            )
        spec = self._market.specs.get(request.symbol)
        if spec is None:
            spec, detail = self._market.spec(request.symbol)
            if spec is None and not link.connected:
                # The terminal did not answer: no verdict on the symbol, and nothing sent.
                return SendOutcome(
                    klass=RetcodeClass.RETRY,
                    retcode=None,
                    comment=link.watch.stall_text(),
                    last_error=(RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection"),
                )
            if spec is None:
                return SendOutcome(klass=RetcodeClass.FINAL, retcode=None, comment=detail)
        excluded: set[int] = set()
        outcome = self._send_once(request, spec, excluded)
        if outcome.retcode == TRADE_RETCODE_INVALID_FILL and outcome.request:
            excluded.add(int(outcome.request["type_filling"]))
            if choose_filling(spec.filling_mode, spec.trade_exemode, exclude=excluded) is not None:
                outcome = self._send_once(request, spec, excluded)
        if outcome.retcode == TRADE_RETCODE_MARKET_CLOSED:
            self._market.mark_closed(spec.name)
        return outcome

    def _send_once(
        self, request: ExecutionRequest, spec: SymbolSpec, excluded: set[int]
    ) -> SendOutcome:
        filling = choose_filling(spec.filling_mode, spec.trade_exemode, exclude=excluded)
        if filling is None:
            return SendOutcome(
                klass=RetcodeClass.FINAL,
                retcode=TRADE_RETCODE_INVALID_FILL,
                comment=f"no filling mode allowed for {spec.name} "
                f"(filling_mode={spec.filling_mode}, trade_exemode={spec.trade_exemode})",
            )
        link = self._link
        # The quote first: refreshing it can find the link dead, and then nothing may be sent.
        quote = self._market.quote(request.symbol, self._send_quote_window(spec))
        if not link.connected and not link.connect():
            # Nothing left this process: the link was down before the send.
            return SendOutcome(klass=RetcodeClass.RETRY, retcode=None, last_error=link.last_error())
        price = 0.0
        if quote is not None:
            price = quote.ask if request.direction > 0 else quote.bid
        t = link.terminal
        order_request: dict[str, Any] = {
            "action": t.TRADE_ACTION_DEAL,
            "symbol": request.symbol,
            "volume": float(request.lots),
            "type": t.ORDER_TYPE_BUY if request.direction > 0 else t.ORDER_TYPE_SELL,
            "price": float(price),
            "deviation": int(request.deviation_points),
            "magic": int(request.magic),
            "comment": request.client_id,
            "type_time": t.ORDER_TIME_GTC,
            "type_filling": int(filling),
        }
        if request.position:
            order_request["position"] = int(request.position)  # close exactly this position
        # Stops the broker holds on the position it opens; absent, the request is as before.
        if request.stop_loss is not None:
            order_request["sl"] = float(request.stop_loss)
        if request.take_profit is not None:
            order_request["tp"] = float(request.take_profit)
        if link.closed:
            return not_sent(link.closed)  # replaced meanwhile: it never talks again
        if self._switch is None:
            return self._send(order_request)
        # The kill switch is checked last, under its gate: a halt that returned before this
        # point is seen here, and a halt that comes later waits for this send to return.
        with self._switch.sending(reduces=request.reduces) as allowed:
            if not allowed:
                fenced = self._switch.fenced
                if fenced is not None:
                    return not_sent(fenced)  # another instance owns the account now
                if self._switch.refusal is not None:
                    return not_sent(self._switch.refusal)  # a check refused: nothing sent
                return SendOutcome(klass=RetcodeClass.FINAL, retcode=None, halted=True)
            return self._send(order_request)

    def _send_quote_window(self, spec: SymbolSpec) -> float:
        if spec.trade_exemode in _PRICE_CHECKED_EXEMODES:
            return self._config.tick_window
        return max(self._config.tick_window, self._config.send_quote_window)

    def remove_order(self, ticket: int) -> SendOutcome:
        """Remove a still-working order (a timed-out PLACED order). Allowed while halted."""
        link = self._link
        if not link.connected and not link.connect():
            return SendOutcome(klass=RetcodeClass.RETRY, retcode=None, last_error=link.last_error())
        return self._send({"action": link.terminal.TRADE_ACTION_REMOVE, "order": int(ticket)})

    def _send(self, order_request: dict[str, Any]) -> SendOutcome:
        client_id = order_request.get("comment")
        self._positions.forget(order_request.get("symbol"))
        seq = self._ledger.started(client_id, self._monotonic())
        outcome = self._send_call(order_request)
        if outcome.not_sent:  # refused before order_send was called
            if client_id:
                self._ledger.withdrawn(client_id)
            return outcome
        self._ledger.ended(
            client_id,
            seq,
            self._monotonic(),
            answered=outcome.retcode is not None or outcome.last_error is not None,
            definite=outcome.retcode is not None and outcome.klass is not RetcodeClass.AMBIGUOUS,
        )
        return outcome

    def _send_call(self, order_request: dict[str, Any]) -> SendOutcome:
        link = self._link
        try:
            result = link.call("order_send", order_request)
        except TerminalClosedError as exc:
            return not_sent(str(exc))  # refused before the call: nothing was sent
        except Exception as exc:
            link.connected = False
            return SendOutcome(
                klass=RetcodeClass.AMBIGUOUS,
                retcode=None,
                comment=f"terminal raised {type(exc).__name__}: {exc}",
                request=order_request,
            )
        if result is None:
            error = link.last_error()  # read in the same turn as the call it explains
            if error[0] in IPC_ERRORS:
                link.connected = False  # reconnect later; never replay this send
            return SendOutcome(
                klass=classify_last_error(error[0]),
                retcode=None,
                last_error=error,
                comment=error[1],
                request=order_request,
            )
        retcode = int(result.retcode)
        if int(result.order) > 0:
            link.last_ticket = int(result.order)
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


__all__ = ["OrderSender", "not_sent"]
