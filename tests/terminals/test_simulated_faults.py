"""Fault injection of the simulated terminal: every kind, its retcode and what executed."""

from __future__ import annotations

from typing import Any

import pytest

from terminals import constants as c
from terminals.simulated import SimulatedTerminal
from terminals.types import OrderSendResult
from tests.terminals import deal, make_sim


@pytest.fixture
def sim() -> SimulatedTerminal:
    return make_sim()


def send(sim: SimulatedTerminal, request: dict[str, Any]) -> OrderSendResult:
    result = sim.order_send(request)
    assert result is not None, sim.last_error()
    return result


def executed(sim: SimulatedTerminal) -> int:
    """How many market orders reached a fill."""
    return len(sim.history_deals_snapshot())


# -- rejections: nothing executes -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code", "fresh_prices"),
    [
        ("requote", 10004, True),
        ("price_changed", 10020, True),
        ("price_off", 10021, True),
        ("reject", 10006, False),
        ("too_many_requests", 10024, False),
        ("market_closed", 10018, False),
        ("invalid_fill", 10030, False),
        ("no_money", 10019, False),
        ("connection", 10031, False),
        ("timeout_not_executed", 10012, False),
    ],
)
def test_rejecting_faults(sim: SimulatedTerminal, kind: str, code: int, fresh_prices: bool) -> None:
    tick = sim.symbol_info_tick("EURUSD")
    assert tick is not None
    sim.inject(kind)
    result = send(sim, deal())
    assert (result.retcode, result.deal, result.order, result.volume) == (code, 0, 0, 0.0)
    assert result.request_id > 0, "the request reached the server"
    expected = (tick.bid, tick.ask) if fresh_prices else (0.0, 0.0)
    assert (result.bid, result.ask) == expected
    assert sim.history_orders_snapshot() == ()
    assert sim.positions_get() == ()
    assert send(sim, deal()).retcode == 10009, "used once, then gone"


def test_times_counts_sends(sim: SimulatedTerminal) -> None:
    sim.inject("requote", times=2)
    assert sim.pending_faults() == [{"kind": "requote", "remaining": 2, "symbol": None}]
    assert [send(sim, deal()).retcode for _ in range(3)] == [10004, 10004, 10009]
    assert sim.pending_faults() == []


def test_faults_for_one_symbol(sim: SimulatedTerminal) -> None:
    sim.inject("reject", symbol="GBPUSD")
    assert send(sim, deal("EURUSD")).retcode == 10009
    assert send(sim, deal("GBPUSD")).retcode == 10006


def test_faults_are_used_in_order(sim: SimulatedTerminal) -> None:
    sim.inject("requote")
    sim.inject("reject")
    assert [send(sim, deal()).retcode for _ in range(3)] == [10004, 10006, 10009]


def test_invalid_requests_do_not_use_a_fault(sim: SimulatedTerminal) -> None:
    sim.inject("requote")
    assert send(sim, deal(volume=0.001)).retcode == 10014
    assert sim.order_send(deal(comment="x" * 40)) is None
    check = sim.order_check(deal())
    assert check is not None
    assert check.retcode == 0
    assert send(sim, deal()).retcode == 10004


def test_local_rejects_do_not_use_a_fault(sim: SimulatedTerminal) -> None:
    sim.inject("reject")
    sim.set_trade_allowed(False)
    assert send(sim, deal()).retcode == 10027
    sim.set_trade_allowed(True)
    assert send(sim, deal()).retcode == 10006


def test_clear_faults(sim: SimulatedTerminal) -> None:
    sim.inject("reject", times=5)
    sim.clear_faults()
    assert send(sim, deal()).retcode == 10009


@pytest.mark.parametrize(
    ("args", "params"),
    [
        (("nope",), {}),
        (("reject", 0), {}),
        (("reject", 1, "NOPE"), {}),
        (("reject",), {"ratio": 0.5}),
        (("partial",), {"ratio": 1.0}),
        (("partial",), {"ratio": "half"}),
        (("placed",), {"fill_after_polls": -2}),
        (("placed",), {"fill_after_polls": 1.5}),
    ],
)
def test_inject_validates(
    sim: SimulatedTerminal, args: tuple[object, ...], params: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match=r"."):
        sim.inject(*args, **params)  # type: ignore[arg-type]
    assert sim.pending_faults() == []


