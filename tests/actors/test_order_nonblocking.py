"""The OrderActor never blocks: no `.get()` on a Pykka future or a `Reply` while one of
its messages is handled (issue 12). Every request it makes is answered by a message.

The check flags the thread while `pykka.Actor._handle_receive` runs for an OrderActor
and records any wait on a future or a `Reply` made meanwhile; the executions below take
every path that used to ask: preflight, commits, the send, the watch, the reconciliation
lookups, the timeout's removal and a halt's removal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka
import pytest

from actors._reply import FastInbox, Reply
from actors._scheduler import Scheduler
from actors._shared import MarginBook
from actors.kill_switch import TradingSwitch
from actors.messages import NewExecution
from actors.order import OrderActor, OrderContext
from core.clock import SystemClock
from core.enums import ExecutionStatus, RejectionReason
from core.errors import PersistenceUnavailableError
from core.execution import OrderConfig
from core.records import Preflight
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.core._execution_driver import PREFLIGHT
from tests.core._execution_driver import rpm as core_rpm
from tests.helpers import eventually

S = ExecutionStatus
R = RejectionReason

_inside = threading.local()


@pytest.fixture
def blocking_waits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The waits made inside an OrderActor's message handler (empty when it never blocks)."""
    waits: list[str] = []
    handle = pykka.Actor._handle_receive

    def flagged(self: pykka.Actor, message: Any) -> Any:
        if not isinstance(self, OrderActor):
            return handle(self, message)
        _inside.order = True
        try:
            return handle(self, message)
        finally:
            _inside.order = False

    def watched(get: Callable[..., Any], what: str) -> Callable[..., Any]:
        def wait(self: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(_inside, "order", False):
                waits.append(what)
            return get(self, *args, **kwargs)

        return wait

    monkeypatch.setattr(pykka.Actor, "_handle_receive", flagged)
    monkeypatch.setattr(pykka.ThreadingFuture, "get", watched(pykka.ThreadingFuture.get, "future"))
    monkeypatch.setattr(Reply, "get", watched(Reply.get, "Reply"))
    return waits


@pytest.mark.parametrize(
    ("fault", "params", "status"),
    [
        (None, {}, S.FILLED),
        ("placed", {"fill_after_polls": 3}, S.FILLED),
        ("timeout_executed", {}, S.FILLED),
        ("requote", {}, S.FILLED),  # a clean retry, then the fill
        ("timeout_not_executed", {}, S.REJECTED),  # reconciled absent
        ("none_not_executed", {}, S.REJECTED),  # reconciled absent
        ("placed", {"fill_after_polls": -1}, S.EXPIRED),  # the timeout removes it
    ],
)
def test_no_order_actor_handler_waits_on_a_future(
    fault: str | None,
    params: dict[str, Any],
    status: S,
    blocking_waits: list[str],
    make_engine: EngineFactory,
    sim: SimulatedTerminal,
) -> None:
    engine = make_engine(order_timeout_seconds=0.5)
    if fault is not None:
        sim.inject(fault, **params)

    confirmation = engine.execute(rpm())

    assert confirmation.status is status
    assert blocking_waits == []


def test_a_halt_removes_a_working_order_without_waiting(
    blocking_waits: list[str], make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(order_timeout_seconds=30.0)
    sim.inject("placed", fill_after_polls=-1)
    future = engine.submit(rpm())
    eventually(lambda: bool(sim.orders_get()), what="the order is working")

    engine.halt("stop now", by="test")
    confirmation = future.get(timeout=10)

    assert confirmation.status is S.REJECTED
    assert confirmation.rejection_reason is R.TRADING_HALTED
    assert blocking_waits == []


class _SilentPersistence(pykka.ThreadingActor):
    """Takes writes and never answers them (a database that hangs)."""

    def on_receive(self, message: Any) -> Any:
        return None


class _Broker(FastInbox):
    """Answers the preflight; nothing gets further than the write-ahead here."""

    def preflight(self, symbol: str) -> Preflight:
        return PREFLIGHT


def test_an_unanswered_commit_is_answered_overdue_without_blocking(
    blocking_waits: list[str],
) -> None:
    persistence = _SilentPersistence.start()
    broker = _Broker.start()
    scheduler = Scheduler(SystemClock().monotonic)
    reply: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    job = NewExecution("e1", "r1", "EE-c1", core_rpm(), "fp", reply, {})
    ctx = OrderContext(
        broker=broker.proxy,
        persistence=lambda: persistence,
        config=OrderConfig(engine_version="test", ask_timeout=0.2),
        clock=SystemClock(),
        scheduler=scheduler,
        switch=TradingSwitch(),
        margin=MarginBook(),
        on_final=lambda record: None,
    )
    order = OrderActor.start(job, ctx)
    try:
        with pytest.raises(PersistenceUnavailableError, match=r"no commit within 0\.2 s"):
            reply.get(timeout=10)
        assert blocking_waits == []
    finally:
        order.stop()
        broker.stop()
        persistence.stop()
        scheduler.stop()
