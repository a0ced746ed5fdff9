"""The rpyc bridge against `execution-engine simulator serve` running in a subprocess.

The served simulator is a separate process, exactly as a MetaTrader5 under Wine is; the
bridge client must not be able to tell it from the module. Each test starts its own server
(about 0.2 s) on a port the OS picks (`--port 0`; the ready line names the real one), and
teardown terminates it (then kills it after a bounded wait).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from actors._scheduler import Scheduler
from actors.broker import BrokerActor, BrokerConfig
from core.clock import SystemClock
from core.enums import RetcodeClass
from core.models import ExecutionRequest
from core.records import OrderFinding, Preflight, SendOutcome
from terminals import types
from terminals.bridge import RpycTerminal, _literal
from terminals.sim_server import build_server
from terminals.simulated import SimulatedTerminal

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
CALL_TIMEOUT = 10.0


class ServedSimulator:
    """`execution-engine simulator serve --port 0` in a subprocess."""

    def __init__(self, seed: int, log: Path, port: int = 0, args: Sequence[str] = ()) -> None:
        self._stderr = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "simulator", "serve", "--port", str(port),
             "--seed", str(seed), *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )  # fmt: skip
        self._log = log
        self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                lines.put(line)
            lines.put("")  # end of output: the process is gone

        threading.Thread(target=read, daemon=True).start()
        try:
            line = lines.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"no ready line within {READY_TIMEOUT} s")
        if "serving rpyc classic on" not in line:
            pytest.fail(f"server did not start: {line!r}; stderr: {self._log.read_text()}")
        return int(line.strip().rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


Serve = Callable[..., tuple[ServedSimulator, RpycTerminal]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Starts served simulators with a bridge client each; stops all of them."""
    started: list[tuple[ServedSimulator, RpycTerminal]] = []

    def start(seed: int = 0) -> tuple[ServedSimulator, RpycTerminal]:
        server = ServedSimulator(seed, tmp_path / f"simulator-{len(started)}.log")
        bridge = RpycTerminal(port=server.port, timeout=CALL_TIMEOUT)
        started.append((server, bridge))
        return server, bridge

    yield start
    for server, bridge in started:
        bridge.close()
        server.stop()


@pytest.fixture
def bridge(serve: Serve) -> RpycTerminal:
    _, bridge = serve()
    assert bridge.initialize() is True
    return bridge


def market_order(price: float = 0.0, comment: str = "ee-bridge") -> dict[str, Any]:
    return {
        "action": 1,  # TRADE_ACTION_DEAL
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": 0,  # ORDER_TYPE_BUY
        "price": price,
        "deviation": 10,
        "magic": 4242,
        "comment": comment,
        "type_time": 0,
        "type_filling": 0,
    }


def assert_mt5_type(value: Any, name: str) -> None:
    """The bridge hands back the same namedtuple types the real module has."""
    assert type(value).__name__ == name
    assert value._fields == getattr(types, name)._fields


# --- the MT5 API through the bridge --------------------------------------------------------


def test_info_calls_return_the_real_result_types(bridge: RpycTerminal) -> None:
    info = bridge.symbol_info("EURUSD")
    tick = bridge.symbol_info_tick("EURUSD")
    account = bridge.account_info()
    terminal = bridge.terminal_info()

    assert_mt5_type(info, "SymbolInfo")
    assert (info.name, info.digits, info.point) == ("EURUSD", 5, 0.00001)
    assert_mt5_type(tick, "Tick")
    assert 0 < tick.bid < tick.ask
    assert_mt5_type(account, "AccountInfo")
    assert account.currency == "USD"
    assert_mt5_type(terminal, "TerminalInfo")
    assert terminal.connected
    assert bridge.last_error() == (1, "Success")


def test_order_check_send_and_history_through_the_bridge(bridge: RpycTerminal) -> None:
    check = bridge.order_check(market_order())
    sent = bridge.order_send(market_order())
    deals = bridge.history_deals_get(ticket=sent.order)
    orders = bridge.history_orders_get(ticket=sent.order)

    assert_mt5_type(check, "OrderCheckResult")
    assert (check.retcode, check.comment) == (0, "Done")
    assert_mt5_type(check.request, "TradeRequest")
    assert_mt5_type(sent, "OrderSendResult")
    assert sent.retcode == 10009
    assert sent.deal > 0
    assert sent.volume == 0.1
    assert_mt5_type(sent.request, "TradeRequest")
    assert sent.request.comment == "ee-bridge"
    assert isinstance(deals, tuple)
    assert len(deals) == 1
    assert_mt5_type(deals[0], "TradeDeal")
    assert (deals[0].ticket, deals[0].order, deals[0].volume) == (sent.deal, sent.order, 0.1)
    assert_mt5_type(orders[0], "TradeOrder")
    assert orders[0].comment == "ee-bridge"


