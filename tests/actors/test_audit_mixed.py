"""500 mixed executions on PostgreSQL: the audit trail holds, replays and cannot be rewritten.

Fills, validation rejects, broker rejects, partial fills, placed-then-filled orders and
ambiguous sends (executed and not) all run through the facade at the same time. Every fault
is pinned to a symbol of its own (`inject(..., symbol=...)`), so which execution meets
which fault does not depend on scheduling. The simulator has three symbols to spare for
five fault kinds, so the two ambiguous kinds reuse two of them in a second wave, injected
only once the first wave's faults have all been used (while the first wave's other
executions are still running).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from actors.facade import ExecutionFacade
from core.enums import ExecutionStatus, RejectionReason
from core.models import ExecutionConfirmation
from storage.db import create_db_engine
from storage.journal import replay_projection, verify_chain
from storage.schema import execution_logs, row_to_log
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

S = ExecutionStatus
R = RejectionReason

PLAIN = (("EURUSD", 10_000.0), ("GBPUSD", 20_000.0), ("USDJPY", 30_000.0), ("XAUUSD", 10.0))
"""Plain fills: symbol and units (0.1, 0.2, 0.3 and 0.1 lots)."""

REJECT_SYMBOL, PARTIAL_SYMBOL, PLACED_SYMBOL = "US500", "USDCHF", "EURJPY"
EXECUTED_SYMBOL, NOT_EXECUTED_SYMBOL = "US500", "USDCHF"  # the second wave
FAULTED = 30
"""Executions per fault kind."""
PLAIN_COUNT = 300
INVALID_VOLUME_COUNT = 25
UNKNOWN_SYMBOL_COUNT = 25
TOTAL = PLAIN_COUNT + INVALID_VOLUME_COUNT + UNKNOWN_SYMBOL_COUNT + 5 * FAULTED
WAIT = 60.0


@dataclass(frozen=True, slots=True)
class Case:
    decision_id: str
    message: dict[str, Any]
    status: ExecutionStatus
    reason: RejectionReason | None
    executed_lots: float
    """Lots the terminal must have filled for it."""
    orders: int
    """DEAL orders the terminal must hold for it (never more than one)."""


def _cases(kind: str, count: int, symbol: str, units: float, status: S, reason: R | None,
           executed_lots: float, orders: int) -> list[Case]:  # fmt: skip
    return [
        Case(
            decision_id=f"{kind}-{i:03d}",
            message=rpm(
                decision_id=f"{kind}-{i:03d}", symbol=symbol, units=units, direction=1 - 2 * (i % 2)
            ),
            status=status,
            reason=reason,
            executed_lots=executed_lots,
            orders=orders,
        )
        for i in range(count)
    ]


def _plain(first: int, count: int) -> list[Case]:
    out: list[Case] = []
    for i in range(first, first + count):
        symbol, units = PLAIN[i % len(PLAIN)]
        lots = units / (100.0 if symbol == "XAUUSD" else 100_000.0)
        key = f"fill-{i:03d}"
        message = rpm(decision_id=key, symbol=symbol, units=units, direction=1 - 2 * (i % 2))
        out.append(Case(key, message, S.FILLED, None, lots, 1))
    return out


def _waves() -> tuple[list[Case], list[Case]]:
    half_plain, half_volume = PLAIN_COUNT // 2, INVALID_VOLUME_COUNT // 2
    half_unknown = UNKNOWN_SYMBOL_COUNT // 2
    validation = [
        *_cases("badvol", INVALID_VOLUME_COUNT, "EURUSD", 95_001.0, S.REJECTED,
                R.INVALID_VOLUME, 0.0, 0),
        *_cases("nosym", UNKNOWN_SYMBOL_COUNT, "NOPE", 10_000.0, S.REJECTED,
                R.SYMBOL_NOT_TRADABLE, 0.0, 0),
    ]  # fmt: skip
    first = [
        *_plain(0, half_plain),
        *validation[:half_volume],
        *validation[INVALID_VOLUME_COUNT : INVALID_VOLUME_COUNT + half_unknown],
        # US500: 1 unit is 1 lot; the broker refuses it (10006), nothing executes.
        *_cases("reject", FAULTED, REJECT_SYMBOL, 1.0, S.REJECTED, R.BROKER_REJECTED, 0.0, 0),
        # USDCHF: 0.2 lots, half of it fills (10010), the rest is cancelled.
        *_cases("partial", FAULTED, PARTIAL_SYMBOL, 20_000.0, S.PARTIALLY_FILLED, None, 0.1, 1),
        # EURJPY: 0.1 lots placed (10008), filled a few history polls later.
        *_cases("placed", FAULTED, PLACED_SYMBOL, 10_000.0, S.FILLED, None, 0.1, 1),
    ]
    second = [
        *_plain(half_plain, PLAIN_COUNT - half_plain),
        *validation[half_volume:INVALID_VOLUME_COUNT],
        *validation[INVALID_VOLUME_COUNT + half_unknown :],
        # 10012 after the order executed: found by reconciliation, filled once.
        *_cases("amb-exec", FAULTED, EXECUTED_SYMBOL, 1.0, S.FILLED, None, 1.0, 1),
        # 10012 with nothing executed: absent for the whole window, so NOT_SENT.
        *_cases("amb-none", FAULTED, NOT_EXECUTED_SYMBOL, 10_000.0, S.REJECTED, R.NOT_SENT,
                0.0, 0),
    ]  # fmt: skip
    rng = random.Random(3)
    rng.shuffle(first)
    rng.shuffle(second)
    return first, second


def _submit_all(
    engine: ExecutionFacade, pool: ThreadPoolExecutor, cases: list[Case]
) -> dict[str, pykka.Future[ExecutionConfirmation]]:
    futures = list(pool.map(lambda case: engine.submit(case.message), cases))
    return {case.decision_id: future for case, future in zip(cases, futures, strict=True)}


def _wait_for_faults_used(sim: SimulatedTerminal, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sim.pending_faults():
        assert time.monotonic() < deadline, f"faults left unused: {sim.pending_faults()}"
        time.sleep(0.005)


def _audit_verify_cli(url: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("execution-engine")
    command = [str(script)] if script.exists() else [shutil.which("execution-engine") or ""]
    if not command[0]:
        command = [sys.executable, "-m", "api.cli"]
    return subprocess.run(
        [*command, "audit", "verify", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_500_mixed_executions_keep_an_intact_replayable_append_only_journal(
    make_engine: EngineFactory, sim: SimulatedTerminal, postgres_url: str
) -> None:
    # Room for every position at once; timeouts long enough that load cannot expire a fill.
    sim.set_account(balance=100_000_000.0)
    # Gold has no standard pip: 0.1 here, so its 20-point spread is 2 pips.
    engine = make_engine(
        database_url=postgres_url,
        order_timeout_seconds=30.0,
        ask_timeout_seconds=30.0,
        pip_size_overrides={"XAUUSD": 0.1},
        # One order per case (its expectations count orders): buys and sells alternate,
        # which on this hedging account would otherwise close each other (see test_position_legs).
        opposite_positions="hedge",
    )
    first, second = _waves()
    cases = {case.decision_id: case for case in (*first, *second)}
    assert len(cases) == TOTAL == 500

    sim.inject("reject", times=FAULTED, symbol=REJECT_SYMBOL)
    sim.inject("partial", times=FAULTED, symbol=PARTIAL_SYMBOL, ratio=0.5)
    sim.inject("placed", times=FAULTED, symbol=PLACED_SYMBOL, fill_after_polls=2)
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = _submit_all(engine, pool, first)
        _wait_for_faults_used(sim, WAIT)
        sim.inject("timeout_executed", times=FAULTED, symbol=EXECUTED_SYMBOL)
        sim.inject("timeout_not_executed", times=FAULTED, symbol=NOT_EXECUTED_SYMBOL)
        futures.update(_submit_all(engine, pool, second))
        confirmations = {key: future.get(timeout=WAIT) for key, future in futures.items()}
    _wait_for_faults_used(sim, 0)  # every second-wave fault met its execution

    # --- every execution final, each with the outcome its fault dictates ---------------
    assert engine.in_flight() == 0
    stored = {log.rpm_decision_id: log for log in engine.get_execution_history(limit=1000)}
    assert set(stored) == set(cases)
    mismatches = {
        key: (log.status, log.rejection_reason, log.executed_lots)
        for key, log in stored.items()
        if (log.status, log.rejection_reason) != (cases[key].status, cases[key].reason)
        or log.executed_lots != pytest.approx(cases[key].executed_lots)
    }
    assert mismatches == {}
    for key, confirmation in confirmations.items():
        assert confirmation.execution_id == stored[key].execution_id
        assert confirmation.status is stored[key].status
    assert all(log.is_final for log in stored.values())
    assert Counter(log.status for log in stored.values()) == {
        S.FILLED: PLAIN_COUNT + 2 * FAULTED,
        S.PARTIALLY_FILLED: FAULTED,
        S.REJECTED: INVALID_VOLUME_COUNT + UNKNOWN_SYMBOL_COUNT + 2 * FAULTED,
    }
    assert Counter(log.rejection_reason for log in stored.values() if log.rejection_reason) == {
        R.INVALID_VOLUME: INVALID_VOLUME_COUNT,
        R.SYMBOL_NOT_TRADABLE: UNKNOWN_SYMBOL_COUNT,
        R.BROKER_REJECTED: FAULTED,
        R.NOT_SENT: FAULTED,
    }

    # --- the terminal: at most one DEAL order per execution, exactly the expected ones ---
    orders_by_client: defaultdict[str, list[Any]] = defaultdict(list)
    for order in sim.history_orders_snapshot():
        orders_by_client[str(order.comment)].append(order)
    by_client = {log.client_id: key for key, log in stored.items()}
    assert set(orders_by_client) <= set(by_client)  # no order the journal does not know
    for client_id, key in by_client.items():
        orders = orders_by_client.get(client_id, [])
        assert len(orders) == cases[key].orders, (key, orders)
        if orders:
            assert orders[0].ticket == stored[key].order_id
    assert sim.open_orders_snapshot() == ()
    engine.stop()

    # --- the journal: intact, replays to the projection, refuses rewriting ---------------
    db = create_db_engine(postgres_url)
    try:
        report = verify_chain(db)
        with db.connect() as connection:
            events = connection.execute(text("SELECT count(*) FROM execution_events")).scalar()
            projection = {
                log.execution_id: log.model_dump(mode="json")
                for log in map(row_to_log, connection.execute(select(execution_logs)))
            }
            journaled: defaultdict[str, set[str]] = defaultdict(set)
            for execution_id, event_type in connection.execute(
                text("SELECT execution_id, event_type FROM execution_events")
            ):
                journaled[str(execution_id)].add(str(event_type))
        assert report.ok, report
        assert report.rows_checked == events
        assert events is not None
        assert events >= 2 * TOTAL  # each execution: at least its creation and its end
        # The ambiguous sends were the faulted ones, and only they were reconciled.
        for key, log in stored.items():
            ambiguous = key.startswith("amb-")
            assert ("SEND_AMBIGUOUS" in journaled[log.execution_id]) is ambiguous, key
            found = "RECONCILED_FOUND" in journaled[log.execution_id]
            assert found is key.startswith("amb-exec"), key

        replayed = replay_projection(db)
        assert set(replayed) == set(projection)
        differing = [
            key
            for key in projection
            if json.dumps(replayed[key], sort_keys=True)
            != json.dumps(projection[key], sort_keys=True)
        ]
        assert differing == []

        for statement in (
            "UPDATE execution_events SET event_type = 'TAMPERED' WHERE sequence = 1",
            "DELETE FROM execution_events WHERE sequence = 1",
            "TRUNCATE execution_events",
        ):
            with pytest.raises(DBAPIError), db.begin() as connection:
                connection.execute(text(statement))
        assert verify_chain(db).rows_checked == events
    finally:
        db.dispose()

    cli = _audit_verify_cli(postgres_url)
    assert cli.returncode == 0, cli.stderr
    assert f"{events} rows intact" in cli.stdout
