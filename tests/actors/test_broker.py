"""BrokerActor against the simulated terminal.

Every assertion about what reached the terminal reads the simulator's own call log
(`sim.calls`), `sim.sent_requests()` or its history, never timing. The actor is started
directly (`BrokerActor.start(terminal, BrokerConfig(...), clock, scheduler)`) and stopped in
teardown, as is the scheduler; the clock is a `ManualClock` that starts at the real time, so
the broker's history windows cover the simulator's (real-time) orders, and its caches and
its poll timer move only when a test advances it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pykka
import pytest

from actors._scheduler import Scheduler
from actors.broker import BrokerActor, BrokerConfig, SendRequest
from actors.kill_switch import TradingSwitch
from actors.messages import FillUpdate
from core.clock import Clock, SystemClock
from core.enums import ExecutionStatus, RetcodeClass
from core.models import ExecutionRequest
from core.records import OrderFinding, Preflight, SendOutcome
from core.rules import deviation_points, make_client_id, pip_size
from core.testing import ManualClock
from terminals.simulated import SimulatedTerminal
from terminals.types import OrderSendResult, TradeRequest
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually

MAGIC = 770001
TIMEOUT = 10.0
"""Bound on every `.get()`: a hung actor fails the test instead of hanging it."""

Broker = Any
"""A `pykka.ActorProxy[BrokerActor]`: its methods return futures (typed `Any` by pykka)."""

ORDER_FILLING_FOK = 0
ORDER_FILLING_IOC = 1
ORDER_STATE_CANCELED = 2


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=datetime.now(UTC))


@pytest.fixture
def scheduler(clock: ManualClock) -> Iterator[Scheduler]:
    """Timers on the manual clock: a poll pass happens only when a test advances it."""
    scheduler = Scheduler(monotonic=clock.monotonic)
    yield scheduler
    scheduler.stop()


BrokerStarter = Callable[..., Broker]


@pytest.fixture
def start_broker(clock: ManualClock, scheduler: Scheduler) -> Iterator[BrokerStarter]:
    """Starts BrokerActors (poll interval 0.01 s of the manual clock) and stops them all."""
    refs: list[pykka.ActorRef[BrokerActor]] = []

    def start(terminal: Any, actor_clock: Clock | None = None, **config: Any) -> Broker:
        config.setdefault("poll_interval", 0.01)
        ref = BrokerActor.start(terminal, BrokerConfig(**config), actor_clock or clock, scheduler)
        refs.append(ref)
        return ref.proxy()

    yield start
    for ref in refs:
        ref.stop(timeout=TIMEOUT)


@pytest.fixture
def broker(start_broker: BrokerStarter, sim: SimulatedTerminal) -> Broker:
    return start_broker(sim)


def order_request(
    symbol: str = "EURUSD",
    lots: float = 0.1,
    direction: int = 1,
    client_id: str = "ee-test-order-0001",
    deviation: int = 100,
    magic: int = MAGIC,
) -> ExecutionRequest:
    return ExecutionRequest(
        request_id="req_1",
        execution_id="exec_1",
        client_id=client_id,
        symbol=symbol,
        direction=direction,
        units=lots * 100_000,
        lots=lots,
        intended_price=0.0,
        magic=magic,
        deviation_points=deviation,
        max_slippage_pips=10.0,
        timeout_seconds=5.0,
        max_retries=3,
    )


def place(broker: Broker, **request: Any) -> SendOutcome:
    outcome: SendOutcome = broker.place_order(order_request(**request)).get(timeout=TIMEOUT)
    return outcome


def preflight(broker: Broker, symbol: str = "EURUSD") -> Preflight:
    result: Preflight = broker.preflight(symbol).get(timeout=TIMEOUT)
    return result


def names(sim: SimulatedTerminal) -> list[str]:
    """The MT5 calls the terminal saw, in order; `last_error` (which explains a failed call,
    and is read in the same turn) is left out."""
    return [r.name for r in sim.calls if r.name != "last_error"]


def count(sim: SimulatedTerminal, name: str) -> int:
    return names(sim).count(name)


class ScriptedSends:
    """A hand-written fake terminal: the simulator for everything, except that `order_send`
    answers what the test's `handler` returns (or raises), the way httpx's MockTransport
    plays a server. It records the requests it was given."""

    def __init__(self, inner: SimulatedTerminal, handler: Callable[[dict[str, Any]], Any]):
        self._inner = inner
        self._handler = handler
        self.sent: list[dict[str, Any]] = []

    def order_send(self, request: dict[str, Any]) -> Any:
        self.sent.append(dict(request))
        return self._handler(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def send_result(retcode: int, request: dict[str, Any]) -> OrderSendResult:
    echo = TradeRequest(**{k: v for k, v in request.items() if k in TradeRequest._fields})
    return OrderSendResult(
        retcode=retcode,
        deal=0,
        order=0,
        volume=0.0,
        price=0.0,
        bid=0.0,
        ask=0.0,
        comment="scripted",
        request_id=7,
        retcode_external=0,
        request=echo,
    )


class FillRecorder(pykka.ThreadingActor):
    """A tiny hand-written actor that keeps every message it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []

    def on_receive(self, message: Any) -> None:
        self.received.append(message)


