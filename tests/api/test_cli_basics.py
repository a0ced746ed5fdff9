"""The installed `execution-engine` console script, run as a subprocess as an operator runs it:
every `--help` works, `db upgrade` and `audit verify` work on one URL, a tampered journal and
a bad database URL are one clear line on stderr and exit 1, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from storage.db import create_db_engine
from storage.migrate import upgrade
from storage.writer import JournalWriter
from tests.storage.conftest import disable_journal_guard, note_op, state_op

TIMEOUT = 60.0


def console_script() -> str:
    """The console script installed beside this interpreter (PATH may not have the venv)."""
    beside = Path(sys.executable).parent / "execution-engine"
    if beside.exists():
        return str(beside)
    found = shutil.which("execution-engine")
    assert found is not None, "the execution-engine console script is not installed"
    return found


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def assert_one_clean_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("execution-engine") or lines[0].startswith("audit chain")
    return lines[0]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ((), ["usage: execution-engine", "simulator", "audit", "db", "MetaTrader 5"]),
        (("simulator", "serve"), ["--port", "--seed", "loopback", "0 picks a free port"]),
        (("db", "upgrade"), ["--database-url", "schema", "DATABASE_URL"]),
        (("audit", "verify"), ["--database-url", "SHA-256 chain", "first broken sequence"]),
    ],
)
def test_help_exits_zero_with_helpful_text(
    command: tuple[str, ...], expected: list[str], tmp_path: Path
) -> None:
    result = run(*command, "--help", cwd=tmp_path)

    assert result.returncode == 0
    assert result.stderr == ""
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for fragment in expected:
        assert fragment in text


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run(cwd=tmp_path)

    assert result.returncode == 2
    assert "usage: execution-engine" in result.stderr


def _journal_rows(url: str, rows: int) -> None:
    engine = create_db_engine(url)
    try:
        writer = JournalWriter(engine)
        writer.write_batch([state_op("ACTIVE", 0)])
        for n in range(1, rows):
            writer.write_batch([note_op(None, n, n=n)])
    finally:
        engine.dispose()


def test_db_upgrade_then_audit_verify_on_the_same_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    upgraded = run("db", "upgrade", "--database-url", url, cwd=tmp_path)
    _journal_rows(url, 3)
    verified = run("audit", "verify", "--database-url", url, cwd=tmp_path)

    assert upgraded.returncode == 0, upgraded.stderr
    assert "is at revision" in upgraded.stdout
    assert verified.returncode == 0, verified.stderr
    assert "3 rows intact" in verified.stdout


def test_audit_verify_names_the_tampered_sequence(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tampered.db'}"
    upgrade(url)  # in-process: the subprocess path is covered above
    _journal_rows(url, 4)
    engine = create_db_engine(url)
    try:
        disable_journal_guard(engine)  # drop the SQLite triggers, as an intruder could
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE execution_events SET payload = '{\"n\":99}' WHERE sequence = 3"
            )
    finally:
        engine.dispose()

    result = run("audit", "verify", "--database-url", url, cwd=tmp_path)

    line = assert_one_clean_error_line(result)
    assert "sequence 3" in line
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("command", "url"),
    [
        ("audit", "not a database url"),  # unparseable
        ("db", "sqlite:////nonexistent-directory-for-ee-tests/x.db"),  # cannot be opened
        ("audit", "mysql://operator:hunter2@db.example/engine"),  # unsupported backend
    ],
)
def test_a_bad_database_url_is_one_clear_line(command: str, url: str, tmp_path: Path) -> None:
    subcommand = "verify" if command == "audit" else "upgrade"

    result = run(command, subcommand, "--database-url", url, cwd=tmp_path)

    line = assert_one_clean_error_line(result)
    assert "hunter2" not in result.stderr + result.stdout  # never echo a password
    assert "database" in line
