"""The shared poll (`Poller`): one pass per `poll_interval` over every watched order.

An OrderActor whose order is working asks the BrokerActor to `watch` its ticket; each pass
looks every watched order up and tells its watcher a `FillUpdate` when the filled volume
changed or the order is done, then forgets the done ones. One timer for all of them: a
thousand working orders cost one pass, not a thousand timers. A plain controller of the
BrokerActor, on its thread; the actor routes the timer's `_PollTick` to `tick`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors._scheduler import Handle, Scheduler
from actors.messages import FillUpdate
from core.records import OrderFinding


@dataclass(slots=True)
class _Watch:
    ticket: int
    volume: float
    notify: pykka.ActorRef[Any]
    last_filled: float = -1.0


class _PollTick:
    """The shared poll's own timer message."""

    __slots__ = ()


QueryOrder = Callable[[int, float], OrderFinding]
"""Where an order stands (`OrderLookup.query_order`)."""


class Poller:
    def __init__(
        self,
        query_order: QueryOrder,
        actor: pykka.ActorRef[Any],
        scheduler: Scheduler,
        interval: float,
    ) -> None:
        self._query_order = query_order
        self._actor = actor
        self._scheduler = scheduler
        self._interval = interval
        self._watches: dict[int, _Watch] = {}
        self._handle: Handle | None = None

    def watch(self, ticket: int, volume: float, notify: pykka.ActorRef[Any]) -> None:
        """Report news about `ticket` to `notify` until it is done (FillUpdate messages)."""
        self._watches[int(ticket)] = _Watch(int(ticket), float(volume), notify)
        self._ensure_polling()

    def unwatch(self, ticket: int) -> None:
        self._watches.pop(int(ticket), None)

    def watched(self) -> list[int]:
        return sorted(self._watches)

    def __len__(self) -> int:
        return len(self._watches)

    def tick(self) -> None:
        """The timer came: one pass, and the next timer while anything is watched."""
        self._handle = None
        self._poll()
        self._ensure_polling()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _ensure_polling(self) -> None:
        if self._handle is None and self._watches:
            self._handle = self._scheduler.tell_later(self._interval, self._actor, _PollTick())

    def _poll(self) -> None:
        """One pass over every watched order: the shared poll."""
        for watch in list(self._watches.values()):
            finding = self._query_order(watch.ticket, watch.volume)
            if finding.filled_volume != watch.last_filled or finding.done:
                watch.last_filled = finding.filled_volume
                try:
                    watch.notify.tell(FillUpdate(finding))
                except pykka.ActorDeadError:
                    self._watches.pop(watch.ticket, None)
                    continue
            if finding.done:
                self._watches.pop(watch.ticket, None)


__all__ = ["Poller", "QueryOrder"]
