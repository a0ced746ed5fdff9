"""Many accounts in one engine: routing, isolation, unknown accounts, per-account states,
restart reconciliation per account (issue 13)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from core.enums import ExecutionStatus as S
from core.enums import RejectionReason
from core.rules import make_client_id
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import fast_settings, rpm
from tests.actors.test_recovery import seed, send
from tests.helpers import eventually

ACCOUNTS = """
[accounts.alpha]
magic = 770001
terminal = { kind = "simulated", seed = 1 }

[accounts.beta]
magic = 770002
terminal = { kind = "simulated", seed = 2 }
limits = { max_retries = 0 }
"""


@pytest.fixture
def accounts_file(tmp_path: Path) -> str:
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS)
    return str(path)


@pytest.fixture
def terminals() -> dict[str, SimulatedTerminal]:
    return {"alpha": SimulatedTerminal(seed=1), "beta": SimulatedTerminal(seed=2)}


@pytest.fixture
def start(
    database_url: str, accounts_file: str, terminals: dict[str, SimulatedTerminal]
) -> Iterator[Any]:
    made: list[ExecutionFacade] = []

    def factory(**overrides: Any) -> ExecutionFacade:
        engine = create_execution_engine(
            database_url=database_url,
            settings=fast_settings(accounts_file=accounts_file, **overrides),
            terminals=terminals,
        )
        made.append(engine)
        return engine

    yield factory
    for engine in made:
        engine.stop()
    pykka.ActorRegistry.stop_all()


def on(account: str, decision_id: str, **kwargs: Any) -> dict[str, Any]:
    return {**rpm(decision_id=decision_id, **kwargs), "account": account}


def deals(sim: SimulatedTerminal) -> list[dict[str, Any]]:
    return [r for r in sim.sent_requests() if r.get("position") is None]


def test_each_execution_goes_to_its_accounts_terminal_with_its_magic(
    start: Any, terminals: dict[str, SimulatedTerminal], database_url: str
) -> None:
    engine = start()

    a = engine.execute(on("alpha", "dec_a"))
    b = engine.execute(on("beta", "dec_b"))

    assert (a.status, b.status) == (S.FILLED, S.FILLED)
    assert [r["magic"] for r in terminals["alpha"].sent_requests()] == [770001]
    assert [r["magic"] for r in terminals["beta"].sent_requests()] == [770002]
    assert engine.get_execution(a.execution_id).account == "alpha"
    assert engine.get_execution(b.execution_id).account == "beta"
    history = engine.repository.history(account="beta", limit=10)
    assert [r.execution_id for r in history] == [b.execution_id]
    assert engine.runtime("beta").settings.max_retries == 0


def test_an_unknown_account_is_rejected_and_nothing_is_sent_or_recorded(
    start: Any, terminals: dict[str, SimulatedTerminal]
) -> None:
    engine = start()

    refused = engine.execute(on("gamma", "dec_g"))

    assert refused.status is S.REJECTED
    assert refused.rejection_reason is RejectionReason.UNKNOWN_ACCOUNT
    assert all(sim.sent_requests() == [] for sim in terminals.values())
    assert engine.repository.history(limit=10) == []
    # With accounts, a message naming none names the default account, which is not traded.
    assert engine.execute(rpm(decision_id="dec_none")).status is S.REJECTED


def test_a_broker_crash_on_one_account_leaves_the_other_trading(
    start: Any, terminals: dict[str, SimulatedTerminal]
) -> None:
    engine = start()
    alpha, beta = engine.runtime("alpha").supervisor, engine.runtime("beta").supervisor
    alpha.faults.fail_starts("broker", 100)  # a crash loop: alpha's intensity is exceeded

    alpha.inject("broker", "crash")

    eventually(lambda: alpha.switch.halted, what="alpha halted by its restart storm")
    assert not beta.switch.halted
    assert beta.total_restarts == 0
    assert engine.execute(on("beta", "dec_b1")).status is S.FILLED
    refused = engine.execute(on("alpha", "dec_a1"))
    assert refused.status is S.REJECTED
    assert deals(terminals["alpha"]) == []


def test_a_disconnect_on_one_account_halts_only_that_account(
    start: Any, terminals: dict[str, SimulatedTerminal]
) -> None:
    engine = start(disconnect_halt_seconds=0.2)
    alpha, beta = engine.runtime("alpha").supervisor, engine.runtime("beta").supervisor

    terminals["alpha"].set_connected(False)

    eventually(lambda: alpha.switch.halted, what="alpha halted")
    for n in range(3):
        assert engine.execute(on("beta", f"dec_b{n}")).status is S.FILLED
    assert not beta.switch.halted
    state = engine.trading_state("alpha")
    assert state is not None
    assert state.state == "HALTED"
    health = engine.health()["accounts"]
    assert health["alpha"]["trading_state"] == "HALTED"
    assert health["beta"]["trading_state"] == "ACTIVE"
    assert health["beta"]["broker"]["connected"] is True


def test_an_account_halt_stops_only_that_account_and_a_firm_halt_stops_all(
    start: Any, terminals: dict[str, SimulatedTerminal], database_url: str
) -> None:
    engine = start()

    engine.halt("alpha's desk", "ops", account="alpha")

    assert engine.execute(on("alpha", "dec_a")).rejection_reason is RejectionReason.TRADING_HALTED
    assert terminals["alpha"].sent_requests() == []
    assert engine.execute(on("beta", "dec_b")).status is S.FILLED
    engine.halt("firm", "ops")
    assert engine.execute(on("beta", "dec_b2")).status is S.REJECTED
    assert len(terminals["beta"].sent_requests()) == 1
    engine.resume("ops", account="beta")
    assert engine.execute(on("beta", "dec_b3")).status is S.FILLED
    assert engine.runtime("alpha").supervisor.switch.halted
    alpha, beta = engine.trading_state("alpha"), engine.trading_state("beta")
    assert alpha is not None
    assert (alpha.state, alpha.reason) == ("HALTED", "firm")
    assert beta is not None
    assert beta.state == "ACTIVE"


def test_reduce_only_on_one_account_refuses_its_openings_only(
    start: Any, terminals: dict[str, SimulatedTerminal]
) -> None:
    engine = start()

    engine.reduce_only(reason="cut risk", by="alice", account="beta")

    assert engine.execute(on("beta", "dec_b")).rejection_reason is RejectionReason.REDUCE_ONLY
    assert terminals["beta"].sent_requests() == []
    assert engine.execute(on("alpha", "dec_a")).status is S.FILLED
    assert engine.health()["accounts"]["beta"]["trading_state"] == "REDUCING"


def test_states_persist_per_account_across_a_restart(start: Any) -> None:
    engine = start()
    engine.halt("alpha only", "ops", account="alpha")
    engine.reduce_only(reason="beta cut", by="ops", account="beta")
    engine.stop()

    again = start()

    assert again.runtime("alpha").supervisor.switch.state.value == "HALTED"
    assert again.runtime("beta").supervisor.switch.state.value == "REDUCING"


def test_unfinished_executions_are_reconciled_each_against_its_own_terminal(
    start: Any, terminals: dict[str, SimulatedTerminal], database_url: str
) -> None:
    # What a dead engine left: one execution SUBMITTING on each account, each order at its
    # own account's terminal only (looked for on the other terminal, it would be missing).
    for name, magic in (("alpha", 770001), ("beta", 770002)):
        seed(database_url, f"e_{name}", [S.SUBMITTING], account=name, magic=magic)
        send(terminals[name], make_client_id(f"e_{name}"), magic=magic)
    sent = {name: len(sim.sent_requests()) for name, sim in terminals.items()}

    engine = start()

    for name in ("alpha", "beta"):
        record = engine.get_execution(f"e_{name}")
        assert (record.account, record.status) == (name, S.FILLED)
        assert len(terminals[name].sent_requests()) == sent[name]  # found, never re-sent
        assert not engine.runtime(name).supervisor.switch.halted


def test_an_account_halted_under_load_sends_nothing_after_the_halt_returns(
    start: Any, terminals: dict[str, SimulatedTerminal]
) -> None:
    engine = start()
    futures = {
        name: [engine.submit(on(name, f"{name}-{i}", units=1000)) for i in range(150)]
        for name in ("alpha", "beta")
    }
    eventually(
        lambda: sum(map(_done, futures["alpha"])) >= 30, timeout=30, what="30 of alpha's answered"
    )

    engine.halt("alpha under load", "test", account="alpha")
    halted_at = time.monotonic()

    alpha = [f.get(timeout=30) for f in futures["alpha"]]
    beta = [f.get(timeout=30) for f in futures["beta"]]
    assert [r for r in _sends(terminals["alpha"]) if r.start > halted_at] == []
    assert {c.status for c in alpha} <= {S.FILLED, S.REJECTED}
    assert all(
        c.rejection_reason is RejectionReason.TRADING_HALTED
        for c in alpha
        if c.status is S.REJECTED
    )
    assert {c.status for c in beta} == {S.FILLED}
    assert len(_sends(terminals["beta"])) == 150


def _done(future: Any) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    return True


def _sends(sim: SimulatedTerminal) -> list[Any]:
    return [record for record in sim.calls if record.name == "order_send"]
