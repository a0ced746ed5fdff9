"""Positions on the simulated server: closes by ticket, account rules, stop-loss/take-profit.

What an engine that reduces before it opens meets on a real MT5 server: a close needs no
margin, a position closed twice answers 10036, restricted trade modes still let positions
be reduced, FIFO accounts (10045) and hedge prohibition (10046), and sl/tp checked against
the side and the stops level (10016) and kept on the position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from terminals import constants as c
from terminals.simulated import SimulatedTerminal
from terminals.types import OrderSendResult, TradePosition
from tests.terminals import FakeClock, deal, make_sim

MT5_POSITION_FIELDS = (
    "ticket", "time", "time_msc", "time_update", "time_update_msc", "type", "magic",
    "identifier", "reason", "volume", "price_open", "sl", "tp", "price_current", "swap",
    "profit", "symbol", "comment", "external_id",
)  # fmt: skip


@pytest.fixture
def sim() -> SimulatedTerminal:
    return make_sim()


def send(sim: SimulatedTerminal, request: dict[str, Any]) -> OrderSendResult:
    result = sim.order_send(request)
    assert result is not None, sim.last_error()
    return result


def retcode(sim: SimulatedTerminal, request: dict[str, Any]) -> int:
    return send(sim, request).retcode


def position(sim: SimulatedTerminal, ticket: int) -> TradePosition:
    (pos,) = sim.positions_get(ticket=ticket) or ()
    return pos


# -- closing by ticket ------------------------------------------------------------------


def test_positions_get_has_mt5s_fields_in_mt5s_order(sim: SimulatedTerminal) -> None:
    opened = send(sim, deal())
    assert position(sim, opened.order)._fields == MT5_POSITION_FIELDS


def test_closing_needs_no_margin_even_with_no_free_margin(sim: SimulatedTerminal) -> None:
    opened = send(sim, deal(volume=1.0))
    sim.set_account(balance=0.0)  # equity ~0: free margin is negative
    info = sim.account_info()
    assert info is not None
    assert info.margin_free < 0
    assert retcode(sim, deal(volume=0.1)) == 10019  # opening is refused
    partial = send(sim, deal(volume=0.4, sell=True, position=opened.order))
    assert partial.retcode == 10009
    assert position(sim, opened.order).volume == 0.6
    assert retcode(sim, deal(volume=0.6, sell=True, position=opened.order)) == 10009
    assert sim.positions_get() == ()


def test_a_position_closed_twice_answers_10036_and_nothing_executes(
    sim: SimulatedTerminal,
) -> None:
    opened = send(sim, deal(volume=0.2))
    assert retcode(sim, deal(volume=0.2, sell=True, position=opened.order)) == 10009
    deals_before = len(sim.history_deals_snapshot())
    again = send(sim, deal(volume=0.2, sell=True, position=opened.order))
    assert (again.retcode, again.deal, again.order) == (10036, 0, 0)
    assert again.comment == "Position already closed"
    assert len(sim.history_deals_snapshot()) == deals_before
    assert sim.positions_get() == ()


def test_closing_deal_is_out_with_the_position_id_and_reports_profit(
    sim: SimulatedTerminal,
) -> None:
    opened = send(sim, deal(volume=1.0))  # buys at the ask
    sim.set_price("EURUSD", opened.price + 0.00100)  # bid 10 pips above the entry
    balance = sim.account_info()
    assert balance is not None
    closed = send(sim, deal(volume=1.0, sell=True, position=opened.order))
    (out,) = sim.history_deals_get(ticket=closed.order) or ()
    assert (out.entry, out.position_id, out.volume) == (c.DEAL_ENTRY_OUT, opened.order, 1.0)
    assert out.profit == pytest.approx(100.0)  # 10 pips of 1 lot EURUSD, USD account
    after = sim.account_info()
    assert after is not None
    assert after.balance == pytest.approx(balance.balance + 100.0)


@pytest.mark.parametrize(
    ("mode", "sell_first", "expected_open"),
    [
        (c.SYMBOL_TRADE_MODE_CLOSEONLY, False, 10044),
        (c.SYMBOL_TRADE_MODE_LONGONLY, False, 10042),  # a long closes; a new short is refused
        (c.SYMBOL_TRADE_MODE_SHORTONLY, True, 10043),  # a short closes; a new long is refused
    ],
)
def test_restricted_modes_refuse_opening_but_reduce_and_close(
    sim: SimulatedTerminal, mode: int, sell_first: bool, expected_open: int
) -> None:
    opened = send(sim, deal(volume=0.3, sell=sell_first))
    sim.set_symbol("EURUSD", trade_mode=mode)
    opposite = not sell_first
    assert retcode(sim, deal(volume=0.1, sell=opposite)) == expected_open
    assert retcode(sim, deal(volume=0.1, sell=opposite, position=opened.order)) == 10009
    assert retcode(sim, deal(volume=0.2, sell=opposite, position=opened.order)) == 10009
    assert sim.positions_get() == ()


def test_netting_reduces_under_close_only_but_does_not_reverse() -> None:
    sim = make_sim(margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)
    send(sim, deal(volume=0.3))
    sim.set_symbol("EURUSD", trade_mode=c.SYMBOL_TRADE_MODE_CLOSEONLY)
    assert retcode(sim, deal(volume=0.5, sell=True)) == 10044  # would reverse: opens 0.2
    assert retcode(sim, deal(volume=0.1, sell=True)) == 10009
    assert retcode(sim, deal(volume=0.1)) == 10044


# -- account rules: FIFO and hedge prohibition ------------------------------------------


def test_fifo_account_closes_the_oldest_position_first() -> None:
    clock = FakeClock()
    sim = make_sim(clock)
    sim.set_account(fifo_close=True)
    first = send(sim, deal(volume=0.2))
    clock.advance(1)
    second = send(sim, deal(volume=0.2))
    gbp = send(sim, deal("GBPUSD", volume=0.1))  # another symbol has its own order
    refused = send(sim, deal(volume=0.2, sell=True, position=second.order))
    assert (refused.retcode, refused.deal) == (10045, 0)
    assert refused.comment == "Position closing is allowed only by FIFO rule"
    assert retcode(sim, deal("GBPUSD", volume=0.1, sell=True, position=gbp.order)) == 10009
    assert retcode(sim, deal(volume=0.1, sell=True, position=first.order)) == 10009  # partial
    assert retcode(sim, deal(volume=0.1, sell=True, position=first.order)) == 10009
    assert retcode(sim, deal(volume=0.2, sell=True, position=second.order)) == 10009
    assert sim.positions_get() == ()


def test_without_fifo_any_position_may_close_first(sim: SimulatedTerminal) -> None:
    send(sim, deal(volume=0.2))
    second = send(sim, deal(volume=0.2))
    assert retcode(sim, deal(volume=0.2, sell=True, position=second.order)) == 10009


def test_hedge_prohibition_refuses_an_opposite_position_but_not_a_close(
    sim: SimulatedTerminal,
) -> None:
    sim.set_hedge_prohibited(True)
    opened = send(sim, deal(volume=0.2))
    refused = send(sim, deal(volume=0.1, sell=True))
    assert (refused.retcode, refused.deal) == (10046, 0)
    assert retcode(sim, deal(volume=0.1)) == 10009  # the same side adds a position
    assert retcode(sim, deal("GBPUSD", volume=0.1, sell=True)) == 10009  # other symbol
    assert retcode(sim, deal(volume=0.2, sell=True, position=opened.order)) == 10009
    sim.set_hedge_prohibited(False)
    assert retcode(sim, deal(volume=0.1, sell=True)) == 10009


def test_account_rules_do_not_apply_to_netting() -> None:
    sim = make_sim(margin_mode=c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING)
    sim.set_hedge_prohibited(True)
    sim.set_account(fifo_close=True)
    send(sim, deal(volume=0.2))
    assert retcode(sim, deal(volume=0.5, sell=True)) == 10009  # nets into a 0.3 short


def test_account_rules_and_stops_survive_a_restart_with_a_state_file(tmp_path: Path) -> None:
    state = str(tmp_path / "account.json")
    sim = make_sim(state_file=state)
    sim.set_hedge_prohibited(True)
    sim.set_account(fifo_close=True)
    bid = sim.symbol_info_tick("EURUSD")
    assert bid is not None
    opened = send(sim, deal(sl=round(bid.bid - 0.005, 5), tp=round(bid.bid + 0.005, 5)))
    restarted = make_sim(state_file=state)
    info = restarted.account_info()
    assert info is not None
    assert info.fifo_close is True
    assert retcode(restarted, deal(sell=True)) == 10046
    kept = position(restarted, opened.order)
    assert (kept.sl, kept.tp) == (round(bid.bid - 0.005, 5), round(bid.bid + 0.005, 5))


# -- stop-loss and take-profit ----------------------------------------------------------


def test_sl_and_tp_are_kept_on_the_position_and_the_order(sim: SimulatedTerminal) -> None:
    sim.set_price("EURUSD", 1.10000)  # ask 1.10012
    buy = send(sim, deal(sl=1.09500, tp=1.10500))
    sell = send(sim, deal(sell=True, sl=1.10500, tp=1.09500))
    assert (buy.retcode, sell.retcode) == (10009, 10009)
    assert (position(sim, buy.order).sl, position(sim, buy.order).tp) == (1.095, 1.105)
    assert (position(sim, sell.order).sl, position(sim, sell.order).tp) == (1.105, 1.095)
    (order,) = sim.history_orders_get(ticket=buy.order) or ()
    assert (order.sl, order.tp) == (1.095, 1.105)
    plain = send(sim, deal())
    assert (position(sim, plain.order).sl, position(sim, plain.order).tp) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("sell", "stops"),
    [
        (False, {"sl": 1.10100}),  # a buy's stop-loss above the bid
        (False, {"tp": 1.09900}),  # a buy's take-profit below the bid
        (False, {"sl": 1.10000}),  # at the bid: no distance
        (True, {"sl": 1.10000}),  # a sell's stop-loss below the ask (1.10012)
        (True, {"tp": 1.10100}),  # a sell's take-profit above the ask
        (False, {"sl": -1.0}),
    ],
)
def test_stops_on_the_wrong_side_are_10016(
    sim: SimulatedTerminal, sell: bool, stops: dict[str, float]
) -> None:
    sim.set_price("EURUSD", 1.10000)
    result = send(sim, deal(sell=sell, **stops))
    assert (result.retcode, result.comment, result.deal) == (10016, "Invalid stops", 0)
    assert sim.positions_get() == ()
    check = sim.order_check(deal(sell=sell, **stops))
    assert check is not None
    assert check.retcode == 10016


def test_stops_inside_the_stops_level_are_10016(sim: SimulatedTerminal) -> None:
    info = sim.symbol_info("XAUUSD")
    assert info is not None
    assert info.trade_stops_level == 50
    sim.set_price("XAUUSD", 2350.00)  # ask 2350.20; 50 points = 0.50
    assert retcode(sim, deal("XAUUSD", 0.1, sl=2349.60)) == 10016  # 0.40 from the bid
    assert retcode(sim, deal("XAUUSD", 0.1, tp=2350.40)) == 10016
    assert retcode(sim, deal("XAUUSD", 0.1, sell=True, sl=2350.60)) == 10016  # 0.40 from ask
    assert retcode(sim, deal("XAUUSD", 0.1, sl=2349.50, tp=2350.50)) == 10009  # exactly 50
    assert retcode(sim, deal("XAUUSD", 0.1, sell=True, sl=2350.70, tp=2349.70)) == 10009
    sim.set_symbol("EURUSD", trade_stops_level=100)
    sim.set_price("EURUSD", 1.10000)
    assert retcode(sim, deal(sl=1.09950)) == 10016
    assert retcode(sim, deal(sl=1.09900)) == 10009
