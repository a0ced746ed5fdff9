"""Checkpoints of the journal head, and `audit verify` with them: a deleted tail is found.

The deletions are made as an intruder with the owner's (or a superuser's) rights would make
them: the append-only triggers switched off first."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from api.cli import main
from storage.checkpoint import Checkpoint, CheckpointFormatError, check_checkpoint
from storage.journal import AuditKey, read_tail
from storage.writer import JournalWriter
from tests.storage.conftest import disable_journal_guard, note_op

SECRET = "s3cret-audit-key-for-tests"
KEY = AuditKey(SECRET)


def _journal(engine: Engine, rows: int, key: AuditKey | None = None) -> Checkpoint:
    """`rows` journal rows; returns the checkpoint of the head after them."""
    writer = JournalWriter(engine, audit_key=key)
    for n in range(1, rows + 1):
        writer.write_batch([note_op(None, n, n=n)])
    return Checkpoint.take(writer.last_sequence, writer.last_hash, 1_700_000_000_000_000, key)


def _delete_from(engine: Engine, sequence: int) -> None:
    disable_journal_guard(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DELETE FROM execution_events WHERE sequence >= {sequence}")


def test_a_checkpoint_line_parses_back_and_its_signature_holds() -> None:
    signed = Checkpoint.take(42, "ab" * 32, 1_700_000_000_123_456, KEY)
    plain = Checkpoint.take(42, "ab" * 32, 1_700_000_000_123_456, None)

    assert Checkpoint.parse(signed.to_line()) == signed
    assert Checkpoint.parse("audit checkpoint " + signed.to_line()) == signed  # a log line
    assert Checkpoint.parse(signed.short()) == Checkpoint(42, "ab" * 32)
    assert signed.key_id == KEY.key_id
    assert signed.signature_problem(KEY) is None
    assert plain.signature_problem(None) is None
    assert SECRET not in signed.to_line()


def test_a_forged_or_altered_checkpoint_is_refused() -> None:
    signed = Checkpoint.take(42, "ab" * 32, 1_700_000_000_123_456, KEY)
    plain = Checkpoint.take(42, "ab" * 32, 1_700_000_000_123_456, None)
    # Someone who can write the checkpoint file but has no key makes it shorter:
    forged = Checkpoint.take(40, "cd" * 32, 1_700_000_000_123_456, AuditKey("x" * 20))

    assert replace(signed, sequence=40).signature_problem(KEY) == (
        "its signature does not match (forged or altered)"
    )
    assert replace(forged, key_id=KEY.key_id).signature_problem(KEY) == (
        "its signature does not match (forged or altered)"
    )
    assert signed.signature_problem(None) == (
        f"it is signed with key id {KEY.key_id}: set EE_AUDIT_KEY to check it"
    )
    assert replace(plain, sequence=40).signature_problem(None) == (
        "its checksum does not match its content (altered)"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12",
        "12:xyz",
        '{"sequence": 1}',
        "{not json",
        '{"sequence":1,"hash":"' + "a" * 64 + '","taken_at_us":1,"key_id":7,"signature":null}',
    ],
)
def test_what_is_not_a_checkpoint_is_refused(text: str) -> None:
    with pytest.raises(CheckpointFormatError):
        Checkpoint.parse(text)


def test_check_checkpoint_names_a_truncated_tail_and_a_changed_row(engine: Engine) -> None:
    head = _journal(engine, 6)
    with engine.connect() as connection:
        assert check_checkpoint(connection, head) is None

    _delete_from(engine, 5)

    with engine.connect() as connection:
        assert read_tail(connection)[0] == 4
        assert check_checkpoint(connection, head) == (
            f"truncated tail: the journal ends at sequence 4 but checkpoint {head.short()} "
            "records sequence 6: rows 5..6 are missing"
        )
    # The engine writes on from the shortened tail: row 6 is back, with another hash.
    writer = JournalWriter(engine)
    writer.write_batch([note_op(None, 50, n=50), note_op(None, 51, n=51)])
    with engine.connect() as connection:
        problem = check_checkpoint(connection, head)
    assert problem is not None
    assert problem.startswith(f"row 6 differs from checkpoint {head.short()}")


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "keyed"])
def test_audit_verify_with_a_checkpoint_finds_the_deleted_tail(
    engine: Engine,
    migrated_url: str,
    keyed: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if keyed:
        monkeypatch.setenv("EE_AUDIT_KEY", SECRET)
    head = _journal(engine, 6, KEY if keyed else None)
    verify = ["audit", "verify", "--database-url", migrated_url, "--checkpoint"]

    assert main([*verify, head.short()]) == 0
    intact = capsys.readouterr()
    assert "6 rows intact" in intact.out
    assert f"checkpoint {head.short()} (--checkpoint) holds" in intact.out
    assert intact.err == ""

    _delete_from(engine, 5)

    # The chain that is left still links up: only the checkpoint shows what is gone.
    assert main(verify[:4]) == 0
    capsys.readouterr()
    assert main([*verify, head.short()]) == 1
    truncated = capsys.readouterr()
    assert "truncated tail" in truncated.err
    assert "rows 5..6 are missing" in truncated.err
    assert SECRET not in truncated.out + truncated.err


def test_audit_verify_with_the_checkpoint_file(
    engine: Engine, migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _journal(engine, 3)
    head = _journal(engine, 3)  # rows 4..6
    file = tmp_path / "checkpoints.jsonl"
    file.write_text(first.to_line() + "\n" + head.to_line() + "\n")
    verify = ["audit", "verify", "--database-url", migrated_url, "--checkpoint-file", str(file)]

    assert main(verify) == 0
    assert f"checkpoint {head.short()} (newest of 2 in the checkpoint file) holds" in (
        capsys.readouterr().out
    )

    _delete_from(engine, 6)

    assert main(verify) == 1
    assert "rows 6..6 are missing" in capsys.readouterr().err


def test_audit_verify_says_when_the_key_is_missing_or_wrong(
    engine: Engine,
    migrated_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _journal(engine, 2, KEY)
    verify = ["audit", "verify", "--database-url", migrated_url]

    assert main(verify) == 1
    missing = capsys.readouterr().err
    assert "NOT VERIFIED at sequence 1" in missing
    assert "set EE_AUDIT_KEY" in missing

    monkeypatch.setenv("EE_AUDIT_KEY", "another-key-of-enough-length")
    assert main(verify) == 1
    assert "wrong key" in capsys.readouterr().err

    monkeypatch.setenv("EE_AUDIT_KEY", SECRET)
    assert main(verify) == 0
    assert "2 rows intact (2 keyed with HMAC-SHA256, 0 plain SHA-256)" in capsys.readouterr().out
