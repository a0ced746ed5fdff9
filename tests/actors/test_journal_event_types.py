"""Every event type an engine writes in a run is a `JournalEventType` member.

The run takes the usual paths: a fill, a refusal before any send, a halt that flattens the
open position (FLATTEN, the close execution, TRADING_STATE_CHANGED) and a resume. The code
side (every literal where an event type goes) is `tests/core/test_journal_event_types.py`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from core.enums import ExecutionStatus, JournalEventType
from storage.db import create_db_engine
from storage.schema import execution_events
from tests.actors.conftest import EngineFactory, rpm


def test_a_run_journals_only_member_event_types(make_engine: EngineFactory, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = make_engine(database_url=url)
    assert engine.execute(rpm("dec-fill")).status is ExecutionStatus.FILLED
    assert engine.execute(rpm("dec-hold", status="HOLD")).status is ExecutionStatus.REJECTED
    engine.halt("end of test", "ops", flatten=True)
    engine.resume("ops")
    engine.stop()

    db = create_db_engine(url)
    try:
        with db.connect() as connection:
            written = set(connection.execute(select(execution_events.c.event_type)).scalars())
    finally:
        db.dispose()

    assert written <= set(JournalEventType), sorted(written - set(JournalEventType))
    assert {
        JournalEventType.EXECUTION_CREATED,
        JournalEventType.SUBMITTING,
        JournalEventType.EXECUTION_FILLED,
        JournalEventType.EXECUTION_REJECTED,
        JournalEventType.FLATTEN,
        JournalEventType.FLATTEN_DONE,
        JournalEventType.TRADING_STATE_CHANGED,
    } <= written
