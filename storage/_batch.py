"""The pure half of a batch: from ops and the chain's tail to the rows and events to write.

No connection here: `plan_batch` gets the committed state of every execution the batch
moves (the writer's cache, or a read) and returns what the writer then stores. Each
event's payload records, under ``"changes"``, the projection fields its op changed, so
that `storage.journal.replay_projection` rebuilds `execution_logs` from the journal alone.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.models import (
    ExecutionLog,
    JournalEvent,
    TradingStateRecord,
    canonical_json,
    journal_created_fields,
)
from storage.journal import AuditKey, chain_hash
from storage.ops import CHANGES_KEY, TRADING_STATE_KEY, WriteOp

# Fields an execution is created with and that no later op changes in practice. When none
# of them changed, an UPDATE leaves them out (the RPM payload above all: re-encoding it on
# every status change was most of an UPDATE's cost).
_FIXED_FIELDS = frozenset(
    {
        "account",
        "request_id",
        "rpm_decision_id",
        "client_id",
        "symbol",
        "direction",
        "intended_units",
        "magic",
        "confidence_score",
        "atr",
        "rpm_version",
        "model_version",
        "engine_version",
        "rpm_fingerprint",
        "rpm_payload",
        "created_at",
    }
)
NOT_CHANGING: set[str] = {*_FIXED_FIELDS, "execution_id"}
"""The columns an UPDATE of the changing fields leaves out."""
_RPM_PAYLOAD: set[str] = {"rpm_payload"}
# Exact types whose JSON text reads back as an equal value of the same type.
_JSON_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


@dataclass(frozen=True, slots=True)
class State:
    """An execution's state and its JSON form (what "changes" are computed against).

    The RPM payload is kept apart from the other fields: it is most of the JSON form and
    never changes in practice, so the next state avoids dumping it again when it can tell
    the payload is the same without doing so.
    """

    log: ExecutionLog
    fields: dict[str, Any]
    """The JSON form of every field but ``rpm_payload``."""
    rpm_payload: dict[str, Any]
    """The JSON form of ``rpm_payload``."""

    @classmethod
    def of(cls, log: ExecutionLog) -> State:
        return cls(log, log.model_dump(mode="json", exclude=_RPM_PAYLOAD), _rpm_payload_json(log))

    def all_fields(self) -> dict[str, Any]:
        """The JSON form of every field (``ExecutionLog.model_dump(mode="json")``)."""
        return {**self.fields, "rpm_payload": self.rpm_payload}

    def then(self, log: ExecutionLog) -> tuple[State, dict[str, Any]]:
        """`log`'s state, and its changes from this one (`ExecutionLog.changes_from`)."""
        fields = log.model_dump(mode="json", exclude=_RPM_PAYLOAD)
        before = self.fields
        changes = {key: value for key, value in fields.items() if before.get(key) != value}
        rpm_payload = self._same_rpm_payload(log)
        if rpm_payload is None:
            rpm_payload = _rpm_payload_json(log)
            if rpm_payload != self.rpm_payload:
                changes["rpm_payload"] = rpm_payload
        return State(log, fields, rpm_payload), changes

    def _same_rpm_payload(self, log: ExecutionLog) -> dict[str, Any] | None:
        """The JSON form of `log`'s RPM payload if it is known equal to this state's.

        Found without dumping it: plain JSON is its own JSON form. The walk is needed as
        a value that is not plain may equal a plain one (Decimal("1") == 1) and yet have
        another form. None when unsure: the caller then dumps and compares.
        """
        value = log.rpm_payload
        if value is self.log.rpm_payload:  # carried over (model_copy): the same value
            return self.rpm_payload
        with contextlib.suppress(RecursionError):  # a cycle: the dump below reports it
            if value == self.rpm_payload and is_plain_json(value):
                # Its own form, not this state's: they are equal but may differ in type
                # (1 and 1.0), and the row stores the new state's form.
                return value
        return None

    def row_values(self) -> dict[str, Any]:
        """`log_to_values` of the state, reusing the RPM payload's JSON form."""
        values = self.log.model_dump(exclude=_RPM_PAYLOAD)
        values["rpm_payload"] = self.rpm_payload
        values["legs"] = self.fields["legs"]  # the JSON form, as `log_to_values`
        values["status"] = self.log.status.value
        values["rejection_reason"] = (
            self.log.rejection_reason.value if self.log.rejection_reason is not None else None
        )
        return values


