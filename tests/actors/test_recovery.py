"""Startup recovery: what a crashed engine left unfinished is reconciled with the terminal
(one pass at start, the rest in the background), through the transition table, journaled,
never resent, each execution settled once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actors._recovery_writes import _path
from actors.facade import ExecutionFacade
from core.clock import utc_micros
from core.enums import ExecutionStatus, RejectionReason
from core.errors import ReconciliationError
from core.models import ExecutionLog, RPMOutput
from core.rules import choose_filling, make_client_id
from storage.db import create_db_engine
from storage.journal import replay_projection, verify_chain
from storage.migrate import upgrade
from storage.ops import WriteOp
from storage.writer import JournalWriter
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually

S = ExecutionStatus
R = RejectionReason
MAGIC = 770001


@pytest.fixture
def url(tmp_path: Path) -> str:
    """The store `make_engine` uses by default, so it can be seeded first."""
    return f"sqlite:///{tmp_path / 'engine.db'}"


def seed(
    url: str,
    execution_id: str,
    path: list[ExecutionStatus],
    *,
    ago: float = 60.0,
    lots: float = 0.1,
    direction: int = 1,
    order_id: int | None = None,
    intended_price: float | None = None,
    decision: dict[str, Any] | None = None,
    account: str = "default",
    magic: int = MAGIC,
) -> ExecutionLog:
    """Store an execution that went through `path` (after PENDING) and then the engine died."""
    upgrade(url)
    db = create_db_engine(url)
    at = datetime.now(UTC) - timedelta(seconds=ago)
    fingerprint = "0" * 64
    if decision is not None:
        _, fingerprint = RPMOutput.model_validate(decision).payload_and_fingerprint()
    record = ExecutionLog(
        execution_id=execution_id,
        request_id=f"req_{execution_id}",
        rpm_decision_id=f"dec_{execution_id}",
        client_id=make_client_id(execution_id),
        symbol="EURUSD",
        direction=direction,
        intended_units=lots * 100_000,
        intended_lots=lots,
        intended_price=intended_price,
        magic=magic,
        account=account,
        engine_version="test",
        rpm_fingerprint=fingerprint,
        rpm_payload={},
        created_at=at,
        updated_at=at,
    )
    ops = [_op(record, "EXECUTION_CREATED")]
    for status in path:
        changes: dict[str, Any] = {"status": status}
        if status is S.SUBMITTING:
            changes.update(attempts=record.attempts + 1, submitted_at=at)
        if status is S.SUBMITTED:
            changes["order_id"] = order_id
        record = record.evolve(**changes)
        ops.append(_op(record, status.value))
    try:
        JournalWriter(db).write_batch(ops)
    finally:
        db.dispose()
    return record


def _op(record: ExecutionLog, event: str) -> WriteOp:
    return WriteOp(
        execution_id=record.execution_id,
        event_type=event,
        payload={"status": record.status.value},
        engine_time_us=utc_micros(record.updated_at),
        projection=record,
    )


def send(
    sim: SimulatedTerminal,
    comment: str,
    lots: float = 0.1,
    direction: int = 1,
    magic: int = MAGIC,
) -> Any:
    """An order at the terminal, as the dead engine's order_send left it."""
    sim.initialize()
    info = sim.symbol_info("EURUSD")
    tick = sim.symbol_info_tick("EURUSD")
    result = sim.order_send(
        {
            "action": sim.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": lots,
            "type": sim.ORDER_TYPE_BUY if direction > 0 else sim.ORDER_TYPE_SELL,
            "price": tick.ask if direction > 0 else tick.bid,
            "deviation": 20,
            "magic": magic,
            "comment": comment,
            "type_time": sim.ORDER_TIME_GTC,
            "type_filling": choose_filling(info.filling_mode, info.trade_exemode),
        }
    )
    assert result is not None
    return result


def deal_requests(sim: SimulatedTerminal) -> int:
    return sum(1 for r in sim.sent_requests() if r.get("action") == sim.TRADE_ACTION_DEAL)


def events(engine: ExecutionFacade, execution_id: str) -> list[str]:
    return [e.event_type for e in engine.repository.events_for(execution_id)]


