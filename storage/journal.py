"""The journal's hash chain: how a row's hash is made, and the walk that checks them all.

Each row's hash is SHA-256 over the previous row's hash followed by the canonical JSON of
the row's content, so that changing, inserting or removing any row breaks every hash after
it. The first row chains to `GENESIS_HASH`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, select, true

from core.models import JournalEvent, canonical_json
from storage.schema import execution_events

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first journal row."""

TRADING_STATE_CHANGED = "TRADING_STATE_CHANGED"
"""Event type of the journal row written with every change of the kill switch."""


def event_hash(
    prev_hash: str,
    sequence: int,
    execution_id: str | None,
    event_type: str,
    payload: dict[str, Any],
    engine_time_us: int,
    broker_time_msc: int | None,
) -> str:
    """SHA-256 hex of `prev_hash` + the canonical JSON of the row's content."""
    content = canonical_json(
        {
            "sequence": sequence,
            "execution_id": execution_id,
            "event_type": event_type,
            "payload": payload,
            "engine_time_us": engine_time_us,
            "broker_time_msc": broker_time_msc,
        }
    )
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of `verify_chain`.

    For a gap, `first_broken_sequence` is the first missing sequence number; otherwise it is
    the first row whose link or hash does not check out.
    """

    ok: bool
    rows_checked: int
    first_broken_sequence: int | None = None
    reason: str | None = None


def verify_chain(engine_or_connection: Engine | Connection, batch_size: int = 1000) -> ChainReport:
    """Walk the whole journal in sequence order and report the first broken row.

    Rows are read in keyset-paginated batches, so memory stays flat however long the journal
    is. Checked for every row: its sequence follows the previous one with no gap, its
    `prev_hash` is the previous row's hash, its payload text is canonical JSON, and its own
    hash recomputes.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if isinstance(engine_or_connection, Engine):
        with engine_or_connection.connect() as connection:
            return _verify(connection, batch_size)
    return _verify(engine_or_connection, batch_size)


def _verify(connection: Connection, batch_size: int) -> ChainReport:
    expected_sequence = 1
    prev_hash = GENESIS_HASH
    checked = 0
    for row in iter_event_rows(connection, batch_size=batch_size):
        problem = _check_row(row, expected_sequence, prev_hash)
        if problem is not None:
            broken_at, reason = problem
            return ChainReport(False, checked, broken_at, reason)
        checked += 1
        expected_sequence = row.sequence + 1
        prev_hash = row.hash
    return ChainReport(True, checked)


def _check_row(row: Row[Any], expected_sequence: int, prev_hash: str) -> tuple[int, str] | None:
    sequence: int = row.sequence
    if sequence != expected_sequence:
        return expected_sequence, (
            f"sequence gap: expected {expected_sequence}, next row is {sequence}"
        )
    if row.prev_hash != prev_hash:
        return sequence, "prev_hash does not match the previous row's hash"
    try:
        payload = json.loads(row.payload)
    except ValueError:
        return sequence, "payload is not valid JSON"
    if not isinstance(payload, dict):
        return sequence, "payload is not a JSON object"
    if canonical_json(payload) != row.payload:
        return sequence, "payload text is not canonical JSON"
    recomputed = event_hash(
        prev_hash,
        sequence,
        row.execution_id,
        row.event_type,
        payload,
        row.engine_time_us,
        row.broker_time_msc,
    )
    if recomputed != row.hash:
        return sequence, "hash does not match the row's content"
    return None


def iter_event_rows(
    connection: Connection,
    where: ColumnElement[bool] | None = None,
    batch_size: int = 1000,
) -> Iterator[Row[Any]]:
    """Journal rows matching `where`, in sequence order, fetched `batch_size` at a time.

    Keyset pagination (`sequence > last`) rather than a server-side cursor: it behaves the
    same on both databases and each query is short.
    """
    condition = where if where is not None else true()
    last = 0
    while True:
        rows = connection.execute(
            select(execution_events)
            .where(condition, execution_events.c.sequence > last)
            .order_by(execution_events.c.sequence)
            .limit(batch_size)
        ).all()
        yield from rows
        if len(rows) < batch_size:
            return
        last = rows[-1].sequence


def row_to_event(row: Row[Any]) -> JournalEvent:
    """A journal row as the `JournalEvent` record."""
    return JournalEvent(
        sequence=row.sequence,
        execution_id=row.execution_id,
        event_type=row.event_type,
        payload=json.loads(row.payload),
        engine_time_us=row.engine_time_us,
        broker_time_msc=row.broker_time_msc,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


__all__ = [
    "GENESIS_HASH",
    "TRADING_STATE_CHANGED",
    "ChainReport",
    "event_hash",
    "iter_event_rows",
    "row_to_event",
    "verify_chain",
]
