"""A slow terminal must never turn an executed order into NOT_SENT (issue 11, item 1).

The issue's scenario at a tenth of its timings: the simulator over rpyc with
EE_RPYC_TIMEOUT_SECONDS=5, one warm-up execution, then only order_send made slow
(`set_latency(24.0, None, None)`) and 8 decisions posted at once. Each send was cut off by
rpyc's client-side timeout while the simulator went on to fill it; one execution was
declared NOT_SENT at its first lookup although its order filled 2 s later.
"""

from __future__ import annotations

import threading
from typing import Any

from core.enums import ExecutionStatus, RejectionReason
from core.rules import make_client_id
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually

S = ExecutionStatus
R = RejectionReason

CALL_TIMEOUT = 0.5
"""The client-side timeout of a terminal call (EE_RPYC_TIMEOUT_SECONDS, scaled down)."""
SLOW_SEND = 2.4
"""order_send's latency once the terminal is slow (the issue's 24 s, scaled down)."""


class CutOffTerminal:
    """The simulated terminal behind a client-side call timeout, as over the rpyc bridge:
    an order_send that takes longer than `timeout` raises at the caller, while the terminal
    carries on with it (rpyc's threaded server keeps running the call) and may fill it."""

    def __init__(self, sim: SimulatedTerminal, timeout: float) -> None:
        self._sim = sim
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)

    def order_send(self, request: dict[str, Any]) -> Any:
        result: list[Any] = []
        done = threading.Event()

        def call() -> None:
            result.append(self._sim.order_send(request))
            done.set()

        threading.Thread(target=call, name="terminal-order-send", daemon=True).start()
        if not done.wait(self._timeout):
            raise TimeoutError("result expired")  # what rpyc raises: AsyncResultTimeout
        return result[0]


def terminal_outcome(sim: SimulatedTerminal, client_id: str) -> float | None:
    """Lots filled at the terminal for `client_id`, None when it has no such order."""
    orders = [o for o in sim.history_orders_snapshot() if o.comment == client_id]
    if not orders:
        return None
    tickets = {o.ticket for o in orders}
    return sum(d.volume for d in sim.history_deals_snapshot() if d.order in tickets)


def test_a_slow_terminal_never_turns_an_executed_order_into_not_sent(
    make_engine: EngineFactory, sim: SimulatedTerminal
) -> None:
    engine = make_engine(
        terminal=CutOffTerminal(sim, CALL_TIMEOUT),
        order_timeout_seconds=30.0,
        reconcile_window_seconds=0.3,
    )
    assert engine.execute(rpm("warm-up")).status is S.FILLED
    sim.set_latency(SLOW_SEND, None, None)  # only order_send is slow

    futures = [engine.submit(rpm(f"slow-{i}")) for i in range(8)]
    # Every execution settles as its order did at the terminal: all were sent, and every
    # one of them filled there (half-way through its slow order_send).
    confirmations = [future.get(timeout=60) for future in futures]

    for confirmation in confirmations:
        client_id = make_client_id(confirmation.execution_id)
        filled = eventually(lambda c=client_id: terminal_outcome(sim, c), timeout=10)
        assert filled > 0
        assert (confirmation.status, confirmation.rejection_reason) == (S.FILLED, None), (
            f"{confirmation.execution_id} ended {confirmation.status} "
            f"{confirmation.rejection_reason} while its order filled at the terminal"
        )
    events = {
        e.event_type for c in confirmations for e in engine.repository.events_for(c.execution_id)
    }
    assert "SEND_AMBIGUOUS" in events  # the scenario did cut sends off
    assert "RECONCILED_ABSENT" not in events
    assert engine.metrics.unknown_count() == 0
