"""order_send / order_check / order_calc_margin of the simulated terminal: the server's rules."""

from __future__ import annotations

from typing import Any

import pytest

from terminals import constants as c
from terminals.simulated import SimulatedTerminal
from terminals.types import AccountInfo, OrderSendResult, TradeRequest
from tests.terminals import deal, make_sim


@pytest.fixture
def sim() -> SimulatedTerminal:
    return make_sim()


def send(sim: SimulatedTerminal, request: dict[str, Any]) -> OrderSendResult:
    result = sim.order_send(request)
    assert result is not None, sim.last_error()
    return result


def account(sim: SimulatedTerminal) -> AccountInfo:
    info = sim.account_info()
    assert info is not None, sim.last_error()
    return info


def retcode(sim: SimulatedTerminal, request: dict[str, Any]) -> int:
    return send(sim, request).retcode


# -- a good market order ----------------------------------------------------------------


def test_done_result(sim: SimulatedTerminal) -> None:
    tick = sim.symbol_info_tick("EURUSD")
    assert tick is not None
    result = send(sim, deal(volume=0.25))
    assert result.retcode == c.TRADE_RETCODE_DONE
    assert result.deal > 0
    assert result.order > 0
    assert result.deal != result.order
    assert (result.volume, result.price) == (0.25, tick.ask)
    assert (result.bid, result.ask) == (0.0, 0.0)
    assert (result.comment, result.request_id, result.retcode_external) == (
        "Request executed",
        1,
        0,
    )
    assert result.request == TradeRequest(
        action=1, magic=4242, symbol="EURUSD", volume=0.25, type=0, comment="ee-test"
    )


def test_sell_fills_at_bid_and_request_ids_increase(sim: SimulatedTerminal) -> None:
    tick = sim.symbol_info_tick("GBPUSD")
    assert tick is not None
    first = send(sim, deal("GBPUSD", sell=True))
    second = send(sim, deal("GBPUSD", volume=0.001))  # rejected by the server: still an id
    third = send(sim, deal("GBPUSD"))
    assert first.price == tick.bid
    assert (first.request_id, second.request_id, third.request_id) == (1, 2, 3)
    assert third.order > first.order
    assert third.deal > first.deal


def test_market_execution_ignores_the_request_price(sim: SimulatedTerminal) -> None:
    tick = sim.symbol_info_tick("EURUSD")
    assert tick is not None
    result = send(sim, deal(price=1.5, deviation=1))
    assert (result.retcode, result.price) == (10009, tick.ask)


def test_done_creates_history_order_deal_and_position(sim: SimulatedTerminal) -> None:
    result = send(sim, deal(volume=0.3, comment="client-1"))
    (order,) = sim.history_orders_get(ticket=result.order) or ()
    assert (order.state, order.volume_initial, order.volume_current) == (
        c.ORDER_STATE_FILLED,
        0.3,
        0.0,
    )
    assert (order.magic, order.comment, order.position_id) == (4242, "client-1", result.order)
    assert order.reason == c.ORDER_REASON_EXPERT
    (d,) = sim.history_deals_get(ticket=result.order) or ()
    assert (d.ticket, d.order, d.entry, d.type) == (result.deal, result.order, c.DEAL_ENTRY_IN, 0)
    assert (d.volume, d.price, d.magic, d.comment) == (0.3, result.price, 4242, "client-1")
    assert d.position_id == result.order  # hedging: the position is the opening order's ticket
    (pos,) = sim.positions_get(ticket=result.order) or ()
    assert (pos.identifier, pos.volume, pos.price_open, pos.type) == (
        result.order,
        0.3,
        result.price,
        0,
    )


def test_slippage_is_seeded_and_bounded() -> None:
    sim = make_sim(slippage_points=5)
    offsets = set()
    for _ in range(40):
        tick = sim.symbol_info_tick("EURUSD")
        assert tick is not None
        result = send(sim, deal())
        offset = round((result.price - tick.ask) / 0.00001)
        assert -5 <= offset <= 5
        offsets.add(offset)
    assert len(offsets) > 3


# -- rejected before the server: request_id 0 -------------------------------------------


