"""The kill switch: persisted and journaled, a gate no queued send can overtake, sticky
across restarts, resumed only after a successful reconciliation, and tripped on its own."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from actors.kill_switch import TradingSwitch
from core.enums import ExecutionStatus, RejectionReason
from core.errors import PersistenceUnavailableError, ReconciliationError
from core.models import ExecutionRequest
from drills._harness import DatabaseOutage
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually

S = ExecutionStatus
R = RejectionReason


def deal_sends(sim: SimulatedTerminal) -> list[Any]:
    """The order_send calls of market orders, as the terminal recorded them."""
    return [
        record
        for record in sim.calls
        if record.name == "order_send"
        and isinstance(record.args[0], dict)
        and record.args[0].get("action") == sim.TRADE_ACTION_DEAL
    ]


def done(future: pykka.Future[Any]) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:
        return True
    return True


# --- the switch itself ---------------------------------------------------------------------


def test_halt_is_persisted_and_journaled_with_who_when_and_why(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()

    engine.halt("risk limit breached", by="alice")

    state = engine.trading_state()
    assert state is not None
    assert (state.state, state.changed_by, state.reason) == (
        "HALTED",
        "alice",
        "risk limit breached",
    )
    journal = [e for e in engine.repository.audit_events(*_all_time()) if e.execution_id is None]
    assert journal[-1].event_type == "TRADING_STATE_CHANGED"
    assert journal[-1].payload["trading_state"]["changed_by"] == "alice"
    assert engine.health()["trading_state"] == "HALTED"


def test_a_halt_waits_for_a_send_in_progress_and_then_closes_the_gate() -> None:
    switch = TradingSwitch()
    in_send = threading.Event()
    finish = threading.Event()

    def sender() -> None:
        with switch.sending() as allowed:
            assert allowed
            in_send.set()
            finish.wait(5)

    thread = threading.Thread(target=sender)
    thread.start()
    in_send.wait(5)
    halted = threading.Event()
    halter = threading.Thread(target=lambda: (switch.set(True, "stop"), halted.set()))
    halter.start()
    assert not halted.wait(0.05)  # the send in progress started before the halt
    finish.set()
    assert halted.wait(5)
    with switch.sending() as allowed:
        assert not allowed
    thread.join(5)
    halter.join(5)


def test_a_send_queued_in_the_broker_inbox_cannot_overtake_a_halt(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    release = threading.Event()
    broker = engine.supervisor.broker_proxy()
    engine.supervisor.inject("broker", "hang", release=release)
    queued = [broker.place_order(_request(i)) for i in range(3)]  # behind the hang

    engine.halt("stop now", by="test")  # returns while the sends are still queued
    release.set()

    outcomes = [future.get(timeout=5) for future in queued]
    assert all(outcome.halted for outcome in outcomes)
    assert deal_sends(sim) == []


# --- halting and resuming an engine at work ------------------------------------------------


def test_a_halt_during_a_burst_of_500_lets_no_order_send_start_after_it_returns(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    futures = [engine.submit(rpm(decision_id=f"burst-{i}", units=1000)) for i in range(500)]
    eventually(lambda: sum(map(done, futures)) >= 100, timeout=30, what="100 answered")

    engine.halt("halt under load", by="test")
    halted_at = _monotonic()

    confirmations = [future.get(timeout=30) for future in futures]
    late = [record for record in deal_sends(sim) if record.start > halted_at]
    assert late == []
    by_status: dict[str, int] = {}
    for confirmation in confirmations:
        by_status[confirmation.status.value] = by_status.get(confirmation.status.value, 0) + 1
    assert set(by_status) <= {"FILLED", "REJECTED"}
    assert by_status["FILLED"] == len(deal_sends(sim))
    assert all(
        c.rejection_reason is R.TRADING_HALTED for c in confirmations if c.status is S.REJECTED
    )
    assert by_status.get("REJECTED", 0) > 0


def test_orders_still_open_are_removed_when_trading_halts(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject("placed", fill_after_polls=-1)
    future = engine.submit(rpm())
    eventually(
        lambda: [r for r in engine.get_execution_history() if r.status is S.SUBMITTED],
        what="order working",
    )

    engine.halt("stop", by="test")

    confirmation = future.get(timeout=10)
    assert (confirmation.status, confirmation.rejection_reason) == (S.REJECTED, R.TRADING_HALTED)
    assert sim.open_orders_snapshot() == ()
    events = [e.event_type for e in engine.repository.events_for(confirmation.execution_id)]
    assert "ORDER_REMOVE_REQUESTED" in events


def test_resume_only_after_a_successful_reconciliation(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    engine.halt("stop", by="alice")
    sim.set_ipc_alive(False)

    with pytest.raises(ReconciliationError):
        engine.resume(by="bob")

    assert engine.switch.halted
    state = engine.trading_state()
    assert state is not None
    assert state.state == "HALTED"
    sim.set_ipc_alive(True)
    engine.resume(by="bob", reason="all clear")
    state = engine.trading_state()
    assert state is not None
    assert (state.state, state.changed_by, state.reason) == ("ACTIVE", "bob", "all clear")
    assert engine.execute(rpm()).status is S.FILLED


def test_an_engine_that_was_halted_boots_halted(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    first = make_engine()
    first.halt("end of day", by="alice")
    first.stop()

    second = make_engine()

    assert second.switch.halted
    assert second.health()["halted_reason"] == "end of day"
    refused = second.execute(rpm())
    assert refused.rejection_reason is R.TRADING_HALTED
    assert deal_sends(sim) == []
    second.resume(by="bob")
    assert second.execute(rpm(decision_id="next")).status is S.FILLED


# --- automatic halts -----------------------------------------------------------------------


def test_a_terminal_disconnected_too_long_halts_trading(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(disconnect_halt_seconds=0.2)

    sim.set_connected(False)

    eventually(lambda: engine.trading_state() is not None, what="halt persisted")
    state = engine.trading_state()
    assert state is not None
    assert (state.state, state.changed_by) == ("HALTED", "supervisor")
    assert "disconnected" in state.reason
    with pytest.raises(ReconciliationError):
        engine.resume(by="ops")  # still disconnected
    sim.set_connected(True)
    engine.resume(by="ops")
    assert not engine.switch.halted


def test_journal_write_failures_halt_trading_and_the_halt_is_written_when_it_can(
    make_engine: EngineFactory, sim: SimulatedTerminal, tmp_path: Any
) -> None:
    engine = make_engine()
    outage = DatabaseOutage(f"sqlite:///{tmp_path / 'engine.db'}", engine.supervisor.db)
    sim.set_latency(order_send=0.3)
    future = engine.submit(rpm())
    execution_id = eventually(
        lambda: next(
            (r.execution_id for r in engine.get_execution_history() if r.status is S.SUBMITTING),
            None,
        ),
        what="write-ahead committed",
    )

    outage.start()  # the send is in flight; its outcome cannot be written
    eventually(lambda: engine.switch.halted, what="halted")
    assert "journal writes failing" in engine.switch.reason
    with pytest.raises(PersistenceUnavailableError):
        future.get(timeout=10)
    outage.stop()

    eventually(lambda: engine.trading_state() is not None, what="halt written once possible")
    eventually(lambda: engine.get_execution(execution_id).is_final, what="orphan reconciled")
    assert engine.get_execution(execution_id).status is S.FILLED
    engine.resume(by="ops")
    assert not engine.switch.halted


def _request(index: int) -> ExecutionRequest:
    return ExecutionRequest(
        request_id=f"req-{index}",
        execution_id=f"exec-{index}",
        client_id=f"ee-test-{index}",
        symbol="EURUSD",
        direction=1,
        units=10_000,
        lots=0.1,
        intended_price=1.085,
        magic=770001,
        deviation_points=100,
        max_slippage_pips=10,
        timeout_seconds=3,
        max_retries=0,
    )


def _monotonic() -> float:
    import time

    return time.monotonic()


def _all_time() -> tuple[Any, Any]:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
