"""The journal's hash chain: how a row's hash is made, and the walk that checks them all.

Each row's hash is SHA-256 over the previous row's hash followed by the canonical JSON of
the row's content, so that changing, inserting or removing any row breaks every hash after
it. The first row chains to `GENESIS_HASH`.

With an `AuditKey` (EE_AUDIT_KEY) the same input goes through HMAC-SHA256 instead, and the
row records the key's id in `hash_key_id`: whoever can write the table but does not hold
the key can no longer re-hash what they changed. A chain may turn keyed, never back: a
plain row after a keyed one is a break.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, select, true

from core.accounts import DEFAULT_ACCOUNT
from core.enums import JournalEventType
from core.errors import ConfigurationError
from core.models import JournalEvent, canonical_json
from storage.ops import CHANGES_KEY
from storage.schema import execution_events

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the first journal row."""

TRADING_STATE_CHANGED = JournalEventType.TRADING_STATE_CHANGED
"""Event type of the journal row written with every change of the kill switch."""

_KEY_ID_LABEL = b"mt5-execution-engine audit key id"


class AuditKey:
    """The secret that keys the chain and signs checkpoints (EE_AUDIT_KEY).

    `key_id` (16 hex digits of an HMAC of a fixed label) names the key in rows and
    checkpoints without revealing it, so that a verifier can tell a wrong key from a
    tampered row. The repr shows only the id: the secret must never reach a log.
    """

    __slots__ = ("_mac", "key_id")

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if not raw:
            raise ValueError("an audit key cannot be empty")
        # Copies of one keyed state: the key is not re-derived for every row.
        self._mac = hmac.new(raw, digestmod=hashlib.sha256)
        self.key_id: str = hmac.new(raw, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def digest(self, data: bytes) -> str:
        """HMAC-SHA256 hex of `data` under this key."""
        mac = self._mac.copy()
        mac.update(data)
        return mac.hexdigest()

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"


def chain_digest(data: bytes, key: AuditKey | None) -> str:
    """A row's hash of its hash input: HMAC-SHA256 with `key`, plain SHA-256 without."""
    return key.digest(data) if key is not None else hashlib.sha256(data).hexdigest()


def event_hash(
    prev_hash: str,
    sequence: int,
    execution_id: str | None,
    event_type: str,
    payload: dict[str, Any],
    engine_time_us: int,
    broker_time_msc: int | None,
    key: AuditKey | None = None,
) -> str:
    """SHA-256 hex (HMAC-SHA256 with `key`) of `prev_hash` + the canonical JSON of the row's
    content: its sequence, execution id, event type, payload and times."""
    return chain_hash(
        prev_hash,
        sequence,
        execution_id,
        event_type,
        canonical_json(payload),
        engine_time_us,
        broker_time_msc,
        key,
    )


def chain_hash(
    prev_hash: str,
    sequence: int,
    execution_id: str | None,
    event_type: str,
    payload_text: str,
    engine_time_us: int,
    broker_time_msc: int | None,
    key: AuditKey | None = None,
) -> str:
    """`event_hash`, given the payload's canonical text instead of its value.

    The one place the hash input is made. It is the canonical JSON of the row's content
    (keys sorted, no spaces), put together around the payload text the writer makes for the
    row anyway, instead of encoding the payload a second time; a property test holds it
    equal to `canonical_json` of the whole content.
    """
    content = (
        f'{{"broker_time_msc":{_json_scalar(broker_time_msc)},'
        f'"engine_time_us":{_json_scalar(engine_time_us)},'
        f'"event_type":{_json_scalar(event_type)},'
        f'"execution_id":{_json_scalar(execution_id)},'
        f'"payload":{payload_text},'
        f'"sequence":{_json_scalar(sequence)}}}'
    )
    return chain_digest((prev_hash + content).encode(), key)


def _json_scalar(value: str | int | None) -> str:
    """`canonical_json(value)`, without its generic path for the usual exact str and int."""
    if type(value) is str:
        return encode_basestring_ascii(value)
    if type(value) is int:
        return int.__repr__(value)
    if value is None:  # an engine-wide row's execution id, most rows' broker time
        return "null"
    return canonical_json(value)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of `verify_chain`.

    For a gap, `first_broken_sequence` is the first missing sequence number; otherwise it is
    the first row whose link or hash does not check out. `key_problem` says the walk stopped
    because the verifier lacks the row's key or holds another one: not proof of tampering.
    """

    ok: bool
    rows_checked: int
    first_broken_sequence: int | None = None
    reason: str | None = None
    keyed_rows: int = 0
    """Rows checked whose hash is keyed (HMAC); the others are plain SHA-256."""
    first_keyed_sequence: int | None = None
    key_problem: bool = False


def verify_chain(
    engine_or_connection: Engine | Connection,
    batch_size: int = 1000,
    key: AuditKey | None = None,
) -> ChainReport:
    """Walk the whole journal in sequence order and report the first broken row.

    Rows are read in keyset-paginated batches, so memory stays flat however long the journal
    is. Checked for every row: its sequence follows the previous one with no gap, its
    `prev_hash` is the previous row's hash, its payload text is canonical JSON, and its own
    hash recomputes (with `key` when the row is keyed; a keyed row cannot be checked without
    it, and no plain row may follow a keyed one).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if isinstance(engine_or_connection, Engine):
        with engine_or_connection.connect() as connection:
            return _Walk(key).run(connection, batch_size)
    return _Walk(key).run(engine_or_connection, batch_size)


class _Walk:
    """One pass of `verify_chain`: the running link, and where the keyed rows began."""

    def __init__(self, key: AuditKey | None) -> None:
        self.key = key
        self.expected_sequence = 1
        self.prev_hash = GENESIS_HASH
        self.checked = 0
        self.keyed = 0
        self.first_keyed: int | None = None

    def run(self, connection: Connection, batch_size: int) -> ChainReport:
        for row in iter_event_rows(connection, batch_size=batch_size):
            missing_key = self._key_problem(row)
            if missing_key is not None:
                return self._report(row.sequence, missing_key, key_problem=True)
            problem = self._row_problem(row)
            if problem is not None:
                return self._report(*problem)
            self.checked += 1
            if row.hash_key_id is not None:
                self.keyed += 1
                if self.first_keyed is None:
                    self.first_keyed = row.sequence
            self.expected_sequence = row.sequence + 1
            self.prev_hash = row.hash
        return ChainReport(True, self.checked, None, None, self.keyed, self.first_keyed)

    def _report(self, sequence: int, reason: str, *, key_problem: bool = False) -> ChainReport:
        return ChainReport(
            False, self.checked, sequence, reason, self.keyed, self.first_keyed, key_problem
        )

    def _key_problem(self, row: Row[Any]) -> str | None:
        key_id: str | None = row.hash_key_id
        if key_id is None or row.sequence != self.expected_sequence:
            return None
        if self.key is None:
            return f"row is keyed (HMAC, key id {key_id}): set EE_AUDIT_KEY to verify it"
        if self.key.key_id != key_id:
            return (
                f"row is keyed with key id {key_id} but EE_AUDIT_KEY has key id "
                f"{self.key.key_id}: wrong key"
            )
        return None

    def _row_problem(self, row: Row[Any]) -> tuple[int, str] | None:
        sequence: int = row.sequence
        if sequence != self.expected_sequence:
            return self.expected_sequence, (
                f"sequence gap: expected {self.expected_sequence}, next row is {sequence}"
            )
        if row.prev_hash != self.prev_hash:
            return sequence, "prev_hash does not match the previous row's hash"
        if row.hash_key_id is None and self.first_keyed is not None:
            return sequence, (
                f"plain SHA-256 row after keyed rows (keyed from sequence {self.first_keyed}): "
                "a keyed chain never turns plain again"
            )
        try:
            payload = json.loads(row.payload)
        except ValueError:
            return sequence, "payload is not valid JSON"
        if not isinstance(payload, dict):
            return sequence, "payload is not a JSON object"
        if canonical_json(payload) != row.payload:
            return sequence, "payload text is not canonical JSON"
        recomputed = chain_hash(
            self.prev_hash,
            sequence,
            row.execution_id,
            row.event_type,
            row.payload,  # its canonical text, checked just above
            row.engine_time_us,
            row.broker_time_msc,
            self.key if row.hash_key_id is not None else None,
        )
        if not hmac.compare_digest(recomputed, row.hash):
            return sequence, "hash does not match the row's content"
        return None


def read_tail(connection: Connection) -> tuple[int, str, str | None]:
    """The last row's sequence, hash and key id (0, `GENESIS_HASH`, None when empty)."""
    row = connection.execute(
        select(execution_events.c.sequence, execution_events.c.hash, execution_events.c.hash_key_id)
        .order_by(execution_events.c.sequence.desc())
        .limit(1)
    ).first()
    if row is None:
        return 0, GENESIS_HASH, None
    return int(row.sequence), str(row.hash), row.hash_key_id


def check_audit_key(engine: Engine, key: AuditKey | None) -> None:
    """Refuse to extend a keyed chain without its key, or with another key.

    Either would make every later row fail `audit verify`; an engine started so is a
    configuration error, named before anything is written.
    """
    with engine.connect() as connection:
        _sequence, _hash, key_id = read_tail(connection)
    if key_id is None:
        return
    if key is None:
        raise ConfigurationError(
            f"the journal is keyed (key id {key_id}) and EE_AUDIT_KEY is not set: set the "
            "key it was written with"
        )
    if key.key_id != key_id:
        raise ConfigurationError(
            f"the journal is keyed with key id {key_id} but EE_AUDIT_KEY has key id "
            f"{key.key_id}: set the key it was written with"
        )


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


def replay_projection(engine: Engine, batch_size: int = 1000) -> dict[str, dict[str, Any]]:
    """Every execution's state rebuilt from the journal alone, as JSON-ready field dicts.

    Applies each event's ``changes`` in sequence order (over the default account, which a
    first event leaves out); the result must equal
    `ExecutionLog.model_dump(mode="json")` of every `execution_logs` row.
    """
    states: dict[str, dict[str, Any]] = {}
    with engine.connect() as connection:
        rows = iter_event_rows(connection, execution_events.c.execution_id.is_not(None), batch_size)
        for row in rows:
            changes = json.loads(row.payload).get(CHANGES_KEY)
            if changes is not None:
                # A first event names the account only when it is not the default one
                # (`journal_created_fields`), and rows from before accounts name none.
                state = states.setdefault(row.execution_id, {"account": DEFAULT_ACCOUNT})
                state.update(changes)
    return states


__all__ = [
    "GENESIS_HASH",
    "TRADING_STATE_CHANGED",
    "AuditKey",
    "ChainReport",
    "chain_digest",
    "chain_hash",
    "check_audit_key",
    "event_hash",
    "iter_event_rows",
    "read_tail",
    "replay_projection",
    "row_to_event",
    "verify_chain",
]