def test_autotrading_off_is_a_local_reject(sim: SimulatedTerminal) -> None:
    sim.set_trade_allowed(False)
    result = send(sim, deal())
    assert (result.retcode, result.request_id) == (10027, 0)
    assert result.comment == "AutoTrading disabled by client"
    assert result.request.symbol == "EURUSD"
    sim.set_trade_allowed(True)
    assert send(sim, deal()).request_id == 1


def test_disconnected_terminal(sim: SimulatedTerminal) -> None:
    sim.set_connected(False)
    result = send(sim, deal())
    assert (result.retcode, result.request_id) == (10031, 0)
    assert sim.history_orders_snapshot() == ()
    # Info calls still answer, from what the terminal has; quotes stop moving.
    first = sim.symbol_info_tick("EURUSD")
    assert first is not None
    assert sim.symbol_info_tick("EURUSD") == first
    assert sim.account_info() is not None
    check = sim.order_check(deal())
    assert check is not None
    assert check.retcode == 10031


# -- server checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "volume", "expected"),
    [
        ("EURUSD", 0.01, 10009),
        ("EURUSD", 0.07, 10009),
        ("EURUSD", 500.0, 10009),
        ("EURUSD", 0.005, 10014),
        ("EURUSD", 0.015, 10014),
        ("EURUSD", 500.01, 10014),
        ("EURUSD", 0.0, 10014),
        ("EURUSD", -0.1, 10014),
        ("XAUUSD", 0.01, 10009),
        ("XAUUSD", 0.011, 10014),
        ("US500", 0.1, 10009),
        ("US500", 0.15, 10014),
        ("US500", 0.05, 10014),
    ],
)
def test_volume_min_max_step(
    sim: SimulatedTerminal, symbol: str, volume: float, expected: int
) -> None:
    sim.set_account(balance=1e9)  # 500 lots need 542,500 USD of margin
    result = send(sim, deal(symbol, volume, type_filling=c.ORDER_FILLING_IOC))
    assert result.retcode == expected
    if expected == 10014:
        assert result.comment == "Invalid volume"
        assert result.request_id > 0


def test_volume_step_override(sim: SimulatedTerminal) -> None:
    sim.set_symbol("EURUSD", volume_step=0.1, volume_min=0.1)
    assert retcode(sim, deal(volume=0.25)) == 10014
    assert retcode(sim, deal(volume=0.3)) == 10009


@pytest.mark.parametrize(
    ("symbol", "filling", "expected"),
    [
        ("US500", None, 10030),  # omitted means FOK
        ("US500", c.ORDER_FILLING_FOK, 10030),
        ("US500", c.ORDER_FILLING_IOC, 10009),
        ("EURUSD", None, 10009),
        ("EURUSD", c.ORDER_FILLING_IOC, 10009),
        ("EURUSD", c.ORDER_FILLING_RETURN, 10030),  # RETURN is for Exchange execution
        ("EURUSD", c.ORDER_FILLING_BOC, 10030),
        ("EURUSD", 9, 10030),
        ("EURJPY", c.ORDER_FILLING_FOK, 10009),
        ("EURJPY", c.ORDER_FILLING_IOC, 10030),
    ],
)
def test_filling_mode_against_the_symbol_bitmask(
    sim: SimulatedTerminal, symbol: str, filling: int | None, expected: int
) -> None:
    tick = sim.symbol_info_tick(symbol)
    assert tick is not None
    request = deal(symbol, 0.1 if symbol != "EURJPY" else 0.01, price=tick.ask, deviation=10)
    if filling is not None:
        request["type_filling"] = filling
    result = send(sim, request)
    assert result.retcode == expected
    if expected == 10030:
        assert (result.comment, result.deal, result.order) == ("Unsupported filling mode", 0, 0)


def test_instant_execution_fills_fok_even_without_the_fok_bit(sim: SimulatedTerminal) -> None:
    sim.set_symbol("EURJPY", filling_mode=2)
    tick = sim.symbol_info_tick("EURJPY")
    assert tick is not None
    assert retcode(sim, deal("EURJPY", price=tick.ask, deviation=5)) == 10009


def test_exchange_execution_accepts_return(sim: SimulatedTerminal) -> None:
    sim.set_symbol("EURUSD", trade_exemode=c.SYMBOL_TRADE_EXECUTION_EXCHANGE, filling_mode=0)
    assert retcode(sim, deal(type_filling=c.ORDER_FILLING_RETURN)) == 10009
    assert retcode(sim, deal(type_filling=c.ORDER_FILLING_FOK)) == 10030