# -- ambiguous outcomes -----------------------------------------------------------------


def test_timeout_executed(sim: SimulatedTerminal) -> None:
    sim.inject("timeout_executed")
    result = send(sim, deal(comment="client-7"))
    assert (result.retcode, result.deal, result.order) == (10012, 0, 0)
    assert result.comment == "Request canceled by timeout"
    (order,) = sim.orders_for_magic(4242)
    assert (order.state, order.comment) == (c.ORDER_STATE_FILLED, "client-7")
    (position,) = sim.positions_get(symbol="EURUSD") or ()
    assert position.identifier == order.ticket
    assert len(sim.history_deals_get(ticket=order.ticket) or ()) == 1


def test_none_executed(sim: SimulatedTerminal) -> None:
    sim.inject("none_executed")
    assert sim.order_send(deal()) is None
    assert sim.last_error() == (-10002, "IPC recv failed")
    assert executed(sim) == 1
    assert len(sim.positions_get() or ()) == 1, "the link survives: the next call answers"


def test_none_not_executed(sim: SimulatedTerminal) -> None:
    sim.inject("none_not_executed")
    assert sim.order_send(deal()) is None
    assert sim.last_error() == (-10001, "IPC send failed")
    assert sim.history_orders_snapshot() == ()
    assert len(sim.sent_requests()) == 1


def test_connection_fault_differs_from_a_disconnected_terminal(sim: SimulatedTerminal) -> None:
    sim.inject("connection")
    assert send(sim, deal()).request_id == 1
    sim.set_connected(False)
    assert send(sim, deal()).request_id == 0


# -- partial fills ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("volume", "ratio", "filled"),
    [(0.3, None, 0.15), (0.25, 0.5, 0.12), (1.0, 0.33, 0.33), (0.01, 0.5, 0.01)],
)
def test_partial(sim: SimulatedTerminal, volume: float, ratio: float | None, filled: float) -> None:
    if ratio is None:
        sim.inject("partial")
    else:
        sim.inject("partial", ratio=ratio)
    result = send(sim, deal(volume=volume))
    assert (result.retcode, result.volume) == (10010, filled)
    assert result.comment == "Request executed partially"
    assert result.deal > 0
    (order,) = sim.history_orders_get(ticket=result.order) or ()
    expected_state = c.ORDER_STATE_PARTIAL if filled < volume else c.ORDER_STATE_FILLED
    assert order.state == expected_state
    assert (order.volume_initial, order.volume_current) == (volume, round(volume - filled, 8))
    deals = sim.history_deals_get(ticket=result.order) or ()
    assert sum(d.volume for d in deals) == filled
    assert sim.orders_get() == (), "the rest is cancelled, not left open"


def test_partial_snaps_to_the_symbol_step(sim: SimulatedTerminal) -> None:
    sim.inject("partial", ratio=0.5)
    result = send(sim, deal("US500", 0.5, type_filling=c.ORDER_FILLING_IOC))
    assert result.volume == 0.2


# -- late fills -------------------------------------------------------------------------


def test_placed_fills_after_n_polls(sim: SimulatedTerminal) -> None:
    sim.inject("placed", fill_after_polls=3)
    result = send(sim, deal(volume=0.2))
    assert (result.retcode, result.deal, result.volume) == (10008, 0, 0.2)
    assert result.order > 0
    assert result.comment == "Order placed"
    (open_order,) = sim.orders_get(ticket=result.order) or ()
    assert open_order.state == c.ORDER_STATE_PLACED
    assert sim.positions_get() == ()
    states = []
    for _ in range(3):
        (order,) = sim.history_orders_get(ticket=result.order) or ()
        states.append(order.state)
    assert states == [c.ORDER_STATE_PLACED] * 3
    assert executed(sim) == 0
    (order,) = sim.history_orders_get(ticket=result.order) or ()
    assert order.state == c.ORDER_STATE_FILLED
    (fill,) = sim.history_deals_get(ticket=result.order) or ()
    assert (fill.volume, fill.position_id) == (0.2, result.order)
    assert sim.orders_get(ticket=result.order) == ()
    assert len(sim.positions_get() or ()) == 1


