"""The timer thread: a cancelled timer keeps nothing alive, and a finished execution leaves
no timer armed (each would hold its OrderActor and records in memory until it is due)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pykka

from actors._scheduler import Scheduler
from core.clock import SystemClock
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually


class _Message:
    """Something a weak reference can point at (a plain object cannot)."""


class _Sink(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        self.received.append(message)
        return None


def test_a_cancelled_timer_lets_go_of_its_message() -> None:
    scheduler = Scheduler(SystemClock().monotonic)
    sink = _Sink.start()
    try:
        message = _Message()
        told = scheduler.tell_later(3600, sink, message)
        gone = weakref.ref(message)
        del message

        told.cancel()
        gc.collect()

        assert gone() is None
        assert scheduler.pending() == 0
    finally:
        scheduler.stop()
        sink.stop()


def test_a_cancelled_timer_is_not_delivered_and_others_are() -> None:
    scheduler = Scheduler(SystemClock().monotonic)
    sink = _Sink.start()
    try:
        scheduler.tell_later(0.0, sink, "dropped").cancel()
        scheduler.tell_later(0.01, sink, "delivered")

        eventually(lambda: sink.proxy().received.get() == ["delivered"], what="the live timer")
    finally:
        scheduler.stop()
        sink.stop()


def test_a_finished_execution_leaves_no_timer_armed(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine_timers = engine.scheduler.pending()  # the engine's own (polls, heartbeats)

    for i in range(3):
        assert engine.execute(rpm(decision_id=f"timers-{i}")).status.is_final

    eventually(lambda: not engine.supervisor.live_orders(), what="the OrderActors stopped")
    assert engine.scheduler.pending() <= engine_timers