@pytest.mark.parametrize(
    ("mode", "sell", "expected"),
    [
        (c.SYMBOL_TRADE_MODE_DISABLED, False, 10017),
        (c.SYMBOL_TRADE_MODE_DISABLED, True, 10017),
        (c.SYMBOL_TRADE_MODE_LONGONLY, True, 10042),
        (c.SYMBOL_TRADE_MODE_LONGONLY, False, 10009),
        (c.SYMBOL_TRADE_MODE_SHORTONLY, False, 10043),
        (c.SYMBOL_TRADE_MODE_SHORTONLY, True, 10009),
        (c.SYMBOL_TRADE_MODE_CLOSEONLY, False, 10044),
        (c.SYMBOL_TRADE_MODE_CLOSEONLY, True, 10044),
    ],
)
def test_trade_mode(sim: SimulatedTerminal, mode: int, sell: bool, expected: int) -> None:
    sim.set_symbol("EURUSD", trade_mode=mode)
    assert retcode(sim, deal(sell=sell)) == expected


def test_close_only_still_closes(sim: SimulatedTerminal) -> None:
    opened = send(sim, deal(volume=0.2))
    sim.set_symbol("EURUSD", trade_mode=c.SYMBOL_TRADE_MODE_CLOSEONLY)
    assert retcode(sim, deal(volume=0.2, sell=True, position=opened.order)) == 10009
    assert sim.positions_get() == ()


def test_market_closed(sim: SimulatedTerminal) -> None:
    sim.set_market_closed("EURUSD", True)
    result = send(sim, deal())
    assert (result.retcode, result.comment) == (10018, "Market closed")
    check = sim.order_check(deal())
    assert check is not None
    assert check.retcode == 10018
    assert retcode(sim, deal("GBPUSD")) == 10009
    sim.set_market_closed("EURUSD", False)
    assert retcode(sim, deal()) == 10009


def test_no_money(sim: SimulatedTerminal) -> None:
    sim.set_account(balance=100.0)
    result = send(sim, deal(volume=1.0))
    assert (result.retcode, result.comment) == (10019, "No money")
    assert sim.positions_get() == ()
    assert retcode(sim, deal(volume=0.05)) == 10009  # about 54 USD of margin


def test_account_permissions_are_server_rejects(sim: SimulatedTerminal) -> None:
    sim.set_account(trade_expert=False)
    result = send(sim, deal())
    assert (result.retcode, result.request_id) == (10026, 1)
    sim.set_account(trade_expert=True, trade_allowed=False)
    assert retcode(sim, deal()) == 10017


def test_instant_execution_requotes_beyond_deviation(sim: SimulatedTerminal) -> None:
    tick = sim.symbol_info_tick("EURJPY")
    assert tick is not None
    stale = round(tick.ask - 0.050, 3)  # 50 points away
    result = send(sim, deal("EURJPY", 0.01, price=stale, deviation=20))
    assert (result.retcode, result.comment) == (10004, "Requote")
    assert (result.bid, result.ask) == (tick.bid, tick.ask)
    assert (result.deal, result.order) == (0, 0)
    assert sim.history_orders_snapshot() == ()
    close = round(tick.ask - 0.010, 3)  # 10 points away: inside the deviation
    result = send(sim, deal("EURJPY", 0.01, price=close, deviation=20))
    assert (result.retcode, result.price) == (10009, close)


def test_instant_execution_needs_a_price(sim: SimulatedTerminal) -> None:
    result = send(sim, deal("EURJPY", 0.01))
    assert (result.retcode, result.comment) == (10015, "Invalid price")


def test_unsupported_actions_are_invalid_requests(sim: SimulatedTerminal) -> None:
    request = deal(action=c.TRADE_ACTION_PENDING, type=c.ORDER_TYPE_BUY_LIMIT, price=1.0)
    assert retcode(sim, request) == 10013
    assert retcode(sim, deal(type=c.ORDER_TYPE_BUY_LIMIT)) == 10035
    assert retcode(sim, {"action": c.TRADE_ACTION_REMOVE, "order": 123}) == 10013


# -- order_check ------------------------------------------------------------------------


