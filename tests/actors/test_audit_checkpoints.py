"""The engine's audit checkpoints: taken periodically and at shutdown, logged as one line,
exported as metrics and appended to EE_AUDIT_CHECKPOINT_FILE; signed with EE_AUDIT_KEY,
which itself never reaches a log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from storage.checkpoint import Checkpoint
from storage.db import create_db_engine
from storage.journal import AuditKey, read_tail, verify_chain
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually
from tests.storage.conftest import disable_journal_guard

SECRET = "engine-audit-key-0123456789"


def _tail(url: str) -> tuple[int, str]:
    db = create_db_engine(url)
    try:
        with db.connect() as connection:
            sequence, head_hash, _key_id = read_tail(connection)
    finally:
        db.dispose()
    return sequence, head_hash


def _last(file: Path) -> Checkpoint | None:
    if not file.exists():
        return None
    lines = file.read_text().splitlines()
    return Checkpoint.parse(lines[-1]) if lines else None


def test_checkpoints_periodically_and_at_shutdown(
    make_engine: EngineFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    file = tmp_path / "checkpoints.jsonl"
    ee = make_engine(
        audit_key=SECRET, audit_checkpoint_seconds=0.05, audit_checkpoint_file=str(file)
    )
    ee.execute(rpm("dec-1"))

    def caught_up() -> bool:
        last = _last(file)
        return last is not None and (last.sequence, last.hash) == _tail(ee.database_url)

    eventually(caught_up, what="a periodic checkpoint of the head")
    periodic = _last(file)
    assert periodic is not None
    sample = ee.metrics.registry.get_sample_value
    assert sample("ee_audit_checkpoint_sequence") == periodic.sequence
    assert sample("ee_audit_checkpoint_timestamp_seconds") == pytest.approx(
        (periodic.taken_at_us or 0) / 1e6
    )

    ee.execute(rpm("dec-2"))
    ee.stop()

    final = _last(file)
    assert final is not None
    assert (final.sequence, final.hash) == _tail(ee.database_url)
    assert final.sequence > periodic.sequence
    key = AuditKey(SECRET)
    assert final.key_id == key.key_id
    assert final.signature_problem(key) is None
    logged = [r.getMessage() for r in caplog.records if "audit checkpoint" in r.getMessage()]
    assert f"audit checkpoint {final.to_line()}" in logged
    assert SECRET not in caplog.text
    assert SECRET not in file.read_text()
    db = create_db_engine(ee.database_url)
    try:
        report = verify_chain(db, key=key)
    finally:
        db.dispose()
    assert (report.ok, report.keyed_rows) == (True, final.sequence)


def test_a_keyed_journal_is_not_extended_without_its_key(make_engine: EngineFactory) -> None:
    ee = make_engine(audit_key=SECRET)
    ee.execute(rpm("dec-1"))
    ee.stop()

    with pytest.raises(ConfigurationError, match="EE_AUDIT_KEY is not set"):
        make_engine()
    with pytest.raises(ConfigurationError, match="set the key it was written with"):
        make_engine(audit_key="a-different-key-of-length")


def test_the_server_masks_the_audit_key_in_its_logs() -> None:
    from api.server import _secrets_of
    from core.settings import load_settings

    assert SECRET in _secrets_of(load_settings(audit_key=SECRET), {}, "sqlite:///engine.db")


def test_an_engine_over_a_truncated_journal_boots_halted(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    # Rows deleted from the end leave a chain that verifies; the checkpoint file, written
    # outside the database, is what the next start compares the journal with.
    file = tmp_path / "checkpoints.jsonl"
    first = make_engine(audit_checkpoint_file=str(file))
    first.execute(rpm("dec-1"))
    first.execute(rpm("dec-2"))
    first.stop()
    last = _last(file)
    assert last is not None
    db = create_db_engine(first.database_url)
    try:
        disable_journal_guard(db)
        with db.begin() as connection:
            connection.exec_driver_sql(
                f"DELETE FROM execution_events WHERE sequence > {last.sequence - 2}"
            )
    finally:
        db.dispose()

    again = make_engine(database_url=first.database_url, audit_checkpoint_file=str(file))
    state = again.trading_state()
    assert state is not None
    assert state.state == "HALTED"
    assert "truncated tail" in state.reason
    assert f"rows {last.sequence - 1}..{last.sequence} are missing" in state.reason


def test_an_engine_over_an_intact_journal_starts_active(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    file = tmp_path / "checkpoints.jsonl"
    first = make_engine(audit_checkpoint_file=str(file))
    first.execute(rpm("dec-1"))
    first.stop()
    again = make_engine(database_url=first.database_url, audit_checkpoint_file=str(file))
    state = again.trading_state()
    assert state is None or state.state == "ACTIVE"
    assert again.execute(rpm("dec-2")).status == "FILLED"