def assert_audit_holds(engine: ExecutionFacade) -> None:
    assert verify_chain(engine.supervisor.db).ok
    replayed = replay_projection(engine.supervisor.db)
    for record in engine.get_execution_history(limit=100):
        assert replayed[record.execution_id] == record.model_dump(mode="json")


# --- found ---------------------------------------------------------------------------------


def test_pending_that_never_reached_submitting_is_not_sent(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    seed(url, "e1", [])

    engine = make_engine()

    record = engine.get_execution("e1")
    assert (record.status, record.rejection_reason) == (S.REJECTED, R.NOT_SENT)
    assert events(engine, "e1")[-1] == "RECOVERED_REJECTED"
    assert engine.supervisor.last_recovery is not None
    assert engine.supervisor.last_recovery.resolved == {"e1": "REJECTED"}
    assert not engine.switch.halted
    assert deal_requests(sim) == 0
    assert_audit_holds(engine)


def test_submitting_order_found_by_client_id_gets_its_fill_price_and_slippage(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    seed(url, "e2", [S.SUBMITTING], intended_price=1.08)
    result = send(sim, make_client_id("e2"))
    sent_before = deal_requests(sim)

    engine = make_engine()

    record = engine.get_execution("e2")
    assert record.status is S.FILLED
    assert record.order_id == result.order
    assert record.executed_lots == pytest.approx(0.1)
    assert record.executed_units == pytest.approx(10_000)
    assert record.fill_price == pytest.approx(result.price)
    assert record.slippage_pips == pytest.approx((result.price - 1.08) / 0.0001, abs=1e-6)
    assert deal_requests(sim) == sent_before  # nothing resent
    assert events(engine, "e2")[-2:] == ["RECOVERED_FOUND", "RECOVERED_FILLED"]
    assert_audit_holds(engine)


def test_unknown_order_whose_comment_the_broker_rewrote_is_found_by_symbol_side_volume(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    seed(url, "e3", [S.SUBMITTING, S.UNKNOWN], lots=0.2, direction=-1)
    send(sim, "[rewritten by broker]", lots=0.1, direction=-1)  # other volume: not ours
    result = send(sim, "[rewritten by broker]", lots=0.2, direction=-1)

    engine = make_engine()

    # Start-up looks for client ids in one read; the fallback match runs in the background.
    record = eventually(lambda: engine.get_execution("e3").is_final and engine.get_execution("e3"))
    assert record.status is S.FILLED
    assert record.order_id == result.order


def test_partially_filled_order_is_partially_filled(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    seed(url, "e4", [S.SUBMITTING])
    sim.inject("partial", ratio=0.5)
    send(sim, make_client_id("e4"))

    engine = make_engine()

    record = engine.get_execution("e4")
    assert record.status is S.PARTIALLY_FILLED
    assert record.executed_lots == pytest.approx(0.05)


def test_submitted_order_still_open_is_removed_not_watched(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    sim.inject("placed", fill_after_polls=-1)
    result = send(sim, make_client_id("e5"))
    seed(url, "e5", [S.SUBMITTING, S.SUBMITTED], order_id=result.order)

    engine = make_engine()

    record = engine.get_execution("e5")
    assert (record.status, record.rejection_reason) == (S.REJECTED, R.CANCELLED)
    assert sim.open_orders_snapshot() == ()
    assert "ORDER_REMOVE_REQUESTED" in events(engine, "e5")
    assert_audit_holds(engine)


def test_order_closed_with_nothing_filled_is_rejected_with_its_state(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    seed(url, "e6", [S.SUBMITTING])
    sim.inject("placed", fill_after_polls=-1)
    result = send(sim, make_client_id("e6"))
    sim.order_send({"action": sim.TRADE_ACTION_REMOVE, "order": result.order})

    engine = make_engine()

    record = engine.get_execution("e6")
    assert (record.status, record.rejection_reason) == (S.REJECTED, R.BROKER_REJECTED)
    assert record.order_id == result.order
    assert_audit_holds(engine)


def test_a_missing_intermediate_state_is_a_step_of_its_own() -> None:
    assert _path(S.SUBMITTING, S.EXPIRED) == [S.SUBMITTED, S.EXPIRED]
    assert _path(S.PENDING, S.FILLED) == [S.SUBMITTING, S.FILLED]
    assert _path(S.UNKNOWN, S.REJECTED) == [S.REJECTED]
    assert _path(S.FILLED, S.REJECTED) is None


# --- absent --------------------------------------------------------------------------------


def test_submitting_absent_after_the_window_is_not_sent(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    seed(url, "e7", [S.SUBMITTING, S.UNKNOWN], ago=60)

    engine = make_engine()

    # The dead process may have sent it just before it died: the window runs from this
    # run's first lookup, in the background.
    record = eventually(lambda: engine.get_execution("e7").is_final and engine.get_execution("e7"))
    assert (record.status, record.rejection_reason) == (S.REJECTED, R.NOT_SENT)
    assert events(engine, "e7")[-1] == "RECOVERED_REJECTED"
    assert deal_requests(sim) == 0


def test_submitting_absent_inside_the_window_waits_for_it_before_not_sent(
    url: str, make_engine: EngineFactory
) -> None:
    seeded = seed(url, "e8", [S.SUBMITTING], ago=0.0)

    engine = make_engine(reconcile_window_seconds=0.5)

    record = eventually(lambda: engine.get_execution("e8").is_final and engine.get_execution("e8"))
    assert (record.status, record.rejection_reason) == (S.REJECTED, R.NOT_SENT)
    # Declared absent only once the window had passed since the last send.
    assert record.updated_at - seeded.updated_at >= timedelta(seconds=0.5)
    assert not engine.switch.halted


# --- failure -------------------------------------------------------------------------------


def test_reconciliation_failure_at_start_leaves_the_engine_halted(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    seed(url, "e9", [S.SUBMITTING, S.SUBMITTED], order_id=987_654)  # unknown to the terminal

    engine = make_engine()

    assert engine.switch.halted
    state = engine.trading_state()
    assert state is not None
    assert state.state == "HALTED"
    assert state.changed_by == "supervisor"
    assert "reconciliation failed at start" in state.reason
    assert engine.get_execution("e9").status is S.SUBMITTED  # left for an operator
    refused = engine.execute(rpm())
    assert refused.rejection_reason is R.TRADING_HALTED
    assert deal_requests(sim) == 0
    with pytest.raises(ReconciliationError):
        engine.resume(by="ops")
    assert engine.switch.halted


# --- start-up does not wait for reconcile windows (issue 11, item 11) ------------------------


def test_restart_takes_new_work_while_absent_orders_are_still_reconciled(
    url: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    """kill -9 under load left SUBMITTING executions whose orders the terminal never got;
    the restart used to wait out their reconcile window (25-30 s) before taking work."""
    window = 3.0
    left = {f"k{i}": rpm(f"dec_k{i}", units=10_000) for i in range(3)}
    for execution_id, decision in left.items():
        seed(url, execution_id, [S.SUBMITTING], ago=0.0, decision=decision)

    started = time.monotonic()
    engine = make_engine(reconcile_window_seconds=window)
    assert time.monotonic() - started < 2.0  # no reconcile window waited out

    # The old ones are UNKNOWN (being reconciled), their margin held, when new work fills.
    assert {engine.get_execution(e).status for e in left} <= {S.SUBMITTING, S.UNKNOWN}
    assert engine.margin.held() > 0
    assert engine.metrics.unknown_count() == len(left)
    fresh = engine.execute(rpm("dec_new"))
    assert fresh.status is S.FILLED
    assert time.monotonic() - started < window
    # A same-decision resubmit of one being reconciled is that execution: nothing is sent.
    again = engine.execute(left["k0"])
    assert again.execution_id == "k0"
    assert again.status in (S.SUBMITTING, S.UNKNOWN)
    assert not engine.get_execution("k0").is_final

    for execution_id in left:
        record = eventually(
            lambda e=execution_id: engine.get_execution(e).is_final and engine.get_execution(e),
            timeout=window + 10,
        )
        assert (record.status, record.rejection_reason) == (S.REJECTED, R.NOT_SENT)
        assert events(engine, execution_id).count("RECOVERED_REJECTED") == 1  # settled once
    assert deal_requests(sim) == 1  # only the new execution's order was ever sent
    assert eventually(lambda: engine.margin.held() == 0 and engine.metrics.unknown_count() == 0)
    assert not engine.switch.halted
    assert_audit_holds(engine)
