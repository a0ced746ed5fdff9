"""The account of each execution in the store (issue 13): migration 0006 on an old store,
the writer, the journal and the repository's filters, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Column, Engine, MetaData, Table, insert, select

from api.cli import main
from core.enums import ExecutionStatus
from storage.db import create_db_engine
from storage.journal import replay_projection, verify_chain
from storage.migrate import HEAD_REVISION, current_revision, upgrade
from storage.repository import Repository
from storage.schema import execution_events, execution_logs, log_to_values
from storage.writer import JournalWriter
from tests.storage.conftest import BASE_TIME, filled, make_log, note_op, op_for, state_op
from tests.storage.golden_chain import GOLDEN_KEY
from tests.storage.test_golden_chain import GOLDEN

PRE_ACCOUNT_REVISION = "0005_account_leases"

# execution_logs as it was at 0005: every column of today's but the account.
_OLD_LOGS = Table(
    "execution_logs",
    MetaData(),
    *(Column(column.name, column.type) for column in execution_logs.c if column.name != "account"),
)


def test_an_old_store_migrated_to_head_has_default_on_every_row_and_its_chain_verifies(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(database_url, PRE_ACCOUNT_REVISION)
    logs = [make_log(n) for n in range(1, 4)]
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            rows = [log_to_values(log) for log in logs]
            for row in rows:
                del row["account"]
            connection.execute(insert(_OLD_LOGS), rows)
            connection.execute(insert(execution_events), GOLDEN)  # a plain then keyed chain

        upgrade(database_url)

        assert current_revision(database_url) == HEAD_REVISION
        with engine.connect() as connection:
            accounts = connection.execute(select(execution_logs.c.account)).scalars().all()
        assert accounts == ["default"] * len(logs)
        repo = Repository(engine)
        assert [repo.get_execution(log.execution_id) for log in logs] == logs
        assert repo.history(account="default", limit=10) == logs[::-1]
        assert repo.history(account="alpha") == []
        report = verify_chain(engine, key=GOLDEN_KEY)
        assert (report.ok, report.rows_checked) == (True, len(GOLDEN))
    finally:
        engine.dispose()
    monkeypatch.setenv("EE_AUDIT_KEY", "golden-chain-key-of-enough-length")
    assert main(["audit", "verify", "--database-url", database_url]) == 0
    assert f"{len(GOLDEN)} rows intact" in capsys.readouterr().out


def test_the_account_is_stored_never_updated_and_replayed_from_the_journal(
    writer: JournalWriter, repo: Repository, engine: Engine
) -> None:
    alpha = make_log(1, account="alpha")
    default = make_log(2)
    writer.write_batch([op_for(alpha, "CREATED"), op_for(default, "CREATED")])
    writer.write_batch([op_for(filled(alpha)), op_for(filled(default))])

    assert repo.get_execution(alpha.execution_id) == filled(alpha)
    assert repo.get_execution(default.execution_id) == filled(default)
    events = repo.events_for(alpha.execution_id)
    assert events[0].payload["changes"]["account"] == "alpha"
    assert all("account" not in event.payload["changes"] for event in events[1:])
    assert "account" not in repo.events_for(default.execution_id)[0].payload["changes"]
    replayed = replay_projection(engine)
    for log in (filled(alpha), filled(default)):
        assert replayed[log.execution_id] == log.model_dump(mode="json")
    assert verify_chain(engine).ok


def test_history_filters_by_account(writer: JournalWriter, repo: Repository) -> None:
    logs = [make_log(n, account="alpha" if n % 3 == 0 else "default") for n in range(1, 8)]
    writer.write_batch([op_for(log, "CREATED") for log in logs])

    alpha = repo.history(account="alpha")
    assert [log.execution_id for log in alpha] == [logs[5].execution_id, logs[2].execution_id]
    assert {log.account for log in repo.history(account="default")} == {"default"}
    assert len(repo.history(account="default")) == 5
    assert len(repo.history()) == 7
    assert repo.history(account="beta") == []
    filtered = repo.history(symbol="USDJPY", status=ExecutionStatus.PENDING, account="alpha")
    assert [log.execution_id for log in filtered] == [logs[2].execution_id]


def test_the_audit_export_filters_by_account(writer: JournalWriter, engine: Engine) -> None:
    engine_wide = writer.write_batch([state_op("HALTED", 0.5)])  # names no account: in both
    logs = [make_log(n, account="alpha" if n % 2 else "beta") for n in range(1, 6)]
    writer.write_batch([op_for(log, "CREATED") for log in logs])
    writer.write_batch([note_op(None, 10, account="beta")])  # an engine-wide row of beta
    start, end = BASE_TIME, BASE_TIME + timedelta(hours=1)
    # Small batches, so that the filter is seen to hold across pages.
    repo = Repository(engine, batch_size=2)

    alpha = list(repo.audit_trail(start, end, account="alpha"))
    assert [log.execution_id for log in alpha] == [logs[i].execution_id for i in (0, 2, 4)]
    assert len(list(repo.audit_trail(start, end))) == 5
    assert list(repo.audit_trail(start, end, account="gamma")) == []

    alpha_events = list(repo.audit_events(start, end, account="alpha"))
    assert alpha_events[0].sequence == engine_wide[0].sequence
    assert [event.execution_id for event in alpha_events[1:]] == [log.execution_id for log in alpha]
    beta_events = list(repo.audit_events(start, end, account="beta"))
    assert [event.execution_id for event in beta_events] == [
        None,
        logs[1].execution_id,
        logs[3].execution_id,
        None,
    ]
    assert beta_events[-1].payload == {"account": "beta"}
    assert len(list(repo.audit_events(start, end))) == 7


def test_the_unfinished_executions_of_one_account(writer: JournalWriter, repo: Repository) -> None:
    logs = [make_log(n, account="alpha" if n % 2 else "default") for n in range(1, 5)]
    writer.write_batch([op_for(log, "CREATED") for log in logs])
    writer.write_batch([op_for(filled(logs[0]))])

    assert [log.execution_id for log in repo.non_final(account="alpha")] == [logs[2].execution_id]
    assert [log.account for log in repo.non_final(account="default")] == ["default"] * 2
    assert len(repo.non_final()) == 3