def test_last_error_after_a_bad_call(bridge: RpycTerminal) -> None:
    bad = {**market_order(), "volume": "0.1"}

    assert bridge.order_send(bad) is None
    assert bridge.last_error() == (-2, 'Invalid "volume" argument')
    assert bridge.symbol_info("NOPE") is None
    assert bridge.last_error() == (-4, "Terminal: Not found")
    assert bridge.remote("sent_requests") == (bad,)


def test_the_same_order_both_ways_gives_the_same_result(serve: Serve) -> None:
    seed = 11
    local = SimulatedTerminal(seed=seed)
    _, remote = serve(seed)

    def session(terminal: Any) -> tuple[Any, Any, Any]:
        assert terminal.initialize() is True
        tick = terminal.symbol_info_tick("EURUSD")
        result = terminal.order_send(market_order(price=tick.ask, comment="ee-same"))
        deals = terminal.history_deals_get(ticket=result.order)
        return tick, result, deals

    local_tick, local_result, local_deals = session(local)
    remote_tick, remote_result, remote_deals = session(remote)

    assert (remote_tick.bid, remote_tick.ask) == (local_tick.bid, local_tick.ask)
    # Every field: retcode, tickets, volume, price, comment, request id and request echo.
    assert remote_result == local_result
    assert remote_result.request == local_result.request
    assert remote_result.retcode == 10009

    def timeless(deal: Any) -> dict[str, Any]:
        return {k: v for k, v in deal._asdict().items() if k not in ("time", "time_msc")}

    assert [timeless(d) for d in remote_deals] == [timeless(d) for d in local_deals]


def test_fault_injection_is_reachable_through_the_bridge(bridge: RpycTerminal) -> None:
    bridge.remote("inject", "timeout_executed")
    assert bridge.remote("pending_faults") == (
        {"kind": "timeout_executed", "remaining": 1, "symbol": None},
    )

    result = bridge.order_send(market_order())
    orders = bridge.remote("history_orders_snapshot")

    assert result.retcode == 10012
    assert (result.deal, result.order) == (0, 0)
    # It executed all the same: the order is in history, filled.
    assert len(orders) == 1
    assert_mt5_type(orders[0], "TradeOrder")
    assert orders[0].state == 4  # ORDER_STATE_FILLED
    assert len(bridge.remote("sent_requests")) == 1
    assert bridge.remote("pending_faults") == ()


def test_account_rules_are_settable_through_the_bridge(bridge: RpycTerminal) -> None:
    bridge.remote("set_hedge_prohibited", True)
    bridge.remote("set_account", fifo_close=True)
    opened = bridge.order_send(market_order())
    assert opened.retcode == 10009
    opposite = {**market_order(), "type": 1}
    assert bridge.order_send(opposite).retcode == 10046  # TRADE_RETCODE_HEDGE_PROHIBITED
    assert bridge.account_info().fifo_close is True
    closed = bridge.order_send({**opposite, "position": opened.order})
    assert closed.retcode == 10009


# rpyc 6.0.2's socket_backoff_connect does not close its socket when the connection is
# refused (only on a timeout); the socket is collected with a ResourceWarning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_dead_server_is_an_ipc_error_not_a_crash(serve: Serve) -> None:
    server, bridge = serve()
    assert bridge.initialize() is True
    server.stop()

    with pytest.raises((EOFError, ConnectionError, OSError)):
        bridge.symbol_info("EURUSD")
    assert bridge.initialize() is False
    assert bridge.last_error() == (-10004, "No IPC connection")


