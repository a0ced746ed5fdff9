from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, event

from core.clock import utc_micros
from core.enums import ExecutionStatus
from core.errors import PersistenceUnavailableError
from core.models import ExecutionLog
from storage.db import create_db_engine
from storage.repository import Repository
from storage.writer import JournalWriter
from tests.storage.conftest import BASE_TIME, advance, filled, make_log, note_op, op_for

S = ExecutionStatus


@pytest.fixture
def five(writer: JournalWriter) -> list[ExecutionLog]:
    """Executions 1..5 (odd: USDJPY, even: EURUSD): 1 and 4 FILLED, 2 REJECTED, 3 and 5 open."""
    logs = [make_log(n) for n in range(1, 6)]
    writer.write_batch([op_for(log) for log in logs])
    logs[0] = filled(logs[0])
    logs[1] = advance(logs[1], S.REJECTED, rejection_reason="SPREAD_TOO_WIDE")
    logs[2] = advance(logs[2], S.SUBMITTING, attempts=1)
    logs[3] = filled(logs[3])
    writer.write_batch([op_for(log) for log in logs[:4]])
    return logs


def _ids(logs: list[ExecutionLog]) -> list[int]:
    return [int(log.execution_id.removeprefix("exec_"), 16) for log in logs]


@pytest.fixture
def select_count(engine: Engine) -> Iterator[list[int]]:
    """A one-item list holding how many SELECTs the engine has run."""
    counter = [0]

    def count(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):
            counter[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    yield counter
    event.remove(engine, "before_cursor_execute", count)


def test_get_by_id_and_by_decision(repo: Repository, five: list[ExecutionLog]) -> None:
    assert repo.get_execution(five[0].execution_id) == five[0]
    assert repo.get_by_decision_id("decision-2") == five[1]
    assert repo.get_execution("exec_missing") is None
    assert repo.get_by_decision_id("decision-missing") is None


def test_history_is_newest_first_with_filters_and_limit(
    writer: JournalWriter, repo: Repository, five: list[ExecutionLog]
) -> None:
    # Same creation time as execution 5: the tie is broken by execution_id, descending.
    tie = make_log(6, created_at=five[4].created_at)
    writer.write_batch([op_for(tie)])

    assert _ids(repo.history()) == [6, 5, 4, 3, 2, 1]
    assert _ids(repo.history(limit=2)) == [6, 5]
    assert _ids(repo.history(symbol="USDJPY")) == [5, 3, 1]
    assert _ids(repo.history(status=S.FILLED)) == [4, 1]
    assert _ids(repo.history(symbol="EURUSD", status=S.PENDING)) == [6]
    assert repo.history(symbol="GBPUSD") == []
    with pytest.raises(ValueError, match="limit"):
        repo.history(limit=0)


def test_audit_trail_is_half_open_oldest_first_and_streamed(
    engine: Engine, five: list[ExecutionLog], select_count: list[int]
) -> None:
    repo = Repository(engine, batch_size=2)
    start, end = five[1].created_at, five[4].created_at

    trail = repo.audit_trail(start, end)

    assert select_count[0] == 0  # nothing is read until the caller iterates
    assert _ids(list(trail)) == [2, 3, 4]
    assert select_count[0] == 2  # two pages of at most two rows
    assert _ids(list(repo.audit_trail(BASE_TIME, BASE_TIME + timedelta(days=1)))) == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert list(repo.audit_trail(end, end)) == []


def test_audit_trail_pages_through_equal_creation_times(
    writer: JournalWriter, engine: Engine
) -> None:
    same = BASE_TIME + timedelta(minutes=5)
    writer.write_batch([op_for(make_log(n, created_at=same)) for n in range(1, 8)])

    trail = Repository(engine, batch_size=3).audit_trail(same, same + timedelta(seconds=1))

    assert _ids(list(trail)) == [1, 2, 3, 4, 5, 6, 7]


def test_audit_range_accepts_any_zone_and_refuses_naive(
    repo: Repository, five: list[ExecutionLog]
) -> None:
    tokyo = timezone(timedelta(hours=9))
    start = five[0].created_at.astimezone(tokyo)

    assert _ids(list(repo.audit_trail(start, start + timedelta(seconds=2)))) == [1, 2]
    with pytest.raises(ValueError, match="aware"):
        repo.audit_trail(datetime(2024, 3, 1), BASE_TIME)  # noqa: DTZ001
    with pytest.raises(ValueError, match="before"):
        repo.audit_events(BASE_TIME, BASE_TIME - timedelta(seconds=1))


def test_audit_events_by_engine_time_half_open_and_streamed(
    writer: JournalWriter, engine: Engine, select_count: list[int]
) -> None:
    writer.write_batch([note_op(None, seconds) for seconds in range(10)])
    repo = Repository(engine, batch_size=3)

    events = list(
        repo.audit_events(BASE_TIME + timedelta(seconds=2), BASE_TIME + timedelta(seconds=8))
    )

    assert [event.sequence for event in events] == [3, 4, 5, 6, 7, 8]
    assert [event.engine_time_us for event in events] == [
        utc_micros(BASE_TIME + timedelta(seconds=s)) for s in range(2, 8)
    ]
    assert select_count[0] == 3  # 3 + 3 rows, then an empty page


def test_events_for_one_execution_in_sequence_order(
    writer: JournalWriter, repo: Repository
) -> None:
    one, two = make_log(1), make_log(2)
    written = writer.write_batch([op_for(one), op_for(two), note_op(one.execution_id, 3)])
    written += writer.write_batch([op_for(advance(one, S.SUBMITTING))])

    assert repo.events_for(one.execution_id) == [written[0], written[2], written[3]]
    assert repo.events_for("exec_missing") == []


def test_non_final_and_counts(repo: Repository, five: list[ExecutionLog]) -> None:
    assert _ids(repo.non_final()) == [3, 5]
    assert repo.count_by_status() == {"FILLED": 2, "REJECTED": 1, "SUBMITTING": 1, "PENDING": 1}


def test_trading_state_is_none_before_it_is_first_set(repo: Repository) -> None:
    assert repo.trading_state() is None


def test_aware_datetimes_round_trip_as_utc(writer: JournalWriter, repo: Repository) -> None:
    new_york = timezone(timedelta(hours=-5))
    created = datetime(2024, 3, 10, 7, 59, 59, 999_999, tzinfo=new_york)
    log = make_log(1, created_at=created, updated_at=created, submitted_at=created)
    writer.write_batch([op_for(log)])

    stored = repo.get_execution(log.execution_id)

    assert stored is not None
    for value in (stored.created_at, stored.updated_at, stored.submitted_at):
        assert value == datetime(2024, 3, 10, 12, 59, 59, 999_999, tzinfo=UTC)
        assert value.tzinfo is UTC
    assert stored.filled_at is None


def test_ping(repo: Repository, database_url: str) -> None:
    assert repo.ping()
    broken = create_db_engine(_unreachable(database_url))
    try:
        assert not Repository(broken).ping()
        with pytest.raises(PersistenceUnavailableError):
            Repository(broken).get_execution("exec_1")
    finally:
        broken.dispose()


def _unreachable(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        return "sqlite:////nonexistent-directory/ee.db"
    # Port 1 on loopback: refused at once, no timeout to wait for.
    return "postgresql+psycopg2://postgres@127.0.0.1:1/postgres"
