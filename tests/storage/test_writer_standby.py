"""The writer under hot standby (PostgreSQL): the lease fence runs in every transaction
that commits an intent and only there, and two instances' writers append to one chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine

from core.enums import ExecutionStatus
from core.errors import LeaseLostError
from storage.journal import ChainReport, verify_chain
from storage.repository import Repository
from storage.writer import JournalWriter
from tests.storage.conftest import advance, make_log, op_for, state_op


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    from storage.db import create_db_engine
    from storage.migrate import upgrade

    upgrade(postgres_url)
    engine = create_db_engine(postgres_url)
    yield engine
    engine.dispose()


def test_the_fence_refuses_an_intent_and_nothing_of_its_batch_is_stored(
    pg_engine: Engine,
) -> None:
    fenced: list[str] = []

    def fence(_connection: Connection, account: str) -> None:
        fenced.append(account)
        raise LeaseLostError(account=account, epoch=3, current_epoch=4)

    writer = JournalWriter(pg_engine, fence=fence, shared=True)
    pending = make_log(1)
    writer.write_batch([op_for(pending, "EXECUTION_CREATED")])  # not an intent: no fence
    assert fenced == []
    intent = advance(pending, ExecutionStatus.SUBMITTING)
    with pytest.raises(LeaseLostError, match="epoch 4"):
        writer.write_batch([op_for(intent, "SUBMITTING")])
    assert fenced == ["default"]
    stored = Repository(pg_engine).get_execution(pending.execution_id)
    assert stored is not None
    assert stored.status is ExecutionStatus.PENDING


def test_two_instances_writers_keep_one_chain(pg_engine: Engine) -> None:
    first = JournalWriter(pg_engine, shared=True)
    second = JournalWriter(pg_engine, shared=True)
    for n in range(6):
        writer = first if n % 2 == 0 else second
        writer.write_batch([op_for(make_log(n), "EXECUTION_CREATED")])
    second.write_batch([state_op("HALTED", 10)])
    first.write_batch([state_op("ACTIVE", 11)])
    assert verify_chain(pg_engine) == ChainReport(True, 8)