# --- serialization -------------------------------------------------------------------------


def test_fifty_concurrent_callers_never_overlap_at_the_terminal(
    start_broker: BrokerStarter, sim: SimulatedTerminal
) -> None:
    sim.set_latency(order_send=0.002, order_check=0.002, ipc=0.001)
    # The real clock and no coalescing: every call reaches the terminal.
    broker = start_broker(sim, SystemClock(), tick_window=0, account_window=0, margin_window=0)
    first = place(broker, client_id="ee-first")
    assert first.klass is RetcodeClass.SUCCESS
    callers = 50
    barrier = threading.Barrier(callers)
    results: list[Any] = []
    errors: list[BaseException] = []

    def caller(i: int) -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            if i % 3 == 0:
                future = broker.preflight("EURUSD")
            elif i % 3 == 1:
                future = broker.place_order(order_request(client_id=f"ee-caller-{i:02d}"))
            else:
                future = broker.query_order(first.order, 0.1)
            results.append(future.get(timeout=TIMEOUT))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)

    assert errors == []
    assert len(results) == callers
    assert sim.overlapping_calls() == []
    # Every call came from the actor's one thread.
    assert len({r.thread_id for r in sim.calls}) == 1
    sends = len([i for i in range(callers) if i % 3 == 1])
    assert count(sim, "order_send") == 1 + sends
    assert all(isinstance(r, Preflight) and r.ready for r in results if isinstance(r, Preflight))


def test_overlap_detector_sees_unserialized_callers(sim: SimulatedTerminal) -> None:
    """Control: two threads calling the terminal directly do overlap, and it is seen."""
    assert sim.initialize()
    sim.set_latency(ipc=0.02)
    barrier = threading.Barrier(2)

    def caller() -> None:
        barrier.wait(timeout=TIMEOUT)
        for _ in range(3):
            sim.symbol_info_tick("EURUSD")

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT)

    assert sim.overlapping_calls() != []
    assert len({r.thread_id for r in sim.calls if r.name == "symbol_info_tick"}) == 2


# --- retcode classes -----------------------------------------------------------------------

S, R, A, F = (
    RetcodeClass.SUCCESS,
    RetcodeClass.RETRY,
    RetcodeClass.AMBIGUOUS,
    RetcodeClass.FINAL,
)


