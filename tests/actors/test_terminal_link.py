"""TerminalLink without an actor: the one door to the terminal, over the simulator.

What reached the terminal is read from the simulator's call log (`sim.calls`).
"""

from __future__ import annotations

import threading
import time

import pytest

from actors._broker_config import BrokerConfig
from actors._failures import FencedError, TerminalClosedError
from actors._terminal_link import TerminalLink
from actors._terminal_watch import TerminalWatch
from terminals.simulated import SimulatedTerminal


@pytest.fixture
def sim() -> SimulatedTerminal:
    return SimulatedTerminal(seed=7)


def link_to(sim: SimulatedTerminal, fence: threading.Event | None = None) -> TerminalLink:
    return TerminalLink(
        sim, BrokerConfig(), TerminalWatch("the simulator", time.monotonic), fence=fence
    )


def names(sim: SimulatedTerminal) -> list[str]:
    return [r.name for r in sim.calls if r.name != "last_error"]


def test_a_fenced_link_calls_nothing(sim: SimulatedTerminal) -> None:
    fence = threading.Event()
    link = link_to(sim, fence)
    assert link.connect()
    sim.reset_calls()

    fence.set()

    with pytest.raises(FencedError, match="order_send not called"):
        link.call("order_send", {})
    result, error = link.info("terminal_info")  # an info call is refused as well
    assert result is None
    assert error is not None
    assert names(sim) == []


def test_a_closed_link_calls_nothing_and_says_why(sim: SimulatedTerminal) -> None:
    link = link_to(sim)
    assert link.connect()
    sim.reset_calls()

    link.closed = "replaced by a restart"

    with pytest.raises(TerminalClosedError, match="replaced by a restart"):
        link.call("symbol_info", "EURUSD")
    assert link.last_error() == (-10004, "No IPC connection: replaced by a restart")
    assert not link.connect()
    link.shutdown()  # the terminal belongs to the next incarnation: not shut down
    assert names(sim) == []


def test_last_error_explains_the_call_that_failed_even_after_another_call(
    sim: SimulatedTerminal,
) -> None:
    link = link_to(sim)
    assert link.connect()

    assert link.call("symbol_info", "NOSUCH") is None
    sim.symbol_info("EURUSD")  # the terminal's own last_error moves on

    code, _ = link.last_error()
    assert code != 1
    assert link.last_error() == (1, "Success")  # read once: the next read is the terminal's


def test_connect_forgets_what_was_learned_only_when_it_succeeds(sim: SimulatedTerminal) -> None:
    link = link_to(sim)
    forgotten: list[str] = []
    link.on_connect(lambda: forgotten.append("caches"))

    assert link.connect()
    sim.set_ipc_alive(False)
    link.connected = False
    assert not link.connect()

    assert forgotten == ["caches"]
    assert link.calls["initialize"] == 2


def test_an_info_call_reconnects_once_after_an_ipc_failure(sim: SimulatedTerminal) -> None:
    link = link_to(sim)
    assert link.connect()
    sim.set_ipc_alive(False)
    sim.set_ipc_alive(True)  # back, but this connection died with it
    sim.reset_calls()

    info, error = link.info("account_info")

    assert info is not None
    assert error is None
    assert names(sim) == ["account_info", "initialize", "account_info"]
    assert link.reconnects == 1
