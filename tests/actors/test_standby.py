"""Hot standby on PostgreSQL, two engines in one test process sharing one simulated
terminal (one account, one terminal): one owner per account, the standby's refusal naming
the owner, the takeover, the fence of the write-ahead transaction, and a halt on one
instance closing the other's gate. The separate-process failover and partition are the
drills' (tests/drills)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from actors.facade import ExecutionFacade
from api.app import create_app
from core.enums import ExecutionStatus, RejectionReason
from core.errors import AccountNotOwnedError, ConfigurationError
from core.testing import ManualClock
from tests.actors.conftest import EngineFactory, rpm
from tests.api._support import TOKENS, ApiClient, bearer
from tests.helpers import eventually

STANDBY = {"takeover_seconds": 0.5}


@pytest.fixture
def db(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url)
    yield engine
    engine.dispose()


def _instance(make_engine: EngineFactory, url: str, name: str, **overrides: Any) -> ExecutionFacade:
    return make_engine(
        url,
        instance_name=name,
        advertise_url=f"http://{name}.example:8000",
        **{**STANDBY, **overrides},
    )


def _owns(engine: ExecutionFacade) -> bool:
    assert engine.ownership is not None
    return engine.ownership.owns("default")


def test_standby_is_off_by_default(postgres_url: str, make_engine: EngineFactory) -> None:
    engine = make_engine(postgres_url)
    assert engine.ownership is None
    assert "accounts_owned" not in engine.health()


def test_standby_refuses_sqlite(make_engine: EngineFactory) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        make_engine(standby=True)


def test_one_instance_trades_the_other_redirects_then_takes_over(
    postgres_url: str, make_engine: EngineFactory
) -> None:
    a = _instance(make_engine, postgres_url, "a")
    eventually(lambda: _owns(a), what="a owns the account")
    b = _instance(make_engine, postgres_url, "b")
    assert a.health()["accounts_owned"] == ["default"]
    assert b.health()["accounts_owned"] == []
    assert a.execute(rpm("rpm_sb_1")).status is ExecutionStatus.FILLED
    with pytest.raises(AccountNotOwnedError) as refused:
        b.submit(rpm("rpm_sb_2"))
    assert refused.value.owner == "a"
    assert refused.value.advertise_url == "http://a.example:8000"
    # Reads work on any instance.
    assert b.get_execution_history(limit=5)[0].rpm_decision_id == "rpm_sb_1"

    a.stop()
    eventually(lambda: _owns(b), timeout=10, what="b took over")
    assert b.health()["accounts_owned"] == ["default"]
    assert b.execute(rpm("rpm_sb_3")).status is ExecutionStatus.FILLED


def test_a_lost_lease_fences_the_intent_and_nothing_is_sent(
    postgres_url: str, db: Engine, make_engine: EngineFactory
) -> None:
    clock = ManualClock()
    # Lease checks every 12 s of real time: the loss is not noticed before the execution.
    a = _instance(make_engine, postgres_url, "a", clock=clock, takeover_seconds=60)
    assert a.ownership is not None
    ownership = a.ownership
    eventually(lambda: ownership.leased("default"), what="a holds the lease")
    clock.advance(40)  # past the grace (three 12 s ticks), on the engine's clock
    ownership.tick()
    eventually(lambda: _owns(a), what="a owns the account")
    sim = a.terminal
    magic = a.settings.magic
    sent_before = len(sim.orders_for_magic(magic))
    with db.connect() as connection:
        pid = connection.execute(text("SELECT backend_pid FROM account_leases")).scalar_one()
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    confirmation = a.execute(rpm("rpm_sb_fenced"))
    assert confirmation.status is ExecutionStatus.REJECTED
    assert confirmation.rejection_reason is RejectionReason.NOT_SENT
    assert "lease" in (confirmation.rejection_details or "")
    assert len(sim.orders_for_magic(magic)) == sent_before


def test_a_halt_on_one_instance_closes_the_others_gate(
    postgres_url: str, make_engine: EngineFactory
) -> None:
    a = _instance(make_engine, postgres_url, "a")
    eventually(lambda: _owns(a), what="a owns the account")
    b = _instance(make_engine, postgres_url, "b")
    b.halt("desk-wide stop", by="test")
    eventually(lambda: a.switch.halted, what="a heard the halt")
    assert a.switch.reason == "desk-wide stop"
    confirmation = a.execute(rpm("rpm_sb_halted"))
    assert confirmation.status is ExecutionStatus.REJECTED
    b.resume(by="test")
    eventually(lambda: not a.switch.halted, what="a heard the resume")
    assert a.execute(rpm("rpm_sb_after")).status is ExecutionStatus.FILLED


def test_the_gate_rereads_the_state_when_the_listener_is_not_current(
    postgres_url: str, make_engine: EngineFactory
) -> None:
    a = _instance(make_engine, postgres_url, "a")
    eventually(lambda: _owns(a), what="a owns the account")
    firm = a.runtimes["default"].firm_state
    assert firm is not None
    firm.listener.stop()  # hears nothing more, and is soon not current
    b = _instance(make_engine, postgres_url, "b")
    b.halt("desk-wide stop", by="test")
    assert not a.switch.halted
    eventually(lambda: not firm.listener.current_within(1.0), what="listener stale")
    confirmation = a.execute(rpm("rpm_sb_reread"))
    assert confirmation.status is ExecutionStatus.REJECTED
    assert a.switch.halted


def test_the_api_of_a_standby_redirects_trades_and_says_what_it_owns(
    postgres_url: str, make_engine: EngineFactory
) -> None:
    a = _instance(make_engine, postgres_url, "a")
    eventually(lambda: _owns(a), what="a owns the account")
    b = _instance(make_engine, postgres_url, "b")
    with ApiClient(create_app(b, TOKENS)) as client:
        moved = client.post("/execute", json=rpm("rpm_sb_api"), headers=bearer("trader"))
        health = client.get("/health").json()
    assert moved.status_code == 307
    assert moved.headers["location"] == "http://a.example:8000/execute"
    assert health["instance"] == "b"
    assert health["accounts_owned"] == []
    with ApiClient(create_app(a, TOKENS)) as client:
        assert client.get("/health").json()["accounts_owned"] == ["default"]