def _rpm_payload_json(log: ExecutionLog) -> dict[str, Any]:
    payload: dict[str, Any] = log.model_dump(mode="json", include=_RPM_PAYLOAD)["rpm_payload"]
    return payload


@dataclass(frozen=True, slots=True)
class ProjectionWrites:
    """The `execution_logs` rows a batch writes, as the statements' parameters."""

    inserts: list[tuple[State, int]]
    """Each new execution's state and the index of the op that created it."""
    updates: list[dict[str, Any]]
    """UPDATEs of the changing columns only (no fixed field changed)."""
    full_updates: list[dict[str, Any]]
    """UPDATEs of every column."""

    @classmethod
    def of(
        cls,
        latest: dict[str, State],
        stored: dict[str, State],
        changed: dict[str, set[str]],
        first_op: dict[str, int],
    ) -> ProjectionWrites:
        writes = cls([], [], [])
        for execution_id, state in latest.items():
            if execution_id not in stored:
                writes.inserts.append((state, first_op[execution_id]))
            elif changed[execution_id].isdisjoint(_FIXED_FIELDS):
                values = _changing_values(state.log)
                values["key_execution_id"] = execution_id
                writes.updates.append(values)
            else:
                values = state.row_values()
                values["key_execution_id"] = values.pop("execution_id")
                writes.full_updates.append(values)
        return writes


def _changing_values(log: ExecutionLog) -> dict[str, Any]:
    """`log_to_values` without the fixed fields: an UPDATE sets only the columns named."""
    values = log.model_dump(exclude=NOT_CHANGING)
    values["status"] = log.status.value
    values["rejection_reason"] = (
        log.rejection_reason.value if log.rejection_reason is not None else None
    )
    return values


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """Everything one batch stores, and what the writer keeps once it committed."""

    events: list[JournalEvent]
    """The batch's journal events, as `write_batch` returns them."""
    rows: list[dict[str, Any]]
    """The same events as `execution_events` rows (the INSERT's parameters)."""
    writes: ProjectionWrites
    latest: dict[str, State]
    """Each execution's state after the batch."""
    trading_state: TradingStateRecord | None
    """The kill switch's new state, if an op changes it (the last such op's)."""
    trading_states: tuple[TradingStateRecord, ...] = ()
    """Each account's new trading state (its last op's), the rows the batch stores."""


def held_states(
    ops: Sequence[WriteOp], committed: dict[str, State]
) -> tuple[dict[str, State], list[str]]:
    """The committed states the writer holds of the executions `ops` move, and the ids of
    those it must read (neither held nor created by the batch)."""
    ids: dict[str, bool] = {}  # execution id -> its first op in the batch creates it
    for op in ops:
        if op.projection is not None:
            ids.setdefault(op.projection.execution_id, op.creates)
    stored = {key: committed[key] for key in ids if key in committed}
    unknown = [key for key, creates in ids.items() if key not in stored and not creates]
    return stored, unknown


