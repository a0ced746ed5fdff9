from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from core.enums import ExecutionStatus, RejectionReason
from core.errors import DuplicateDecisionError, PersistenceError, PersistenceUnavailableError
from core.models import ExecutionLog, TradingStateRecord
from storage.db import create_db_engine
from storage.journal import (
    GENESIS_HASH,
    TRADING_STATE_CHANGED,
    ChainReport,
    replay_projection,
    verify_chain,
)
from storage.ops import WriteOp
from storage.repository import Repository
from storage.writer import JournalWriter
from tests.storage.conftest import (
    BASE_TIME,
    advance,
    count_rows,
    filled,
    make_log,
    note_op,
    op_for,
    state_op,
)

S = ExecutionStatus


def test_batch_appends_chained_events_and_projections(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    log = make_log(1)

    events = writer.write_batch([op_for(log, "CREATED", source="rpm"), note_op(None, 1)])

    assert [event.sequence for event in events] == [1, 2]
    assert events[0].prev_hash == GENESIS_HASH
    assert events[1].prev_hash == events[0].hash
    assert (writer.last_sequence, writer.last_hash) == (2, events[1].hash)
    assert events[0].payload == {"source": "rpm", "changes": log.changes_from(None)}
    assert "changes" not in events[1].payload
    assert repo.get_execution(log.execution_id) == log
    assert repo.events_for(log.execution_id) == [events[0]]


def test_empty_batch_writes_nothing(engine: Engine, writer: JournalWriter) -> None:
    assert writer.write_batch([]) == []
    assert count_rows(engine, "execution_events") == 0


def test_changes_hold_only_what_each_op_changed(writer: JournalWriter, repo: Repository) -> None:
    created = make_log(1)
    submitting = advance(created, S.SUBMITTING, attempts=1, submitted_at=BASE_TIME)
    done = filled(submitting)
    writer.write_batch([op_for(created)])

    # Two states of one execution in one batch: each diffs against the one before it.
    events = writer.write_batch([op_for(submitting), op_for(done)])

    assert events[0].payload["changes"] == {
        "status": "SUBMITTING",
        "attempts": 1,
        "submitted_at": "2024-03-01T12:00:00Z",
        "updated_at": "2024-03-01T12:00:02Z",
    }
    assert set(events[1].payload["changes"]) == {
        "status",
        "updated_at",
        "filled_at",
        "order_id",
        "position_id",
        "executed_units",
        "executed_lots",
        "fill_price",
        "intended_price",
        "slippage_pips",
        "slippage_abs_pips",
        "broker_time_msc",
    }
    assert repo.get_execution(created.execution_id) == done


def test_times_in_other_zones_are_stored_as_utc_without_spurious_changes(
    writer: JournalWriter, repo: Repository
) -> None:
    plus_two = timezone(timedelta(hours=2))
    log = make_log(1, created_at=BASE_TIME.astimezone(plus_two))
    writer.write_batch([op_for(log)])

    events = writer.write_batch([op_for(advance(log, S.SUBMITTING))])

    assert set(events[0].payload["changes"]) == {"status", "updated_at"}
    stored = repo.get_execution(log.execution_id)
    assert stored is not None
    assert stored.created_at == BASE_TIME
    assert stored.created_at.tzinfo is UTC


def test_failed_batch_leaves_nothing_and_the_chain_continues(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    first = make_log(1)
    writer.write_batch([op_for(first)])
    committed = (writer.last_sequence, writer.last_hash)
    refused_by_check = make_log(3, direction=2)
    batch = [
        op_for(make_log(2)),
        op_for(advance(first, S.SUBMITTING)),
        note_op(first.execution_id, 5),
        state_op("HALTED", 6),
        op_for(refused_by_check),
    ]

    with pytest.raises(PersistenceUnavailableError) as raised:
        writer.write_batch(batch)

    assert isinstance(raised.value.__cause__, IntegrityError)
    assert (writer.last_sequence, writer.last_hash) == committed
    assert count_rows(engine, "execution_events") == 1
    assert count_rows(engine, "execution_logs") == 1
    assert repo.get_execution(first.execution_id) == first
    assert repo.trading_state() is None

    events = writer.write_batch(batch[:4])

    assert [event.sequence for event in events] == [2, 3, 4, 5]
    assert events[0].prev_hash == committed[1]
    assert verify_chain(engine) == ChainReport(True, 5)
    # The refused batch left no trace in the writer's own state either.
    assert events[1].payload["changes"] == {
        "status": "SUBMITTING",
        "updated_at": "2024-03-01T12:00:02Z",
    }
    assert replay_projection(engine) == _rows_as_json(repo)


def test_value_that_json_cannot_hold_fails_the_batch_before_anything_is_stored(
    engine: Engine, writer: JournalWriter
) -> None:
    writer.write_batch([note_op(None, 0)])

    with pytest.raises(ValueError, match="JSON"):
        writer.write_batch([op_for(make_log(1)), note_op(None, 1, spread=float("nan"))])

    assert count_rows(engine, "execution_events") == 1
    assert count_rows(engine, "execution_logs") == 0
    assert writer.write_batch([note_op(None, 2)])[0].sequence == 2
    assert verify_chain(engine).ok


def test_second_execution_for_a_decision_is_a_duplicate(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    writer.write_batch([op_for(make_log(1))])
    twin = make_log(2, rpm_decision_id="decision-1")

    with pytest.raises(DuplicateDecisionError) as raised:
        writer.write_batch([op_for(make_log(3)), op_for(twin)])

    error = raised.value
    assert isinstance(error, PersistenceError)
    assert not isinstance(error, PersistenceUnavailableError)
    assert (error.decision_id, error.execution_id, error.op_index) == (
        "decision-1",
        twin.execution_id,
        1,
    )
    assert repo.get_execution(make_log(3).execution_id) is None
    assert count_rows(engine, "execution_events") == 1
    assert writer.write_batch([op_for(make_log(3))])[0].sequence == 2


def test_duplicate_decision_inside_one_batch(engine: Engine, writer: JournalWriter) -> None:
    one, twin = make_log(1), make_log(2, rpm_decision_id="decision-1")

    with pytest.raises(DuplicateDecisionError) as raised:
        writer.write_batch([op_for(one), note_op(None, 1), op_for(twin)])

    assert raised.value.op_index == 2
    assert count_rows(engine, "execution_events") == 0
    assert count_rows(engine, "execution_logs") == 0


def test_decision_id_of_an_execution_cannot_change(engine: Engine, writer: JournalWriter) -> None:
    log = make_log(1)
    writer.write_batch([op_for(log)])

    with pytest.raises(ValueError, match="rpm_decision_id"):
        writer.write_batch([op_for(advance(log, S.SUBMITTING, rpm_decision_id="decision-x"))])

    assert count_rows(engine, "execution_events") == 1


def test_rpm_payload_is_stored_in_its_json_form(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    log = make_log(1, rpm_payload={"timestamp": BASE_TIME, "levels": (1.1, 1.2), "n": 1})
    writer.write_batch([op_for(log)])
    writer.write_batch([op_for(advance(log, S.SUBMITTING))])
    # A restarted writer diffs against the row it reads back, not the object it was given.
    events = JournalWriter(engine).write_batch([op_for(filled(advance(log, S.SUBMITTING)))])

    stored = repo.get_execution(log.execution_id)
    assert stored is not None
    assert stored.rpm_payload == {"timestamp": "2024-03-01T12:00:00Z", "levels": [1.1, 1.2], "n": 1}
    assert "rpm_payload" not in events[0].payload["changes"]
    assert replay_projection(engine) == _rows_as_json(repo)


def test_restarted_writer_continues_the_chain(engine: Engine, writer: JournalWriter) -> None:
    writer.write_batch([op_for(make_log(n)) for n in range(1, 4)])

    restarted = JournalWriter(engine)

    assert (restarted.last_sequence, restarted.last_hash) == (3, writer.last_hash)
    events = restarted.write_batch([op_for(advance(make_log(1), S.SUBMITTING))])
    assert (events[0].sequence, events[0].prev_hash) == (4, writer.last_hash)
    assert verify_chain(engine) == ChainReport(True, 4)


def test_writer_behind_the_database_resyncs_after_the_failed_batch(
    engine: Engine, writer: JournalWriter
) -> None:
    writer.write_batch([note_op(None, 0)])
    # A second writer is a deployment error; the sequence key makes it fail loudly.
    intruder = JournalWriter(engine)
    intruder.write_batch([note_op(None, 1)])

    with pytest.raises(PersistenceUnavailableError):
        writer.write_batch([note_op(None, 2)])

    assert (writer.last_sequence, writer.last_hash) == (2, intruder.last_hash)
    assert writer.write_batch([note_op(None, 3)])[0].sequence == 3
    assert verify_chain(engine) == ChainReport(True, 3)


def test_writer_on_an_unmigrated_database_is_unavailable(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        with pytest.raises(PersistenceUnavailableError):
            JournalWriter(engine)
    finally:
        engine.dispose()


def test_trading_state_is_one_row_and_every_change_is_journaled(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    events = writer.write_batch([state_op("ACTIVE", 0, "boot")])
    events += writer.write_batch([state_op("HALTED", 60, "risk-desk")])

    assert repo.trading_state() == TradingStateRecord(
        state="HALTED",
        changed_by="risk-desk",
        reason="set HALTED",
        changed_at=BASE_TIME + timedelta(seconds=60),
    )
    assert count_rows(engine, "trading_state") == 1
    assert [(e.execution_id, e.event_type) for e in events] == [(None, TRADING_STATE_CHANGED)] * 2
    assert events[1].payload["trading_state"]["state"] == "HALTED"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event_type": ""}, "event_type"),
        ({"payload": {"changes": {}}}, "reserved"),
        ({"payload": {"trading_state": "x"}}, "reserved"),
        ({"execution_id": "someone_else"}, "projection.execution_id"),
        ({"projection": make_log(1, updated_at=datetime(2024, 3, 1, 12))}, "naive"),  # noqa: DTZ001
    ],
)
def test_write_op_refuses_what_cannot_be_stored(fields: dict[str, Any], message: str) -> None:
    log = make_log(1)
    arguments: dict[str, Any] = {
        "execution_id": log.execution_id,
        "event_type": "CREATED",
        "payload": {},
        "engine_time_us": 0,
        "projection": log,
    } | fields

    with pytest.raises(ValueError, match=message):
        WriteOp(**arguments)


def test_trading_state_op_must_be_engine_wide_and_known() -> None:
    record = TradingStateRecord(state="ACTIVE", changed_by="x", reason="y", changed_at=BASE_TIME)
    with pytest.raises(ValueError, match="trading-state op"):
        WriteOp("exec_1", TRADING_STATE_CHANGED, {}, 0, trading_state=record)
    with pytest.raises(ValueError, match="PAUSED"):
        WriteOp.trading_state_change(record.model_copy(update={"state": "PAUSED"}), 0)


def _lifecycle(n: int) -> list[ExecutionLog]:
    """The states execution `n` goes through; `n % 5` picks one of the paths."""
    log = make_log(n)
    path = n % 5
    if path == 0:
        return [log, advance(log, S.REJECTED, rejection_reason=RejectionReason.SPREAD_TOO_WIDE)]
    sent = advance(log, S.SUBMITTING, attempts=1, submitted_at=log.created_at)
    if path == 1:
        return [log, sent, filled(sent)]
    if path == 2:
        retry = advance(sent, S.PENDING, rejection_details="requote")
        again = advance(retry, S.SUBMITTING, attempts=2, rejection_details=None)
        return [log, sent, retry, again, filled(again, order_id=9_000_000_000 + n)]
    placed = advance(sent, S.SUBMITTED, order_id=6_000_000_000 + n)
    if path == 3:
        return [log, sent, placed, advance(placed, S.EXPIRED, rejection_reason="ORDER_TIMEOUT")]
    return [log, sent, advance(sent, S.UNKNOWN, rejection_details="TIMEOUT")]


def test_projection_equals_replay_of_the_journal(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    lifecycles = [_lifecycle(n) for n in range(1, 81)]
    ops: list[WriteOp] = []
    # Interleave the executions step by step, with engine-wide and broker events between.
    for step in range(5):
        for n, states in enumerate(lifecycles, start=1):
            if step < len(states):
                ops.append(op_for(states[step]))
            if n % 9 == step:
                ops.append(note_op(states[0].execution_id, n + step, step=step))
        ops.append(state_op("HALTED" if step % 2 else "ACTIVE", 1_000 + step))
    sizes = itertools.cycle([1, 3, 64, 7, 2, 20])
    position = 0
    while position < len(ops):
        size = next(sizes)
        writer.write_batch(ops[position : position + size])
        position += size
        if position in range(150, 150 + size):
            # Half-way, a restart: the new writer knows no execution and reads them back.
            writer = JournalWriter(engine)

    rows = {log.execution_id: log for log in repo.history(limit=1_000)}
    assert len(ops) > 300
    assert replay_projection(engine, batch_size=50) == _rows_as_json(repo)
    assert rows == {states[-1].execution_id: states[-1] for states in lifecycles}
    assert verify_chain(engine) == ChainReport(True, len(ops))


def _rows_as_json(repo: Repository) -> dict[str, dict[str, Any]]:
    return {log.execution_id: log.model_dump(mode="json") for log in repo.history(limit=1_000)}
