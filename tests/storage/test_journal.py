from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from core.enums import ExecutionStatus
from core.models import canonical_json
from storage.journal import GENESIS_HASH, ChainReport, event_hash, verify_chain
from storage.writer import JournalWriter
from tests.storage.conftest import (
    advance,
    disable_journal_guard,
    make_log,
    note_op,
    op_for,
    state_op,
)


def _write_journal(writer: JournalWriter, rows: int) -> None:
    """`rows` events in single-op batches: executions, notes and a trading-state change."""
    ops = [state_op("ACTIVE", 0)]
    for n in range(1, rows):
        ops.append(op_for(make_log(n)) if n % 2 else note_op(make_log(n - 1).execution_id, n))
    for op in ops[:rows]:
        writer.write_batch([op])


def test_event_hash_is_sha256_of_prev_hash_and_canonical_content() -> None:
    payload = {"b": 1, "a": [1.5, None, "x"]}
    content = canonical_json(
        {
            "sequence": 1,
            "execution_id": "exec_1",
            "event_type": "CREATED",
            "payload": payload,
            "engine_time_us": 1_700_000_000_000_000,
            "broker_time_msc": None,
        }
    )

    digest = event_hash(GENESIS_HASH, 1, "exec_1", "CREATED", payload, 1_700_000_000_000_000, None)

    assert digest == hashlib.sha256((GENESIS_HASH + content).encode()).hexdigest()
    assert GENESIS_HASH == "0" * 64
    # Any field takes part: the broker time changes the hash.
    assert digest != event_hash(
        GENESIS_HASH, 1, "exec_1", "CREATED", payload, 1_700_000_000_000_000, 5
    )


def test_empty_journal_verifies(engine: Engine) -> None:
    assert verify_chain(engine) == ChainReport(ok=True, rows_checked=0)


def test_chain_written_by_the_writer_verifies_across_batch_boundaries(
    engine: Engine, writer: JournalWriter
) -> None:
    _write_journal(writer, 7)

    for batch_size in (1, 2, 3, 7, 1000):
        assert verify_chain(engine, batch_size=batch_size) == ChainReport(True, 7)
    with engine.connect() as connection:
        assert verify_chain(connection, batch_size=2) == ChainReport(True, 7)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE execution_events SET event_type = 'FORGED' WHERE sequence = 2",
        "DELETE FROM execution_events WHERE sequence = 2",
        # SQLite has no TRUNCATE: an unqualified DELETE is its equivalent (and the
        # truncate optimisation that would bypass row triggers is off when triggers exist).
        "TRUNCATE",
    ],
)
def test_journal_refuses_update_delete_and_truncate(
    engine: Engine, writer: JournalWriter, statement: str
) -> None:
    _write_journal(writer, 3)
    if statement == "TRUNCATE":
        statement = (
            "TRUNCATE execution_events"
            if engine.dialect.name == "postgresql"
            else "DELETE FROM execution_events"
        )

    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.exec_driver_sql(statement)

    assert verify_chain(engine) == ChainReport(True, 3)


def test_tampered_payload_is_named_by_sequence(engine: Engine, writer: JournalWriter) -> None:
    _write_journal(writer, 6)
    disable_journal_guard(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE execution_events SET payload = '{\"forged\":true}' WHERE sequence = 4"
        )

    report = verify_chain(engine, batch_size=2)

    assert report == ChainReport(False, 3, 4, "hash does not match the row's content")


def test_rehashed_forgery_breaks_the_next_link(engine: Engine, writer: JournalWriter) -> None:
    _write_journal(writer, 5)
    disable_journal_guard(engine)
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT prev_hash, execution_id, event_type, engine_time_us, broker_time_msc "
            "FROM execution_events WHERE sequence = 3"
        ).one()
    forged = {"forged": True}
    forged_hash = event_hash(
        row.prev_hash,
        3,
        row.execution_id,
        row.event_type,
        forged,
        row.engine_time_us,
        row.broker_time_msc,
    )
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE execution_events SET payload = :payload, hash = :hash WHERE sequence = 3"),
            {"payload": canonical_json(forged), "hash": forged_hash},
        )

    report = verify_chain(engine)

    assert (report.ok, report.rows_checked, report.first_broken_sequence) == (False, 3, 4)
    assert report.reason == "prev_hash does not match the previous row's hash"


def test_deleted_middle_row_is_a_gap(engine: Engine, writer: JournalWriter) -> None:
    _write_journal(writer, 6)
    disable_journal_guard(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM execution_events WHERE sequence = 3")

    report = verify_chain(engine, batch_size=2)

    assert (report.ok, report.rows_checked, report.first_broken_sequence) == (False, 2, 3)
    assert report.reason == "sequence gap: expected 3, next row is 4"


def test_deleted_first_row_is_a_gap_at_one(engine: Engine, writer: JournalWriter) -> None:
    _write_journal(writer, 3)
    disable_journal_guard(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM execution_events WHERE sequence = 1")

    assert verify_chain(engine).first_broken_sequence == 1


def test_non_canonical_payload_text_is_detected(engine: Engine, writer: JournalWriter) -> None:
    log = make_log(1)
    writer.write_batch([op_for(log), op_for(advance(log, ExecutionStatus.SUBMITTING))])
    disable_journal_guard(engine)
    with engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT payload FROM execution_events WHERE sequence = 2"
        ).scalar_one()
    # Same JSON value, different bytes: the stored text must stay canonical.
    spaced = json.dumps(json.loads(stored), sort_keys=True, indent=1)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE execution_events SET payload = :payload WHERE sequence = 2"),
            {"payload": spaced},
        )

    report = verify_chain(engine)

    assert (report.first_broken_sequence, report.reason) == (
        2,
        "payload text is not canonical JSON",
    )


def test_batch_size_must_be_positive(engine: Engine) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        verify_chain(engine, batch_size=0)
