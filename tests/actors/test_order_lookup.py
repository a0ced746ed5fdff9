"""OrderLookup without an actor, over the simulator: where an order stands, and which
terminal calls it took to say so (read from the simulator's call log). Orders are sent
through an `OrderSender` on the same link, the path the BrokerActor uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actors._broker_config import BrokerConfig
from actors._market_data import MarketData
from actors._order_lookup import OrderLookup
from actors._order_send import OrderSender
from actors._positions import PositionReads
from actors._send_ledger import SendLedger
from actors._terminal_link import TerminalLink
from actors._terminal_watch import TerminalWatch
from core.errors import ReconciliationError
from core.models import ExecutionRequest
from core.testing import ManualClock
from terminals.simulated import SimulatedTerminal

MAGIC = 770001


class Desk:
    def __init__(self, sim: SimulatedTerminal) -> None:
        clock = ManualClock(start=datetime.now(UTC))
        config = BrokerConfig(magic=MAGIC)
        self.link = TerminalLink(sim, config, TerminalWatch("the simulator", clock.monotonic))
        assert self.link.connect()
        ledger = SendLedger()
        positions = PositionReads(self.link, config.tick_window, clock.monotonic)
        market = MarketData(self.link, config, clock, positions)
        self.sender = OrderSender(self.link, config, clock, market, positions, ledger)
        self.lookup = OrderLookup(self.link, config, clock, ledger)

    def send(self, client_id: str, magic: int = MAGIC) -> int:
        outcome = self.sender.place_order(
            ExecutionRequest(
                request_id="req_1",
                execution_id="exec_1",
                client_id=client_id,
                symbol="EURUSD",
                direction=1,
                units=10_000,
                lots=0.1,
                intended_price=0.0,
                magic=magic,
                deviation_points=100,
                max_slippage_pips=10.0,
                timeout_seconds=5.0,
                max_retries=3,
            )
        )
        assert outcome.order
        return outcome.order


@pytest.fixture
def sim() -> SimulatedTerminal:
    return SimulatedTerminal(seed=7)


def names(sim: SimulatedTerminal) -> list[str]:
    return [r.name for r in sim.calls if r.name != "last_error"]


def test_a_filled_order_is_done_from_its_deals_alone(sim: SimulatedTerminal) -> None:
    desk = Desk(sim)
    ticket = desk.send("ee-filled")
    sim.reset_calls()

    finding = desk.lookup.query_order(ticket, 0.1)

    assert finding.done
    assert finding.filled_volume == pytest.approx(0.1)
    assert finding.vwap is not None
    assert len(finding.deals) == 1
    assert names(sim) == ["history_deals_get"]  # filled: no order book or history read


def test_an_unknown_ticket_is_not_found_after_every_place_was_looked_at(
    sim: SimulatedTerminal,
) -> None:
    desk = Desk(sim)
    sim.reset_calls()

    finding = desk.lookup.query_order(424242, 0.1)

    assert not finding.found
    assert not finding.done
    assert finding.filled_volume == 0
    assert finding.vwap is None
    assert names(sim) == ["history_deals_get", "orders_get", "history_orders_get"]


def test_our_client_ids_are_the_orders_with_our_magic(sim: SimulatedTerminal) -> None:
    desk = Desk(sim)
    ours = desk.send("ee-ours")
    desk.send("manual", magic=1234)

    found = desk.lookup.our_client_ids(datetime.now(UTC))

    assert found == {"ee-ours": ours}


def test_an_unreadable_history_is_an_error_not_an_absence(sim: SimulatedTerminal) -> None:
    desk = Desk(sim)
    sim.set_ipc_alive(False)

    with pytest.raises(ReconciliationError, match="history_orders_get failed"):
        desk.lookup.our_client_ids(datetime.now(UTC))
    with pytest.raises(ReconciliationError):
        desk.lookup.find_order(
            client_id="ee-x", symbol="EURUSD", direction=1, lots=0.1, since=datetime.now(UTC)
        )
