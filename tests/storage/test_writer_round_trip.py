"""The writer's one-round-trip batch on PostgreSQL: what it sends, stores and refuses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, insert
from sqlalchemy.exc import IntegrityError

from core.enums import ExecutionStatus, RejectionReason
from core.errors import DuplicateDecisionError, PersistenceUnavailableError
from core.models import ExecutionLog
from storage.db import create_db_engine
from storage.migrate import upgrade
from storage.schema import execution_logs, log_to_values
from storage.writer import JournalWriter
from tests.storage.conftest import advance, count_rows, filled, make_log, note_op, op_for

S = ExecutionStatus

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    upgrade(postgres_url)
    engine = create_db_engine(postgres_url)
    yield engine
    engine.dispose()


def _record_statements(engine: Engine) -> list[str]:
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    return sent


def test_a_batch_is_one_statement_call(pg_engine: Engine) -> None:
    writer = JournalWriter(pg_engine)
    first, second = make_log(1), make_log(2)
    writer.write_batch([op_for(first), op_for(second)])
    sent = _record_statements(pg_engine)

    writer.write_batch(
        [
            op_for(advance(first, S.SUBMITTING, attempts=1)),  # changing columns only
            op_for(advance(second, S.SUBMITTING, rpm_version="rpm-2")),  # every column
            replace(op_for(make_log(3)), creates=True),  # no read before its INSERT
            note_op(None, 1),
        ]
    )

    assert len(sent) == 1
    assert sent[0].count("; ") == 3


def _server_text(engine: Engine, execution_id: str) -> str:
    with engine.connect() as connection:
        text = connection.exec_driver_sql(
            "SELECT t::text FROM execution_logs t WHERE execution_id = %s", (execution_id,)
        ).scalar_one()
    assert isinstance(text, str)
    return text


def _stored_by_sqlalchemy(engine: Engine, log: ExecutionLog) -> str:
    """The row's server text when SQLAlchemy itself inserts `log`."""
    with engine.begin() as connection:
        connection.execute(
            delete(execution_logs).where(execution_logs.c.execution_id == log.execution_id)
        )
        connection.execute(insert(execution_logs), log_to_values(log))
    return _server_text(engine, log.execution_id)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="inserted"),
        pytest.param({"attempts": 5, "order_id": None, "fill_price": 1.5}, id="updated"),
        pytest.param({"symbol": "GBPUSD", "rpm_payload": {"z": [1, "é"]}}, id="fully-updated"),
    ],
)
def test_stored_values_equal_what_sqlalchemy_binds(
    pg_engine: Engine, changes: dict[str, Any]
) -> None:
    writer = JournalWriter(pg_engine)
    none_where_nullable = make_log(
        1,
        intended_lots=None,
        magic=None,
        confidence_score=None,
        atr=None,
        rpm_version=None,
        model_version=None,
    )
    done = filled(advance(make_log(2), S.SUBMITTING, attempts=1))
    rejected = advance(
        make_log(3),
        S.REJECTED,
        rejection_reason=RejectionReason.SPREAD_TOO_WIDE,
        rejection_details="100% %s %(x)s 'q' é",
    )
    logs = [none_where_nullable, done, rejected]
    writer.write_batch([op_for(log) for log in logs])
    if changes:
        logs = [advance(log, log.status, **changes) for log in logs]
        writer.write_batch([op_for(log) for log in logs])

    written = [_server_text(pg_engine, log.execution_id) for log in logs]

    assert written == [_stored_by_sqlalchemy(pg_engine, log) for log in logs]


def test_a_lone_new_execution_with_a_taken_decision_is_named(pg_engine: Engine) -> None:
    writer = JournalWriter(pg_engine)
    writer.write_batch([op_for(make_log(1))])
    twin = make_log(2, rpm_decision_id="decision-1")

    with pytest.raises(DuplicateDecisionError) as raised:
        writer.write_batch([note_op(None, 1), op_for(twin)])

    assert (raised.value.execution_id, raised.value.op_index) == (twin.execution_id, 1)
    assert count_rows(pg_engine, "execution_events") == 1
    assert writer.write_batch([note_op(None, 2)])[0].sequence == 2


def test_a_refused_update_is_not_retried(pg_engine: Engine) -> None:
    writer = JournalWriter(pg_engine)
    first, second = make_log(1), make_log(2)
    writer.write_batch([op_for(first), op_for(second)])
    sent = _record_statements(pg_engine)

    with pytest.raises(PersistenceUnavailableError) as raised:
        writer.write_batch([op_for(advance(second, S.SUBMITTING, client_id=first.client_id))])

    assert isinstance(raised.value.__cause__, IntegrityError)
    assert sum("UPDATE execution_logs" in statement for statement in sent) == 1
    assert count_rows(pg_engine, "execution_events") == 2