def test_order_check_success_is_retcode_zero(sim: SimulatedTerminal) -> None:
    send(sim, deal(volume=0.1))
    margin_per_tenth = account(sim).margin
    check = sim.order_check(deal(volume=0.1))
    assert check is not None
    assert (check.retcode, check.comment) == (0, "Done")
    now = account(sim)
    assert (check.balance, check.equity, check.profit) == (now.balance, now.equity, now.profit)
    assert check.margin == pytest.approx(2 * margin_per_tenth, abs=0.02)
    assert check.margin_free == pytest.approx(check.equity - check.margin)
    assert check.margin_level == pytest.approx(check.equity / check.margin * 100, rel=1e-4)
    assert check.request.volume == 0.1
    assert len(sim.history_orders_snapshot()) == 1, "order_check executes nothing"


def test_order_check_reports_the_same_rejections(sim: SimulatedTerminal) -> None:
    for request, expected in (
        (deal(volume=0.003), 10014),
        (deal("US500", 0.1), 10030),
        (deal(volume=10000.0 / 100), 10019),
    ):
        check = sim.order_check(request)
        assert check is not None
        assert check.retcode == expected
    sim.set_trade_allowed(False)
    check = sim.order_check(deal())
    assert check is not None
    assert check.retcode == 10027


def test_order_check_does_not_requote(sim: SimulatedTerminal) -> None:
    check = sim.order_check(deal("EURJPY", 0.01, price=1.0, deviation=0))
    assert check is not None
    assert check.retcode == 0


# -- margin -----------------------------------------------------------------------------


def test_margin_of_the_official_example(sim: SimulatedTerminal) -> None:
    assert sim.order_calc_margin(c.ORDER_TYPE_BUY, "EURUSD", 0.1, 1.0991) == 109.91


@pytest.mark.parametrize(
    ("symbol", "volume", "price", "expected"),
    [
        ("GBPUSD", 1.0, 1.25, 1250.0),  # XXXUSD: contract x lots / leverage x price
        ("USDJPY", 1.0, 150.0, 1000.0),  # USDXXX: contract x lots / leverage
        ("XAUUSD", 1.0, 2300.0, 2300.0),  # contract 100
        ("US500", 1.0, 5000.0, 50.0),  # contract 1
    ],
)
def test_margin_in_account_currency(
    sim: SimulatedTerminal, symbol: str, volume: float, price: float, expected: float
) -> None:
    assert sim.order_calc_margin(c.ORDER_TYPE_SELL, symbol, volume, price) == expected


def test_cross_margin_converts_through_the_base_currency(sim: SimulatedTerminal) -> None:
    sim.set_price("EURUSD", 1.1)
    assert sim.order_calc_margin(c.ORDER_TYPE_BUY, "EURJPY", 1.0, 165.0) == 1100.0


def test_margin_follows_leverage_and_rejects_bad_arguments(sim: SimulatedTerminal) -> None:
    sim.set_account(leverage=50)
    assert sim.order_calc_margin(c.ORDER_TYPE_BUY, "USDJPY", 1.0, 150.0) == 2000.0
    assert sim.order_calc_margin(c.TRADE_ACTION_REMOVE, "USDJPY", 1.0, 150.0) is None
    assert sim.last_error() == (-2, "Invalid arguments")
    assert sim.order_calc_margin(c.ORDER_TYPE_BUY, "USDJPY", "1", 150.0) is None
    assert sim.last_error() == (-2, "Invalid arguments")


def test_account_tracks_positions(sim: SimulatedTerminal) -> None:
    result = send(sim, deal("USDJPY", 1.0))
    info = account(sim)
    assert info.margin == 1000.0
    (pos,) = sim.positions_get() or ()
    assert info.profit == pos.profit < 0  # bought at the ask, valued at the bid
    assert info.equity == pytest.approx(info.balance + info.profit)
    assert info.margin_free == pytest.approx(info.equity - info.margin)
    assert info.margin_level == pytest.approx(info.equity / info.margin * 100, rel=1e-4)
    assert pos.price_open == result.price


# -- hedging and netting ----------------------------------------------------------------


def test_hedging_keeps_one_position_per_order(sim: SimulatedTerminal) -> None:
    first = send(sim, deal(volume=0.1))
    second = send(sim, deal(volume=0.2, sell=True))
    positions = sim.positions_get(symbol="EURUSD") or ()
    assert sorted(p.identifier for p in positions) == [first.order, second.order]
    (closing,) = sim.history_deals_get(ticket=second.order) or ()
    assert (closing.entry, closing.position_id) == (c.DEAL_ENTRY_IN, second.order)


