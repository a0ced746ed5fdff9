"""Hot standby with several accounts: a lease per account, bound to that account's runtime.

Two instances on one PostgreSQL database and one accounts file (alpha, beta), in one test
process, sharing each account's simulated terminal. Losing one account's lease fences that
account only: the other account's gate stays open and it keeps trading on its owner.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from sqlalchemy import Engine, create_engine, text

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from core.enums import ExecutionStatus
from core.errors import AccountNotOwnedError
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import fast_settings, rpm
from tests.helpers import eventually

ACCOUNTS = """
[accounts.alpha]
magic = 771001
terminal = { kind = "simulated", seed = 1 }

[accounts.beta]
magic = 771002
terminal = { kind = "simulated", seed = 2 }
"""


@pytest.fixture
def db(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def start(postgres_url: str, tmp_path: Path) -> Iterator[Any]:
    path = tmp_path / "accounts.toml"
    path.write_text(ACCOUNTS)
    terminals = {"alpha": SimulatedTerminal(seed=1), "beta": SimulatedTerminal(seed=2)}
    made: list[ExecutionFacade] = []

    def instance(name: str) -> ExecutionFacade:
        engine = create_execution_engine(
            database_url=postgres_url,
            settings=fast_settings(
                accounts_file=str(path),
                instance_name=name,
                advertise_url=f"http://{name}.example:8000",
                takeover_seconds=0.5,
            ),
            terminals=terminals,
        )
        made.append(engine)
        return engine

    yield instance
    for engine in made:
        engine.stop()
    pykka.ActorRegistry.stop_all()


def on(account: str, decision_id: str) -> dict[str, Any]:
    return {**rpm(decision_id=decision_id), "account": account}


def owns(engine: ExecutionFacade, account: str) -> bool:
    assert engine.ownership is not None
    return engine.ownership.owns(account)


def test_losing_one_accounts_lease_fences_that_account_only(start: Any, db: Engine) -> None:
    a = start("a")
    eventually(lambda: owns(a, "alpha") and owns(a, "beta"), what="a owns both accounts")
    b = start("b")
    assert a.execute(on("beta", "sba_1")).status is ExecutionStatus.FILLED
    with pytest.raises(AccountNotOwnedError):
        b.submit(on("alpha", "sba_2"))

    with db.connect() as connection:
        pid = connection.execute(
            text("SELECT backend_pid FROM account_leases WHERE account = 'beta'")
        ).scalar_one()
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    # beta changes hands (or a takes it back); alpha stays a's, and a never stops trading it.
    eventually(lambda: not owns(a, "beta") or owns(b, "beta"), what="a noticed the loss")
    eventually(
        lambda: owns(a, "beta") != owns(b, "beta"), timeout=10, what="beta has one owner again"
    )
    assert owns(a, "alpha")
    assert not owns(b, "alpha")
    assert a.execute(on("alpha", "sba_3")).status is ExecutionStatus.FILLED

    beta_owner, other = (a, b) if owns(a, "beta") else (b, a)
    assert beta_owner.execute(on("beta", "sba_4")).status is ExecutionStatus.FILLED
    with pytest.raises(AccountNotOwnedError):
        other.submit(on("beta", "sba_5"))