@pytest.mark.parametrize(
    ("fault", "klass", "retcode", "last_error"),
    [
        (None, S, 10009, None),
        ("placed", S, 10008, None),
        ("partial", S, 10010, None),
        ("requote", R, 10004, None),
        ("price_changed", R, 10020, None),
        ("price_off", R, 10021, None),
        ("too_many_requests", R, 10024, None),
        ("timeout_executed", A, 10012, None),
        ("timeout_not_executed", A, 10012, None),
        ("none_executed", A, None, -10002),
        ("none_not_executed", A, None, -10001),
        ("connection", A, 10031, None),
        ("reject", F, 10006, None),
        ("market_closed", F, 10018, None),
        ("no_money", F, 10019, None),
    ],
)
def test_every_retcode_class_through_place_order(
    fault: str | None,
    klass: RetcodeClass,
    retcode: int | None,
    last_error: int | None,
    broker: Broker,
    sim: SimulatedTerminal,
) -> None:
    if fault is not None:
        sim.inject(fault)

    outcome = place(broker)

    assert outcome.klass is klass
    assert outcome.retcode == retcode
    assert (outcome.last_error or (None,))[0] == last_error
    # The broker classifies; it never sends twice on its own (only INVALID_FILL is retried).
    assert count(sim, "order_send") == 1
    assert len(sim.sent_requests()) == 1
    assert outcome.request == sim.sent_requests()[0]


@pytest.mark.parametrize(
    ("retcode", "klass"),
    [
        (10046, F),  # HEDGE_PROHIBITED: in the MQL5 docs, not in MetaTrader5 5.0.6231
        (10099, F),  # a retcode no version knows
        (10025, F),  # NO_CHANGES: not a success for a market order
        (10011, A),  # ERROR
        (10028, A),  # LOCKED
        (10023, A),  # ORDER_CHANGED
    ],
)
def test_retcodes_the_simulator_cannot_inject(
    retcode: int, klass: RetcodeClass, start_broker: BrokerStarter, sim: SimulatedTerminal
) -> None:
    fake = ScriptedSends(sim, lambda request: send_result(retcode, request))
    broker = start_broker(fake)

    outcome = place(broker)

    assert outcome.klass is klass
    assert outcome.retcode == retcode
    assert len(fake.sent) == 1


def test_an_exception_from_the_terminal_during_a_send_is_ambiguous(
    start_broker: BrokerStarter, sim: SimulatedTerminal
) -> None:
    def broken_link(request: dict[str, Any]) -> Any:
        raise EOFError("connection closed by peer")

    fake = ScriptedSends(sim, broken_link)
    broker = start_broker(fake)

    outcome = place(broker)
    finding: OrderFinding = broker.query_order(1, 0.1).get(timeout=TIMEOUT)

    assert outcome.klass is A
    assert outcome.retcode is None
    assert "EOFError" in outcome.comment
    assert not finding.found
    assert len(fake.sent) == 1


def test_a_halted_broker_sends_nothing(
    clock: ManualClock, scheduler: Scheduler, sim: SimulatedTerminal
) -> None:
    switch = TradingSwitch()
    switch.set(True, "stop")
    ref = BrokerActor.start(sim, BrokerConfig(poll_interval=0.01), clock, scheduler, switch=switch)
    try:
        outcome = place(ref.proxy())
    finally:
        ref.stop(timeout=TIMEOUT)

    assert outcome.halted
    assert not outcome.sent
    assert count(sim, "order_send") == 0


# --- ambiguous outcomes and reconnects -----------------------------------------------------


