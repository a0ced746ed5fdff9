"""The batch planner on its own: no database, no connection, only ops in and rows out."""

from __future__ import annotations

import pytest

from core.enums import ExecutionStatus as S
from core.enums import JournalEventType as E
from storage._batch import State, held_states, plan_batch
from storage.journal import GENESIS_HASH, AuditKey, event_hash
from storage.ops import WriteOp
from tests.storage.conftest import advance, filled, make_log, note_op, op_for, state_op


def _created(n: int) -> WriteOp:
    log = make_log(n)
    return WriteOp(log.execution_id, E.EXECUTION_CREATED, {}, 1, projection=log, creates=True)


def test_rows_chain_on_from_the_tail_and_equal_the_events() -> None:
    ops = [_created(1), note_op(None, 2, x=1)]

    plan = plan_batch(ops, 41, "f" * 64, {})

    assert [row["sequence"] for row in plan.rows] == [42, 43]
    assert plan.rows[0]["prev_hash"] == "f" * 64
    assert plan.rows[1]["prev_hash"] == plan.rows[0]["hash"]
    for row, event in zip(plan.rows, plan.events, strict=True):
        assert (row["hash"], row["sequence"]) == (event.hash, event.sequence)
        assert row["hash"] == event_hash(
            row["prev_hash"],
            row["sequence"],
            row["execution_id"],
            row["event_type"],
            event.payload,
            row["engine_time_us"],
            row["broker_time_msc"],
        )


def test_a_new_execution_is_an_insert_with_every_field_as_its_changes() -> None:
    plan = plan_batch([_created(1)], 0, GENESIS_HASH, {})

    assert [(state.log, index) for state, index in plan.writes.inserts] == [(make_log(1), 0)]
    # Every field but the default account, which a first event leaves out (as before accounts).
    expected = make_log(1).model_dump(mode="json")
    assert expected.pop("account") == "default"
    assert plan.events[0].payload["changes"] == expected
    assert not plan.writes.updates
    assert not plan.writes.full_updates


def test_a_new_execution_of_another_account_names_it_in_its_changes() -> None:
    log = make_log(1).evolve(account="alpha")
    op = WriteOp(log.execution_id, E.EXECUTION_CREATED, {}, 1, projection=log, creates=True)

    plan = plan_batch([op], 0, GENESIS_HASH, {})

    assert plan.events[0].payload["changes"] == log.model_dump(mode="json")
    assert plan.events[0].payload["changes"]["account"] == "alpha"
    assert plan.writes.inserts[0][0].row_values()["account"] == "alpha"


def test_a_held_execution_is_updated_with_only_what_changed() -> None:
    log = make_log(1)
    moved = advance(log, S.SUBMITTING)

    plan = plan_batch(
        [op_for(moved), op_for(filled(moved))], 0, GENESIS_HASH, {log.execution_id: State.of(log)}
    )

    first, second = (event.payload["changes"] for event in plan.events)
    assert set(first) == {"status", "updated_at"}
    # The second op diffs against the first, not against the held state.
    assert second == filled(moved).changes_from(moved)
    assert [values["status"] for values in plan.writes.updates] == ["FILLED"]
    assert plan.latest[log.execution_id].log == filled(moved)


def test_a_changed_fixed_field_takes_the_full_update() -> None:
    log = make_log(1)

    plan = plan_batch(
        [op_for(advance(log, S.REJECTED, magic=7))],
        0,
        GENESIS_HASH,
        {log.execution_id: State.of(log)},
    )

    assert not plan.writes.updates
    assert [values["magic"] for values in plan.writes.full_updates] == [7]


def test_a_changed_decision_id_is_refused() -> None:
    log = make_log(1)
    other = advance(log, S.SUBMITTING, rpm_decision_id="another")

    with pytest.raises(ValueError, match="cannot change its rpm_decision_id"):
        plan_batch([op_for(other)], 0, GENESIS_HASH, {log.execution_id: State.of(log)})


def test_the_last_trading_state_of_a_batch_is_the_one_stored() -> None:
    plan = plan_batch([state_op("HALTED", 1), state_op("ACTIVE", 2)], 0, GENESIS_HASH, {})

    assert plan.trading_state is not None
    assert plan.trading_state.state == "ACTIVE"
    assert plan.events[0].payload["trading_state"]["state"] == "HALTED"


def test_keyed_rows_carry_the_key_id() -> None:
    key = AuditKey("planner-key-of-enough-length")

    plan = plan_batch([note_op(None, 1)], 0, GENESIS_HASH, {}, key)

    assert plan.rows[0]["hash_key_id"] == key.key_id
    assert (
        plan.rows[0]["hash"] != plan_batch([note_op(None, 1)], 0, GENESIS_HASH, {}).rows[0]["hash"]
    )


def test_held_states_names_what_must_be_read() -> None:
    held, new, unknown = make_log(1), _created(2), make_log(3)
    committed = {held.execution_id: State.of(held)}

    stored, to_read = held_states([op_for(held), new, op_for(unknown)], committed)

    assert list(stored) == [held.execution_id]
    assert to_read == [unknown.execution_id]
