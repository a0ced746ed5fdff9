"""Supervision on a ManualClock: the restart intensity counts within the injected clock's
window, so a test decides how much time passes between restarts without sleeping; deaths
reach the Supervisor's actor as messages, not on a timer; and no module of `actors` reads
the time except through the injected `Clock`."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pykka

from actors._children import Children, ChildState, RestartWindow
from actors._supervised import ChildHooks, FaultPlan
from actors._supervisor_actor import SupervisorActor
from actors.messages import Heartbeat
from core.testing import ManualClock
from tests.actors.conftest import EngineFactory
from tests.helpers import eventually

ACTORS = Path(__file__).resolve().parents[2] / "actors"


class _Child(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return isinstance(message, Heartbeat)


def _children(clock: ManualClock, intensity: int, period: float) -> Children:
    def spawn(hooks: ChildHooks) -> pykka.ActorRef[Any]:
        return _Child.start()

    return Children(
        [("worker", spawn)],
        faults=FaultPlan(),
        window=RestartWindow(intensity, period, clock),
        clock=clock,
        heartbeat_interval=0.5,
        heartbeat_timeout=5.0,
        on_death=lambda name: None,
        on_restarted=lambda child, why: None,
    )


def _kill_and_check(children: Children) -> None:
    ref = children.get("worker").ref
    assert ref is not None
    ref.stop()
    children.check_all()


def test_the_restart_window_counts_on_the_injected_clock() -> None:
    clock = ManualClock()
    window = RestartWindow(2, 10.0, clock)

    for _ in range(3):
        window.record()
    assert window.exceeded()

    clock.advance(10.5)  # the three restarts leave the window
    assert window.count() == 0
    assert not window.exceeded()


def test_restarts_spread_wider_than_the_period_never_escalate() -> None:
    clock = ManualClock()
    children = _children(clock, intensity=2, period=10.0)
    children.start_all()
    try:
        for _ in range(6):
            _kill_and_check(children)
            clock.advance(6.0)  # at most two restarts fall in any 10 s

        worker = children.get("worker")
        assert worker.state is ChildState.ALIVE
        assert worker.alive()
        assert children.total_restarts == 6
        assert not children.escalated
    finally:
        children.stop_all(5.0)


def test_more_restarts_than_the_intensity_within_the_period_leave_the_child_dead() -> None:
    clock = ManualClock()
    children = _children(clock, intensity=2, period=10.0)
    children.start_all()
    try:
        for _ in range(3):
            _kill_and_check(children)
            clock.advance(1.0)

        assert children.get("worker").state is ChildState.DEAD
        assert children.total_restarts == 2
        assert "restart intensity exceeded: 3 restarts within 10 s" in children.escalated
    finally:
        children.stop_all(5.0)


def test_the_supervisor_halts_on_the_intensity_measured_by_the_injected_clock(
    make_engine: EngineFactory,
) -> None:
    clock = ManualClock()
    engine = make_engine(clock=clock, restart_intensity=2, restart_period_seconds=10)

    for n in range(1, 5):  # four crashes, 6 s apart on the engine's clock: no storm
        engine.faults.inject("persistence", "crash")
        eventually(lambda n=n: engine.probe.restarts == n and engine.probe.children_alive())
        clock.advance(6.0)
    assert not engine.probe.halted

    for _ in range(3):  # three within a moment: more than two in 10 s
        if engine.probe.halted:
            break
        before = engine.probe.restarts
        engine.faults.inject("persistence", "crash")
        eventually(lambda b=before: engine.probe.restarts > b or engine.probe.halted)
    eventually(lambda: engine.probe.halted, what="halted on the restart intensity")
    assert "restart intensity exceeded" in engine.probe.reason


def test_actors_read_the_time_only_through_the_injected_clock() -> None:
    direct = re.compile(r"\btime\.(monotonic|time|monotonic_ns|time_ns)\b|datetime\.now\(")
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(ACTORS.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert not found, found


def test_the_supervisor_is_an_actor_told_of_each_death(make_engine: EngineFactory) -> None:
    clock = ManualClock()
    engine = make_engine(clock=clock)
    assert len(pykka.ActorRegistry.get_by_class(SupervisorActor)) == 1
    assert "ee-supervisor" not in {thread.name for thread in threading.enumerate()}

    engine.faults.inject("broker", "crash")

    # The engine's clock never moves, so no scheduled tick runs: the death was a message.
    eventually(lambda: engine.probe.restarts == 1 and engine.probe.children_alive())
    assert engine.health()["actors"]["broker"]["state"] == "alive"
