"""A terminal that stops answering: the sends queued behind it are answered within the bound.

The terminal is `execution-engine simulator serve` in a subprocess over the real rpyc
protocol, frozen with SIGSTOP exactly as the outside tester froze it (issue 11, items 12-14):
the kernel still accepts its TCP connections, nothing answers. Small settings keep it short:
a 1 s rpyc timeout and a 2 s `EE_TERMINAL_WAIT_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors._reply import Reply
from actors.broker import SendRequest
from core.enums import ExecutionStatus as S
from core.enums import RejectionReason as R
from core.models import ExecutionConfirmation, ExecutionRequest
from core.records import SendOutcome
from terminals.bridge import RpycTerminal
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually
from tests.terminals.test_bridge import ServedSimulator

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")

RPYC_TIMEOUT = 1.0
TERMINAL_WAIT = 2.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedSimulator]:
    server = ServedSimulator(seed=3, log=tmp_path / "simulator.log")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
        server.stop()


def _bridge(port: int) -> RpycTerminal:
    return RpycTerminal(port=port, timeout=RPYC_TIMEOUT)


def test_sends_queued_behind_a_frozen_terminal_are_answered_not_sent_within_the_bound(
    served: ServedSimulator, make_engine: EngineFactory
) -> None:
    """Issue 11, item 12: 7 of 12 sends queued in the broker while the simulator was
    SIGSTOPped stayed SUBMITTING for 90 s and then became "broker failed during the send:
    Timeout". Now each is answered within the bound, NOT_SENT, naming the terminal."""
    control = _bridge(served.port)  # its own connection: the engine's bridge is busy
    engine = make_engine(
        terminal=_bridge(served.port),
        terminal_wait_seconds=TERMINAL_WAIT,
        order_timeout_seconds=30.0,
        reconcile_window_seconds=30.0,
    )
    assert engine.execute(rpm(decision_id="warm-up")).status is S.FILLED
    control.remote("set_latency", 0.4, None, None)  # sends are slow: a line forms
    futures = [engine.submit(rpm(decision_id=f"queued-{i}", units=1000)) for i in range(8)]

    def in_line() -> bool:  # each validated and written ahead: in the broker's line
        counts = engine.repository.count_by_status()  # recorded from SUBMITTING on
        return sum(counts.values()) == len(futures) + 1 and counts.get("SUBMITTING", 0) >= 5

    eventually(in_line, timeout=10, what="the sends queued")
    control.close()

    os.kill(served.process.pid, signal.SIGSTOP)
    queued = [future for future in futures if not _done(future)]
    # The bound: the wait, plus the call in flight and one reconnect (a timeout each).
    deadline = time.monotonic() + TERMINAL_WAIT + 2 * RPYC_TIMEOUT + 1.5
    answered: list[ExecutionConfirmation] = []
    for future in queued:
        # The send in flight at the freeze stays UNKNOWN until the terminal is back.
        with contextlib.suppress(pykka.Timeout):
            answered.append(future.get(timeout=max(deadline - time.monotonic(), 0.0)))
    health = engine.health()
    os.kill(served.process.pid, signal.SIGCONT)

    not_sent = [c for c in answered if c.rejection_reason is R.NOT_SENT]
    assert len(queued) >= 5
    assert len(answered) >= len(queued) - 1, [c.status for c in answered]
    assert len(not_sent) == len(answered), [(c.status, c.rejection_details) for c in answered]
    for confirmation in not_sent:
        assert confirmation.status is S.REJECTED
        details = confirmation.rejection_details or ""
        assert f"rpyc://127.0.0.1:{served.port}" in details, details
        assert "EE_TERMINAL_WAIT_SECONDS" in details
        assert "Timeout" not in details.split("(")[0]
    assert health["broker"]["connected"] is False  # /health is not "ok" meanwhile
    # Back: the one in flight settles on what the terminal did, and trading goes on.
    final = [future.get(timeout=30) for future in futures]
    assert all(c.status is not S.UNKNOWN for c in final)
    after = engine.execute(rpm(decision_id="after-thaw"))
    assert after.status is S.FILLED, after.rejection_details


def test_a_fenced_broker_answers_its_queued_sends_not_sent_at_once_and_never_calls_again(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    """Issue 11, items 12 and 14: a broker replaced as hung answered its queued sends only
    when it woke up (or never), and then BROKER_REJECTED "symbol 'USDJPY' is unknown to the
    terminal: (1, 'Success')" though nothing was sent. Now they are answered at the
    replacement, NOT_SENT with the true cause, and the old incarnation makes no call."""
    engine = make_engine(ask_timeout_seconds=0.5)
    release = threading.Event()
    old = engine.supervisor.broker_proxy().actor_ref
    engine.supervisor.inject("broker", "hang", release=release, hang_seconds=30.0)
    replies: list[Reply[SendOutcome]] = [Reply() for _ in range(3)]
    for i, reply in enumerate(replies):
        old.tell(SendRequest(_request(i, "USDJPY"), None, reply))
    sim.reset_calls()

    outcomes = [reply.get(timeout=5) for reply in replies]  # while the old one still hangs
    release.set()
    eventually(lambda: not old.is_alive(), what="old broker stopped")

    for outcome in outcomes:
        assert outcome.not_sent
        assert not outcome.sent
        assert "the broker was replaced (hung" in outcome.comment
        assert "unknown to the terminal" not in outcome.comment
    assert [c for c in sim.calls if c.name in ("order_send", "symbol_info")] == []


def _done(future: pykka.Future[Any]) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    return True


def _request(i: int, symbol: str) -> ExecutionRequest:
    fields: dict[str, Any] = {
        "request_id": f"req_fenced_{i}",
        "execution_id": f"exec_fenced_{i}",
        "client_id": f"ee-fenced-{i:04d}",
        "symbol": symbol,
        "direction": 1,
        "units": 1000,
        "lots": 0.01,
        "intended_price": 0.0,
        "magic": 770001,
        "deviation_points": 100,
        "max_slippage_pips": 10.0,
        "timeout_seconds": 5.0,
        "max_retries": 3,
    }
    return ExecutionRequest(**fields)
