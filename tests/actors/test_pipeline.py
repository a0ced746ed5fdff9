"""End-to-end executions through the facade, asserted from what reached the terminal."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from core.enums import ExecutionStatus, RejectionReason
from core.errors import IdempotencyConflictError
from core.testing import ManualClock
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm

S = ExecutionStatus
R = RejectionReason


def deal_requests(sim: SimulatedTerminal) -> list[dict[str, Any]]:
    """Every TRADE_ACTION_DEAL request that reached order_send (accepted or not)."""
    return [r for r in sim.sent_requests() if r.get("action") == sim.TRADE_ACTION_DEAL]


def deals_for(sim: SimulatedTerminal, order: int) -> tuple[Any, ...]:
    deals: tuple[Any, ...] = sim.history_deals_get(ticket=order)
    return deals


# --- the seeds' example --------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_seeds_example_eurusd_buy_95000_units_is_095_lots_and_fills(
    backend: str, make_engine: EngineFactory, sim: SimulatedTerminal, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    engine = make_engine(database_url=url)

    confirmation = engine.execute(rpm(units=95000, intended_price=1.0945))

    sent = deal_requests(sim)
    assert len(sent) == 1
    assert sent[0]["volume"] == 0.95
    assert sent[0]["type"] == sim.ORDER_TYPE_BUY
    assert confirmation.status is S.FILLED
    assert confirmation.executed_units == 95000
    assert confirmation.intended_units == 95000
    deals = deals_for(sim, confirmation.order_id or 0)
    assert sum(d.volume for d in deals) == pytest.approx(0.95)
    fill = deals[0].price
    assert confirmation.fill_price == pytest.approx(fill)
    # Buy: paying above the intended price is adverse, hence positive; EURUSD pip = 0.0001.
    assert confirmation.slippage_pips == pytest.approx((fill - 1.0945) / 0.0001, abs=1e-6)
    stored = engine.get_execution(confirmation.execution_id)
    assert stored.status is S.FILLED
    assert stored.rpm_payload["decision"]["approved_trade"]["stop_loss_pips"] == 25


def test_usdjpy_sell_uses_a_pip_of_001(make_engine: EngineFactory, sim: SimulatedTerminal) -> None:
    engine = make_engine()

    confirmation = engine.execute(rpm(symbol="USDJPY", direction=-1, units=120000))

    sent = deal_requests(sim)
    assert [r["volume"] for r in sent] == [1.2]
    assert sent[0]["type"] == sim.ORDER_TYPE_SELL
    assert confirmation.status is S.FILLED
    assert confirmation.executed_units == 120000
    fill = deals_for(sim, confirmation.order_id or 0)[0].price
    intended = engine.get_execution(confirmation.execution_id).intended_price
    assert intended is not None
    # Sell: receiving less than intended is adverse; a JPY pip is 0.01 (3-digit quote).
    assert confirmation.slippage_pips == pytest.approx((intended - fill) / 0.01, abs=1e-6)


# --- rejections: each reason reachable, none sends a trade request -----------------------


def _halt_portfolio(sim: SimulatedTerminal) -> dict[str, Any]:
    return rpm(halted=True)


REJECTIONS: list[tuple[str, R, Any]] = [
    ("not-approved", R.RPM_NOT_APPROVED, lambda sim: rpm(status="REJECTED")),
    ("portfolio-halted", R.TRADING_HALTED, _halt_portfolio),
    ("unknown-symbol", R.SYMBOL_NOT_TRADABLE, lambda sim: rpm(symbol="NOPE")),
    (
        "trade-disabled",
        R.SYMBOL_NOT_TRADABLE,
        lambda sim: (sim.set_symbol("EURUSD", trade_mode=sim.SYMBOL_TRADE_MODE_DISABLED), rpm())[1],
    ),
    (
        "long-only-sell",
        R.SYMBOL_NOT_TRADABLE,
        lambda sim: (
            sim.set_symbol("EURUSD", trade_mode=sim.SYMBOL_TRADE_MODE_LONGONLY),
            rpm(direction=-1),
        )[1],
    ),
    (
        "market-closed",
        R.MARKET_CLOSED,
        lambda sim: (sim.set_market_closed("EURUSD", True), rpm())[1],
    ),
    (
        "spread",
        R.SPREAD_TOO_WIDE,
        lambda sim: (sim.set_spread_points("EURUSD", 500), rpm())[1],
    ),
    ("volume-step", R.INVALID_VOLUME, lambda sim: rpm(units=95001)),
    ("volume-min", R.INVALID_VOLUME, lambda sim: rpm(units=500)),
    ("volume-max", R.INVALID_VOLUME, lambda sim: rpm(units=100_000_000)),
    (
        "margin",
        R.MARGIN_INSUFFICIENT,
        lambda sim: (sim.set_account(balance=100.0), rpm())[1],
    ),
    (
        "autotrading-off",
        R.TERMINAL_NOT_READY,
        lambda sim: (sim.set_trade_allowed(False), rpm())[1],
    ),
    (
        "disconnected",
        R.TERMINAL_NOT_READY,
        lambda sim: (sim.set_connected(False), rpm())[1],
    ),
    (
        "expert-off",
        R.TERMINAL_NOT_READY,
        lambda sim: (sim.set_account(trade_expert=False), rpm())[1],
    ),
]


@pytest.mark.parametrize(("case", "reason", "arrange"), REJECTIONS, ids=[c[0] for c in REJECTIONS])
def test_every_rejection_reason_is_reached_without_a_trade_request(
    case: str, reason: R, arrange: Any, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    message = arrange(sim)

    confirmation = engine.execute(message)

    assert confirmation.status is S.REJECTED
    assert confirmation.rejection_reason is reason
    assert confirmation.rejection_details
    assert deal_requests(sim) == []
    events = engine.repository.events_for(confirmation.execution_id)
    assert events[-1].event_type == "EXECUTION_REJECTED"


def test_engine_halt_rejects_with_trading_halted(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    engine.halt("risk officer says stop", by="test")

    confirmation = engine.execute(rpm())

    assert confirmation.rejection_reason is R.TRADING_HALTED
    assert deal_requests(sim) == []


def test_stale_tick_is_no_market_data(make_engine: EngineFactory, sim: SimulatedTerminal) -> None:
    clock = ManualClock()
    engine = make_engine(clock=clock, max_tick_age_seconds=10)
    sim.freeze_ticks("EURUSD", True)
    engine.broker.proxy().preflight("EURUSD").get()  # the engine first sees this tick now
    clock.advance(11)

    confirmation = engine.execute(rpm())

    assert confirmation.rejection_reason is R.NO_MARKET_DATA
    assert "old" in (confirmation.rejection_details or "")
    assert deal_requests(sim) == []


def test_invalid_rpm_messages_are_refused_naming_the_field(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    bad = rpm()
    bad["decision"]["approved_trade"]["position_units"] = -5
    refused = engine.execute(bad)
    assert (refused.status, refused.rejection_reason) == (S.REJECTED, R.INVALID_INPUT)
    assert "decision.approved_trade.position_units" in (refused.rejection_details or "")
    assert sim.sent_requests() == []


# --- idempotency ---------------------------------------------------------------------------


def test_repeat_returns_the_same_execution_and_sends_nothing(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    first = engine.execute(rpm())
    second = engine.execute(rpm())
    assert second.execution_id == first.execution_id
    assert len(deal_requests(sim)) == 1


def test_same_decision_id_with_another_payload_is_a_conflict(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.execute(rpm(units=95000))
    with pytest.raises(IdempotencyConflictError):
        engine.execute(rpm(units=96000))


def test_repeat_after_restart_is_answered_from_the_database(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    first_engine = make_engine()
    first = first_engine.execute(rpm())
    first_engine.stop()
    second_engine = make_engine()
    again = second_engine.execute(rpm())
    assert again.execution_id == first.execution_id
    assert again.status is S.FILLED
    assert len(deal_requests(sim)) == 1


def test_100_concurrent_submits_with_one_decision_id_make_one_order(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    barrier = threading.Barrier(100)

    def submit(_: int) -> str:
        barrier.wait()
        return engine.submit(rpm(decision_id="same")).get(timeout=30).execution_id

    with ThreadPoolExecutor(max_workers=100) as pool:
        ids = set(pool.map(submit, range(100)))

    assert len(ids) == 1
    assert len(deal_requests(sim)) == 1
    assert len(engine.get_execution_history(limit=500)) == 1


@pytest.mark.parametrize("status", ["HOLD", "REJECTED"])
def test_a_decision_without_a_trade_is_recorded_as_not_approved(
    status: str, make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()

    confirmation = engine.execute({"decision": {"status": status, "decision_id": "no-trade"}})

    assert confirmation.status is S.REJECTED
    assert confirmation.rejection_reason is R.RPM_NOT_APPROVED
    assert sim.sent_requests() == []
    assert engine.trading_state() is None or engine.trading_state().state == "ACTIVE"
