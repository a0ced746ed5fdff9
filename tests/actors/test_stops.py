"""Stop-loss and take-profit from the RPM, held at the broker: sent as sl/tp, checked first.

Through the facade on the simulated terminal: the stops reach the position the trade opens
and the journal; a stop on the wrong side of the quote or inside the symbol's stops level is
REJECTED with INVALID_STOPS and nothing is sent; a trade without stops is sent as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.enums import ExecutionStatus, RejectionReason
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm

S = ExecutionStatus
R = RejectionReason


def with_stops(message: dict[str, Any], **stops: float) -> dict[str, Any]:
    message["decision"]["approved_trade"].update(stops)
    return message


def deal_requests(sim: SimulatedTerminal) -> list[dict[str, Any]]:
    return [r for r in sim.sent_requests() if r.get("action") == sim.TRADE_ACTION_DEAL]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@pytest.mark.parametrize("direction", [1, -1])
def test_stops_are_sent_held_on_the_position_and_journaled(
    backend: str,
    direction: int,
    make_engine: EngineFactory,
    sim: SimulatedTerminal,
    request: pytest.FixtureRequest,
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    engine = make_engine(database_url=url)
    sim.set_price("EURUSD", 1.10000)
    # 500 points either side: far beyond the few points the quote walks meanwhile.
    loss, gain = (1.09500, 1.10500) if direction > 0 else (1.10500, 1.09500)

    confirmation = engine.execute(
        with_stops(rpm(direction=direction), stop_loss=loss, take_profit=gain)
    )

    assert confirmation.status is S.FILLED
    (sent,) = deal_requests(sim)
    assert (sent["sl"], sent["tp"]) == (loss, gain)
    (position,) = sim.positions_get(symbol="EURUSD") or ()
    assert (position.sl, position.tp) == (loss, gain)
    events = engine.repository.events_for(confirmation.execution_id)
    validated = next(e for e in events if e.event_type == "VALIDATED")
    assert (validated.payload["stop_loss"], validated.payload["take_profit"]) == (loss, gain)
    stored = engine.get_execution(confirmation.execution_id)
    assert stored.rpm_payload["decision"]["approved_trade"]["stop_loss"] == loss


def test_one_stop_alone_is_sent_alone(make_engine: EngineFactory, sim: SimulatedTerminal) -> None:
    engine = make_engine()
    sim.set_price("EURUSD", 1.10000)
    confirmation = engine.execute(with_stops(rpm(), take_profit=1.10500))
    assert confirmation.status is S.FILLED
    (sent,) = deal_requests(sim)
    assert sent["tp"] == 1.105
    assert "sl" not in sent
    (position,) = sim.positions_get() or ()
    assert (position.sl, position.tp) == (0.0, 1.105)


STOPS_REFUSED = [
    ("buy-sl-above-bid", "EURUSD", 1, 10000.0, {"stop_loss": 1.10500}, "stop_loss"),
    ("buy-tp-below-bid", "EURUSD", 1, 10000.0, {"take_profit": 1.09500}, "take_profit"),
    ("sell-sl-below-ask", "EURUSD", -1, 10000.0, {"stop_loss": 1.09500}, "stop_loss"),
    ("sell-tp-above-ask", "EURUSD", -1, 10000.0, {"take_profit": 1.10500}, "take_profit"),
    # XAUUSD keeps stops 50 points (0.50) away; 0.20 from the bid is inside.
    ("inside-stops-level", "XAUUSD", 1, 10.0, {"stop_loss": 2349.80}, "50 points"),
]


@pytest.mark.parametrize(
    ("case", "symbol", "direction", "units", "stops", "words"),
    STOPS_REFUSED,
    ids=[c[0] for c in STOPS_REFUSED],
)
def test_invalid_stops_are_rejected_with_nothing_sent(
    case: str,
    symbol: str,
    direction: int,
    units: float,
    stops: dict[str, float],
    words: str,
    make_engine: EngineFactory,
    sim: SimulatedTerminal,
) -> None:
    engine = make_engine()
    sim.set_price("EURUSD", 1.10000)
    sim.set_spread_points("XAUUSD", 3)  # within the engine's spread limit (a pip is a point)
    sim.set_price("XAUUSD", 2350.00)

    confirmation = engine.execute(
        with_stops(rpm(symbol=symbol, direction=direction, units=units), **stops)
    )

    assert confirmation.status is S.REJECTED
    assert confirmation.rejection_reason is R.INVALID_STOPS
    assert words in (confirmation.rejection_details or "")
    assert deal_requests(sim) == []
    assert sim.positions_get() == ()


def test_without_stops_the_request_is_as_before(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine()
    confirmation = engine.execute(rpm())
    assert confirmation.status is S.FILLED
    (sent,) = deal_requests(sim)
    assert "sl" not in sent
    assert "tp" not in sent
    (position,) = sim.positions_get() or ()
    assert (position.sl, position.tp) == (0.0, 0.0)
    events = engine.repository.events_for(confirmation.execution_id)
    validated = next(e for e in events if e.event_type == "VALIDATED")
    assert "stop_loss" not in validated.payload
