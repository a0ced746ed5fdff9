"""The journal's bytes across the writer's split: the writer of today stores, for a fixed set
of batches, exactly the rows the pre-split writer stored (`golden_chain.json`, made by that
writer and checked by its own `verify_chain`), and today's `verify_chain` accepts those rows.
Equal rows, hashes included, are what lets either side verify a chain the other wrote."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from core.enums import JournalEventType
from storage.journal import verify_chain
from storage.ops import WriteOp
from storage.schema import execution_events
from storage.writer import JournalWriter
from tests.storage.golden_chain import GOLDEN_KEY, keyed_batches, plain_batches, row_dict

GOLDEN: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "golden_chain.json").read_text(encoding="ascii")
)


def _as_members(batch: list[WriteOp]) -> list[WriteOp]:
    """The batch with every known event type given as its `JournalEventType` member."""
    members = set(JournalEventType)
    return [
        replace(op, event_type=JournalEventType(op.event_type)) if op.event_type in members else op
        for op in batch
    ]


def _stored_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(execution_events).order_by(execution_events.c.sequence))
        return [row_dict(row) for row in rows]


@pytest.mark.parametrize("as_members", [False, True], ids=["strings", "enum"])
def test_the_writer_stores_the_golden_rows_byte_for_byte(engine: Engine, as_members: bool) -> None:
    for audit_key, batches in ((None, plain_batches()), (GOLDEN_KEY, keyed_batches())):
        writer = JournalWriter(engine, audit_key=audit_key)
        for batch in batches:
            events = writer.write_batch(_as_members(batch) if as_members else batch)
            assert all(type(event.event_type) is str for event in events)
        writer.close()

    assert _stored_rows(engine) == GOLDEN


def test_rows_stored_before_the_split_verify_today(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(insert(execution_events), GOLDEN)

    report = verify_chain(engine, key=GOLDEN_KEY)

    assert (report.ok, report.rows_checked, report.first_keyed_sequence) == (True, 14, 13)
    assert verify_chain(engine).key_problem


def test_a_changed_golden_row_fails_verification(engine: Engine) -> None:
    tampered = [dict(row) for row in GOLDEN]
    tampered[4]["payload"] = tampered[4]["payload"].replace("10009", "10008")
    with engine.begin() as connection:
        connection.execute(insert(execution_events), tampered)

    assert verify_chain(engine, key=GOLDEN_KEY).first_broken_sequence == 5
