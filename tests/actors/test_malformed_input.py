"""Malformed RPM messages through the facade: refused REJECTED before any actor starts, and
an OrderActor that fails on its own execution's data ends that execution without counting
toward the restart intensity (a buggy RPM must not be able to halt trading)."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from actors._failures import InjectedCrash, is_own_failure
from actors._shared import MarginBook
from core.enums import DecisionStatus, ExecutionStatus, RejectionReason, TradingState
from core.errors import PersistenceUnavailableError, TerminalDisconnectedError
from core.execution import InvalidTransitionError
from core.models import ApprovedTrade, Decision, PortfolioState, RPMOutput
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually

S = ExecutionStatus
R = RejectionReason

HUGE = 10**400
"""`"atr": 1` followed by 400 zeros: a JSON integer no 64-bit float can hold."""


def _with_trade(decision_id: str, **fields: Any) -> dict[str, Any]:
    message = rpm(decision_id=decision_id)
    message["decision"]["approved_trade"].update(fields)
    return message


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


MALFORMED: list[tuple[dict[str, Any], str]] = [
    (_with_trade("bad-1", atr=HUGE), "decision.approved_trade.atr"),
    (_with_trade("bad-2", position_units=float("inf")), "decision.approved_trade.position_units"),
    (_with_trade("bad-3", intended_price=float("inf")), "decision.approved_trade.intended_price"),
    (_with_trade("bad-4", atr=float("inf")), "decision.approved_trade.atr"),
    (_with_trade("bad-5", position_units=HUGE), "decision.approved_trade.position_units"),
    (_with_trade("bad-6", intended_price=HUGE), "decision.approved_trade.intended_price"),
    (_with_trade("bad-6b", intended_price=1e308), "decision.approved_trade.intended_price"),
    ({**rpm(decision_id="bad-7"), "context": {"x": float("nan")}}, "context.x"),
    ({**rpm(decision_id="bad-8"), "context": _deep(300)}, "nested deeper than 32 levels"),
    (rpm(decision_id="caf\u00e9"), "decision.decision_id"),
    (rpm(decision_id="cafe\u0301"), "decision.decision_id"),
]


def test_malformed_messages_are_rejected_and_trading_stays_active(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    # Issue 11 item 2: six of these within 10 s halted the engine (5 restarts in 10 s).
    engine = make_engine(restart_intensity=5, restart_period_seconds=10)

    for message, named in MALFORMED:
        confirmation = engine.execute(message, timeout=5)
        assert confirmation.status is S.REJECTED
        assert confirmation.rejection_reason is R.INVALID_INPUT
        assert named in (confirmation.rejection_details or "")
        assert confirmation.order_id is None

    assert engine.supervisor.order_crashes == 0
    assert engine.in_flight() == 0
    assert engine.get_execution_history() == []  # refused at the door: nothing recorded
    assert sim.sent_requests() == []
    assert engine.health()["trading_state"] == TradingState.ACTIVE.value
    assert engine.execute(rpm(decision_id="good-after")).status is S.FILLED


def _constructed(decision_id: str, **trade: Any) -> RPMOutput:
    """A message built past validation (`model_construct`), as a bug or a caller that
    skips the model could: the OrderActor meets data no rule has checked."""
    fields: dict[str, Any] = {"symbol": "EURUSD", "direction": 1, "position_units": 95000}
    fields.update(trade)
    return RPMOutput.model_construct(
        decision=Decision.model_construct(
            status=DecisionStatus.APPROVED,
            decision_id=decision_id,
            approved_trade=ApprovedTrade.model_construct(**fields),
        ),
        portfolio_state=PortfolioState(),
        rpm_version=None,
        model_version=None,
        timestamp=None,
    )


def test_an_order_actor_failing_on_its_own_data_rejects_it_and_does_not_halt(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(restart_intensity=5, restart_period_seconds=10)

    for i in range(7):  # more than the restart intensity, well within its period
        confirmation = engine.execute(_constructed(f"unchecked-{i}", atr=HUGE), timeout=10)
        assert confirmation.status is S.REJECTED
        assert confirmation.rejection_reason is R.INVALID_INPUT
        assert "atr" in (confirmation.rejection_details or "")

    assert engine.supervisor.window.count() == 0
    assert not engine.switch.halted
    assert sim.sent_requests() == []
    eventually(lambda: engine.in_flight() == 0, what="the failed OrderActors are gone")
    assert engine.execute(rpm(decision_id="good-after")).status is S.FILLED


class _FailingMargin(MarginBook):
    """Raises on every margin check, as a bug on an execution's path would."""

    def reserve(self, execution_id: str, amount: float, check: Any) -> Any:
        raise ZeroDivisionError("float division by zero (on this execution's numbers)")


def test_a_failure_after_the_record_is_written_ends_it_rejected_and_recorded(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(restart_intensity=1, restart_period_seconds=30)
    engine.margin = _FailingMargin()  # the OrderContext is built per submit, from here

    outcomes = [engine.execute(rpm(decision_id=f"fails-{i}"), timeout=10) for i in range(3)]

    for confirmation in outcomes:
        assert confirmation.status is S.REJECTED
        assert confirmation.rejection_reason is R.INTERNAL_ERROR
        assert "ZeroDivisionError" in (confirmation.rejection_details or "")
        record = engine.get_execution(confirmation.execution_id)  # recorded, journaled
        assert (record.status, record.rejection_reason) == (S.REJECTED, R.INTERNAL_ERROR)
    assert engine.supervisor.window.count() == 0
    assert not engine.switch.halted
    assert sim.sent_requests() == []


@pytest.mark.parametrize(
    ("exc", "own"),
    [
        (OverflowError("int too large to convert to float"), True),
        (ValueError("Out of range float values are not JSON compliant"), True),
        (ZeroDivisionError("float division by zero"), True),
        (InvalidTransitionError("FILLED -> SUBMITTING"), True),
        (PersistenceUnavailableError("the database is down"), False),
        (TerminalDisconnectedError("the terminal is gone"), False),
        (pykka.Timeout("30 seconds"), False),
        (pykka.ActorDeadError("the broker actor is not running"), False),
        (ConnectionResetError("peer reset"), False),
        (EOFError("stream closed"), False),
        (InjectedCrash("a drill's crash"), False),
    ],
)
def test_whose_failure_it_is(exc: Exception, own: bool) -> None:
    """Only the infrastructure's failures count toward the restart intensity."""
    assert is_own_failure(exc) is own
