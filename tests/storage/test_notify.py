"""Tests of storage.notify: trading-state pushes with LISTEN/NOTIFY, on real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Engine, text

from core.testing import ManualClock
from storage.db import create_db_engine
from storage.migrate import upgrade
from storage.notify import Listener, States, publish
from storage.repository import Repository
from storage.sessions import dedicated_session
from tests.helpers import eventually

PUSH_BOUND_S = 0.5
"""Well under the 1 s that issue 13 allows between a halt returning and the last send."""

_UPSERT = text(
    "INSERT INTO trading_state (id, state, changed_by, reason, changed_at) "
    "VALUES (1, :state, 'ops', 'test', :at) "
    "ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, changed_at = EXCLUDED.changed_at"
)


@pytest.fixture
def url(postgres_url: str) -> str:
    upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def db(url: str) -> Iterator[Engine]:
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


class Heard:
    """What a listener delivered, with the time it arrived."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, States]] = []

    def __call__(self, changes: States) -> None:
        self.changes.append((time.monotonic(), dict(changes)))

    def states(self) -> list[States]:
        return [changes for _, changes in self.changes]


def _firm_state(db: Engine) -> Callable[[], States]:
    repository = Repository(db)

    def read() -> States:
        record = repository.trading_state()
        return {} if record is None else {"firm": record.state}

    return read


@pytest.fixture
def listen(url: str, db: Engine) -> Iterator[Callable[..., tuple[Listener, Heard]]]:
    made: list[Listener] = []

    def make(**kwargs: Any) -> tuple[Listener, Heard]:
        heard = Heard()
        listener = Listener(url, read_state=_firm_state(db), on_change=heard, **kwargs)
        made.append(listener)
        listener.start()
        eventually(lambda: listener.connected, what="the listener connects")
        return listener, heard

    yield make
    for listener in made:
        listener.stop()


def _halt(db: Engine, state: str = "HALTED") -> float:
    """Persist and publish `state` in one transaction; returns when it committed."""
    with db.begin() as connection:
        connection.execute(_UPSERT, {"state": state, "at": datetime.now(UTC)})
        publish(connection, "firm", state)
    return time.monotonic()


def _terminate(db: Engine, pid: int | None) -> None:
    with db.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


@pytest.mark.postgres
def test_a_change_arrives_well_under_a_second_after_its_commit(
    listen: Callable[..., tuple[Listener, Heard]], db: Engine
) -> None:
    listener, heard = listen()

    committed = _halt(db)
    eventually(lambda: heard.changes, timeout=PUSH_BOUND_S, what="the push arrives")

    arrived, changes = heard.changes[0]
    assert changes == {"firm": "HALTED"}
    assert arrived - committed < PUSH_BOUND_S
    assert listener.states == {"firm": "HALTED"}
    assert listener.current_within(1.0)


@pytest.mark.postgres
def test_a_rolled_back_change_is_never_pushed(
    listen: Callable[..., tuple[Listener, Heard]], db: Engine
) -> None:
    _, heard = listen()

    with db.connect() as connection:
        transaction = connection.begin()
        connection.execute(_UPSERT, {"state": "HALTED", "at": datetime.now(UTC)})
        publish(connection, "firm", "HALTED")
        transaction.rollback()
    _halt(db, "REDUCING")
    eventually(lambda: heard.changes, what="the committed change arrives")

    assert heard.states() == [{"firm": "REDUCING"}]  # NOTIFY left with the commit only


@pytest.mark.postgres
def test_the_state_persisted_before_the_start_is_read_at_connect(
    listen: Callable[..., tuple[Listener, Heard]], db: Engine
) -> None:
    _halt(db)  # nobody listens yet

    _, heard = listen()

    eventually(lambda: heard.changes, what="the first read")
    assert heard.states() == [{"firm": "HALTED"}]


@pytest.mark.postgres
def test_a_change_made_while_disconnected_is_re_read_on_reconnect(
    url: str, listen: Callable[..., tuple[Listener, Heard]], db: Engine
) -> None:
    gate = threading.Event()
    gate.set()
    connects: list[int] = []

    def connect() -> Any:
        if not gate.is_set():
            raise psycopg2.OperationalError("the database is unreachable (test gate)")
        session = dedicated_session(url, "listener")
        connects.append(session.get_backend_pid())
        return session

    listener, heard = listen(connect=connect, backoff_seconds=0.01, backoff_cap_seconds=0.05)
    _halt(db, "ACTIVE")
    eventually(lambda: heard.changes, what="the first push")

    gate.clear()  # the listener cannot come back until the test lets it
    _terminate(db, listener.backend_pid)
    eventually(lambda: not listener.connected, what="the listener notices its session died")
    assert not listener.current_within(60.0)  # a halt gate must re-read now
    _halt(db, "HALTED")  # its NOTIFY reaches no one
    gate.set()

    eventually(lambda: len(heard.changes) == 2, what="the change is re-read on reconnect")
    assert heard.states() == [{"firm": "ACTIVE"}, {"firm": "HALTED"}]
    assert len(connects) == 2
    assert listener.connected
    assert listener.current_within(1.0)


@pytest.mark.postgres
def test_a_quiet_session_is_pinged_to_stay_current(
    listen: Callable[..., tuple[Listener, Heard]], db: Engine
) -> None:
    clock = ManualClock()
    listener, _ = listen(clock=clock, ping_seconds=0.5)
    eventually(lambda: listener.current_within(0.0), what="alive")

    clock.advance(0.6)  # no notification comes: only a ping can prove it alive again

    eventually(lambda: listener.current_within(0.0), what="a ping proves it alive again")
    listener.stop()
    assert not listener.current_within(60.0)


@pytest.mark.postgres
def test_a_failing_callback_does_not_stop_the_pushes(url: str, db: Engine) -> None:
    seen: list[States] = []

    def flaky(changes: States) -> None:
        seen.append(dict(changes))
        if len(seen) == 1:
            raise RuntimeError("a bug in the gate")

    listener = Listener(url, read_state=_firm_state(db), on_change=flaky)
    listener.start()
    try:
        eventually(lambda: listener.connected, what="connected")
        _halt(db, "HALTED")
        # One push at a time: two commits read in one poll are one change (HALTED, then
        # ACTIVE again, is no change at all), which is not what this test is about.
        eventually(lambda: len(seen) == 1, what="the first push")
        _halt(db, "ACTIVE")
        eventually(lambda: len(seen) == 2, what="both pushes")
    finally:
        listener.stop()

    assert seen == [{"firm": "HALTED"}, {"firm": "ACTIVE"}]
    assert not listener.connected


def test_stop_joins_the_thread_even_while_the_database_is_down() -> None:
    listener = Listener(
        "postgresql+psycopg2://postgres@127.0.0.1:1/none",
        read_state=dict,
        on_change=lambda _: None,
        connect=lambda: (_ for _ in ()).throw(psycopg2.OperationalError("down")),
    )
    listener.start()

    listener.stop()

    assert not listener.connected
    assert not listener._thread.is_alive()


def test_publish_is_a_no_op_on_sqlite(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'engine.db'}")
    try:
        with engine.begin() as connection:
            publish(connection, "firm", "HALTED")
    finally:
        engine.dispose()


def test_a_listener_needs_postgresql() -> None:
    with pytest.raises(Exception, match="not a PostgreSQL database"):
        Listener("sqlite:///x.db", read_state=dict, on_change=lambda _: None)
