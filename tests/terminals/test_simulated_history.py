"""History, open orders and positions: filters, dates in server time, group masks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from terminals.simulated import SimulatedTerminal
from terminals.types import OrderSendResult
from tests.terminals import T0, FakeClock, deal, make_sim

OFFSET = 2 * 3600  # the default server_utc_offset_hours


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> SimulatedTerminal:
    return make_sim(clock)


def send(sim: SimulatedTerminal, request: dict[str, Any]) -> OrderSendResult:
    result = sim.order_send(request)
    assert result is not None, sim.last_error()
    assert result.retcode == 10009
    return result


def test_times_are_server_time(sim: SimulatedTerminal, clock: FakeClock) -> None:
    clock.advance(0.25)
    result = send(sim, deal())
    (order,) = sim.history_orders_get(ticket=result.order) or ()
    (fill,) = sim.history_deals_get(ticket=result.order) or ()
    (pos,) = sim.positions_get() or ()
    assert order.time_setup == fill.time == pos.time == T0 + OFFSET
    assert order.time_setup_msc == fill.time_msc == (T0 + OFFSET) * 1000 + 250


def test_date_range_is_inclusive_at_both_ends(sim: SimulatedTerminal) -> None:
    result = send(sim, deal())
    at = T0 + OFFSET
    assert [o.ticket for o in sim.history_orders_get(at, at) or ()] == [result.order]
    assert [d.order for d in sim.history_deals_get(at - 5, at) or ()] == [result.order]
    assert sim.history_orders_get(at + 1, at + 10) == ()
    assert sim.history_deals_get(at - 10, at - 1) == ()


def test_utc_ranges_miss_server_times(sim: SimulatedTerminal) -> None:
    # The engine's pitfall: a window in UTC around the send does not contain it.
    send(sim, deal())
    assert sim.history_orders_get(T0 - 60, T0 + 60) == ()
    assert len(sim.history_orders_get(T0 - 60, T0 + OFFSET + 60) or ()) == 1


def test_dates_as_datetimes(sim: SimulatedTerminal) -> None:
    send(sim, deal())
    server_now = datetime.fromtimestamp(T0 + OFFSET, tz=UTC)
    minute = timedelta(minutes=1)
    assert len(sim.history_orders_get(server_now - minute, server_now + minute) or ()) == 1
    naive = server_now.replace(tzinfo=None)  # read as UTC
    assert len(sim.history_deals_get(naive - minute, naive) or ()) == 1
    other_zone = server_now.astimezone(timezone(timedelta(hours=5)))
    assert len(sim.history_orders_get(other_zone, other_zone) or ()) == 1


def test_group_masks(sim: SimulatedTerminal) -> None:
    for symbol in ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD"):
        send(sim, deal(symbol))
    at = T0 + OFFSET

    def symbols(group: str) -> list[str]:
        return sorted(o.symbol for o in sim.history_orders_get(at, at, group=group) or ())

    assert symbols("*") == ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"]
    assert symbols("EURUSD") == ["EURUSD"]
    assert symbols("*USD*,!EUR*") == ["GBPUSD", "USDJPY", "XAUUSD"]
    assert symbols("*,!*USD") == ["USDJPY"]
    assert symbols("GBP*, XAU*") == ["GBPUSD", "XAUUSD"]
    assert symbols("!EUR*") == []
    assert [d.symbol for d in sim.history_deals_get(at, at, group="USD*") or ()] == ["USDJPY"]


def test_ticket_on_deals_is_the_order_ticket(sim: SimulatedTerminal) -> None:
    result = send(sim, deal())
    assert sim.history_deals_get(ticket=result.deal) == ()
    (fill,) = sim.history_deals_get(ticket=result.order) or ()
    assert fill.ticket == result.deal
    assert sim.history_orders_get(ticket=result.deal) == ()


def test_position_filter_gives_the_lineage(sim: SimulatedTerminal) -> None:
    opened = send(sim, deal(volume=0.2))
    send(sim, deal("GBPUSD"))
    closed = send(sim, deal(volume=0.2, sell=True, position=opened.order))
    orders = sim.history_orders_get(position=opened.order) or ()
    deals = sim.history_deals_get(position=opened.order) or ()
    assert [o.ticket for o in orders] == [opened.order, closed.order]
    assert [d.order for d in deals] == [opened.order, closed.order]


def test_ticket_wins_over_dates(sim: SimulatedTerminal) -> None:
    result = send(sim, deal())
    assert len(sim.history_orders_get(0, 1, ticket=result.order) or ()) == 1


def test_empty_history_is_an_empty_tuple(sim: SimulatedTerminal) -> None:
    assert sim.history_orders_get(0, T0 * 2) == ()
    assert sim.history_deals_get(position=123) == ()
    assert sim.last_error() == (1, "Success")


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((), {}, "Invalid arguments"),
        ((T0,), {}, "Invalid number of arguments"),
        (("yesterday", T0), {}, "Invalid 1st unnamed argument"),
        ((T0, None), {}, "Invalid 2nd unnamed argument"),
        ((T0, float("nan")), {}, "Invalid 2nd unnamed argument"),
        ((), {"ticket": "1"}, 'Invalid "ticket" argument'),
        ((), {"position": 1.0}, 'Invalid "position" argument'),
        ((0, T0), {"group": 5}, 'Invalid "group" argument'),
    ],
)
def test_history_argument_errors(
    sim: SimulatedTerminal, args: tuple[object, ...], kwargs: dict[str, object], error: str
) -> None:
    assert sim.history_orders_get(*args, **kwargs) is None
    assert sim.last_error() == (-2, error)
    assert sim.history_deals_get(*args, **kwargs) is None
    assert sim.last_error() == (-2, error)


def test_open_orders_and_positions_filters(sim: SimulatedTerminal) -> None:
    eur = send(sim, deal("EURUSD"))
    gbp = send(sim, deal("GBPUSD"))
    assert {p.symbol for p in sim.positions_get() or ()} == {"EURUSD", "GBPUSD"}
    assert [p.ticket for p in sim.positions_get(symbol="GBPUSD") or ()] == [gbp.order]
    assert [p.ticket for p in sim.positions_get(ticket=eur.order) or ()] == [eur.order]
    assert [p.symbol for p in sim.positions_get(group="*,!GBP*") or ()] == ["EURUSD"]
    assert sim.positions_get(symbol="USDJPY") == ()
    sim.inject("placed", fill_after_polls=-1)
    placed = sim.order_send(deal("USDJPY"))
    assert placed is not None
    assert [o.ticket for o in sim.orders_get() or ()] == [placed.order]
    assert [o.ticket for o in sim.orders_get(symbol="USDJPY") or ()] == [placed.order]
    assert sim.orders_get(group="EUR*") == ()
    assert sim.orders_get(ticket=eur.order) == ()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"symbol": 1}, 'Invalid "symbol" argument'),
        ({"ticket": "1"}, 'Invalid "ticket" argument'),
        ({"ticket": True}, 'Invalid "ticket" argument'),
        ({"group": ["EUR*"]}, 'Invalid "group" argument'),
    ],
)
def test_open_filter_argument_errors(
    sim: SimulatedTerminal, kwargs: dict[str, object], error: str
) -> None:
    assert sim.positions_get(**kwargs) is None
    assert sim.last_error() == (-2, error)
    assert sim.orders_get(**kwargs) is None
    assert sim.last_error() == (-2, error)


def test_snapshots_bypass_the_ipc_gate(sim: SimulatedTerminal) -> None:
    result = send(sim, deal())
    sim.set_ipc_alive(False)
    assert [o.ticket for o in sim.history_orders_snapshot()] == [result.order]
    assert [d.ticket for d in sim.history_deals_snapshot()] == [result.deal]
    assert [p.ticket for p in sim.positions_snapshot()] == [result.order]
    assert sim.open_orders_snapshot() == ()
    assert [o.ticket for o in sim.orders_for_magic(4242)] == [result.order]
    assert sim.orders_for_magic(1) == ()
