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
from storage.writer import JournalWriter, WriteOp
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
    # The database itself refuses the SUBMITTING record, as a full disk would.
    with db.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_submitting BEFORE UPDATE ON execution_logs "
            "WHEN NEW.status = 'SUBMITTING' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )

    with pytest.raises(PersistenceUnavailableError, match="journal write"):
        engine.execute(rpm())

    assert sim.sent_requests() == []
    assert sim.history_orders_snapshot() == () or list(sim.history_orders_snapshot()) == []
    (stored,) = engine.get_execution_history()
    assert stored.status is ExecutionStatus.PENDING  # not final: recovery will settle it
    db.dispose()


def test_actor_threads_are_gone_after_stop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    upgrade(url)
    db = create_db_engine(url)
    actor = PersistenceActor.start(lambda: JournalWriter(db))
    actor.stop()
    assert not actor.is_alive()
    assert pykka.ActorRegistry.get_by_class(PersistenceActor) == []
    db.dispose()