def test_ambiguous_send_on_a_dead_link_is_never_replayed_after_reconnect(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    assert preflight(broker).ready  # spec and quote are cached: the send goes straight out
    sim.set_ipc_alive(False)

    outcome = place(broker)
    sim.set_ipc_alive(True)
    after = preflight(broker)
    finding: OrderFinding | None = broker.find_order(
        client_id="ee-test-order-0001",
        symbol="EURUSD",
        direction=1,
        lots=0.1,
        since=datetime.now(UTC),
    ).get(timeout=TIMEOUT)

    assert outcome.klass is A  # the OrderActor turns this into UNKNOWN and reconciles
    assert outcome.last_error is not None
    assert outcome.last_error[0] == -10004
    assert after.ready
    assert count(sim, "initialize") == 2  # at start, and the reconnect
    assert count(sim, "order_send") == 1
    assert len(sim.sent_requests()) == 1
    assert finding is None
    assert sim.history_orders_snapshot() == ()


def test_ambiguous_send_that_executed_is_found_not_resent(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    sim.inject("none_executed")  # executes, then the reply is lost: None + -10002

    outcome = place(broker)
    finding: OrderFinding | None = broker.find_order(
        client_id="ee-test-order-0001",
        symbol="EURUSD",
        direction=1,
        lots=0.1,
        since=datetime.now(UTC),
    ).get(timeout=TIMEOUT)

    assert outcome.klass is A
    assert count(sim, "initialize") == 2  # the IPC error dropped the link; it was remade
    assert count(sim, "order_send") == 1
    assert finding is not None
    assert finding.done
    assert finding.filled_volume == pytest.approx(0.1)
    assert [o.ticket for o in sim.history_orders_snapshot()] == [finding.ticket]


def test_send_is_not_attempted_when_the_link_cannot_be_remade(
    broker: Broker, sim: SimulatedTerminal, clock: ManualClock
) -> None:
    """The quote refresh meets a dead link and the reconnect fails: nothing may be sent,
    and the outcome is a clean RETRY (nothing left this process), not AMBIGUOUS."""
    assert preflight(broker).ready
    clock.advance(1.0)  # the cached tick is stale: the send needs a fresh quote
    sim.set_ipc_alive(False)

    outcome = place(broker)

    assert outcome.klass is R
    assert outcome.retcode is None
    assert count(sim, "order_send") == 0
    assert sim.sent_requests() == []


def test_ipc_failure_on_an_info_call_reconnects_and_retries_once(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    sim.reset_calls()
    sim.set_ipc_alive(False)
    sim.set_ipc_alive(True)  # the terminal is back, but this connection died with it

    result = preflight(broker)

    assert result.ready
    assert names(sim)[:3] == ["terminal_info", "initialize", "terminal_info"]
    assert "-10004" in sim.calls[0].result


def test_ipc_failure_on_an_info_call_is_retried_only_once(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    sim.reset_calls()
    sim.set_ipc_alive(False)

    result = preflight(broker)

    assert not result.ready
    assert "terminal_info failed" in result.not_ready_detail
    assert names(sim) == ["terminal_info", "initialize"]


# --- filling modes, deviation, volume ------------------------------------------------------


def test_invalid_fill_is_retried_once_with_the_next_filling_mode(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    sim.inject("invalid_fill")

    outcome = place(broker)

    sent = sim.sent_requests()
    assert [r["type_filling"] for r in sent] == [ORDER_FILLING_FOK, ORDER_FILLING_IOC]
    assert outcome.klass is S
    assert outcome.request["type_filling"] == ORDER_FILLING_IOC


def test_invalid_fill_twice_is_not_retried_a_second_time(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    sim.inject("invalid_fill", times=2)

    outcome = place(broker)

    assert count(sim, "order_send") == 2
    assert outcome.retcode == 10030
    assert outcome.klass is R


def test_invalid_fill_with_no_other_mode_is_not_retried(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    sim.inject("invalid_fill", symbol="EURJPY")  # Instant execution: FOK only

    outcome = place(broker, symbol="EURJPY")

    assert count(sim, "order_send") == 1
    assert outcome.retcode == 10030


@pytest.mark.parametrize(
    ("symbol", "lots", "override", "deviation", "filling"),
    [
        ("EURUSD", 0.1, None, 100, ORDER_FILLING_FOK),  # 5 digits: pip = 10 points
        ("USDJPY", 0.1, None, 100, ORDER_FILLING_FOK),  # 3 digits: pip = 10 points
        ("XAUUSD", 0.1, None, 10, ORDER_FILLING_FOK),  # 2 digits: pip = point
        ("XAUUSD", 0.1, 0.1, 100, ORDER_FILLING_FOK),  # gold with a 0.1 pip override
        ("US500", 2.0, None, 10, ORDER_FILLING_IOC),  # IOC-only index, 1 digit
    ],
)
def test_request_deviation_filling_and_volume_per_symbol(
    symbol: str,
    lots: float,
    override: float | None,
    deviation: int,
    filling: int,
    broker: Broker,
    sim: SimulatedTerminal,
) -> None:
    spec = preflight(broker, symbol).spec
    assert spec is not None
    points = deviation_points(10.0, pip_size(spec.digits, spec.point, override), spec.point)

    outcome = place(broker, symbol=symbol, lots=lots, deviation=points)

    (sent,) = sim.sent_requests()
    assert points == deviation
    assert sent["deviation"] == deviation
    assert sent["type_filling"] == filling
    assert sent["volume"] == lots
    assert sent["symbol"] == symbol
    assert outcome.klass is S
    assert outcome.volume == lots


@pytest.mark.parametrize(
    ("symbol", "units", "lots", "deviation", "filling"),
    [
        ("EURUSD", 10_000, 0.1, 100, ORDER_FILLING_FOK),
        ("USDJPY", 10_000, 0.1, 100, ORDER_FILLING_FOK),
        ("XAUUSD", 10, 0.1, 10, ORDER_FILLING_FOK),
        ("US500", 2, 2.0, 10, ORDER_FILLING_IOC),
    ],
)
def test_engine_sends_deviation_in_points_for_max_slippage_pips(
    symbol: str,
    units: float,
    lots: float,
    deviation: int,
    filling: int,
    make_engine: EngineFactory,
    sim: SimulatedTerminal,
) -> None:
    """The same, end to end: the OrderActor computes deviation from MAX_SLIPPAGE_PIPS."""
    engine = make_engine(max_slippage_pips=10.0, max_spread_pips=50.0)

    confirmation = engine.execute(rpm(symbol=symbol, units=units))

    (sent,) = sim.sent_requests()
    assert confirmation.status is ExecutionStatus.FILLED
    assert sent["deviation"] == deviation
    assert sent["type_filling"] == filling
    assert sent["volume"] == lots


# --- caches --------------------------------------------------------------------------------


def test_caches_cut_terminal_calls_within_their_windows(
    broker: Broker, sim: SimulatedTerminal, clock: ManualClock
) -> None:
    """Default windows: tick 0.05 s, account and terminal 0.25 s, margin 1 s; symbol_info
    and the market-open probe (order_check) for the life of the connection."""
    hot = ["symbol_info_tick", "account_info", "terminal_info", "order_calc_margin"]
    static = ["symbol_info", "order_check"]

    def counts() -> dict[str, int]:
        return {name: count(sim, name) for name in hot + static}

    for _ in range(10):
        assert preflight(broker).ready
    assert counts() == dict.fromkeys(hot + static, 1)

    clock.advance(0.06)  # past the tick window only
    for _ in range(5):
        preflight(broker)
    assert counts() == {**dict.fromkeys(hot + static, 1), "symbol_info_tick": 2}

    clock.advance(0.2)  # 0.26 s: past the account window too
    for _ in range(5):
        preflight(broker)
    assert counts() == {
        **dict.fromkeys(static, 1),
        "symbol_info_tick": 3,
        "account_info": 2,
        "terminal_info": 2,
        "order_calc_margin": 1,
    }

    clock.advance(0.75)  # 1.01 s: past every window
    for _ in range(5):
        preflight(broker)
    assert counts() == {
        **dict.fromkeys(static, 1),
        "symbol_info_tick": 4,
        "account_info": 3,
        "terminal_info": 3,
        "order_calc_margin": 2,
    }


# --- market closed -------------------------------------------------------------------------


def test_market_closed_is_learned_with_one_probe_and_no_send(
    broker: Broker, sim: SimulatedTerminal, clock: ManualClock
) -> None:
    sim.set_market_closed("EURUSD", True)

    first = preflight(broker)
    second = preflight(broker)

    assert first.market_closed
    assert second.market_closed
    assert count(sim, "order_check") == 1
    assert count(sim, "order_send") == 0

    sim.set_market_closed("EURUSD", False)
    clock.advance(60.5)  # past the back-off: probed again, and found open
    assert not preflight(broker).market_closed
    assert count(sim, "order_check") == 2


def test_a_market_closed_send_marks_the_symbol_closed_without_a_probe(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    assert not preflight(broker).market_closed
    sim.inject("market_closed")

    outcome = place(broker)

    assert outcome.retcode == 10018
    assert preflight(broker).market_closed
    assert count(sim, "order_check") == 1


# --- working orders: remove and the shared poll --------------------------------------------


def test_remove_order_of_a_placed_order_that_never_fills(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    sim.inject("placed", fill_after_polls=-1)
    placed = place(broker)
    open_: OrderFinding = broker.query_order(placed.order, 0.1).get(timeout=TIMEOUT)

    removed: SendOutcome = broker.remove_order(placed.order).get(timeout=TIMEOUT)
    after: OrderFinding = broker.query_order(placed.order, 0.1).get(timeout=TIMEOUT)

    assert placed.retcode == 10008
    assert open_.open
    assert removed.klass is S
    assert sim.sent_requests()[-1] == {"action": sim.TRADE_ACTION_REMOVE, "order": placed.order}
    assert after.done
    assert after.state == ORDER_STATE_CANCELED
    assert after.filled_volume == 0
    assert sim.open_orders_snapshot() == ()


def test_one_shared_poll_serves_every_watched_order(
    broker: Broker, sim: SimulatedTerminal, clock: ManualClock, scheduler: Scheduler
) -> None:
    sim.inject("placed", fill_after_polls=2)  # fills on the third history query
    sim.inject("placed", fill_after_polls=-1, times=2)  # never fill
    a, b, c = (place(broker, client_id=f"ee-watch-{n}").order for n in range(3))
    recorder = FillRecorder.start()
    sim.reset_calls()
    for ticket in (a, b, c):
        broker.watch(ticket, 0.1, recorder).get(timeout=TIMEOUT)
    assert scheduler.pending() == 1  # one timer for three watched orders

    def deals_queries() -> list[int]:
        return [cast(int, r.kwargs["ticket"]) for r in sim.calls if r.name == "history_deals_get"]

    expected = 0
    for watching in (3, 3, 3, 2, 2):
        clock.advance(0.01)  # one poll interval of the manual clock: exactly one pass
        expected += watching

        def pass_done(n: int = expected) -> bool:
            # The pass made its queries and scheduled the next one: it is complete.
            return len(deals_queries()) == n and scheduler.pending() == 1

        eventually(pass_done, timeout=TIMEOUT, what=f"a pass ending at {expected} deal queries")

    assert deals_queries() == [a, b, c] * 3 + [b, c] * 2
    assert broker.watched().get(timeout=TIMEOUT) == sorted([b, c])
    updates: list[FillUpdate] = recorder.proxy().received.get(timeout=TIMEOUT)
    assert all(isinstance(u, FillUpdate) for u in updates)
    assert [(u.finding.ticket, u.finding.done) for u in updates] == [
        (a, False),
        (b, False),
        (c, False),
        (a, True),
    ]
    assert updates[-1].finding.filled_volume == pytest.approx(0.1)
    for ticket in (b, c):
        broker.unwatch(ticket).get(timeout=TIMEOUT)
        broker.remove_order(ticket).get(timeout=TIMEOUT)
    recorder.stop()


# --- reconciliation ------------------------------------------------------------------------


def find(broker: Broker, client_id: str, **criteria: Any) -> OrderFinding | None:
    args: dict[str, Any] = {
        "client_id": client_id,
        "symbol": "EURUSD",
        "direction": 1,
        "lots": 0.1,
        "since": datetime.now(UTC),
    }
    args.update(criteria)
    result: OrderFinding | None = broker.find_order(**args).get(timeout=TIMEOUT)
    return result


def test_find_order_by_client_id_in_the_comment(broker: Broker) -> None:
    mine, other = make_client_id("exec_mine"), make_client_id("exec_other")
    place(broker, client_id=other)
    placed = place(broker, client_id=mine)

    finding = find(broker, mine)

    assert finding is not None
    assert finding.ticket == placed.order
    assert finding.done
    assert finding.filled_volume == pytest.approx(0.1)


def test_find_order_when_the_broker_rewrote_the_comment(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    client_id = make_client_id("exec_rewritten")
    placed = place(broker, client_id=client_id)
    sim.rewrite_comment(placed.order, "[sl 1.0990]")

    finding = find(broker, client_id)

    assert finding is not None
    assert finding.ticket == placed.order
    assert finding.filled_volume == pytest.approx(0.1)
    # Only by magic + symbol + side + volume: a mismatch in any of them finds nothing.
    assert find(broker, client_id, lots=0.2) is None
    assert find(broker, client_id, direction=-1) is None
    assert find(broker, client_id, symbol="GBPUSD") is None
    assert find(broker, client_id, exclude=[placed.order]) is None


def test_find_order_never_takes_another_executions_order(broker: Broker) -> None:
    place(broker, client_id=make_client_id("exec_other"))

    assert find(broker, make_client_id("exec_mine")) is None


def test_find_order_ignores_orders_with_another_magic(
    broker: Broker, sim: SimulatedTerminal
) -> None:
    placed = place(broker, client_id="manual", magic=1234)
    sim.rewrite_comment(placed.order, "")

    assert find(broker, make_client_id("exec_mine")) is None


def test_find_order_is_none_when_absent(broker: Broker, sim: SimulatedTerminal) -> None:
    assert find(broker, make_client_id("exec_never_sent")) is None
    assert count(sim, "history_orders_get") == 1
    assert count(sim, "order_send") == 0


# --- dying with sends in line ----------------------------------------------------------------


class _Crash:
    """Makes `_CrashableBroker` fail, as a bug in a told message would."""


class _CrashableBroker(BrokerActor):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Crash):
            raise RuntimeError("injected broker failure")
        return super().on_receive(message)


class _GatedTerminal:
    """The simulator, with `order_send` held until the test releases it."""

    def __init__(self, sim: SimulatedTerminal) -> None:
        self._sim = sim
        self.entered = threading.Event()
        self.release = threading.Event()

    def order_send(self, request: dict[str, Any]) -> Any:
        self.entered.set()
        assert self.release.wait(TIMEOUT)
        return self._sim.order_send(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)


def test_sends_still_in_the_inbox_of_a_dying_broker_are_answered_as_not_sent(
    sim: SimulatedTerminal, clock: ManualClock, scheduler: Scheduler
) -> None:
    """Pykka drops the tells left in a dead actor's inbox: their senders must hear at once
    that nothing was sent, not wait out their order timeout."""
    terminal = _GatedTerminal(sim)
    ref = _CrashableBroker.start(terminal, BrokerConfig(poll_interval=0.01), clock, scheduler)
    try:
        replies: list[pykka.Future[SendOutcome]] = [pykka.ThreadingFuture() for _ in range(3)]
        ref.tell(SendRequest(order_request(client_id="ee-first"), None, replies[0]))
        assert terminal.entered.wait(TIMEOUT)  # the first send is at the terminal
        ref.tell(_Crash())
        for n, reply in enumerate(replies[1:], start=1):
            ref.tell(SendRequest(order_request(client_id=f"ee-queued-{n}"), None, reply))
        terminal.release.set()

        assert replies[0].get(timeout=TIMEOUT).klass is RetcodeClass.SUCCESS
        for reply in replies[1:]:
            with pytest.raises(pykka.ActorDeadError, match="before this order was sent"):
                reply.get(timeout=TIMEOUT)
        assert [r["comment"] for r in sim.sent_requests()] == ["ee-first"]
    finally:
        terminal.release.set()
        if ref.is_alive():
            ref.stop(timeout=TIMEOUT)
