"""Blocking, typed calls to the current BrokerActor, for the recovery thread only.

Crash recovery and late corrections run on the Supervisor's recovery thread, not inside an
actor's message handler, so they may wait on an answer. Each call goes to whichever
BrokerActor is current (a restarted one included) through its typed `BrokerProxy`; a dead
actor or a late answer becomes a `ReconciliationError` naming the call, which the caller
reports per execution.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import pykka

from actors.broker import BrokerProxy
from core.errors import ReconciliationError
from core.records import OrderFinding, Preflight, SendOutcome, SendTrace, SymbolSpec

_T = TypeVar("_T")


class BrokerCalls:
    """The BrokerActor's lookups, each waited for at most `timeout` seconds."""

    def __init__(self, broker: Callable[[], BrokerProxy], timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    def _get(self, what: str, call: Callable[[BrokerProxy], pykka.Future[_T]]) -> _T:
        try:
            return call(self._broker()).get(timeout=self._timeout)
        except pykka.ActorDeadError as exc:
            raise ReconciliationError(f"the broker actor is not running ({what})") from exc
        except pykka.Timeout as exc:
            raise ReconciliationError(f"the broker did not answer {what} in time") from exc

    def preflight(self, symbol: str) -> Preflight:
        return self._get("preflight", lambda b: b.preflight(symbol))

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        """The symbol's spec; an unknown symbol cannot be settled, so it is an error."""
        spec = self._get("symbol_spec", lambda b: b.symbol_spec(symbol))
        if spec is None:
            raise ReconciliationError(f"symbol {symbol} is unknown to the terminal")
        return spec

    def send_trace(self, client_id: str) -> SendTrace:
        return self._get("send_trace", lambda b: b.send_trace(client_id))

    def query_order(self, ticket: int, volume: float) -> OrderFinding:
        return self._get("query_order", lambda b: b.query_order(ticket, volume))

    def find_order(
        self,
        *,
        client_id: str,
        symbol: str,
        direction: int,
        lots: float,
        since: datetime,
        exclude: list[int],
    ) -> OrderFinding | None:
        return self._get(
            "find_order",
            lambda b: b.find_order(
                client_id=client_id,
                symbol=symbol,
                direction=direction,
                lots=lots,
                since=since,
                exclude=exclude,
            ),
        )

    def our_client_ids(self, since: datetime) -> dict[str, int]:
        return self._get("our_client_ids", lambda b: b.our_client_ids(since))

    def remove_order(self, ticket: int) -> SendOutcome:
        return self._get("remove_order", lambda b: b.remove_order(ticket))


__all__ = ["BrokerCalls"]
