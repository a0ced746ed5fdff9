"""No actor waits on a future inside a message handler (issue 12: actors that never block).

The engine runs end to end through the facade on a simulated terminal (fills, a rejection,
a requote, an order that fills later, an ambiguous send, a halt with an order open, a
resume, a flatten, health) while `pykka.Actor._handle_receive` marks its thread, and every
`pykka.ThreadingFuture.get` / `actors._reply.Reply.get` with a timeout other than 0 made on
a marked thread is recorded with the actor, the message it was handling and where the wait
was made. A handler that waits holds its thread for the wait: on a shared pool
(`actors._dispatcher`) that is a thread the other actors need.

Every actor class of the engine is a case; a new actor class fails
`test_every_actor_class_is_watched` until it is added to FAMILIES.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pykka
import pytest

import actors
from actors._reply import Reply
from actors._supervisor_actor import SupervisorActor
from actors.broker import BrokerActor
from actors.engine import create_execution_engine
from actors.order import OrderActor
from actors.persistence import PersistenceActor
from core.enums import ExecutionStatus
from storage.scratch import scratch_database
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import fast_settings, rpm
from tests.helpers import eventually

S = ExecutionStatus
FAMILIES: tuple[type[pykka.Actor], ...] = (
    OrderActor,
    BrokerActor,
    PersistenceActor,
    SupervisorActor,
)
PROJECT = Path(actors.__file__).resolve().parent.parent
WAIT = 30.0


@dataclass(frozen=True, slots=True)
class Wait:
    """One blocking wait made inside a handler."""

    actor: str
    message: str
    where: str
    """The innermost project frames of the wait, innermost first."""

    def __str__(self) -> str:
        return f"{self.actor} handling {self.message}: waits at {self.where}"


@dataclass
class Observed:
    handled: dict[str, int] = field(default_factory=dict)
    waits: set[Wait] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


_inside = threading.local()


def _family(actor: pykka.Actor) -> str:
    for cls in type(actor).__mro__:
        if cls in FAMILIES:
            return cls.__name__
    return type(actor).__name__


def _describe(message: Any) -> str:
    if isinstance(message, pykka.messages.ProxyCall):
        return ".".join(message.attr_path) + "()"
    stage = getattr(message, "stage", None)
    return f"{type(message).__name__}({stage})" if stage else type(message).__name__


def _where(frame: FrameType | None) -> str:
    found: list[str] = []
    while frame is not None and len(found) < 3:
        path = Path(frame.f_code.co_filename).resolve()
        if path.is_relative_to(PROJECT) and "tests" not in path.relative_to(PROJECT).parts:
            found.append(f"{path.relative_to(PROJECT)}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return " <- ".join(found)


def _observe(monkeypatch: pytest.MonkeyPatch, observed: Observed) -> None:
    handle_receive = pykka.Actor._handle_receive
    future_get = pykka.ThreadingFuture.get
    reply_get = Reply.get

    def flagged_handle_receive(self: pykka.Actor, message: Any) -> Any:
        outer = getattr(_inside, "handler", None)
        _inside.handler = (_family(self), _describe(message))
        with observed.lock:
            observed.handled[_inside.handler[0]] = observed.handled.get(_inside.handler[0], 0) + 1
        try:
            return handle_receive(self, message)
        finally:
            _inside.handler = outer

    def record(timeout: float | None) -> None:
        handler = getattr(_inside, "handler", None)
        if handler is None or timeout == 0:
            return
        wait = Wait(handler[0], handler[1], _where(sys._getframe(2)))
        with observed.lock:
            observed.waits.add(wait)

    def watched(get: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *, timeout: float | None = None) -> Any:
            record(timeout)
            return get(self, timeout=timeout)

        return wrapper

    monkeypatch.setattr(pykka.Actor, "_handle_receive", flagged_handle_receive)
    monkeypatch.setattr(pykka.ThreadingFuture, "get", watched(future_get))
    monkeypatch.setattr(Reply, "get", watched(reply_get))


def _run_the_engine(url: str) -> None:
    """Every path of an execution that the actors take messages for, end to end."""
    sim = SimulatedTerminal(seed=7, order_send_latency=0.002)
    engine = create_execution_engine(terminal=sim, database_url=url, settings=fast_settings())
    try:
        assert engine.execute(rpm("nb_fill", units=10000), WAIT).status is S.FILLED
        futures = [engine.submit(rpm(f"nb_many_{i}", units=1000)) for i in range(5)]
        assert {f.get(timeout=WAIT).status for f in futures} == {S.FILLED}
        rejected = engine.execute(rpm("nb_refused", status="REJECTED"), WAIT)
        assert rejected.status is S.REJECTED
        sim.inject("requote")
        assert engine.execute(rpm("nb_requote", units=1000), WAIT).status is S.FILLED
        sim.inject("placed", fill_after_polls=3)
        assert engine.execute(rpm("nb_later", units=1000), WAIT).status is S.FILLED
        sim.inject("timeout_executed")
        assert engine.execute(rpm("nb_ambiguous", units=1000), WAIT).status.is_final

        # A halt while an order is open (it never fills): the Halt message removes it.
        sim.inject("placed", fill_after_polls=-1)
        open_order = engine.submit(rpm("nb_open", units=1000))
        eventually(lambda: sim.open_orders_snapshot(), what="the order open at the broker")
        engine.halt("guard test", "tester")
        assert open_order.get(timeout=WAIT).status.is_final
        engine.resume("tester")
        engine.health()
        engine.reduce_only(reason="guard test", by="tester")
        engine.resume("tester")
        report = engine.flatten(reason="guard test", by="tester")
        assert report["positions_closed"] >= 1
    finally:
        engine.stop()


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def observed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Observed:
    seen = Observed()
    with pytest.MonkeyPatch.context() as monkeypatch:
        _observe(monkeypatch, seen)
        try:
            if request.param == "sqlite":
                _run_the_engine(f"sqlite:///{tmp_path_factory.mktemp('nb') / 'engine.db'}")
            else:
                admin = request.getfixturevalue("postgres_admin_engine")
                with scratch_database(admin, "ee_test") as url:
                    _run_the_engine(url)
        finally:
            pykka.ActorRegistry.stop_all(timeout=10)
    return seen


def test_every_actor_class_is_watched(observed: Observed) -> None:
    # An actor class not in FAMILIES would escape the per-class cases below.
    assert set(observed.handled) == {cls.__name__ for cls in FAMILIES}


@pytest.mark.parametrize("actor", [cls.__name__ for cls in FAMILIES])
def test_no_handler_waits_on_a_future(observed: Observed, actor: str) -> None:
    waits = sorted(str(w) for w in observed.waits if w.actor == actor)
    assert not waits, "\n".join(waits)
