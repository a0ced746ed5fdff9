"""OrderActor outcomes driven by the simulated terminal's fault injection."""

from __future__ import annotations

from typing import Any

import pytest

from core.enums import ExecutionStatus, RejectionReason
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm

S = ExecutionStatus
R = RejectionReason


def deal_requests(sim: SimulatedTerminal) -> list[dict[str, Any]]:
    return [r for r in sim.sent_requests() if r.get("action") == sim.TRADE_ACTION_DEAL]


def our_orders(sim: SimulatedTerminal, magic: int = 770001) -> list[Any]:
    """Every order with our magic the terminal knows: working and in history."""
    return [o for o in sim.history_orders_snapshot() if o.magic == magic]


# --- ambiguous outcomes: reconciled, never resent ------------------------------------------


@pytest.mark.parametrize("kind", ["timeout_executed", "none_executed"])
def test_ambiguous_send_that_executed_is_filled_once(
    kind: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject(kind)

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.FILLED
    assert confirmation.executed_units == 95000
    assert len(deal_requests(sim)) == 1
    assert len(our_orders(sim)) == 1
    events = [e.event_type for e in engine.repository.events_for(confirmation.execution_id)]
    assert "SEND_AMBIGUOUS" in events
    assert "RECONCILED_FOUND" in events


@pytest.mark.parametrize("kind", ["timeout_not_executed", "none_not_executed", "connection"])
def test_ambiguous_send_that_did_not_execute_is_not_sent(
    kind: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject(kind)

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.REJECTED
    assert confirmation.rejection_reason is R.NOT_SENT
    assert len(deal_requests(sim)) == 1
    assert our_orders(sim) == []


# --- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["requote", "price_changed", "price_off", "too_many_requests"])
def test_retryable_rejection_is_retried_and_fills(
    kind: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(max_retries=3)
    sim.inject(kind, times=2)

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.FILLED
    assert len(deal_requests(sim)) == 3
    assert len(our_orders(sim)) == 1


def test_retries_stop_at_max_retries(make_engine: EngineFactory, sim: SimulatedTerminal) -> None:
    engine = make_engine(max_retries=2)
    sim.inject("requote", times=10)

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.REJECTED
    assert confirmation.rejection_reason is R.RETRIES_EXHAUSTED
    assert len(deal_requests(sim)) == 3  # the first send and two retries


def test_final_broker_rejection_is_not_retried(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject("reject")

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.REJECTED
    assert confirmation.rejection_reason is R.BROKER_REJECTED
    assert "10006" in (confirmation.rejection_details or "") or "REJECT" in (
        confirmation.rejection_details or ""
    )
    assert len(deal_requests(sim)) == 1


def test_invalid_fill_is_retried_once_with_the_next_filling_mode(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject("invalid_fill")

    confirmation = engine.execute(rpm())

    sent = deal_requests(sim)
    assert confirmation.status is S.FILLED
    assert len(sent) == 2
    assert sent[0]["type_filling"] != sent[1]["type_filling"]


def test_ioc_only_index_is_sent_with_ioc(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    index = next(name for name in ("US500", "USTEC", "US30") if sim.symbol_info(name) is not None)
    info = sim.symbol_info(index)
    units = info.volume_step * 3 * info.trade_contract_size

    confirmation = engine.execute(rpm(symbol=index, units=units))

    assert confirmation.status is S.FILLED
    assert deal_requests(sim)[0]["type_filling"] == sim.ORDER_FILLING_IOC


# --- monitoring: placed orders, partial fills, timeouts ------------------------------------


def test_placed_order_fills_after_a_few_polls(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject("placed", fill_after_polls=3)

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.FILLED
    assert confirmation.executed_units == 95000
    assert len(deal_requests(sim)) == 1
    events = [e.event_type for e in engine.repository.events_for(confirmation.execution_id)]
    assert events.index("ORDER_ACCEPTED") < events.index("EXECUTION_FILLED")


def test_partial_fill_is_accepted_by_default(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    sim.inject("partial", ratio=0.5)

    confirmation = engine.execute(rpm(units=100000))

    assert confirmation.status is S.PARTIALLY_FILLED
    assert confirmation.executed_units == 50000
    assert len(deal_requests(sim)) == 1
    stored = engine.get_execution(confirmation.execution_id)
    assert stored.executed_lots == pytest.approx(0.5)


def test_partial_fill_is_completed_under_the_complete_policy(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(partial_fill_policy="complete")
    sim.inject("partial", ratio=0.5)

    confirmation = engine.execute(rpm(units=100000))

    sent = deal_requests(sim)
    assert confirmation.status is S.FILLED
    assert confirmation.executed_units == 100000
    assert [r["volume"] for r in sent] == [1.0, 0.5]
    assert len({r["comment"] for r in sent}) == 1


def test_timeout_removes_the_order_and_expires(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(order_timeout_seconds=0.3)
    sim.inject("placed", fill_after_polls=-1)

    confirmation = engine.execute(rpm())

    assert confirmation.status is S.EXPIRED
    assert confirmation.rejection_reason is R.ORDER_TIMEOUT
    removes = [r for r in sim.sent_requests() if r.get("action") == sim.TRADE_ACTION_REMOVE]
    assert len(removes) == 1
    assert sim.orders_get() in ((), None) or all(o.magic != 770001 for o in sim.orders_get())
