"""The fast paths the load bench led to give the same answers as the plain ones.

- the writer hashes the payload text it already made (`verify_chain` uses `event_hash`),
  and writes the journal rows with a statement of its own;
- the facade's decision lookup asks `SELECT 1` on a connection of its own before reading
  the stored execution, and survives a connection the server dropped;
- an order that waits at the terminal past its own timeout is not sent at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from actors.engine import create_execution_engine
from actors.persistence import StoredDecisions
from core.enums import ExecutionStatus, RejectionReason
from core.models import canonical_json
from core.settings import load_settings
from storage._pg_one_trip import EVENT_COLUMNS, INSERT_EVENTS_HEAD
from storage.db import create_db_engine
from storage.journal import chain_hash, event_hash, verify_chain
from storage.migrate import upgrade
from storage.ops import WriteOp
from storage.repository import Repository
from storage.schema import execution_events
from storage.writer import JournalWriter
from terminals.simulated import SimulatedTerminal
from tests.storage.conftest import make_log


@pytest.mark.parametrize(
    ("execution_id", "event_type", "payload", "broker_time_msc"),
    [
        ("exec_1", "SUBMITTING", {"status": "SUBMITTING", "lots": 0.01}, None),
        (None, "TRADING_STATE_CHANGED", {"by": "ops \u00e9\u2603", "nested": {"b": [1, 2.5]}}, 7),
        ("exec_\u00fc", "EV\u00c9NEMENT", {}, 1_700_000_000_123),
    ],
)
def test_writer_chain_hash_equals_the_journal_event_hash(
    execution_id: str | None, event_type: str, payload: dict[str, Any], broker_time_msc: int | None
) -> None:
    text_ = canonical_json(payload)
    expected = event_hash("a" * 64, 42, execution_id, event_type, payload, 123, broker_time_msc)

    assert chain_hash("a" * 64, 42, execution_id, event_type, text_, 123, broker_time_msc) == (
        expected
    )


def _created(index: int) -> WriteOp:
    log = make_log(index)
    return WriteOp(
        execution_id=log.execution_id,
        event_type="EXECUTION_CREATED",
        payload={},
        engine_time_us=1,
        projection=log,
        creates=True,
    )


def test_stored_decisions_answer_a_miss_and_a_hit(database_url: str) -> None:
    upgrade(database_url)
    db = create_db_engine(database_url)
    try:
        repository = Repository(db)
        JournalWriter(db).write_batch([_created(1), _created(2)])
        stored = StoredDecisions(db, repository)

        assert stored.get("decision-never-seen") is None
        assert stored.get(make_log(2).rpm_decision_id) == repository.get_execution(
            make_log(2).execution_id
        )
        assert verify_chain(db).ok
    finally:
        db.dispose()


@pytest.mark.postgres
def test_stored_decisions_survive_a_dropped_connection(postgres_url: str) -> None:
    upgrade(postgres_url)
    db = create_db_engine(postgres_url)
    try:
        stored = StoredDecisions(db, Repository(db))
        assert stored.get("decision-1") is None  # its connection is now open
        with db.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            admin.commit()
        JournalWriter(db).write_batch([_created(1)])

        assert stored.get(make_log(1).rpm_decision_id) is not None
    finally:
        db.dispose()


def test_the_journal_insert_names_every_column_of_the_table() -> None:
    assert set(EVENT_COLUMNS) == set(execution_events.c.keys())
    assert INSERT_EVENTS_HEAD.startswith(f"INSERT INTO {execution_events.name} (")
    assert INSERT_EVENTS_HEAD.endswith(f"({', '.join(EVENT_COLUMNS)}) VALUES ")


def test_sends_queued_past_their_deadline_are_not_sent(tmp_path: Path) -> None:
    """A long line of sends at the terminal: an order whose timeout passes while it waits
    is rejected ORDER_TIMEOUT and never sent, instead of being taken for a lost send."""
    sim = SimulatedTerminal(seed=3, balance=1e9, order_send_latency=0.15)
    settings = load_settings(order_timeout_seconds=0.4, ask_timeout_seconds=5.0)
    engine = create_execution_engine(
        terminal=sim, database_url=f"sqlite:///{tmp_path / 'q.db'}", settings=settings
    )
    try:
        futures = [engine.submit(_rpm(f"queued-{n}")) for n in range(8)]
        confirmations = [future.get(timeout=30) for future in futures]
    finally:
        engine.stop()

    sent = {request["comment"] for request in sim.sent_requests()}
    filled = [c for c in confirmations if c.status is ExecutionStatus.FILLED]
    late = [c for c in confirmations if c.status is not ExecutionStatus.FILLED]
    assert filled
    assert late
    assert all(c.status is ExecutionStatus.REJECTED for c in late)
    assert all(c.rejection_reason is RejectionReason.ORDER_TIMEOUT for c in late)
    assert len(sent) == len(sim.sent_requests()) == len(filled)


def _rpm(decision_id: str) -> dict[str, Any]:
    trade = {"symbol": "EURUSD", "direction": 1, "position_units": 1000, "atr": 0.001}
    return {"decision": {"status": "APPROVED", "decision_id": decision_id, "approved_trade": trade}}


@pytest.mark.postgres
def test_writer_survives_a_connection_the_server_dropped(postgres_url: str) -> None:
    """The writer keeps its connection between batches; one the server closed meanwhile
    fails before anything is written, and the batch goes through on a new one."""
    upgrade(postgres_url)
    db = create_db_engine(postgres_url)
    try:
        writer = JournalWriter(db)
        writer.write_batch([_created(1)])
        with db.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            admin.commit()

        events = writer.write_batch([_created(2)])

        assert events[0].sequence == 2
        assert verify_chain(db).ok
        writer.close()
    finally:
        db.dispose()


def test_a_long_line_of_sends_is_not_a_hung_broker(tmp_path: Path) -> None:
    """Sends wait in the BrokerActor's own queue and go out one per turn of its inbox, so
    the Supervisor's heartbeat is answered between two sends even when the line is longer
    than the heartbeat timeout."""
    sim = SimulatedTerminal(seed=4, balance=1e9, order_send_latency=0.05)
    settings = load_settings(ask_timeout_seconds=0.4, order_timeout_seconds=20.0)
    engine = create_execution_engine(
        terminal=sim, database_url=f"sqlite:///{tmp_path / 'line.db'}", settings=settings
    )
    try:
        futures = [engine.submit(_rpm(f"line-{n}")) for n in range(30)]  # 1.5 s of sends
        confirmations = [future.get(timeout=30) for future in futures]
        restarts = engine.supervisor.total_restarts
    finally:
        engine.stop()

    assert [c.status for c in confirmations] == [ExecutionStatus.FILLED] * 30
    assert restarts == 0
    assert len(sim.sent_requests()) == 30
