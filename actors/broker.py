"""BrokerActor: the only code that calls the terminal.

The MetaTrader5 module is one process-global IPC connection and is not thread-safe, so every
call goes through this actor's single thread. The actor is thin: it composes plain
controllers, each with one job, and routes its messages to them (Mopidy's core does the
same):

- `TerminalLink` (`actors._terminal_link`): connect, call, `last_error`, IPC retry, fence;
- `MarketData` (`actors._market_data`): readiness, symbol specs, quotes, margin, closed markets;
- `PositionReads` (`actors._positions`): open positions and realized P&L;
- `OrderSender` (`actors._order_send`): one market order, the kill switch checked last;
- `SendLine` (`actors._send_line`): the queue of told sends, one per turn;
- `OrderLookup` (`actors._order_lookup`): where our orders stand;
- `Poller` (`actors._poller`): the shared poll over every watched order.

Other actors call it through a `BrokerProxy` (its methods typed), or tell it a `SendRequest`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors._broker_config import BrokerConfig
from actors._market_data import MarketData
from actors._order_lookup import OrderLookup
from actors._order_send import OrderSender, not_sent
from actors._poller import Poller, _PollTick
from actors._positions import PositionReads, ReadPositions
from actors._reply import FastInbox
from actors._scheduler import Scheduler
from actors._send_ledger import SendLedger
from actors._send_line import SendLine, SendRequest, _SendTurn
from actors._terminal_identity import IdentityGuard
from actors._terminal_link import TerminalLink
from actors._terminal_watch import TerminalWatch, describe_terminal
from actors.kill_switch import TradingSwitch
from actors.metrics import EngineMetrics
from core.clock import Clock
from core.models import ExecutionRequest
from core.records import OrderFinding, Preflight, SendOutcome, SendTrace, SymbolSpec
from core.rules.positions import OpenPosition
from terminals.base import Terminal

log = logging.getLogger(__name__)


class BrokerActor(FastInbox):
    """Serializes all access to one terminal (the real module, the simulator or the bridge)."""

    use_daemon_thread = True

    def __init__(
        self,
        terminal: Terminal,
        config: BrokerConfig,
        clock: Clock,
        scheduler: Scheduler,
        metrics: EngineMetrics | None = None,
        switch: TradingSwitch | None = None,
        watch: TerminalWatch | None = None,
        identity: IdentityGuard | None = None,
    ) -> None:
        super().__init__()
        self._watch = (
            watch
            if watch is not None
            else TerminalWatch(describe_terminal(terminal), clock.monotonic)
        )
        link = self._open_link(terminal, config, self._watch, metrics, identity)
        self._link = link
        ledger = SendLedger()  # what became of each client id's send: reconciliation's evidence
        self._positions = PositionReads(link, config.tick_window, clock.monotonic)
        self._market = MarketData(link, config, clock, self._positions)
        self._lookup = OrderLookup(link, config, clock, ledger)
        self._sender = OrderSender(
            link, config, clock, self._market, self._positions, ledger, switch
        )
        self._line = SendLine(
            link,
            config,
            ledger,
            self.place_order,
            self.actor_ref,
            scheduler,
            partial(self._take_from_inbox, SendRequest),
        )
        self._poller = Poller(
            self._lookup.query_order, self.actor_ref, scheduler, config.poll_interval
        )
        self._watch.set_drain(self._line.answer_unstarted)

    def _open_link(
        self,
        terminal: Terminal,
        config: BrokerConfig,
        watch: TerminalWatch,
        metrics: EngineMetrics | None,
        identity: IdentityGuard | None,
    ) -> TerminalLink:
        """The link this incarnation calls the terminal through (a supervised one is fenced)."""
        return TerminalLink(terminal, config, watch, metrics, identity)

    # --- lifecycle and messages -------------------------------------------------------------

    def on_start(self) -> None:
        self._link.connect()

    def on_stop(self) -> None:
        self._line.drop_queued()
        self._poller.stop()
        self._link.shutdown()  # not once closed: the terminal belongs to the new incarnation

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._line.drop_queued()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SendRequest):
            self._line.take(message)
        elif isinstance(message, _SendTurn):
            self._line.turn()
        elif isinstance(message, _PollTick):
            self._poller.tick()
        else:
            log.warning("BrokerActor ignored unknown message %r", message)
        return None

    def close_line(self, reason: str) -> int:
        """From any thread: this actor never calls the terminal again, and every send it
        has not started is answered now as not sent, for `reason`. Returns how many."""
        return self._line.close(reason)

    def answer_unstarted(self, reason: str) -> int:
        """From any thread: answer every send not yet started (in the line and still in the
        inbox) as not sent, for `reason`; the send in progress, if any, is not touched."""
        return self._line.answer_unstarted(reason)

    # --- validation data ----------------------------------------------------------------------

    def preflight(self, symbol: str) -> Preflight:
        """Symbol spec, a coalesced quote, account and terminal readiness, margin per lot."""
        return self._market.preflight(symbol)

    def symbol_spec(self, symbol: str) -> SymbolSpec | None:
        """The static part of `symbol_info` (cached); None when the terminal cannot say."""
        return self._market.spec(symbol)[0]

    def open_positions(self, symbol: str) -> ReadPositions | None:
        """When `symbol`'s open positions were read, and what they were (coalesced), for an
        OrderActor that needs them on a netting account."""
        return self._positions.cached(symbol)

    def positions_now(self, symbol: str | None = None) -> tuple[OpenPosition, ...] | None:
        """Every open position (or `symbol`'s), read now: what a flatten closes."""
        return self._positions.now(symbol)

    def closing_profits(self, positions: Sequence[int]) -> dict[int, float]:
        """The realized P&L of each of `positions` (its closing deals' profit)."""
        return self._positions.closing_profits(positions)

    # --- trading --------------------------------------------------------------------------------

    def place_order(self, request: ExecutionRequest, not_after: float | None = None) -> SendOutcome:
        """One market order now (a queued `SendRequest` comes here on its turn); see
        `OrderSender.place_order`."""
        return self._sender.place_order(request, not_after)

    def remove_order(self, ticket: int) -> SendOutcome:
        """Remove a still-working order (a timed-out PLACED order). Allowed while halted."""
        return self._sender.remove_order(ticket)

    # --- finding orders -------------------------------------------------------------------------

    def query_order(self, ticket: int, volume: float) -> OrderFinding:
        """Where order `ticket` stands: deals summed, state from the order book or history."""
        return self._lookup.query_order(ticket, volume)

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
        """Reconciliation: our order by client id, else by symbol, side, volume and time."""
        return self._lookup.find_order(
            client_id=client_id,
            symbol=symbol,
            direction=direction,
            lots=lots,
            since=since,
            exclude=exclude,
        )

    def our_client_ids(self, since: datetime) -> dict[str, int]:
        """Comment -> ticket of every order with our magic the terminal knows."""
        return self._lookup.our_client_ids(since)

    def send_trace(self, client_id: str) -> SendTrace:
        """What became of `client_id`'s send here, and the send fence (`SendLedger`)."""
        return self._lookup.send_trace(client_id)

    def watch(self, ticket: int, volume: float, notify: pykka.ActorRef[Any]) -> None:
        """Report news about `ticket` to `notify` until it is done (FillUpdate messages)."""
        self._poller.watch(ticket, volume, notify)

    def unwatch(self, ticket: int) -> None:
        self._poller.unwatch(ticket)

    def watched(self) -> list[int]:
        return self._poller.watched()

    # --- health ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        link = self._link
        terminal, _ = link.info("terminal_info")
        return {
            "connected": bool(link.connected and terminal is not None and terminal.connected),
            "terminal": self._watch.stall_text(),
            "watched_orders": len(self._poller),
            "reconnects": link.reconnects,
            "calls": dict(link.calls),
        }


class BrokerProxy(ActorMemberMixin, pykka.ActorProxy[BrokerActor]):
    """A BrokerActor's proxy as other actors use it, typed: each method returns a future.

    `cast(BrokerProxy, ref.proxy())`, as in Pykka's `examples/proxy_typing.py`.
    """

    preflight = proxy_method(BrokerActor.preflight)
    symbol_spec = proxy_method(BrokerActor.symbol_spec)
    open_positions = proxy_method(BrokerActor.open_positions)
    positions_now = proxy_method(BrokerActor.positions_now)
    closing_profits = proxy_method(BrokerActor.closing_profits)
    place_order = proxy_method(BrokerActor.place_order)
    remove_order = proxy_method(BrokerActor.remove_order)
    query_order = proxy_method(BrokerActor.query_order)
    find_order = proxy_method(BrokerActor.find_order)
    our_client_ids = proxy_method(BrokerActor.our_client_ids)
    send_trace = proxy_method(BrokerActor.send_trace)
    watch = proxy_method(BrokerActor.watch)
    unwatch = proxy_method(BrokerActor.unwatch)
    watched = proxy_method(BrokerActor.watched)
    health = proxy_method(BrokerActor.health)
    close_line = proxy_method(BrokerActor.close_line)
    answer_unstarted = proxy_method(BrokerActor.answer_unstarted)


__all__ = ["BrokerActor", "BrokerConfig", "BrokerProxy", "SendRequest", "not_sent"]