def test_the_timeout_bounds_connect_handshake_and_every_call() -> None:
    """A server that accepts and never answers (a frozen terminal: the kernel completes the
    TCP handshake from the listen backlog): each call, and each reconnect, fails within the
    timeout. rpyc's own classic.connect waited its default 30 s in the handshake."""
    timeout = 0.5
    with socket.create_server(("127.0.0.1", 0)) as frozen:
        bridge = RpycTerminal(port=frozen.getsockname()[1], timeout=timeout)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            bridge.symbol_info("EURUSD")
        took = [time.monotonic() - started]
        started = time.monotonic()
        assert bridge.initialize() is False  # a reconnect: TCP, handshake, all bounded
        took.append(time.monotonic() - started)
        started = time.monotonic()
        # The link just failed: the module's answer, without another timeout.
        assert bridge.last_error() == (-10004, "No IPC connection")
        last_error_took = time.monotonic() - started
        bridge.close()

    assert all(timeout * 0.9 <= t < timeout + 0.4 for t in took), took
    assert last_error_took < 0.1


def test_a_call_on_a_frozen_terminal_fails_within_the_timeout(serve: Serve) -> None:
    """A live link whose terminal then freezes (SIGSTOP): the call in flight, and the
    reconnect after it, each fail within the timeout. The first call took two timeouts (its
    result was fetched by a second request) and dropping the link a third (rpyc's close()
    waits for the peer's answer)."""
    server, _ = serve()
    timeout = 0.5
    bridge = RpycTerminal(port=server.port, timeout=timeout)
    assert bridge.initialize() is True
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            bridge.symbol_info_tick("EURUSD")
        took = [time.monotonic() - started]
        started = time.monotonic()
        assert bridge.initialize() is False
        took.append(time.monotonic() - started)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    bridge.close()

    assert all(t < timeout + 0.3 for t in took), took


# --- the BrokerActor over the bridge -------------------------------------------------------


def test_broker_over_the_bridge_places_one_order_end_to_end(serve: Serve) -> None:
    _, bridge = serve()
    scheduler = Scheduler(SystemClock().monotonic)
    ref = BrokerActor.start(bridge, BrokerConfig(), SystemClock(), scheduler)
    try:
        broker = ref.proxy()
        ready: Preflight = broker.preflight("EURUSD").get(timeout=CALL_TIMEOUT)
        request = ExecutionRequest(
            request_id="req_bridge",
            execution_id="exec_bridge",
            client_id="ee-bridge-0001",
            symbol="EURUSD",
            direction=1,
            units=10_000,
            lots=0.1,
            intended_price=0.0,
            magic=770001,
            deviation_points=100,
            max_slippage_pips=10.0,
            timeout_seconds=5.0,
            max_retries=3,
        )
        outcome: SendOutcome = broker.place_order(request).get(timeout=CALL_TIMEOUT)
        finding: OrderFinding = broker.query_order(outcome.order, 0.1).get(timeout=CALL_TIMEOUT)
        found: OrderFinding | None = broker.find_order(
            client_id="ee-bridge-0001",
            symbol="EURUSD",
            direction=1,
            lots=0.1,
            since=datetime.now(UTC),
        ).get(timeout=CALL_TIMEOUT)
    finally:
        ref.stop(timeout=CALL_TIMEOUT)
        scheduler.stop()

    assert ready.ready
    assert ready.spec is not None
    assert ready.spec.digits == 5
    assert outcome.klass is RetcodeClass.SUCCESS
    assert outcome.retcode == 10009
    assert finding.done
    assert finding.filled_volume == pytest.approx(0.1)
    assert found is not None
    assert found.ticket == outcome.order
    (sent,) = bridge.remote("sent_requests")
    assert sent == outcome.request
    assert (sent["deviation"], sent["type_filling"], sent["magic"]) == (100, 0, 770001)
    assert bridge.remote("overlapping_seqs") == ()


# --- pieces that need no server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ((), "()"),
        ((1,), "(1,)"),
        ([], "[]"),
        ({"a": (1, 2.5, "x", None, True)}, "{'a': (1, 2.5, 'x', None, True,)}"),
        (
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
            "datetime.datetime.fromisoformat('2024-01-02T03:04:05+00:00')",
        ),
    ],
)
def test_arguments_cross_as_python_literals(value: Any, text: str) -> None:
    assert _literal(value) == text


def test_arguments_that_are_not_plain_values_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot send object"):
        _literal(object())


def test_the_simulator_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        build_server(host="0.0.0.0", port=0)  # noqa: S104