def test_hedging_close_by_position(sim: SimulatedTerminal) -> None:
    opened = send(sim, deal(volume=0.3))
    sim.set_price("EURUSD", 1.1)
    balance = account(sim).balance
    request = {"action": 1, "position": opened.order, "volume": 0.1, "type": 1}  # no symbol
    closed = send(sim, request)
    assert closed.retcode == 10009
    (out,) = sim.history_deals_get(ticket=closed.order) or ()
    assert (out.entry, out.position_id, out.volume) == (c.DEAL_ENTRY_OUT, opened.order, 0.1)
    expected = round((out.price - opened.price) * 0.1 * 100000, 2)
    assert out.profit == expected
    assert account(sim).balance == pytest.approx(balance + expected)
    (pos,) = sim.positions_get(ticket=opened.order) or ()
    assert pos.volume == 0.2
    assert len(sim.history_deals_get(position=opened.order) or ()) == 2


@pytest.mark.parametrize(
    ("volume", "sell", "position_offset", "expected"),
    [
        (0.4, True, 0, 10038),  # more than the position holds
        (0.1, False, 0, 10013),  # same direction as the position
        (0.1, True, 99, 10036),  # no such position
    ],
)
def test_hedging_close_rejects(
    sim: SimulatedTerminal, volume: float, sell: bool, position_offset: int, expected: int
) -> None:
    opened = send(sim, deal(volume=0.3))
    request = deal(volume=volume, sell=sell, position=opened.order + position_offset)
    assert retcode(sim, request) == expected


def test_netting_adds_reduces_and_reverses_one_position() -> None:
    sim = make_sim(margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)
    assert account(sim).margin_mode == 0
    first = send(sim, deal(volume=0.1))
    second = send(sim, deal(volume=0.2))
    (pos,) = sim.positions_get() or ()
    assert (pos.identifier, pos.ticket, pos.volume) == (first.order, first.order, 0.3)
    (added,) = sim.history_deals_get(ticket=second.order) or ()
    assert (added.entry, added.position_id) == (c.DEAL_ENTRY_IN, first.order)
    assert second.order != added.position_id
    assert pos.price_open == pytest.approx((first.price * 0.1 + second.price * 0.2) / 0.3)

    reduced = send(sim, deal(volume=0.1, sell=True))
    (out,) = sim.history_deals_get(ticket=reduced.order) or ()
    assert (out.entry, out.position_id) == (c.DEAL_ENTRY_OUT, first.order)

    reversed_ = send(sim, deal(volume=0.5, sell=True))
    (inout,) = sim.history_deals_get(ticket=reversed_.order) or ()
    assert (inout.entry, inout.volume, inout.position_id) == (c.DEAL_ENTRY_INOUT, 0.5, first.order)
    (pos,) = sim.positions_get() or ()
    assert (pos.identifier, pos.ticket) == (first.order, reversed_.order)
    assert (pos.type, pos.volume, pos.price_open) == (c.POSITION_TYPE_SELL, 0.3, reversed_.price)
    (order,) = sim.history_orders_get(ticket=reversed_.order) or ()
    assert order.position_id == first.order

    closed = send(sim, deal(volume=0.3))
    assert sim.positions_get() == ()
    (last,) = sim.history_deals_get(ticket=closed.order) or ()
    assert last.entry == c.DEAL_ENTRY_OUT
    assert len(sim.history_deals_get(position=first.order) or ()) == 5


def test_netting_reduction_needs_no_margin() -> None:
    sim = make_sim(margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)
    send(sim, deal(volume=1.0))
    sim.set_account(balance=0.0)
    assert retcode(sim, deal(volume=0.5)) == 10019
    assert retcode(sim, deal(volume=0.5, sell=True)) == 10009


def test_margin_mode_is_validated_and_locked_while_positions_are_open(
    sim: SimulatedTerminal,
) -> None:
    with pytest.raises(ValueError, match="margin_mode"):
        SimulatedTerminal(margin_mode=c.ACCOUNT_MARGIN_MODE_EXCHANGE)
    send(sim, deal())
    with pytest.raises(ValueError, match="open positions"):
        sim.set_account(margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)