def plan_batch(
    ops: Sequence[WriteOp],
    last_sequence: int,
    last_hash: str,
    stored: dict[str, State],
    key: AuditKey | None = None,
) -> BatchPlan:
    """The rows and events of `ops`, chained after (`last_sequence`, `last_hash`).

    `stored` holds the committed state of every execution the batch moves and does not
    create. Raises ValueError for an op that cannot be stored as given (a changed RPM
    decision id, a payload JSON cannot hold).
    """
    sequence, prev_hash = last_sequence, last_hash
    key_id = key.key_id if key is not None else None
    # The state of each execution as of the op being processed; several ops of one batch
    # may move the same execution, and each must diff against the one before it.
    latest: dict[str, State] = {}
    changed: dict[str, set[str]] = {}
    first_op: dict[str, int] = {}
    new_trading_state: TradingStateRecord | None = None
    new_states: dict[str, TradingStateRecord] = {}
    rows: list[dict[str, Any]] = []
    events: list[JournalEvent] = []
    for index, op in enumerate(ops):
        payload = dict(op.payload)
        if op.projection is not None:
            execution_id = op.projection.execution_id
            previous = latest[execution_id] if execution_id in latest else stored.get(execution_id)
            if (
                previous is not None
                and previous.log.rpm_decision_id != op.projection.rpm_decision_id
            ):
                raise ValueError(f"execution {execution_id!r} cannot change its rpm_decision_id")
            first_op.setdefault(execution_id, index)
            if previous is None:
                state = State.of(op.projection)
                payload[CHANGES_KEY] = journal_created_fields(state.all_fields())
            else:
                state, payload[CHANGES_KEY] = previous.then(op.projection)
            changed.setdefault(execution_id, set()).update(payload[CHANGES_KEY])
            latest[execution_id] = state
        if op.trading_state is not None:
            payload[TRADING_STATE_KEY] = op.trading_state.model_dump(mode="json")
            new_trading_state = op.trading_state
            new_states[op.trading_state.account] = op.trading_state
        parsed, text = canonical_payload(payload, op.payload)
        sequence += 1
        digest = chain_hash(
            prev_hash,
            sequence,
            op.execution_id,
            op.event_type,
            text,
            op.engine_time_us,
            op.broker_time_msc,
            key,
        )
        rows.append(
            {
                "sequence": sequence,
                "execution_id": op.execution_id,
                "event_type": op.event_type,
                "payload": text,
                "engine_time_us": op.engine_time_us,
                "broker_time_msc": op.broker_time_msc,
                "prev_hash": prev_hash,
                "hash": digest,
                "hash_key_id": key_id,
            }
        )
        events.append(
            # Every field is built just above from checked values: no need to validate again.
            JournalEvent.model_construct(
                sequence=sequence,
                execution_id=op.execution_id,
                event_type=op.event_type,
                payload=parsed,
                engine_time_us=op.engine_time_us,
                broker_time_msc=op.broker_time_msc,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        prev_hash = digest
    writes = ProjectionWrites.of(latest, stored, changed, first_op)
    return BatchPlan(events, rows, writes, latest, new_trading_state, tuple(new_states.values()))


def canonical_payload(payload: dict[str, Any], given: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The payload as a reader parses it back from the stored text, and that text.

    The text must be canonical for the value read back, not for the value given: e.g. an
    integer key becomes a string and would sort differently. Only `given` (the caller's
    part) needs checking: what the writer adds is pydantic's JSON form, already plain.
    When it is plain JSON, one encoding gives both (NaN is still refused by the encoder);
    otherwise the payload is encoded, parsed back and encoded again.
    """
    try:
        plain = is_plain_json(given)
    except RecursionError:  # a cycle: the encoder names it
        plain = False
    if plain:
        return payload, canonical_json(payload)
    parsed: dict[str, Any] = json.loads(canonical_json(payload))
    return parsed, canonical_json(parsed)


def is_plain_json(value: Any) -> bool:
    """Whether JSON reads `value` back as itself: dicts with str keys, lists and scalars.

    Exact types: a subclass (an enum, a tuple, an OrderedDict) may read back as another
    type, so it takes the slow path.
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _JSON_SCALARS and not is_plain_json(item):
                return False
        return True
    if kind is list:
        for item in value:
            if type(item) not in _JSON_SCALARS and not is_plain_json(item):
                return False
        return True
    return kind in _JSON_SCALARS


__all__ = [
    "NOT_CHANGING",
    "BatchPlan",
    "ProjectionWrites",
    "State",
    "canonical_payload",
    "held_states",
    "is_plain_json",
    "plan_batch",
]
