"""Flatten: every owned position closed by its ticket through the normal pipeline, journaled
with who and why, idempotent, never doubled after an ambiguous send, and halt-and-flatten."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from actors.facade import ExecutionFacade
from core.enums import ExecutionStatus, TradingState
from core.errors import TradingHaltedError
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.actors.test_kill_switch import deal_sends
from tests.helpers import eventually

S = ExecutionStatus
ALL_TIME = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def open_book(engine: ExecutionFacade) -> None:
    """Three positions of the engine on a hedging account: two EURUSD buys, a USDJPY sell."""
    for n, (symbol, direction, units) in enumerate(
        (("EURUSD", 1, 100_000), ("EURUSD", 1, 50_000), ("USDJPY", -1, 30_000))
    ):
        done = engine.execute(rpm(f"open-{n}", symbol=symbol, direction=direction, units=units))
        assert done.status is S.FILLED, done


def positions(sim: SimulatedTerminal, magic: int | None = None) -> list[Any]:
    return [p for p in sim.positions_get() or () if magic is None or p.magic == magic]


def closes_per_ticket(sim: SimulatedTerminal) -> Counter[int]:
    """How many sends closed each position ticket (a close by ticket names `position`)."""
    return Counter(
        int(record.args[0]["position"])
        for record in deal_sends(sim)
        if record.args[0].get("position")
    )


def events(engine: ExecutionFacade, event_type: str) -> list[dict[str, Any]]:
    return [
        e.payload for e in engine.repository.audit_events(*ALL_TIME) if e.event_type == event_type
    ]


def test_flatten_closes_the_engines_positions_once_and_a_second_flatten_sends_nothing(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    open_book(engine)
    foreign = sim.order_send(
        {
            "action": sim.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.2,
            "type": sim.ORDER_TYPE_BUY,
            "price": sim.symbol_info_tick("EURUSD").ask,
            "magic": 1,
        }
    )
    assert foreign.retcode == sim.TRADE_RETCODE_DONE
    owned = {p.ticket for p in positions(sim, engine.settings.magic)}
    assert len(owned) == 3

    report = engine.flatten(reason="end of day", by="alice")

    assert report["positions_found"] == 3
    assert report["positions_closed"] == 3
    assert report["volume_closed"] == pytest.approx(1.0 + 0.5 + 0.3)
    assert report["realized_profit"] is not None
    assert {e["position_ticket"] for e in report["executions"]} == owned
    assert all(e["status"] == "FILLED" for e in report["executions"])
    assert positions(sim, engine.settings.magic) == []
    assert [p.magic for p in positions(sim)] == [1]  # not the engine's: left alone
    assert set(closes_per_ticket(sim)) == owned
    assert set(closes_per_ticket(sim).values()) == {1}
    (journaled,) = events(engine, "FLATTEN")
    assert (journaled["by"], journaled["reason"]) == ("alice", "end of day")
    assert {e["execution_id"] for e in journaled["executions"]} == {
        e["execution_id"] for e in report["executions"]
    }
    sends = len(deal_sends(sim))

    again = engine.flatten(reason="end of day", by="alice")

    assert (again["positions_found"], again["executions"]) == (0, [])
    assert len(deal_sends(sim)) == sends


def test_flatten_of_one_symbol_leaves_the_others(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    open_book(engine)

    report = engine.flatten("EURUSD", reason="news", by="bob")

    assert report["positions_closed"] == 2
    assert [p.symbol for p in positions(sim, engine.settings.magic)] == ["USDJPY"]


def test_a_timed_out_close_is_reconciled_never_doubled(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    open_book(engine)
    sim.inject("timeout_executed", symbol="EURUSD")  # the close executes, its answer is lost
    sim.inject("timeout_not_executed", symbol="USDJPY")  # nothing executes

    first = engine.flatten(reason="risk", by="alice")
    second = engine.flatten(reason="risk again", by="alice")
    eventually(lambda: not engine.repository.non_final(), timeout=10, what="all settled")
    third = engine.flatten(reason="after recovery", by="alice")

    assert positions(sim, engine.settings.magic) == []
    assert all(count == 1 for count in _filled_closes(engine).values()), _filled_closes(engine)
    assert first["positions_found"] == 3
    assert second["positions_found"] + third["positions_found"] <= 2


def test_halt_with_flatten_closes_then_halts_and_refuses_new_trades(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    open_book(engine)

    report = engine.halt("stop everything", by="alice", flatten=True)

    assert report is not None
    assert report["positions_closed"] == 3
    assert positions(sim, engine.settings.magic) == []
    assert engine.switch.state is TradingState.HALTED
    states = [p["trading_state"]["state"] for p in events(engine, "TRADING_STATE_CHANGED")]
    assert states[-2:] == ["REDUCING", "HALTED"]
    with pytest.raises(TradingHaltedError):
        engine.flatten(reason="again", by="alice")
    with pytest.raises(TradingHaltedError):
        engine.halt("again", by="alice", flatten=True)
    assert engine.execute(rpm("after-halt")).status is S.REJECTED


def test_flatten_works_while_reducing(make_engine: EngineFactory, sim: SimulatedTerminal) -> None:
    engine = make_engine()
    open_book(engine)
    engine.reduce_only(reason="drawdown", by="alice")

    report = engine.flatten(reason="drawdown", by="alice")

    assert report["positions_closed"] == 3
    assert positions(sim, engine.settings.magic) == []


def _filled_closes(engine: ExecutionFacade) -> Counter[int]:
    """Closing legs that filled, per position ticket."""
    found: Counter[int] = Counter()
    for record in engine.get_execution_history(limit=100):
        for leg in record.legs:
            if leg.position_ticket is not None and leg.filled_volume > 0:
                found[leg.position_ticket] += 1
    return found
