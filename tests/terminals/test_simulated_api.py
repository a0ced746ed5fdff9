"""The simulated terminal has the MetaTrader5 module's surface: names, shapes, errors."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

import pytest

from terminals import constants as c
from terminals.base import Terminal
from terminals.loader import load_metatrader5
from terminals.simulated import MODULE_CONSTANTS, SimulatedTerminal
from terminals.types import (
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from tests.terminals import T0, FakeClock, deal, make_sim

SimCall = Callable[[SimulatedTerminal], object]

NO_IPC = (-10004, "No IPC connection")
OK = (1, "Success")


@pytest.fixture
def sim() -> SimulatedTerminal:
    return make_sim()


# -- the seam ---------------------------------------------------------------------------


def test_is_a_terminal_with_every_module_constant() -> None:
    terminal: Terminal = SimulatedTerminal()
    assert len(MODULE_CONSTANTS) == 223
    for name, value in MODULE_CONSTANTS.items():
        assert getattr(terminal, name) == value, name
        assert getattr(SimulatedTerminal, name) == value, name
    assert terminal.TRADE_ACTION_DEAL == 1


@pytest.mark.parametrize("name", sorted(c.NOT_EXPORTED))
def test_names_the_real_module_lacks_are_absent(name: str) -> None:
    # Engine code reading these from the terminal would break on the real module.
    assert not hasattr(SimulatedTerminal(), name)


@pytest.mark.skipif(
    importlib.util.find_spec("MetaTrader5") is not None, reason="MetaTrader5 is installed"
)
def test_loader_explains_where_metatrader5_is_missing() -> None:
    with pytest.raises(ImportError, match="only available on Windows"):
        load_metatrader5()
    assert "MetaTrader5" not in sys.modules


# -- result shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "count", "first", "last"),
    [
        (OrderSendResult, 11, "retcode", "request"),
        (TradeRequest, 17, "action", "position_by"),
        (OrderCheckResult, 9, "retcode", "request"),
        (Tick, 8, "time", "volume_real"),
        (SymbolInfo, 96, "custom", "path"),
        (AccountInfo, 28, "login", "company"),
        (TerminalInfo, 22, "community_account", "commondata_path"),
        (TradeOrder, 24, "ticket", "external_id"),
        (TradeDeal, 18, "ticket", "external_id"),
        (TradePosition, 19, "ticket", "external_id"),
    ],
)
def test_field_counts_and_ends(kind: type, count: int, first: str, last: str) -> None:
    fields = kind._fields  # type: ignore[attr-defined]
    assert (len(fields), fields[0], fields[-1]) == (count, first, last)


def test_field_orders_match_the_real_printouts() -> None:
    assert OrderSendResult._fields == (
        "retcode", "deal", "order", "volume", "price", "bid", "ask", "comment",
        "request_id", "retcode_external", "request",
    )  # fmt: skip
    assert TradeRequest._fields == (
        "action", "magic", "order", "symbol", "volume", "price", "stoplimit", "sl", "tp",
        "deviation", "type", "type_filling", "type_time", "expiration", "comment",
        "position", "position_by",
    )  # fmt: skip
    assert TradeDeal._fields[:9] == (
        "ticket", "order", "time", "time_msc", "type", "entry", "magic", "position_id", "reason",
    )  # fmt: skip
    assert TradePosition._fields[5:9] == ("type", "magic", "identifier", "reason")
    assert "position_id" not in TradePosition._fields
    assert OrderCheckResult._fields == (
        "retcode", "balance", "equity", "profit", "margin", "margin_free", "margin_level",
        "comment", "request",
    )  # fmt: skip


def test_results_have_the_real_types_and_asdict(sim: SimulatedTerminal) -> None:
    assert isinstance(sim.symbol_info("EURUSD"), SymbolInfo)
    assert isinstance(sim.symbol_info_tick("EURUSD"), Tick)
    assert isinstance(sim.account_info(), AccountInfo)
    assert isinstance(sim.terminal_info(), TerminalInfo)
    result = sim.order_send(deal())
    assert isinstance(result, OrderSendResult)
    assert isinstance(result.request, TradeRequest)
    assert result._asdict()["request"].symbol == "EURUSD"


# -- connection and the IPC gate --------------------------------------------------------


def test_every_call_fails_before_initialize() -> None:
    sim = SimulatedTerminal(clock=FakeClock())
    assert sim.last_error() == OK
    assert sim.symbol_info_tick("EURUSD") is None
    assert sim.last_error() == NO_IPC
    assert sim.order_send(deal()) is None
    assert sim.last_error() == NO_IPC
    assert sim.symbol_select("EURUSD", True) is False
    assert sim.version() is None
    assert sim.initialize() is True
    assert sim.last_error() == OK
    assert sim.version() == (500, 5430, "20 Nov 2025")


def test_shutdown_detaches(sim: SimulatedTerminal) -> None:
    sim.shutdown()
    assert sim.account_info() is None
    assert sim.last_error() == NO_IPC


def test_dead_ipc_fails_everything_until_initialized_again(sim: SimulatedTerminal) -> None:
    sim.set_ipc_alive(False)
    assert sim.terminal_info() is None
    assert sim.order_send(deal()) is None
    assert sim.last_error() == NO_IPC
    assert sim.initialize() is False
    assert sim.last_error() == (-10003, "IPC initialize failed, MetaTrader 5 x64 not found")
    sim.set_ipc_alive(True)
    assert sim.account_info() is None, "a dead link stays dead until initialize()"
    assert sim.initialize() is True
    assert sim.account_info() is not None
    # The failed send never reached the server.
    assert sim.history_orders_snapshot() == ()


def test_initialize_and_login_take_the_account(sim: SimulatedTerminal) -> None:
    assert sim.initialize(login=777, password="pw", server="Broker-Live", timeout=60000)
    info = sim.account_info()
    assert info is not None
    assert (info.login, info.server) == (777, "Broker-Live")
    assert sim.login(888, password="pw") is True
    info = sim.account_info()
    assert info is not None
    assert info.login == 888


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.initialize(login="777"), 'Invalid "login" argument'),
        (lambda s: s.initialize(timeout=1.5), 'Invalid "timeout" argument'),
        (lambda s: s.initialize(123), 'Invalid "path" argument'),
        (lambda s: s.login("888"), 'Invalid "login" argument'),
        (lambda s: s.login(888, server=1), 'Invalid "server" argument'),
    ],
)
def test_connection_argument_errors(sim: SimulatedTerminal, call: SimCall, error: str) -> None:
    assert call(sim) is False
    assert sim.last_error() == (-2, error)


# -- argument rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.positions_get("EURUSD"),
        lambda s: s.orders_get("EURUSD"),
        lambda s: s.history_orders_get(T0, T0 + 1, "EURUSD"),
        lambda s: s.history_deals_get(T0, T0 + 1, "EURUSD"),
    ],
)
def test_positional_filters_are_refused(sim: SimulatedTerminal, call: SimCall) -> None:
    assert call(sim) is None
    assert sim.last_error() == (-2, "Unnamed arguments not allowed")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "1"),
        ("magic", -1),
        ("magic", 1.5),
        ("symbol", 5),
        ("volume", "0.1"),
        ("price", None),
        ("deviation", 2.0),
        ("type", "BUY"),
        ("type_filling", 1.0),
        ("comment", 12),
        ("position", -3),
    ],
)
def test_wrong_request_field_types(sim: SimulatedTerminal, field: str, value: object) -> None:
    request = deal()
    request[field] = value
    assert sim.order_send(request) is None
    assert sim.last_error() == (-2, f'Invalid "{field}" argument')
    assert sim.order_check(request) is None
    assert sim.last_error() == (-2, f'Invalid "{field}" argument')


def test_missing_required_fields(sim: SimulatedTerminal) -> None:
    request = deal()
    del request["volume"]
    assert sim.order_send(request) is None
    assert sim.last_error() == (-2, 'Invalid "volume" argument')
    assert sim.order_send({"symbol": "EURUSD", "volume": 0.1}) is None
    assert sim.last_error() == (-2, 'Invalid "action" argument')
    assert sim.order_send([("action", 1)]) is None
    assert sim.last_error() == (-2, "Invalid arguments")


def test_comment_limit(sim: SimulatedTerminal) -> None:
    ok = sim.order_send(deal(comment="c" * 31))
    assert ok is not None
    assert ok.retcode == 10009
    assert sim.order_send(deal(comment="c" * 32)) is None
    assert sim.last_error() == (-2, 'Invalid "comment" argument')
    assert len(sim.history_orders_snapshot()) == 1


def test_comment_limit_is_configurable() -> None:
    sim = make_sim(comment_limit=28)
    assert sim.order_check(deal(comment="c" * 29)) is None
    assert sim.last_error() == (-2, 'Invalid "comment" argument')


def test_unknown_symbol(sim: SimulatedTerminal) -> None:
    for call in (
        lambda: sim.symbol_info("NOPE"),
        lambda: sim.symbol_info_tick("NOPE"),
        lambda: sim.order_send(deal("NOPE")),
        lambda: sim.order_check(deal("NOPE")),
        lambda: sim.order_calc_margin(0, "NOPE", 1.0, 1.0),
    ):
        assert call() is None
        assert sim.last_error() == (-4, "Terminal: Not found")
    assert sim.symbol_select("NOPE", True) is False


def test_good_call_resets_last_error(sim: SimulatedTerminal) -> None:
    assert sim.symbol_info("NOPE") is None
    assert sim.last_error()[0] == -4
    assert sim.positions_get() == ()
    assert sim.last_error() == OK


def test_a_result_with_a_reject_retcode_is_still_a_successful_call(sim: SimulatedTerminal) -> None:
    result = sim.order_send(deal(volume=0.001))
    assert result is not None
    assert result.retcode == 10014
    assert sim.last_error() == OK


# -- symbols ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "digits", "point", "contract", "step", "exemode", "filling"),
    [
        ("EURUSD", 5, 0.00001, 100000.0, 0.01, 2, 3),
        ("GBPUSD", 5, 0.00001, 100000.0, 0.01, 2, 3),
        ("USDJPY", 3, 0.001, 100000.0, 0.01, 2, 3),
        ("EURJPY", 3, 0.001, 100000.0, 0.01, 1, 1),
        ("XAUUSD", 2, 0.01, 100.0, 0.01, 2, 3),
        ("US500", 1, 0.1, 1.0, 0.1, 2, 2),
    ],
)
def test_symbol_specs(
    sim: SimulatedTerminal, symbol: str, digits: int, point: float, contract: float,
    step: float, exemode: int, filling: int,
) -> None:  # fmt: skip
    info = sim.symbol_info(symbol)
    assert info is not None
    assert (info.name, info.digits, info.point, info.trade_contract_size) == (
        symbol, digits, point, contract,
    )  # fmt: skip
    assert (info.volume_step, info.trade_exemode, info.filling_mode) == (step, exemode, filling)
    assert info.trade_mode == c.SYMBOL_TRADE_MODE_FULL
    assert info.visible
    assert info.select
    assert info.ask > info.bid > 0
    assert info.spread == round((info.ask - info.bid) / info.point)


def test_standard_fx_volumes(sim: SimulatedTerminal) -> None:
    info = sim.symbol_info("EURUSD")
    assert info is not None
    assert (info.volume_min, info.volume_max, info.volume_step) == (0.01, 500.0, 0.01)
    assert (info.currency_base, info.currency_profit, info.currency_margin) == ("EUR", "USD", "EUR")


def test_hidden_symbol_needs_symbol_select(sim: SimulatedTerminal) -> None:
    info = sim.symbol_info("USDCHF")
    assert info is not None
    assert (info.visible, info.select) == (False, False)
    assert sim.symbol_info_tick("USDCHF") is None
    assert sim.last_error() == (-1, "Terminal: Call failed")
    result = sim.order_send(deal("USDCHF"))
    assert result is not None
    assert (result.retcode, result.request_id) == (10013, 0)
    assert sim.symbol_select("USDCHF", True) is True
    assert sim.symbol_info_tick("USDCHF") is not None
    result = sim.order_send(deal("USDCHF"))
    assert result is not None
    assert result.retcode == 10009


def test_symbol_with_a_position_cannot_be_deselected(sim: SimulatedTerminal) -> None:
    sim.order_send(deal())
    assert sim.symbol_select("EURUSD", False) is False
    assert sim.symbol_select("GBPUSD", False) is True


def test_tick_times_are_server_times() -> None:
    clock = FakeClock()
    sim = make_sim(clock, server_utc_offset_hours=3)
    tick = sim.symbol_info_tick("EURUSD")
    assert tick is not None
    assert tick.time == T0 + 3 * 3600
    assert tick.time_msc == (T0 + 3 * 3600) * 1000
    assert tick.flags == c.TICK_FLAG_BID | c.TICK_FLAG_ASK
    assert sim.server_time() == T0 + 3 * 3600


def test_frozen_tick_keeps_its_time_and_price() -> None:
    clock = FakeClock()
    sim = make_sim(clock)
    first = sim.symbol_info_tick("EURUSD")
    sim.freeze_ticks("EURUSD", True)
    clock.advance(60)
    for _ in range(5):
        assert sim.symbol_info_tick("EURUSD") == first
    sim.freeze_ticks("EURUSD", False)
    fresh = sim.symbol_info_tick("EURUSD")
    assert fresh is not None
    assert first is not None
    assert fresh.time == first.time + 60


def test_prices_walk_and_stay_positive(sim: SimulatedTerminal) -> None:
    bids = set()
    for _ in range(200):
        tick = sim.symbol_info_tick("EURUSD")
        assert tick is not None
        assert tick.ask > tick.bid > 0
        assert round(tick.bid, 5) == tick.bid
        bids.add(tick.bid)
    assert len(bids) > 20


def test_same_seed_same_market_and_fills() -> None:
    def run(seed: int) -> list[object]:
        sim = make_sim(seed=seed, slippage_points=3)
        out: list[object] = []
        for symbol in ("EURUSD", "USDJPY", "XAUUSD", "US500"):
            out.append(sim.symbol_info_tick(symbol))
            out.append(sim.order_send(deal(symbol, type_filling=1)))
        out.append(sim.history_deals_snapshot())
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_one_symbols_walk_does_not_depend_on_another() -> None:
    a, b = make_sim(), make_sim()
    for _ in range(10):
        a.symbol_info_tick("GBPUSD")
    assert a.symbol_info_tick("EURUSD") == b.symbol_info_tick("EURUSD")


# -- terminal and account ---------------------------------------------------------------


def test_terminal_info_reflects_the_toggles(sim: SimulatedTerminal) -> None:
    info = sim.terminal_info()
    assert info is not None
    assert (info.connected, info.trade_allowed, info.build) == (True, True, 5430)
    sim.set_connected(False)
    sim.set_trade_allowed(False)
    info = sim.terminal_info()
    assert info is not None
    assert (info.connected, info.trade_allowed) == (False, False)


def test_account_defaults_and_overrides(sim: SimulatedTerminal) -> None:
    info = sim.account_info()
    assert info is not None
    assert (info.balance, info.equity, info.margin) == (100000.0, 100000.0, 0.0)
    assert info.margin_free == 100000.0
    assert (info.leverage, info.margin_mode, info.currency) == (100, 2, "USD")
    assert (info.trade_allowed, info.trade_expert) == (True, True)
    sim.set_account(balance=500, leverage=30, trade_expert=False)
    info = sim.account_info()
    assert info is not None
    assert (info.balance, info.leverage, info.trade_expert) == (500.0, 30, False)


@pytest.mark.parametrize(
    "fields",
    [{"equity": 1.0}, {"margin_free": 1.0}, {"nope": 1}, {"currency": "EUR"}, {"leverage": "100"},
     {"trade_allowed": 1}, {"margin_mode": 1}, {"leverage": 0}],
)  # fmt: skip
def test_set_account_refuses(sim: SimulatedTerminal, fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        sim.set_account(**fields)


def test_set_symbol_overrides_and_refuses(sim: SimulatedTerminal) -> None:
    sim.set_symbol("EURUSD", volume_step=0.1, trade_stops_level=10, spread=30)
    info = sim.symbol_info("EURUSD")
    assert info is not None
    assert (info.volume_step, info.trade_stops_level, info.spread) == (0.1, 10, 30)
    assert round((info.ask - info.bid) / info.point) == 30
    for bad in ({"bid": 1.0}, {"name": "X"}, {"nope": 1}, {"digits": 5.0}):
        with pytest.raises(ValueError, match=r"."):
            sim.set_symbol("EURUSD", **bad)
    with pytest.raises(ValueError, match="unknown symbol"):
        sim.set_spread_points("NOPE", 3)


def test_set_price_moves_the_quote(sim: SimulatedTerminal) -> None:
    sim.set_spread_points("EURUSD", 10)
    sim.set_price("EURUSD", 1.2)
    sim.freeze_ticks("EURUSD", True)
    tick = sim.symbol_info_tick("EURUSD")
    assert tick is not None
    assert (tick.bid, tick.ask) == (1.2, 1.2001)
