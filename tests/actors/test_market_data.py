"""MarketData without an actor: its caches and what it learns, over the simulator and a
manual clock (the cache windows move only when the test advances the clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actors._broker_config import BrokerConfig
from actors._market_data import MarketData
from actors._positions import PositionReads
from actors._terminal_link import TerminalLink
from actors._terminal_watch import TerminalWatch
from core.testing import ManualClock
from terminals.simulated import SimulatedTerminal


@pytest.fixture
def sim() -> SimulatedTerminal:
    return SimulatedTerminal(seed=7)


def market_over(sim: SimulatedTerminal) -> tuple[MarketData, TerminalLink, ManualClock]:
    clock = ManualClock(start=datetime.now(UTC))
    config = BrokerConfig()
    link = TerminalLink(sim, config, TerminalWatch("the simulator", clock.monotonic))
    market = MarketData(
        link, config, clock, PositionReads(link, config.tick_window, clock.monotonic)
    )
    assert link.connect()
    return market, link, clock


def count(sim: SimulatedTerminal, name: str) -> int:
    return sum(1 for r in sim.calls if r.name == name)


def test_a_spec_is_read_once_per_connection(sim: SimulatedTerminal) -> None:
    market, link, _ = market_over(sim)

    first, _ = market.spec("EURUSD")
    again, _ = market.spec("EURUSD")
    assert first is again
    assert count(sim, "symbol_info") == 1

    link.connected = False
    assert link.connect()  # a new connection may be a new terminal
    market.spec("EURUSD")
    assert count(sim, "symbol_info") == 2


def test_an_unknown_symbol_is_no_spec_and_says_why(sim: SimulatedTerminal) -> None:
    market, _, _ = market_over(sim)

    spec, why = market.spec("NOSUCH")

    assert spec is None
    assert "'NOSUCH' is unknown to the terminal" in why


def test_a_send_that_met_market_closed_keeps_the_symbol_closed_for_the_back_off(
    sim: SimulatedTerminal,
) -> None:
    market, _, clock = market_over(sim)
    assert not market.preflight("EURUSD").market_closed
    probes = count(sim, "order_check")

    market.mark_closed("EURUSD")

    assert market.preflight("EURUSD").market_closed
    assert count(sim, "order_check") == probes  # known closed: no probe
    clock.advance(60.5)
    assert not market.preflight("EURUSD").market_closed  # probed again, and found open
    assert count(sim, "order_check") == probes + 1


def test_quotes_are_coalesced_within_their_window(sim: SimulatedTerminal) -> None:
    market, _, clock = market_over(sim)

    market.quote("EURUSD")
    market.quote("EURUSD")
    assert count(sim, "symbol_info_tick") == 1
    clock.advance(0.06)  # past tick_window (0.05 s)
    market.quote("EURUSD", window=0.5)  # a send on a Market execution symbol: still fresh
    assert count(sim, "symbol_info_tick") == 1
    market.quote("EURUSD")
    assert count(sim, "symbol_info_tick") == 2
