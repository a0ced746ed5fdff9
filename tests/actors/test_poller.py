"""Poller without an actor: what one pass of the shared poll tells, and when it stops.

The poller is built directly over a scripted `query_order` (the test says where each order
stands), recording stand-ins for the watchers' refs and a recording scheduler; no thread,
no terminal, no clock.
"""

from __future__ import annotations

from typing import Any, cast

import pykka

from actors._poller import Poller, _PollTick
from actors._scheduler import Scheduler
from actors.messages import FillUpdate
from core.records import OrderFinding


class Watcher:
    """Stands in for an OrderActor's ref: keeps what it is told, or is dead."""

    def __init__(self, dead: bool = False) -> None:
        self.told: list[Any] = []
        self.dead = dead

    def tell(self, message: Any) -> None:
        if self.dead:
            raise pykka.ActorDeadError("gone")
        self.told.append(message)


class Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    def __init__(self) -> None:
        self.later: list[tuple[float, Any, Timer]] = []

    def tell_later(self, delay: float, target: Any, message: Any) -> Timer:
        timer = Timer()
        self.later.append((delay, message, timer))
        return timer


def finding(ticket: int, filled: float, *, done: bool = False) -> OrderFinding:
    return OrderFinding(
        ticket=ticket,
        found=True,
        open=not done,
        state=None,
        volume_initial=1.0,
        filled_volume=filled,
        vwap=None,
    )


class Orders:
    """A scripted `query_order`: where each ticket stands now, and who was asked."""

    def __init__(self) -> None:
        self.now: dict[int, OrderFinding] = {}
        self.asked: list[int] = []

    def query_order(self, ticket: int, volume: float) -> OrderFinding:
        self.asked.append(ticket)
        return self.now[ticket]


def make() -> tuple[Poller, Orders, Timers]:
    orders, timers = Orders(), Timers()
    actor = cast(pykka.ActorRef[Any], Watcher())
    return Poller(orders.query_order, actor, cast(Scheduler, timers), 0.25), orders, timers


def ref(watcher: Watcher) -> pykka.ActorRef[Any]:
    return cast(pykka.ActorRef[Any], watcher)


def test_one_timer_serves_every_watch_and_a_pass_asks_each_order_once() -> None:
    poller, orders, timers = make()
    orders.now = {1: finding(1, 0.0), 2: finding(2, 0.0)}
    poller.watch(1, 1.0, ref(Watcher()))
    poller.watch(2, 1.0, ref(Watcher()))

    assert [(delay, type(message)) for delay, message, _ in timers.later] == [(0.25, _PollTick)]
    poller.tick()
    assert sorted(orders.asked) == [1, 2]
    assert len(timers.later) == 2  # the next pass, while anything is watched
    assert poller.watched() == [1, 2]


def test_a_watcher_hears_of_a_change_once_and_of_the_end_and_then_nothing() -> None:
    poller, orders, timers = make()
    watcher = Watcher()
    poller.watch(7, 1.0, ref(watcher))

    orders.now[7] = finding(7, 0.0)
    poller.tick()  # first sight: news (nothing was known)
    poller.tick()  # unchanged: no news
    orders.now[7] = finding(7, 0.4)
    poller.tick()
    orders.now[7] = finding(7, 1.0, done=True)
    poller.tick()

    assert [m.finding.filled_volume for m in watcher.told if isinstance(m, FillUpdate)] == [
        0.0,
        0.4,
        1.0,
    ]
    assert poller.watched() == []
    timers_before = len(timers.later)
    poller.tick()
    assert len(timers.later) == timers_before  # nothing watched: the timer stops


def test_a_dead_watcher_is_forgotten_and_unwatch_forgets_too() -> None:
    poller, orders, _ = make()
    orders.now = {1: finding(1, 0.0), 2: finding(2, 0.0)}
    poller.watch(1, 1.0, ref(Watcher(dead=True)))
    poller.watch(2, 1.0, ref(Watcher()))
    poller.tick()
    assert poller.watched() == [2]
    poller.unwatch(2)
    assert poller.watched() == []
    assert len(poller) == 0


def test_stop_cancels_the_pending_timer() -> None:
    poller, _, timers = make()
    poller.watch(1, 1.0, ref(Watcher()))
    poller.stop()
    assert timers.later[0][2].cancelled
