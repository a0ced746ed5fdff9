"""Where our orders stand at the terminal (`OrderLookup`): by ticket for the shared poll and
reconciliation, by client id (or symbol, side and volume) when the ticket is unknown, and
what became of each send here (`send_trace`). A plain controller of the BrokerActor.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from actors._broker_config import BrokerConfig
from actors._send_ledger import SendLedger
from actors._terminal_link import TerminalLink
from core.clock import Clock
from core.errors import ReconciliationError
from core.records import Deal, OrderFinding, SendTrace
from core.rules.retcodes import RES_S_OK
from terminals.constants import (
    ORDER_STATE_PLACED,
    ORDER_STATE_REQUEST_ADD,
    ORDER_STATE_REQUEST_CANCEL,
    ORDER_STATE_REQUEST_MODIFY,
    ORDER_STATE_STARTED,
)

# An order in history has stopped working, except in these transient states; PARTIAL there
# means "partly filled, rest cancelled" (a working partial order is in orders_get instead).
_WORKING_STATES = frozenset(
    {
        ORDER_STATE_STARTED,
        ORDER_STATE_PLACED,
        ORDER_STATE_REQUEST_ADD,
        ORDER_STATE_REQUEST_MODIFY,
        ORDER_STATE_REQUEST_CANCEL,
    }
)
_VOLUME_EPS = 1e-9


class OrderLookup:
    def __init__(
        self, link: TerminalLink, config: BrokerConfig, clock: Clock, ledger: SendLedger
    ) -> None:
        self._link = link
        self._config = config
        self._clock = clock
        self._ledger = ledger

    def query_order(self, ticket: int, volume: float) -> OrderFinding:
        """Where order `ticket` stands: deals summed, state from the order book or history."""
        info = self._link.info
        deals_raw, _ = info("history_deals_get", ticket=int(ticket))
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

        def finding(*, found: bool, open: bool, state: int | None, initial: float) -> OrderFinding:
            return OrderFinding(
                ticket=ticket,
                found=found,
                open=open,
                state=state,
                volume_initial=initial,
                filled_volume=filled,
                vwap=sum(d.volume * d.price for d in deals) / filled if filled > 0 else None,
                deals=deals,
                time_msc=max((d.time_msc for d in deals), default=None),
            )

        if volume > 0 and filled >= volume - _VOLUME_EPS:
            return finding(found=True, open=False, state=None, initial=volume)
        active, _ = info("orders_get", ticket=int(ticket))
        if active:
            order = active[0]
            state = int(order.state)
            return finding(found=True, open=True, state=state, initial=float(order.volume_initial))
        history, _ = info("history_orders_get", ticket=int(ticket))
        if history:
            order = history[0]
            state = int(order.state)
            return finding(
                found=True,
                open=state in _WORKING_STATES,
                state=state,
                initial=float(order.volume_initial),
            )
        return finding(found=bool(deals), open=False, state=None, initial=volume)

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
        terminal = self._link.terminal
        order_type = terminal.ORDER_TYPE_BUY if direction > 0 else terminal.ORDER_TYPE_SELL
        candidates: list[Any] = []
        active, _ = self._link.info("orders_get", symbol=symbol)
        candidates.extend(active or ())
        candidates.extend(self._history(since, group=symbol))
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
        active, _ = self._link.info("orders_get")
        history = self._history(since)
        return {
            str(o.comment): int(o.ticket)
            for o in (*history, *(active or ()))
            if int(o.magic) == magic
        }

    def _history(self, since: datetime, **group: str) -> tuple[Any, ...]:
        """History orders from `since` to now; raises when the terminal could not say."""
        # Broker times are server times in an unknown zone: pad the window generously.
        pad = self._config.history_pad
        history, err = self._link.info(
            "history_orders_get", since - pad, self._clock.now() + pad, **group
        )
        if history is None and err is not None and err[0] != RES_S_OK:
            raise ReconciliationError(f"history_orders_get failed: {err}")
        return tuple(history or ())

    def send_trace(self, client_id: str) -> SendTrace:
        """What became of `client_id`'s send here, and the send fence (`SendLedger`)."""
        return self._ledger.trace(client_id)


__all__ = ["OrderLookup"]
