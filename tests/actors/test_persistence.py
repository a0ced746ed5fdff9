"""PersistenceActor: group commit, acknowledgement after commit, fail-closed write-ahead."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pykka
import pytest
from sqlalchemy import text

from actors.persistence import PersistenceActor, write_and_wait
from core.enums import ExecutionStatus
from core.errors import PersistenceUnavailableError
from storage.db import create_db_engine
from storage.journal import verify_chain
from storage.migrate import upgrade
from storage.ops import WriteOp
from storage.writer import JournalWriter
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import EngineFactory, rpm


def _op(i: int) -> WriteOp:
    return WriteOp(execution_id=None, event_type="TEST", payload={"i": i}, engine_time_us=i + 1)


def test_concurrent_writes_are_group_committed_and_acknowledged_after_commit(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    db = create_db_engine(url)
    actor = PersistenceActor.start(lambda: JournalWriter(db), max_batch=64)
    barrier = threading.Barrier(32)

    def write(i: int) -> int:
        barrier.wait()
        events = write_and_wait(actor, [_op(i)], timeout=10)
        # Acknowledged means committed: a fresh connection sees the row already.
        with db.connect() as connection:
            seen = connection.execute(
                text("SELECT count(*) FROM execution_events WHERE sequence = :s"),
                {"s": events[0].sequence},
            ).scalar_one()
        assert seen == 1
        return int(events[0].sequence)

    with ThreadPoolExecutor(max_workers=32) as pool:
        sequences = sorted(pool.map(write, range(192)))

    stats = actor.proxy().stats().get()
    actor.stop()
    assert sequences == list(range(1, 193))
    assert stats["writes"] == 192
    assert stats["batches"] < 192  # several writes shared a transaction
    assert verify_chain(db).ok
    db.dispose()


def test_a_bad_write_fails_alone_in_a_group(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    db = create_db_engine(url)
    actor = PersistenceActor.start(lambda: JournalWriter(db))
    with pytest.raises(ValueError, match="event_type"):
        WriteOp(execution_id=None, event_type="", payload={}, engine_time_us=1)
    events = write_and_wait(actor, [_op(1)], timeout=10)
    assert events[0].sequence == 1
    actor.stop()
    db.dispose()


def test_write_to_a_stopped_actor_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    db = create_db_engine(url)
    actor = PersistenceActor.start(lambda: JournalWriter(db))
    actor.stop()
    with pytest.raises(PersistenceUnavailableError):
        write_and_wait(actor, [_op(1)], timeout=1)
    db.dispose()


def test_write_ahead_failure_sends_nothing_and_leaves_no_orphan(
    make_engine: EngineFactory, sim: SimulatedTerminal, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    engine = make_engine(database_url=url)
    db = create_db_engine(url)
    # The database itself refuses the SUBMITTING record, as a full disk would. A new
    # execution is stored with its first status change, so SUBMITTING arrives as an INSERT
    # (the first order) and as an UPDATE (a re-submit).
    with db.begin() as connection:
        for operation in ("INSERT", "UPDATE"):
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_submitting_{operation} BEFORE {operation} "
                "ON execution_logs WHEN NEW.status = 'SUBMITTING' "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )

    with pytest.raises(PersistenceUnavailableError, match="journal write"):
        engine.execute(rpm())

    assert sim.sent_requests() == []
    assert sim.history_orders_snapshot() == () or list(sim.history_orders_snapshot()) == []
    # The whole transaction was refused: no execution and none of its events was left
    # behind for recovery to settle (the halt the failed write causes may be journaled).
    assert engine.get_execution_history() == []
    assert {event for event, _ in _journal(url)} <= {"TRADING_STATE_CHANGED"}
    db.dispose()


def _journal(url: str) -> list[tuple[str, str]]:
    db = create_db_engine(url)
    with db.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT event_type, payload FROM execution_events "
            "WHERE event_type <> 'TERMINAL_IDENTIFIED' ORDER BY sequence"
        ).all()
    db.dispose()
    return [(str(event_type), str(payload)) for event_type, payload in rows]


def test_a_fill_takes_two_commits_and_the_first_is_the_write_ahead(
    make_engine: EngineFactory, sim: SimulatedTerminal, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'commits.db'}"
    engine = make_engine(database_url=url)
    before = engine.persistence.proxy().stats().get(timeout=10)

    confirmation = engine.execute(rpm())

    after = engine.persistence.proxy().stats().get(timeout=10)
    assert confirmation.status is ExecutionStatus.FILLED
    # Created + validated + SUBMITTING in the write-ahead commit; accepted + FILLED after.
    assert after["batches"] - before["batches"] == 2
    assert [event for event, _ in _journal(url)] == [
        "EXECUTION_CREATED",
        "VALIDATED",
        "SUBMITTING",
        "ORDER_ACCEPTED",
        "EXECUTION_FILLED",
    ]
    assert len(sim.sent_requests()) == 1


def test_a_rejection_is_stored_in_one_commit_with_its_creation(
    make_engine: EngineFactory, sim: SimulatedTerminal, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'reject.db'}"
    engine = make_engine(database_url=url)
    sim.set_trade_allowed(False)
    before = engine.persistence.proxy().stats().get(timeout=10)

    confirmation = engine.execute(rpm())

    after = engine.persistence.proxy().stats().get(timeout=10)
    assert confirmation.status is ExecutionStatus.REJECTED
    assert after["batches"] - before["batches"] == 1
    events = _journal(url)
    assert [event for event, _ in events] == ["EXECUTION_CREATED", "EXECUTION_REJECTED"]
    assert '"status":"PENDING"' in events[0][1]
    assert sim.sent_requests() == []


def test_actor_threads_are_gone_after_stop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    db = create_db_engine(url)
    actor = PersistenceActor.start(lambda: JournalWriter(db))
    actor.stop()
    assert not actor.is_alive()
    assert pykka.ActorRegistry.get_by_class(PersistenceActor) == []
    db.dispose()
