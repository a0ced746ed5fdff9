"""How the writer turns payloads and RPM payloads into stored JSON.

Plain JSON takes a shorter path than values JSON changes on the way back (non-str keys,
tuples, enums, dates); both must store what a reader parses back, byte for byte as before.
"""

from __future__ import annotations

import enum
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from core.enums import ExecutionStatus, RejectionReason
from core.models import ExecutionLog, canonical_json
from storage._batch import State
from storage.journal import ChainReport, replay_projection, verify_chain
from storage.ops import WriteOp
from storage.repository import Repository
from storage.schema import log_to_values
from storage.writer import JournalWriter
from tests.storage.conftest import BASE_TIME, advance, count_rows, make_log, note_op, op_for

S = ExecutionStatus


class _Side(enum.IntEnum):
    BUY = 1


def _stored_payloads(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT payload FROM execution_events ORDER BY sequence")
        return [row.payload for row in rows]


def _moved(log: ExecutionLog, seconds: int, **changes: Any) -> ExecutionLog:
    return log.evolve(updated_at=log.updated_at + timedelta(seconds=seconds), **changes)


def test_payload_json_changes_is_stored_as_it_reads_back(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    log = make_log(1)
    given: dict[str, Any] = {
        "levels": {10: "a", 2: "b"},
        "fills": [(0.1, 1.2)],
        "side": _Side.BUY,
        "at": BASE_TIME,
    }

    events = writer.write_batch([op_for(log, "CREATED", **given)])

    [text] = _stored_payloads(engine)
    # Keys sorted as the strings a reader gets back, not as the integers given.
    assert '"levels":{"10":"a","2":"b"}' in text
    assert events[0].payload == json.loads(text)
    assert events[0].payload["fills"] == [[0.1, 1.2]]
    assert events[0].payload["at"] == "2024-03-01 12:00:00+00:00"
    assert repo.events_for(log.execution_id) == events
    assert verify_chain(engine) == ChainReport(True, 1)


def test_plain_payload_events_equal_what_is_read_back(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    log = make_log(1)
    given: dict[str, Any] = {
        "nested": {"a": [1, 2.5, None, True, {"b": []}]},
        "text": "é\u2603",
        "n": 10**20,
    }

    events = writer.write_batch([op_for(log, **given), op_for(advance(log, S.SUBMITTING), **given)])

    assert repo.events_for(log.execution_id) == events
    assert [canonical_json(event.payload) for event in events] == _stored_payloads(engine)
    assert verify_chain(engine) == ChainReport(True, 2)


@pytest.mark.parametrize(
    "payload",
    [{"spread": float("inf")}, {"deep": [{"x": float("nan")}]}, {1: "a", "b": 2}],
    ids=["inf", "nested-nan", "mixed-keys"],
)
def test_payload_json_cannot_hold_fails_the_batch(
    engine: Engine, writer: JournalWriter, payload: dict[Any, Any]
) -> None:
    op = WriteOp(execution_id=None, event_type="NOTE", payload=payload, engine_time_us=0)

    with pytest.raises((ValueError, TypeError)):
        writer.write_batch([op_for(make_log(1)), op])

    assert count_rows(engine, "execution_events") == 0
    assert count_rows(engine, "execution_logs") == 0


def test_cyclic_payload_fails_the_batch(engine: Engine, writer: JournalWriter) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic

    with pytest.raises(ValueError, match="Circular"):
        writer.write_batch([note_op(None, 0, cyclic=cyclic)])

    assert count_rows(engine, "execution_events") == 0


def test_rpm_payload_equal_but_of_another_json_form_is_a_change(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    log = make_log(1, rpm_payload={"x": 1})
    writer.write_batch([op_for(log)])
    # Decimal("1") == 1, yet it is stored as "1": a change, as `changes_from` says.
    as_decimal = _moved(log, 1, rpm_payload={"x": Decimal("1")})

    events = writer.write_batch([op_for(as_decimal)])

    assert events[0].payload["changes"] == as_decimal.changes_from(log)
    assert events[0].payload["changes"]["rpm_payload"] == {"x": "1"}
    stored = repo.get_execution(log.execution_id)
    assert stored is not None
    assert replay_projection(engine) == {log.execution_id: stored.model_dump(mode="json")}


def test_rpm_payload_kept_equal_is_no_change_and_the_row_holds_the_latest_form(
    engine: Engine, writer: JournalWriter, repo: Repository
) -> None:
    log = make_log(1, rpm_payload={"x": 1})
    writer.write_batch([op_for(log)])
    changed = _moved(log, 1, rpm_payload={"x": 2})
    same_as_float = _moved(changed, 1, rpm_payload={"x": 2.0})
    same_object = same_as_float.model_copy(update={"status": S.SUBMITTING})

    events = writer.write_batch([op_for(changed), op_for(same_as_float), op_for(same_object)])

    assert [event.payload["changes"] for event in events] == [
        changed.changes_from(log),
        same_as_float.changes_from(changed),
        same_object.changes_from(same_as_float),
    ]
    assert "rpm_payload" in events[0].payload["changes"]
    assert "rpm_payload" not in events[1].payload["changes"]
    stored = repo.get_execution(log.execution_id)
    assert stored is not None
    assert type(stored.rpm_payload["x"]) is float


def test_row_values_are_log_to_values() -> None:
    # The writer's own copy of `log_to_values` (it reuses the RPM payload's JSON form)
    # must not drift from the one the schema defines.
    log = advance(
        make_log(1, rpm_payload={"at": BASE_TIME, "levels": (1.1, 1.2), "k": {"n": None}}),
        S.REJECTED,
        rejection_reason=RejectionReason.SPREAD_TOO_WIDE,
        rejection_details="wide",
    )
    assert State.of(log).row_values() == log_to_values(log)
    assert State.of(make_log(2)).row_values() == log_to_values(make_log(2))


def test_unusual_ids_and_types_hash_as_event_hash_does(
    engine: Engine, writer: JournalWriter
) -> None:
    writer.write_batch(
        [
            WriteOp(
                execution_id='exé-\u2603-"q"',
                event_type="ÉVÉNEMENT\\\u0001",
                payload={},
                engine_time_us=2**62,
                broker_time_msc=0,
            ),
            WriteOp(execution_id=None, event_type="NOTE", payload={}, engine_time_us=-1),
        ]
    )

    assert verify_chain(engine) == ChainReport(True, 2)
