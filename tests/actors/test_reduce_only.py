"""The reduce-only state: ACTIVE, REDUCING and HALTED, switched by who and why, persisted
and journaled like the halt, shown on health and metrics, and kept across a restart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actors.facade import ExecutionFacade
from actors.kill_switch import TradingSwitch
from core.enums import ExecutionStatus, TradingState
from core.errors import TradingHaltedError
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.actors.test_kill_switch import deal_sends

S = ExecutionStatus
ALL_TIME = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def state_changes(engine: ExecutionFacade) -> list[tuple[str, str, str]]:
    """(state, by, reason) of every journaled trading-state change, oldest first."""
    return [
        (
            event.payload["trading_state"]["state"],
            event.payload["trading_state"]["changed_by"],
            event.payload["trading_state"]["reason"],
        )
        for event in engine.repository.audit_events(*ALL_TIME)
        if event.event_type == "TRADING_STATE_CHANGED"
    ]


def test_the_gate_lets_only_reducing_sends_through_while_reducing() -> None:
    switch = TradingSwitch()
    switch.set(False, "cut risk", reducing=True)

    with switch.sending() as opening:
        assert opening is False
    with switch.sending(reduces=True) as reducing:
        assert reducing is True
    assert switch.state is TradingState.REDUCING
    switch.set(True, "stop")
    with switch.sending(reduces=True) as reducing:
        assert reducing is False
    assert switch.state is TradingState.HALTED


def test_reduce_only_then_halt_then_resume_each_journaled_with_who_and_why(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()

    engine.reduce_only(reason="drawdown limit near", by="alice")
    assert engine.switch.state is TradingState.REDUCING
    engine.halt("news", by="bob")
    assert engine.switch.state is TradingState.HALTED
    with pytest.raises(TradingHaltedError):
        engine.reduce_only(reason="only an admin leaves a halt", by="mallory")
    assert engine.switch.state is TradingState.HALTED
    engine.resume(by="carol", reason="news passed")
    engine.reduce_only(reason="end of week", by="alice")
    engine.resume(by="carol", reason="new week")

    assert engine.switch.state is TradingState.ACTIVE
    assert state_changes(engine) == [
        ("REDUCING", "alice", "drawdown limit near"),
        ("HALTED", "bob", "news"),
        ("ACTIVE", "carol", "news passed"),
        ("REDUCING", "alice", "end of week"),
        ("ACTIVE", "carol", "new week"),
    ]
    record = engine.trading_state()
    assert record is not None
    assert (record.state, record.changed_by) == ("ACTIVE", "carol")


def test_reducing_refuses_an_opening_trade_and_sends_nothing(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    engine.reduce_only(reason="cut risk", by="alice")

    refused = engine.execute(rpm())

    assert refused.status is S.REJECTED
    assert deal_sends(sim) == []
    engine.resume(by="carol")
    assert engine.execute(rpm(decision_id="after")).status is S.FILLED


def test_reducing_shows_on_health_and_metrics(make_engine: EngineFactory) -> None:
    engine = make_engine()

    engine.reduce_only(reason="cut risk", by="alice")

    health = engine.health()
    assert (health["trading_state"], health["reducing_reason"]) == ("REDUCING", "cut risk")
    assert health["halted_reason"] is None
    registry = engine.metrics.registry
    for state, value in (("ACTIVE", 0.0), ("REDUCING", 1.0), ("HALTED", 0.0)):
        assert registry.get_sample_value("ee_trading_state", {"state": state}) == value
    assert registry.get_sample_value("ee_trading_halted") == 0.0
    assert engine.metrics.summary()["trading_state"] == "REDUCING"


def test_an_engine_that_was_reducing_boots_reducing(
    make_engine: EngineFactory, sim: SimulatedTerminal, database_url: str
) -> None:
    first = make_engine(database_url=database_url)
    first.reduce_only(reason="end of week", by="alice")
    first.stop()

    second = make_engine(database_url=database_url)

    assert second.switch.state is TradingState.REDUCING
    assert second.health()["reducing_reason"] == "end of week"
    record = second.trading_state()
    assert record is not None
    assert (record.state, record.changed_by, record.reason) == (
        "REDUCING",
        "alice",
        "end of week",
    )
    assert second.execute(rpm()).status is S.REJECTED
    assert deal_sends(sim) == []
    second.resume(by="carol", reason="new week")
    second.stop()

    third = make_engine(database_url=database_url)
    assert third.switch.state is TradingState.ACTIVE
    assert third.execute(rpm(decision_id="next")).status is S.FILLED
