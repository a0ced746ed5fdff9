"""The terminal behind the link is the one the journal knows, and keeps its history.

Issue 11, item 14: a restarted simulator (empty history, tickets from 50000001 again) was
accepted after a reconnect and the same order ticket was stored on two executions. The
simulator's `--state FILE` gives it back its history, as the trade server gives a real
terminal; a terminal that lost it, or another account, halts trading with a clear reason.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors._supervised import ObservedWriter
from actors._terminal_identity import TERMINAL_IDENTIFIED
from core.clock import utc_micros
from core.enums import ExecutionStatus
from core.enums import ExecutionStatus as S
from core.enums import RejectionReason as R
from core.errors import TicketConflictError
from core.models import ExecutionLog
from storage.db import create_db_engine
from storage.migrate import upgrade
from storage.ops import WriteOp
from storage.repository import Repository
from terminals.bridge import RpycTerminal
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually
from tests.storage.conftest import make_log
from tests.terminals.test_bridge import ServedSimulator, market_order

Start = Callable[..., ServedSimulator]


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[Start]:
    started: list[ServedSimulator] = []

    def start(port: int = 0, state: Path | None = None) -> ServedSimulator:
        args = ["--state", str(state)] if state is not None else []
        server = ServedSimulator(1, tmp_path / f"sim-{len(started)}.log", port=port, args=args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _kill_9(server: ServedSimulator) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=5)


def test_simulator_state_survives_kill_9_and_the_restart_has_its_history(
    start_simulator: Start, tmp_path: Path
) -> None:
    state = tmp_path / "account.json"
    first = start_simulator(state=state)
    bridge = RpycTerminal(port=first.port, timeout=5.0)
    assert bridge.initialize() is True
    sent = [bridge.order_send(market_order(comment=f"ee-state-{i}")) for i in range(2)]
    balance = bridge.account_info().balance
    bridge.close()
    _kill_9(first)  # right after the answers: they were written before they were given

    second = start_simulator(state=state)
    bridge = RpycTerminal(port=second.port, timeout=5.0)
    assert bridge.initialize() is True
    orders = bridge.history_orders_get(ticket=sent[1].order)
    deals = bridge.history_deals_get(ticket=sent[0].order)
    positions = bridge.positions_get()
    after = bridge.order_send(market_order(comment="ee-state-after"))
    account = bridge.account_info()
    bridge.close()

    assert [s.order for s in sent] == [50_000_001, 50_000_002]
    assert [o.comment for o in orders] == ["ee-state-1"]
    assert [d.ticket for d in deals] == [sent[0].deal]
    assert len(positions) == 2
    assert account.balance == balance
    assert (after.order, after.deal) == (50_000_003, sent[1].deal + 1)  # go on, not reset


@pytest.mark.parametrize("keeps_state", [False, True], ids=["history-lost", "with-state"])
def test_a_terminal_restarted_behind_the_same_address(
    start_simulator: Start, make_engine: EngineFactory, tmp_path: Path, keeps_state: bool
) -> None:
    """Without its history the restarted simulator is refused and trading halts, naming the
    order it forgot; with `--state` it is the same terminal and trading goes on, with new
    tickets (no ticket ever claimed by two executions)."""
    state = tmp_path / "account.json" if keeps_state else None
    first = start_simulator(state=state)
    engine = make_engine(terminal=RpycTerminal(port=first.port, timeout=2.0))
    before = engine.execute(rpm(decision_id="before-restart"))
    assert before.status is S.FILLED
    _kill_9(first)
    start_simulator(port=first.port, state=state)  # the same address, a new process

    after = engine.execute(rpm(decision_id="after-restart"))

    if keeps_state:
        assert after.status is S.FILLED, after.rejection_details
        assert after.order_id == (before.order_id or 0) + 1
        assert not engine.switch.halted
        return
    assert after.status is S.REJECTED
    eventually(lambda: engine.switch.halted, what="halted")
    reason = engine.switch.reason
    assert f"does not know order {before.order_id}" in reason, reason
    assert after.order_id is None


def test_another_account_behind_the_link_halts_at_start_until_an_admin_accepts_it(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'identity.db'}"
    first = make_engine(database_url=url, terminal=SimulatedTerminal(seed=1, login=5_000_001))
    first.stop()  # its terminal's identity is journaled at start: the known one from now on

    other = SimulatedTerminal(seed=1, login=7_777_777)
    second = make_engine(database_url=url, terminal=other)

    assert second.switch.halted
    assert "account_login 5000001 -> 7777777" in second.switch.reason
    assert "not the terminal the journal knows" in second.switch.reason
    refused = second.execute(rpm(decision_id="refused"))
    assert (refused.status, refused.rejection_reason) == (S.REJECTED, R.TRADING_HALTED)
    assert other.sent_requests() == []

    second.resume(by="alice", reason="moved to the new account")

    assert not second.switch.halted
    assert second.execute(rpm(decision_id="accepted")).status is S.FILLED
    known = second.repository.last_engine_event(TERMINAL_IDENTIFIED)
    assert known is not None
    assert known.payload["identity"]["account_login"] == 7_777_777
    assert known.payload["how"] == "accepted by alice"


def test_an_order_ticket_already_claimed_by_another_execution_is_refused_not_stored(
    tmp_path: Path,
) -> None:
    """Issue 11, item 14: the same order ticket was stored on two executions. The writer
    the Supervisor uses refuses it (TICKET_CONFLICT), tells the Supervisor (which halts),
    and stores nothing of that write."""
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    upgrade(url)
    db = create_db_engine(url)
    observed: list[BaseException | None] = []
    writer = ObservedWriter(db, observed.append)
    first, second = make_log(1), make_log(2)
    at = utc_micros(first.created_at)

    def write(log: ExecutionLog, status: ExecutionStatus, creates: bool, ticket: int) -> None:
        record = log.evolve(status=status, order_id=ticket)
        writer.write_batch(
            [
                WriteOp(
                    log.execution_id, "ORDER_ACCEPTED", {}, at, projection=record, creates=creates
                )
            ]
        )

    write(first, S.SUBMITTED, True, 50_000_001)
    write(first, S.FILLED, False, 50_000_001)  # the same execution, the same ticket: fine
    with pytest.raises(TicketConflictError, match="already claimed by execution"):
        write(second, S.SUBMITTED, True, 50_000_001)
    fresh = ObservedWriter(db, observed.append)  # a restarted writer reads the claims back
    with pytest.raises(TicketConflictError):
        fresh.write_batch(
            [
                WriteOp(
                    second.execution_id,
                    "ORDER_ACCEPTED",
                    {},
                    at,
                    projection=second.evolve(status=S.SUBMITTED, order_id=50_000_001),
                    creates=True,
                )
            ]
        )
    stored = Repository(db).get_execution(second.execution_id)
    db.dispose()

    assert stored is None
    assert isinstance(observed[-1], TicketConflictError)
    assert observed[-1].details() == {
        "ticket": 50_000_001,
        "owner": first.execution_id,
        "claimant": second.execution_id,
    }
