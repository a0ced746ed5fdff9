"""The keyed chain (EE_AUDIT_KEY): HMAC-SHA256 rows, and what an attacker without the key can
no longer do. Each forgery is made as someone with the owner's rights would make it: the
append-only triggers switched off, every hash from the forged row on recomputed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text

from core.enums import ExecutionStatus
from core.errors import ConfigurationError
from core.models import canonical_json
from storage.journal import (
    AuditKey,
    ChainReport,
    chain_hash,
    check_audit_key,
    event_hash,
    verify_chain,
)
from storage.writer import JournalWriter
from tests.storage.conftest import advance, disable_journal_guard, make_log, note_op, op_for

KEY = AuditKey("k" * 32)
ATTACKER_KEY = AuditKey("a" * 32)


def _write_journal(writer: JournalWriter, executions: int) -> int:
    """Two events per execution, in one batch each; returns the number of rows."""
    for n in range(1, executions + 1):
        log = make_log(n)
        writer.write_batch([op_for(log), op_for(advance(log, ExecutionStatus.SUBMITTING))])
    return 2 * executions


def _forge_from(engine: Engine, sequence: int, key: AuditKey | None, key_id: str | None) -> None:
    """Rewrite row `sequence`'s payload and re-hash it and every later row with `key`
    (None: plain SHA-256), storing `key_id` as each row's marker."""
    disable_journal_guard(engine)
    with engine.begin() as connection:
        rows = connection.exec_driver_sql(
            "SELECT sequence, execution_id, event_type, payload, engine_time_us, "
            f"broker_time_msc, prev_hash FROM execution_events WHERE sequence >= {sequence} "
            "ORDER BY sequence"
        ).all()
        prev_hash = rows[0].prev_hash
        for row in rows:
            payload = json.loads(row.payload)
            if row.sequence == sequence:
                payload["forged"] = True
            digest = event_hash(
                prev_hash,
                row.sequence,
                row.execution_id,
                row.event_type,
                payload,
                row.engine_time_us,
                row.broker_time_msc,
                key,
            )
            connection.execute(
                text(
                    "UPDATE execution_events SET payload = :payload, prev_hash = :prev, "
                    "hash = :hash, hash_key_id = :key_id WHERE sequence = :sequence"
                ),
                {
                    "payload": canonical_json(payload),
                    "prev": prev_hash,
                    "hash": digest,
                    "key_id": key_id,
                    "sequence": row.sequence,
                },
            )
            prev_hash = digest


def test_keyed_rows_carry_the_key_id_and_verify_only_with_that_key(engine: Engine) -> None:
    rows = _write_journal(JournalWriter(engine, audit_key=KEY), 3)
    with engine.connect() as connection:
        markers = connection.exec_driver_sql("SELECT DISTINCT hash_key_id FROM execution_events")
        assert [m for (m,) in markers] == [KEY.key_id]

    assert verify_chain(engine, key=KEY) == ChainReport(True, rows, None, None, rows, 1)

    missing = verify_chain(engine)
    assert (missing.ok, missing.key_problem, missing.first_broken_sequence) == (False, True, 1)
    assert missing.reason == (
        f"row is keyed (HMAC, key id {KEY.key_id}): set EE_AUDIT_KEY to verify it"
    )
    wrong = verify_chain(engine, key=ATTACKER_KEY)
    assert (wrong.ok, wrong.key_problem) == (False, True)
    assert wrong.reason is not None
    assert wrong.reason.endswith("wrong key")


def test_key_id_and_repr_do_not_reveal_the_key() -> None:
    assert "k" * 16 not in repr(KEY)
    assert repr(KEY) == f"AuditKey(key_id={KEY.key_id!r})"
    assert len(KEY.key_id) == 16
    assert KEY.key_id != ATTACKER_KEY.key_id


@pytest.mark.parametrize(
    ("attacker_key", "marker", "reason"),
    [
        pytest.param(None, KEY.key_id, "hash does not match the row's content", id="sha256"),
        pytest.param(
            ATTACKER_KEY, KEY.key_id, "hash does not match the row's content", id="wrong-key"
        ),
        pytest.param(
            None,
            None,
            "plain SHA-256 row after keyed rows (keyed from sequence 1): "
            "a keyed chain never turns plain again",
            id="sha256-unmarked",
        ),
    ],
)
def test_rewritten_and_rehashed_tail_is_detected_with_the_key(
    engine: Engine, attacker_key: AuditKey | None, marker: str | None, reason: str
) -> None:
    _write_journal(JournalWriter(engine, audit_key=KEY), 3)

    _forge_from(engine, 4, attacker_key, marker)

    report = verify_chain(engine, key=KEY)
    assert (report.ok, report.first_broken_sequence, report.reason) == (False, 4, reason)
    assert not report.key_problem


def test_without_a_key_a_rehashed_tail_goes_unseen(engine: Engine) -> None:
    # Why the key exists: with plain SHA-256, whoever can write the table can re-hash.
    rows = _write_journal(JournalWriter(engine), 3)

    _forge_from(engine, 4, None, None)

    assert verify_chain(engine) == ChainReport(True, rows)


def test_a_plain_chain_may_turn_keyed(engine: Engine) -> None:
    plain = _write_journal(JournalWriter(engine), 2)
    keyed = JournalWriter(engine, audit_key=KEY)
    keyed.write_batch([note_op(None, 100, n=1), note_op(None, 101, n=2)])

    report = verify_chain(engine, key=KEY)

    assert report == ChainReport(True, plain + 2, None, None, 2, plain + 1)


def test_an_engine_refuses_a_keyed_journal_without_its_key(engine: Engine) -> None:
    check_audit_key(engine, None)  # an empty journal takes any key, or none
    _write_journal(JournalWriter(engine, audit_key=KEY), 1)

    check_audit_key(engine, KEY)
    with pytest.raises(ConfigurationError, match="EE_AUDIT_KEY is not set"):
        check_audit_key(engine, None)
    with pytest.raises(ConfigurationError, match=f"key id {ATTACKER_KEY.key_id}"):
        check_audit_key(engine, ATTACKER_KEY)


@pytest.mark.parametrize("broker_time_msc", [None, 1_709_301_600_123])
def test_writer_fast_path_hashes_as_event_hash_does_with_a_key(
    broker_time_msc: int | None,
) -> None:
    payload = {"changes": {"status": "FILLED"}, "note": "é"}
    text_ = canonical_json(payload)

    fast = chain_hash("b" * 64, 7, "exec_1", "X", text_, 123, broker_time_msc, KEY)

    assert fast == event_hash("b" * 64, 7, "exec_1", "X", payload, 123, broker_time_msc, KEY)
    assert fast != event_hash("b" * 64, 7, "exec_1", "X", payload, 123, broker_time_msc)
