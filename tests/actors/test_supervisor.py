"""The Supervisor: every way a Pykka actor dies is seen, restarted one-for-one, and a
restart storm ends in a halt."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors._supervised import InjectedCrash
from core.enums import ExecutionStatus, RejectionReason
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually

S = ExecutionStatus
R = RejectionReason


def deal_requests(sim: SimulatedTerminal) -> list[dict[str, Any]]:
    return [r for r in sim.sent_requests() if r.get("action") == sim.TRADE_ACTION_DEAL]


def initializations(sim: SimulatedTerminal) -> int:
    return sum(1 for record in sim.calls if record.name == "initialize")


def test_children_start_in_order_and_the_engine_is_healthy(make_engine: EngineFactory) -> None:
    engine = make_engine()

    health = engine.health()

    assert health["trading_state"] == "ACTIVE"
    assert health["actors"]["persistence"]["state"] == "alive"
    assert health["actors"]["broker"]["state"] == "alive"
    assert health["restarts"] == 0
    assert health["database"]["ok"] is True
    eventually(lambda: engine.health()["broker"]["connected"] is True, what="connection seen")
    assert engine.supervisor.last_recovery is not None
    assert engine.supervisor.last_recovery.ok


def test_a_failed_tell_restarts_the_broker_which_reinitializes_the_terminal(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    before = initializations(sim)

    engine.supervisor.inject("broker", "crash")

    eventually(lambda: engine.supervisor.total_restarts == 1, what="broker restarted")
    eventually(lambda: initializations(sim) == before + 1, what="terminal initialized again")
    assert engine.execute(rpm()).status is S.FILLED
    assert "InjectedCrash" in engine.health()["actors"]["broker"]["last_failure"]


def test_an_exception_in_on_start_is_seen_and_restarted(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.supervisor.faults.fail_starts("broker", 1)

    engine.supervisor.inject("broker", "crash")

    # One restart for the crash, one for the start that failed (Pykka skips on_failure).
    eventually(lambda: engine.supervisor.total_restarts == 2, what="two restarts")
    assert "on_start" in engine.health()["actors"]["broker"]["last_failure"]
    assert engine.execute(rpm()).status is S.FILLED


def test_a_hung_actor_is_found_by_its_heartbeat_replaced_and_fenced(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(ask_timeout_seconds=0.8)
    release = threading.Event()
    old = engine.broker

    engine.supervisor.inject("broker", "hang", release=release)

    eventually(lambda: engine.supervisor.total_restarts >= 1, what="hung broker replaced")
    assert "hung" in engine.health()["actors"]["broker"]["last_failure"]
    assert engine.execute(rpm()).status is S.FILLED
    release.set()  # the old incarnation wakes up: fenced, it touches nothing and stops
    eventually(lambda: not old.is_alive(), what="old broker stopped")
    assert sim.overlapping_calls() == []
    assert engine.execute(rpm(decision_id="second")).status is S.FILLED


def test_a_dead_reference_met_by_a_caller_is_replaced_and_the_order_carries_on(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    engine.broker.stop()  # dies behind the supervisor's back

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.FILLED
    assert len(deal_requests(sim)) == 1
    eventually(lambda: engine.supervisor.total_restarts >= 1, what="broker replaced")


def test_a_send_in_flight_when_the_broker_died_is_reconciled_never_resent(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    engine.supervisor.faults.crash_after_sends(1)

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.FILLED
    assert len(deal_requests(sim)) == 1
    events = [e.event_type for e in engine.repository.events_for(confirmation.execution_id)]
    assert "SEND_AMBIGUOUS" in events
    assert "RECONCILED_FOUND" in events
    eventually(lambda: engine.supervisor.total_restarts == 1, what="broker restarted")


def test_a_persistence_crash_is_restarted_and_the_journal_chain_continues(
    make_engine: EngineFactory,
) -> None:
    from storage.journal import verify_chain

    engine = make_engine()
    engine.execute(rpm(decision_id="before"))

    engine.supervisor.inject("persistence", "crash")

    eventually(lambda: engine.supervisor.total_restarts == 1, what="persistence restarted")
    assert engine.execute(rpm(decision_id="after")).status is S.FILLED
    eventually(lambda: verify_chain(engine.supervisor.db).ok, what="chain verifies")
    events = list(engine.repository.audit_events(*_all_time()))
    assert any(e.event_type == "ACTOR_RESTARTED" for e in events)


def test_restart_intensity_exceeded_halts_trading_until_resumed(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(restart_intensity=2, restart_period_seconds=30)
    engine.supervisor.faults.fail_starts("broker", 10)  # a crash loop

    engine.supervisor.inject("broker", "crash")

    eventually(lambda: engine.trading_state() is not None, what="halt persisted")
    assert "restart intensity exceeded" in engine.switch.reason
    health = engine.health()
    assert health["actors"]["broker"]["state"] == "dead"
    assert health["escalated"]
    state = engine.trading_state()
    assert state is not None
    assert (state.state, state.changed_by) == ("HALTED", "supervisor")
    halted = engine.execute(rpm(decision_id="while-halted"))
    assert halted.rejection_reason is R.TRADING_HALTED
    assert deal_requests(sim) == []

    engine.supervisor.faults.clear()
    engine.resume(by="ops")

    assert engine.health()["actors"]["broker"]["state"] == "alive"
    assert engine.execute(rpm(decision_id="after")).status is S.FILLED


def test_order_actor_crash_orphan_is_reconciled(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject("placed", fill_after_polls=-1)  # the order stays working
    future = engine.submit(rpm())
    execution_id = eventually(
        lambda: next(
            (r.execution_id for r in engine.get_execution_history() if r.status is S.SUBMITTED),
            None,
        ),
        what="order working",
    )

    engine.supervisor.inject(execution_id, "crash")

    eventually(lambda: engine.get_execution(execution_id).is_final, what="orphan reconciled")
    record = engine.get_execution(execution_id)
    assert record.status is S.REJECTED
    assert record.rejection_reason is R.CANCELLED
    assert sim.open_orders_snapshot() == ()
    with pytest.raises(InjectedCrash):  # the caller hears of the crash; it never hangs
        future.get(timeout=5)
    assert engine.supervisor.order_crashes == 1


def _all_time() -> tuple[Any, Any]:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