def test_every_history_query_on_the_order_is_a_poll(sim: SimulatedTerminal) -> None:
    sim.inject("placed", fill_after_polls=2)
    order = send(sim, deal()).order
    assert sim.history_deals_get(ticket=order) == ()
    now = sim.server_time()
    (seen,) = sim.history_orders_get(now - 60, now + 60, group="EUR*") or ()
    assert seen.state == c.ORDER_STATE_PLACED
    assert sim.history_orders_get(now - 60, now + 60, group="GBP*") == (), "not this order"
    assert sim.orders_get(ticket=order) != (), "orders_get is not a history poll"
    assert len(sim.history_deals_get(ticket=order) or ()) == 1


def test_placed_default_is_three_polls(sim: SimulatedTerminal) -> None:
    sim.inject("placed")
    assert sim.pending_faults()[0]["fill_after_polls"] == 3
    order = send(sim, deal()).order
    counts = [len(sim.history_deals_get(ticket=order) or ()) for _ in range(4)]
    assert counts == [0, 0, 0, 1]


def test_placed_that_never_fills_can_be_removed(sim: SimulatedTerminal) -> None:
    sim.inject("placed", fill_after_polls=-1)
    order = send(sim, deal()).order
    for _ in range(20):
        (seen,) = sim.history_orders_get(ticket=order) or ()
        assert seen.state == c.ORDER_STATE_PLACED
    removed = send(sim, {"action": c.TRADE_ACTION_REMOVE, "order": order})
    assert (removed.retcode, removed.order, removed.deal) == (10009, order, 0)
    (seen,) = sim.history_orders_get(ticket=order) or ()
    assert seen.state == c.ORDER_STATE_CANCELED
    assert seen.time_done > 0
    assert (seen.volume_initial, seen.volume_current) == (0.1, 0.1)
    assert sim.orders_get() == ()
    assert sim.history_deals_get(ticket=order) == ()
    again = send(sim, {"action": c.TRADE_ACTION_REMOVE, "order": order})
    assert again.retcode == 10013


def test_remove_of_a_filled_order_fails(sim: SimulatedTerminal) -> None:
    order = send(sim, deal()).order
    assert send(sim, {"action": c.TRADE_ACTION_REMOVE, "order": order}).retcode == 10013
    check = sim.order_check({"action": c.TRADE_ACTION_REMOVE, "order": order})
    assert check is not None
    assert check.retcode == 10013


def test_remove_is_checked_and_not_faulted(sim: SimulatedTerminal) -> None:
    sim.inject("placed", fill_after_polls=-1)
    order = send(sim, deal()).order
    check = sim.order_check({"action": c.TRADE_ACTION_REMOVE, "order": order})
    assert check is not None
    assert check.retcode == 0
    sim.inject("reject")
    assert send(sim, {"action": c.TRADE_ACTION_REMOVE, "order": order}).retcode == 10009
    assert sim.pending_faults() != [], "REMOVE does not use DEAL faults"


def test_done_without_deal_shows_the_deal_at_once(sim: SimulatedTerminal) -> None:
    sim.inject("done_no_deal")
    result = send(sim, deal())
    assert (result.retcode, result.deal) == (10009, 0)
    assert result.order > 0
    (fill,) = sim.history_deals_get(ticket=result.order) or ()
    assert fill.order == result.order


def test_done_without_deal_shows_the_deal_later(sim: SimulatedTerminal) -> None:
    sim.inject("done_no_deal", fill_after_polls=2)
    result = send(sim, deal())
    assert (result.retcode, result.deal) == (10009, 0)
    counts = [len(sim.history_deals_get(ticket=result.order) or ()) for _ in range(3)]
    assert counts == [0, 0, 1]
